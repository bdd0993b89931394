//! Restart policies, as Docker's restart manager applies them.
//!
//! - `no`: never; `always`: after every exit; `unless-stopped`: like `always` except after a
//!   manual stop; `on-failure[:N]`: after a non-zero exit, at most N times (0 = no limit).
//! - Between restarts the daemon waits: 100 ms, doubling after every restart, at most one
//!   minute; a container that ran 10 s or more starts again from 100 ms.
//! - A manual `stop` (or `kill`) ends restarting; a manual `start`/`restart` resets
//!   `RestartCount` and the back-off.
//! - At daemon start, `always` containers are started again, and `unless-stopped` ones unless
//!   they were stopped by hand.

use crate::container::{Container, ContainerRecord, Status};
use crate::state::Shared;
use berth_api::models::{RestartPolicy, RestartPolicyNameEnum as R};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);
const MAX_TIMEOUT: Duration = Duration::from_secs(60);
const RESET_AFTER: Duration = Duration::from_secs(10);

/// The back-off of each container, by id (in memory, as Docker's restart manager).
static BACKOFF: Mutex<Option<HashMap<String, Duration>>> = Mutex::new(None);

fn with_backoff<T>(f: impl FnOnce(&mut HashMap<String, Duration>) -> T) -> T {
    let mut g = BACKOFF.lock().unwrap_or_else(|p| p.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

/// The next wait: 100 ms at first or after a run of 10 s, otherwise twice the last, at most 1 min.
pub fn next_timeout(last: Option<Duration>, ran_for: Duration) -> Duration {
    let last = if ran_for >= RESET_AFTER { None } else { last };
    match last {
        None => DEFAULT_TIMEOUT,
        Some(t) => (t * 2).min(MAX_TIMEOUT),
    }
}

/// Whether the policy asks for a restart after an exit with `exit_code`, the container having
/// been restarted `restart_count` times already. (Docker's `RestartManager.ShouldRestart`.)
pub fn policy_wants_restart(
    policy: Option<&RestartPolicy>,
    exit_code: i64,
    manually_stopped: bool,
    restart_count: i64,
) -> bool {
    let Some(p) = policy else { return false };
    match p.name {
        Some(R::ALWAYS) => true,
        Some(R::UNLESS_STOPPED) => !manually_stopped,
        Some(R::ON_FAILURE) => {
            let max = p.maximum_retry_count.unwrap_or(0);
            (max == 0 || restart_count < max) && exit_code != 0
        }
        _ => false,
    }
}

/// Forget a container's back-off (manual start, removal).
pub fn reset(id: &str) {
    with_backoff(|m| m.remove(id));
}

fn ran_for(rec: &ContainerRecord) -> Duration {
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    match (parse(&rec.state.started_at), parse(&rec.state.finished_at)) {
        (Some(s), Some(f)) => f
            .signed_duration_since(s)
            .to_std()
            .unwrap_or(Duration::ZERO),
        _ => Duration::ZERO,
    }
}

/// Called by the exit handler once the exit is recorded. When the policy asks for it, marks
/// the container `restarting`, counts the restart and starts it again after the back-off.
/// Returns whether a restart was scheduled.
pub fn on_exit(d: &Shared, c: &Arc<Container>) -> bool {
    let delay = {
        let mut r = c.lock();
        if r.host_config.auto_remove == Some(true) || r.manually_stopped {
            return false;
        }
        if !policy_wants_restart(
            r.host_config.restart_policy.as_ref(),
            r.state.exit_code,
            r.manually_stopped,
            r.restart_count,
        ) {
            return false;
        }
        let ran = ran_for(&r);
        let file = d.paths.container_dir(&r.id).join(STATE_FILE);
        // After a daemon restart the last back-off comes from the file (not after a
        // manual start, which sets the count back to 0).
        let persisted = (r.restart_count > 0)
            .then(|| load(&file).map(|(b, _)| b))
            .flatten();
        let delay = with_backoff(|m| {
            let t = next_timeout(m.get(&r.id).copied().or(persisted), ran);
            m.insert(r.id.clone(), t);
            t
        });
        save(&file, delay);
        r.restart_count += 1;
        r.state.status = Status::Restarting;
        delay
    };
    let _ = d.save(c, false);
    schedule(d, c, delay);
    true
}

/// Start the container again after `delay`, unless it was stopped or removed meanwhile.
fn schedule(d: &Shared, c: &Arc<Container>, delay: Duration) {
    let d = d.clone();
    let c = c.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let _op = c.op_lock.lock().await;
        let (status, stopped) = {
            let r = c.lock();
            (r.state.status, r.manually_stopped)
        };
        if status != Status::Restarting || stopped || c.lifecycle.borrow().removed {
            return;
        }
        // Back to "exited" for the start (start refuses a container it thinks is running).
        c.lock().state.status = Status::Exited;
        if let Err(e) = crate::lifecycle::start_locked(&d, &c).await {
            tracing::warn!("restarting container {}: {}", &c.id[..12], e.message);
            // A failed start counts as another exit: the policy decides again, with back-off.
            on_exit(&d, &c);
        }
    });
}

