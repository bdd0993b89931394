//! The exit record, `<state-dir>/exit.json`, written atomically so a daemon that reads it after
//! a crash sees either nothing or the whole record. No fsync: the reader is a daemon on the
//! same boot (the page cache is enough); after a machine crash the container is gone anyway and
//! the daemon records it as exited without this file. An fsync here cost 4–8 ms per exit.

use crate::shim_protocol::{ExitRecord, EXIT_FILE};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Write tmp, rename over `exit.json`.
pub fn write(state_dir: &Path, record: &ExitRecord) -> io::Result<()> {
    let tmp = state_dir.join(".exit.json.tmp");
    let data = serde_json::to_vec(record).map_err(io::Error::other)?;
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&data)?;
    }
    fs::rename(&tmp, state_dir.join(EXIT_FILE))
}

/// Decode a wait status the way Docker reports it: the exit code, or 128 + the signal.
pub fn exit_code_of(status: rustix::process::WaitStatus) -> (i32, Option<i32>) {
    if let Some(sig) = status.terminating_signal() {
        (128 + sig, Some(sig))
    } else {
        (status.exit_status().unwrap_or(255), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_replaces_atomically() {
        let dir = std::env::temp_dir().join(format!("berth-shim-exit-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("mkdir");
        let rec = ExitRecord {
            exit_code: 3,
            signal: None,
            finished_at: "t".into(),
            oom_killed: false,
        };
        write(&dir, &rec).expect("write");
        let again = ExitRecord {
            exit_code: 137,
            signal: Some(9),
            ..rec
        };
        write(&dir, &again).expect("rewrite");
        let back: ExitRecord =
            serde_json::from_slice(&fs::read(dir.join(EXIT_FILE)).expect("read")).expect("parse");
        assert_eq!(back, again);
        assert!(!dir.join(".exit.json.tmp").exists());
        fs::remove_dir_all(&dir).expect("cleanup");
    }
}
