//! Attached `compose up`: every container's output on one stdout, prefixed and coloured;
//! `name exited with code N` as each one ends; Ctrl-C stops them all (a second one kills);
//! `--abort-on-container-exit` / `--exit-code-from` stop the project when one exits.

use std::time::Duration;

use berth_api::Client;
use tokio::sync::mpsc;

use super::logs::{self, LogOptions, Printer, Target};
use super::progress::Progress;
use super::up::Running;

#[derive(Clone, Debug, Default)]
pub struct AttachOptions {
    pub abort_on_exit: bool,
    pub exit_code_from: Option<String>,
    pub no_color: bool,
    pub no_prefix: bool,
    pub timestamps: bool,
    pub timeout: Option<i64>,
    /// Output from this time on (`secs.nanos`): what this `up` started, not earlier runs.
    pub since: Option<String>,
    /// Services whose exit is expected (a `service_completed_successfully` dependency):
    /// they do not abort the project.
    pub expected_exits: Vec<String>,
    /// The containers of this `up` that are not attached (`--no-attach`, `attach: false`,
    /// dependencies): not followed, but stopped with the others.
    pub unattached: Vec<Running>,
}

pub async fn attached(
    client: &Client,
    project: &str,
    running: Vec<Running>,
    o: AttachOptions,
) -> anyhow::Result<i32> {
    let names: Vec<String> = running
        .iter()
        .map(|r| logs::display_name(project, &r.service, &r.name))
        .collect();
    println!("Attaching to {}", names.join(", "));
    let lo = LogOptions {
        follow: true,
        timestamps: o.timestamps,
        no_color: o.no_color,
        no_prefix: o.no_prefix,
        since: o.since.clone(),
        ..Default::default()
    };
    let printer = Printer::new(&names, &lo);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let target = |i: usize| Target {
        id: running[i].id.clone(),
        name: names[i].clone(),
        tty: running[i].tty,
    };
    for i in 0..running.len() {
        logs::spawn(client, i, target(i), &lo, printer.clone(), tx.clone());
    }
    let mut exited = vec![false; running.len()];
    let abort = o.abort_on_exit || o.exit_code_from.is_some();
    let mut result = 0;
    loop {
        tokio::select! {
            ended = rx.recv() => {
                let Some(i) = ended else { break };
                let info = client.container_inspect_raw(&running[i].id, false).await;
                let state = info.as_ref().map(|v| v["State"].clone()).unwrap_or_default();
                if state["Running"].as_bool() == Some(true) || state["Restarting"].as_bool() == Some(true) {
                    // A restart policy brought it back: follow the new run's output.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let since = crate::format::units::now_unix().to_string();
                    let lo = LogOptions { since: Some(since), ..lo.clone() };
                    logs::spawn(client, i, target(i), &lo, printer.clone(), tx.clone());
                    continue;
                }
                let code = state["ExitCode"].as_i64().unwrap_or(0) as i32;
                exited[i] = true;
                printer.notice(i, &format!("{} exited with code {code}", names[i]));
                let from_this = o.exit_code_from.as_deref().is_none_or(|s| s == running[i].service);
                let expected = o.expected_exits.contains(&running[i].service);
                if abort && from_this && !expected {
                    result = code;
                    println!("Aborting on container exit...");
                    stop_all(client, &running, &o.unattached, o.timeout).await?;
                    // Let the other streams drain their last lines.
                    let _ = tokio::time::timeout(Duration::from_secs(2), async {
                        while exited.iter().any(|e| !e) {
                            match rx.recv().await { Some(j) => exited[j] = true, None => break }
                        }
                    }).await;
                    return Ok(result);
                }
                if let Some(s) = &o.exit_code_from {
                    if s == &running[i].service { result = code; }
                }
                if exited.iter().all(|e| *e) {
                    break;
                }
            }
            _ = tokio::signal::ctrl_c() => {
                eprintln!("Gracefully stopping... (press Ctrl+C again to force)");
                tokio::select! {
                    r = stop_all(client, &running, &o.unattached, o.timeout) => r?,
                    _ = tokio::signal::ctrl_c() => {
                        for r in running.iter().chain(&o.unattached) {
                            let _ = client.container_kill(&r.id, None).await;
                        }
                    }
                }
                return Ok(130);
            }
        }
    }
    Ok(result)
}

async fn stop_all(
    client: &Client,
    running: &[Running],
    unattached: &[Running],
    timeout: Option<i64>,
) -> anyhow::Result<()> {
    let progress = Progress::new("Stopping");
    let mut set = tokio::task::JoinSet::new();
    for r in running.iter().chain(unattached).rev() {
        let (client, r, progress) = (client.clone(), r.clone(), progress.clone());
        set.spawn(async move {
            progress.working("Container", &r.name, "Stopping");
            let res = client.container_stop(&r.id, None, timeout).await;
            match res {
                Ok(()) => progress.done("Container", &r.name, "Stopped"),
                Err(e) if e.is_not_found() => progress.done("Container", &r.name, "Stopped"),
                Err(e) => return Err(anyhow::Error::new(e)),
            }
            Ok(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(())
}
