//! `berth-oci`: the runtime's OCI command line without clap, for tests and benchmarks
//! (`berth runtime …` in crates/berth is the user-facing one).
//!
//! berth-oci [--root DIR] create|run [--bundle DIR] [--pid-file F] ID | start|state|delete [--force]|kill ID [SIGNAL]

use berth_runtime::cli;
use std::path::PathBuf;

fn main() {
    std::process::exit(match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth-oci: {e}");
            1
        }
    })
}

fn real_main() -> Result<i32, Box<dyn std::error::Error>> {
    let mut root = PathBuf::from("/run/berth/runtime");
    let mut bundle = PathBuf::from(".");
    let mut pid_file: Option<PathBuf> = None;
    let mut force = false;
    let mut positional = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--root" => root = args.next().ok_or("--root needs a value")?.into(),
            "--bundle" | "-b" => bundle = args.next().ok_or("--bundle needs a value")?.into(),
            "--pid-file" => pid_file = Some(args.next().ok_or("--pid-file needs a value")?.into()),
            "--force" | "-f" => force = true,
            _ => positional.push(a),
        }
    }
    let (cmd, id) = match positional.as_slice() {
        [cmd, id, ..] => (cmd.as_str(), id.as_str()),
        _ => return Err("usage: berth-oci [--root DIR] COMMAND [--bundle DIR] ID".into()),
    };
    match cmd {
        "create" => cli::create(&root, id, &bundle, pid_file.as_deref())?,
        "start" => cli::start(&root, id)?,
        "state" => println!("{}", serde_json::to_string_pretty(&cli::state(&root, id)?)?),
        "kill" => cli::kill(&root, id, positional.get(2).map_or("TERM", String::as_str))?,
        "delete" => cli::delete(&root, id, force)?,
        "run" => return Ok(cli::run(&root, id, &bundle, pid_file.as_deref())?),
        other => return Err(format!("unknown command {other:?}").into()),
    }
    Ok(0)
}
