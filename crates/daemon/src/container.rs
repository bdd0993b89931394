//! A container as the daemon knows it: its persisted record and its live lifecycle signal.

use berth_api::models::{ContainerConfig, HostConfig};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use tokio::sync::watch;

/// What Docker calls `State.Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }
    /// Running in Docker's sense: a process exists (paused counts).
    pub fn is_running(self) -> bool {
        matches!(self, Status::Running | Status::Paused | Status::Restarting)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunState {
    pub status: Status,
    pub pid: i64,
    pub exit_code: i64,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    pub oom_killed: bool,
}

impl Default for RunState {
    fn default() -> Self {
        RunState {
            status: Status::Created,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            started_at: ZERO_TIME.to_string(),
            finished_at: ZERO_TIME.to_string(),
            oom_killed: false,
        }
    }
}

/// Go's zero time, as Docker prints it for "never".
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The persisted form of a container (`containers/<id>/config.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    /// Without the leading slash.
    pub name: String,
    pub created: String,
    /// The image as the user named it.
    pub image: String,
    pub image_id: String,
    pub path: String,
    pub args: Vec<String>,
    /// Config merged with the image's defaults.
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    pub state: RunState,
    pub restart_count: i64,
    #[serde(default)]
    pub manually_stopped: bool,
    /// Volumes, binds and tmpfs mounts (resolved at create).
    #[serde(default)]
    pub mounts: Vec<crate::mounts::MountPoint>,
}

/// The live lifecycle, watched by `wait`, `logs -f` and attach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lifecycle {
    pub running: bool,
    /// Incremented at every exit, so `wait?condition=next-exit` can tell a new exit from an old one.
    pub exits: u64,
    pub exit_code: i64,
    pub removed: bool,
}

/// An attach made before start: `start` connects it to the shim before the process runs,
/// so it sees all of the output.
pub struct PendingAttach {
    pub request: crate::shim::Request,
    pub reply: tokio::sync::oneshot::Sender<crate::error::ApiResult<crate::shim::ShimStream>>,
}

/// Whether attaches can go straight to the shim, or must wait for `start`.
#[derive(Default)]
pub struct AttachGate {
    pub shim_up: bool,
    pub waiting: Vec<PendingAttach>,
}

pub struct Container {
    pub id: String,
    record: Mutex<ContainerRecord>,
    pub lifecycle: watch::Sender<Lifecycle>,
    /// Serialises start/stop/kill/remove of this container.
    pub op_lock: tokio::sync::Mutex<()>,
    /// Attach streams waiting for the container to start (docker run attaches before start).
    pub attach_gate: Mutex<AttachGate>,
}

impl Container {
    pub fn new(record: ContainerRecord) -> Self {
        let lc = Lifecycle {
            running: record.state.status.is_running(),
            exits: 0,
            exit_code: record.state.exit_code,
            removed: false,
        };
        let (tx, _) = watch::channel(lc);
        Container {
            id: record.id.clone(),
            record: Mutex::new(record),
            lifecycle: tx,
            op_lock: tokio::sync::Mutex::new(()),
            attach_gate: Mutex::new(AttachGate::default()),
        }
    }

    /// A snapshot of the record.
    pub fn get(&self) -> ContainerRecord {
        self.lock().clone()
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, ContainerRecord> {
        // A poisoned lock only means a panic elsewhere; the record itself is plain data.
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn gate(&self) -> std::sync::MutexGuard<'_, AttachGate> {
        self.attach_gate.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn name(&self) -> String {
        self.lock().name.clone()
    }

    pub fn status(&self) -> Status {
        self.lock().state.status
    }

    pub fn tty(&self) -> bool {
        self.lock().config.tty.unwrap_or(false)
    }
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}
