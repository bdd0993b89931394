//! How the CLI ends: docker's exit codes and error lines.

use berth_api::ApiError;

/// Ends the command with `code`, printing `message` (if any) on stderr.
#[derive(Debug, thiserror::Error)]
#[error("{}", message.as_deref().unwrap_or(""))]
pub struct ExitStatus {
    pub code: i32,
    pub message: Option<String>,
}

impl ExitStatus {
    /// A silent exit with the container's (or process's) status.
    pub fn code(code: i32) -> Self {
        Self {
            code,
            message: None,
        }
    }
}

/// The line docker prints for an error: daemon errors get "Error response from daemon: ".
pub fn describe(err: &anyhow::Error) -> String {
    if let Some(api) = err.downcast_ref::<ApiError>() {
        return match api {
            ApiError::Status { message, .. } => format!("Error response from daemon: {message}"),
            other => other.to_string(),
        };
    }
    format!("{err:#}")
}

/// docker run's mapping of a start failure to 126/127 (cli/command/container/run.go).
pub fn run_exit_code(message: &str) -> i32 {
    let m = message.to_lowercase();
    if m.contains("executable file not found")
        || m.contains("no such file or directory")
        || m.contains("system cannot find the file specified")
    {
        127
    } else if m.contains("permission denied") || m.contains("cannot run executable") {
        126
    } else {
        125
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_exit_codes() {
        assert_eq!(
            run_exit_code("exec: \"nope\": executable file not found in $PATH"),
            127
        );
        assert_eq!(run_exit_code("open /x: permission denied"), 126);
        assert_eq!(run_exit_code("something else"), 125);
    }

    #[test]
    fn daemon_errors_are_prefixed() {
        let e = anyhow::Error::new(ApiError::Status {
            status: 404,
            message: "No such container: x".into(),
        });
        assert_eq!(
            describe(&e),
            "Error response from daemon: No such container: x"
        );
    }
}
