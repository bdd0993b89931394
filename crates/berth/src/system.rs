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
