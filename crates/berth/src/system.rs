//! `info` and `version`.

use berth_api::Client;
use clap::Args;
use serde_json::{json, Value};

#[derive(Debug, Args)]
pub struct FormatArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub async fn info(client: &Client, a: FormatArgs) -> anyhow::Result<i32> {
    let i = client.info_raw().await?;
    if let Some(f) = &a.format {
        println!("{}", crate::format::render_one(f, &i)?);
        return Ok(0);
    }
    println!(
        "Client:\n Version:    {}\n Context:    default\n",
        env!("CARGO_PKG_VERSION")
    );
    println!("Server:");
    println!(" Containers: {}", s(&i["Containers"]));
    println!("  Running: {}", s(&i["ContainersRunning"]));
    println!("  Paused: {}", s(&i["ContainersPaused"]));
    println!("  Stopped: {}", s(&i["ContainersStopped"]));
    println!(" Images: {}", s(&i["Images"]));
    println!(" Server Version: {}", s(&i["ServerVersion"]));
    println!(" Storage Driver: {}", s(&i["Driver"]));
    println!(" Logging Driver: {}", s(&i["LoggingDriver"]));
    println!(" Cgroup Driver: {}", s(&i["CgroupDriver"]));
    println!(" Cgroup Version: {}", s(&i["CgroupVersion"]));
    println!(" Default Runtime: {}", s(&i["DefaultRuntime"]));
    println!(" Kernel Version: {}", s(&i["KernelVersion"]));
    println!(" Operating System: {}", s(&i["OperatingSystem"]));
    println!(" OSType: {}", s(&i["OSType"]));
    println!(" Architecture: {}", s(&i["Architecture"]));
    println!(" CPUs: {}", s(&i["NCPU"]));
    println!(
        " Total Memory: {}",
        crate::format::units::bytes_size(i["MemTotal"].as_f64().unwrap_or(0.0))
    );
    println!(" Name: {}", s(&i["Name"]));
    println!(" ID: {}", s(&i["ID"]));
    println!(" Docker Root Dir: {}", s(&i["DockerRootDir"]));
    println!(" Debug Mode: {}", s(&i["Debug"]));
    Ok(0)
}

pub async fn version(client: &Client, a: FormatArgs) -> anyhow::Result<i32> {
    let client_info = json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": berth_api::API_VERSION,
        "Os": std::env::consts::OS,
        "Arch": std::env::consts::ARCH,
    });
    let server = client.get_json::<Value>("/version").await;
    if let Some(f) = &a.format {
        let v = json!({"Client": client_info, "Server": server.as_ref().ok()});
        println!("{}", crate::format::render_one(f, &v)?);
        return server.map(|_| 0).map_err(Into::into);
    }
    println!("Client:");
    println!(" Version:           {}", s(&client_info["Version"]));
    println!(" API version:       {}", s(&client_info["ApiVersion"]));
    println!(
        " OS/Arch:           {}/{}",
        s(&client_info["Os"]),
        s(&client_info["Arch"])
    );
    let server = server?;
    println!("\nServer:");
    println!(" Engine:");
    println!("  Version:          {}", s(&server["Version"]));
    println!(
        "  API version:      {} (minimum version {})",
        s(&server["ApiVersion"]),
        s(&server["MinAPIVersion"])
    );
    println!(
        "  OS/Arch:          {}/{}",
        s(&server["Os"]),
        s(&server["Arch"])
    );
    println!("  Kernel Version:   {}", s(&server["KernelVersion"]));
    Ok(0)
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template ('json' prints one JSON object per event)
    #[arg(long)]
    pub format: Option<String>,
    /// Show all events created since timestamp
    #[arg(long)]
    pub since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    pub until: Option<String>,
}

/// `events`: docker's line per event, `<time> <type> <action> <id> (k=v, …)`, or `--format`.
pub async fn events(client: &Client, a: EventsArgs) -> anyhow::Result<i32> {
    use std::io::Write;
    let filters = crate::filters::to_json(&a.filter)?;
    // Relative and RFC 3339 times are resolved here, as the docker CLI does.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let abs = |t: &Option<String>| -> anyhow::Result<Option<String>> {
        let Some(t) = t else { return Ok(None) };
        if let Ok(d) = humantime::parse_duration(t) {
            let at = now.saturating_sub(d);
            return Ok(Some(format!("{}.{:09}", at.as_secs(), at.subsec_nanos())));
        }
        if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(t) {
            return Ok(Some(format!(
                "{}.{:09}",
                dt.timestamp(),
                dt.timestamp_subsec_nanos()
            )));
        }
        Ok(Some(t.clone()))
    };
    let q = berth_api::Query::new()
        .opt("since", abs(&a.since)?.as_deref())
        .opt("until", abs(&a.until)?.as_deref())
        .opt("filters", filters.as_deref());
    let mut events = client.events(q).await?.json_values::<Value>();
    let mut out = std::io::stdout();
    while let Some(ev) = events.next().await? {
        let text = match a.format.as_deref() {
            Some("json") => ev.to_string(),
            Some(f) => crate::format::render_one(f, &template_view(&ev))?,
            None => event_line(&ev),
        };
        writeln!(out, "{text}")?;
        out.flush()?;
    }
    Ok(0)
}

/// The fields docker's templates see: `.Type`, `.Action`, `.Actor.ID`, `.Actor.Attributes`,
/// `.Status`, `.ID`, `.From`, `.Time`, `.TimeNano`, `.Scope`.
fn template_view(ev: &Value) -> Value {
    json!({
        "Type": ev["Type"], "Action": ev["Action"], "Actor": ev["Actor"], "Scope": ev["scope"],
        "Status": ev.get("status").cloned().unwrap_or(json!("")),
        "ID": ev.get("id").cloned().unwrap_or(json!("")),
        "From": ev.get("from").cloned().unwrap_or(json!("")),
        "Time": ev["time"], "TimeNano": ev["timeNano"],
    })
}

fn event_line(ev: &Value) -> String {
    let nanos = ev["timeNano"].as_i64().unwrap_or(0);
    let time =
        chrono::DateTime::from_timestamp(nanos / 1_000_000_000, (nanos % 1_000_000_000) as u32)
            .map(|t| {
                t.with_timezone(&chrono::Local)
                    .format("%Y-%m-%dT%H:%M:%S%.9f%:z")
                    .to_string()
            })
            .unwrap_or_default();
    let mut attrs: Vec<(String, String)> = ev["Actor"]["Attributes"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), s(v))).collect())
        .unwrap_or_default();
    attrs.sort();
    let attrs = attrs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut line = format!(
        "{time} {} {} {}",
        s(&ev["Type"]),
        s(&ev["Action"]),
        s(&ev["Actor"]["ID"])
    );
    if !attrs.is_empty() {
        line.push_str(&format!(" ({attrs})"));
    }
    line
}
