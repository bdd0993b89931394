//! `logs`.

use std::io::Write;

use berth_api::demux::StdStream;
use berth_api::{Client, Query};
use clap::Args;

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m")
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a timestamp or relative time
    #[arg(long)]
    pub until: Option<String>,
    /// Show timestamps
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Show extra details provided to logs
    #[arg(long)]
    pub details: bool,
    pub container: String,
}

/// docker's `GetTimestamp`: a relative duration, RFC 3339, or unix seconds.
pub fn timestamp_arg(value: &str) -> anyhow::Result<String> {
    if value.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Ok(value.to_string());
    }
    if let Ok(d) = humantime::parse_duration(value) {
        let t = std::time::SystemTime::now() - d;
        let secs = t.duration_since(std::time::UNIX_EPOCH)?;
        return Ok(format!("{}.{:09}", secs.as_secs(), secs.subsec_nanos()));
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(value) {
        return Ok(format!(
            "{}.{:09}",
            t.timestamp(),
            t.timestamp_subsec_nanos()
        ));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let t = d
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp())
            .unwrap_or(0);
        return Ok(t.to_string());
    }
    anyhow::bail!("invalid value for \"since\"/\"until\": {value:?}")
}

pub async fn logs(client: &Client, a: LogsArgs) -> anyhow::Result<i32> {
    let info = client.container_inspect(&a.container).await?;
    let id = info.id.clone().unwrap_or_else(|| a.container.clone());
    let tty = info.config.and_then(|c| c.tty).unwrap_or(false);
    let since = a.since.as_deref().map(timestamp_arg).transpose()?;
    let until = a.until.as_deref().map(timestamp_arg).transpose()?;
    let q = Query::new()
        .flag("details", a.details)
        .flag("follow", a.follow)
        .opt("since", since.as_deref())
        .set("stderr", "1")
        .set("stdout", "1")
        .set("tail", a.tail.as_str())
        .flag("timestamps", a.timestamps)
        .opt("until", until.as_deref());
    let mut stream = client.container_logs(&id, q).await?;
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    if tty {
        while let Some(chunk) = stream.chunk().await? {
            stdout.write_all(&chunk)?;
            stdout.flush()?;
        }
        return Ok(0);
    }
    let mut frames = stream.frames();
    while let Some((kind, data)) = frames.next().await? {
        match kind {
            StdStream::Stderr | StdStream::SystemErr => {
                stderr.write_all(&data)?;
                stderr.flush()?;
            }
            _ => {
                stdout.write_all(&data)?;
                stdout.flush()?;
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps() {
        assert_eq!(super::timestamp_arg("1700000000").unwrap(), "1700000000");
        assert_eq!(
            super::timestamp_arg("2024-01-01T00:00:00Z").unwrap(),
            "1704067200.000000000"
        );
        assert!(super::timestamp_arg("10m").is_ok());
        assert!(super::timestamp_arg("yesterday-ish").is_err());
    }
}
