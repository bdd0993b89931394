//! The shim's command line (crates/shim/PROTOCOL.md, "Invocation"). Parsed by hand: the shim is
//! spawned only by the daemon, and a parser crate would cost more memory than it saves.

use std::ffi::OsString;
use std::path::PathBuf;

/// Which runtime creates the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeChoice {
    /// berth's own runtime, in the shim's process.
    Builtin,
    /// An OCI runtime binary (runc) with its state root.
    External { binary: PathBuf, root: PathBuf },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub id: String,
    pub bundle: PathBuf,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub log: PathBuf,
    pub stdin: bool,
    pub runtime: RuntimeChoice,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgsError {
    #[error("missing value for {0}")]
    MissingValue(String),
    #[error("missing required option {0}")]
    Missing(&'static str),
    #[error("unknown option {0}")]
    Unknown(String),
    #[error("--runtime {0} needs --runtime-root")]
    NoRuntimeRoot(String),
}

impl Args {
    pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Args, ArgsError> {
        let (mut id, mut bundle, mut socket, mut state_dir, mut log) =
            (None, None, None, None, None);
        let (mut runtime, mut runtime_root) = (None::<OsString>, None::<OsString>);
        let mut stdin = false;
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            let text = arg.to_string_lossy().into_owned();
            // Accept both `--opt value` and `--opt=value`.
            let (name, inline) = match text.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(OsString::from(v))),
                _ => (text.clone(), None),
            };
            if name == "--stdin" {
                stdin = true;
                continue;
            }
            let slot = match name.as_str() {
                "--id" => &mut id,
                "--bundle" => &mut bundle,
                "--socket" => &mut socket,
                "--state-dir" => &mut state_dir,
                "--log" => &mut log,
                "--runtime" => &mut runtime,
                "--runtime-root" => &mut runtime_root,
                _ => return Err(ArgsError::Unknown(text)),
            };
            let value = match inline {
                Some(v) => v,
                None => it
                    .next()
                    .ok_or_else(|| ArgsError::MissingValue(name.clone()))?,
            };
            *slot = Some(value);
        }
        let runtime = match runtime {
            None => RuntimeChoice::Builtin,
            Some(r) if r == "builtin" => RuntimeChoice::Builtin,
            Some(binary) => RuntimeChoice::External {
                root: runtime_root.map(PathBuf::from).ok_or_else(|| {
                    ArgsError::NoRuntimeRoot(binary.to_string_lossy().into_owned())
                })?,
                binary: PathBuf::from(binary),
            },
        };
        Ok(Args {
            id: id
                .ok_or(ArgsError::Missing("--id"))?
                .to_string_lossy()
                .into_owned(),
            bundle: bundle.ok_or(ArgsError::Missing("--bundle"))?.into(),
            socket: socket.ok_or(ArgsError::Missing("--socket"))?.into(),
            state_dir: state_dir.ok_or(ArgsError::Missing("--state-dir"))?.into(),
            log: log.ok_or(ArgsError::Missing("--log"))?.into(),
            stdin,
            runtime,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Args, ArgsError> {
        Args::parse(s.split_whitespace().map(OsString::from))
    }

    #[test]
    fn full_builtin_invocation() {
        let a = parse("--id c1 --bundle /b --socket /s.sock --state-dir /st --log /l.json --stdin --runtime builtin")
            .expect("parse");
        assert_eq!(a.id, "c1");
        assert_eq!(a.bundle, PathBuf::from("/b"));
        assert_eq!(a.socket, PathBuf::from("/s.sock"));
        assert_eq!(a.state_dir, PathBuf::from("/st"));
        assert_eq!(a.log, PathBuf::from("/l.json"));
        assert!(a.stdin);
        assert_eq!(a.runtime, RuntimeChoice::Builtin);
    }

    #[test]
    fn external_runtime_needs_a_root() {
        let a = parse("--id=c --bundle /b --socket /s --state-dir /st --log /l --runtime /usr/bin/runc --runtime-root /r")
            .expect("parse");
        assert!(!a.stdin);
        assert_eq!(
            a.runtime,
            RuntimeChoice::External {
                binary: "/usr/bin/runc".into(),
                root: "/r".into()
            }
        );
        assert_eq!(
            parse("--id c --bundle /b --socket /s --state-dir /st --log /l --runtime runc"),
            Err(ArgsError::NoRuntimeRoot("runc".into()))
        );
    }

    #[test]
    fn errors_name_the_option() {
        assert_eq!(parse("--id"), Err(ArgsError::MissingValue("--id".into())));
        assert_eq!(
            parse("--bogus x"),
            Err(ArgsError::Unknown("--bogus".into()))
        );
        assert_eq!(parse("--id c"), Err(ArgsError::Missing("--bundle")));
    }
}