/// Where the back-off survives a daemon restart (in the container dir): the last wait and
/// when the pending restart is due.
const STATE_FILE: &str = "restart.json";

fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

fn save(path: &std::path::Path, backoff: Duration) {
    let v = serde_json::json!({
        "BackoffMs": backoff.as_millis() as u64,
        "RestartAtMs": (unix_ms() + backoff.as_millis()) as u64,
    });
    if let Err(e) = crate::paths::write_atomic(path, v.to_string().as_bytes(), false) {
        tracing::debug!("saving {}: {e}", path.display());
    }
}

/// The saved back-off and the time (unix ms) the pending restart was due.
fn load(path: &std::path::Path) -> Option<(Duration, u128)> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    Some((
        Duration::from_millis(v["BackoffMs"].as_u64()?),
        v["RestartAtMs"].as_u64()? as u128,
    ))
}

/// At daemon start, for a container the daemon left in its back-off: the same back-off
/// continues (what remains of the wait, then the start; `RestartCount` kept).
pub fn resume(d: &Shared, c: &Arc<Container>) {
    let file = d.paths.container_dir(&c.id).join(STATE_FILE);
    let (backoff, due) = load(&file).unwrap_or((DEFAULT_TIMEOUT, 0));
    with_backoff(|m| m.insert(c.id.clone(), backoff));
    let remaining = Duration::from_millis(due.saturating_sub(unix_ms()) as u64);
    schedule(d, c, remaining.min(MAX_TIMEOUT));
}

/// A manual stop of a container waiting to be restarted: it stays exited.
pub fn cancel(d: &Shared, c: &Arc<Container>) {
    let changed = {
        let mut r = c.lock();
        r.manually_stopped = true;
        if r.state.status == Status::Restarting {
            r.state.status = Status::Exited;
            true
        } else {
            false
        }
    };
    reset(&c.id);
    if changed {
        let _ = d.save(c, false);
    }
}

/// A manual start or restart: the count and the back-off start again.
pub fn manual_start(c: &Container) {
    c.lock().restart_count = 0;
    reset(&c.id);
}

/// At daemon start, for a container that is not running: start it if its policy says so.
pub fn wants_start_at_boot(rec: &ContainerRecord) -> bool {
    match rec.host_config.restart_policy.as_ref().and_then(|p| p.name) {
        Some(R::ALWAYS) => true,
        Some(R::UNLESS_STOPPED) => !rec.manually_stopped,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pol(name: R, max: i64) -> RestartPolicy {
        RestartPolicy {
            name: Some(name),
            maximum_retry_count: Some(max),
        }
    }

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let z = Duration::ZERO;
        assert_eq!(next_timeout(None, z), Duration::from_millis(100));
        assert_eq!(
            next_timeout(Some(Duration::from_millis(100)), z),
            Duration::from_millis(200)
        );
        assert_eq!(next_timeout(Some(Duration::from_secs(50)), z), MAX_TIMEOUT);
        assert_eq!(
            next_timeout(Some(Duration::from_secs(8)), Duration::from_secs(10)),
            DEFAULT_TIMEOUT
        );
    }

    #[test]
    fn policies() {
        assert!(!policy_wants_restart(None, 1, false, 0));
        assert!(!policy_wants_restart(Some(&pol(R::NO, 0)), 1, false, 0));
        assert!(policy_wants_restart(Some(&pol(R::ALWAYS, 0)), 0, true, 9));
        assert!(policy_wants_restart(
            Some(&pol(R::UNLESS_STOPPED, 0)),
            0,
            false,
            3
        ));
        assert!(!policy_wants_restart(
            Some(&pol(R::UNLESS_STOPPED, 0)),
            0,
            true,
            3
        ));
        let of2 = pol(R::ON_FAILURE, 2);
        assert!(!policy_wants_restart(Some(&of2), 0, false, 0));
        assert!(policy_wants_restart(Some(&of2), 1, false, 1));
        assert!(!policy_wants_restart(Some(&of2), 1, false, 2));
        assert!(policy_wants_restart(
            Some(&pol(R::ON_FAILURE, 0)),
            1,
            false,
            100
        ));
    }
}
