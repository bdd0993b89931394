//! Registry commands: pull, push, login, logout, search (the daemon does the registry work).

use std::io::BufRead;

use anyhow::Context;
use base64::Engine;
use berth_api::{Body, Client, Query};
use clap::Args;
use serde_json::{json, Value};

use super::auth;
use super::progress;
use crate::reference::Reference;

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Download all tagged images in the repository
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// NAME[:TAG|@DIGEST]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Push all tags of an image to the repository
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// NAME[:TAG]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Username
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Password
    #[arg(short = 'p', long)]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    /// SERVER
    pub server: Option<String>,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    pub server: Option<String>,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Max number of search results
    #[arg(long)]
    pub limit: Option<u32>,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Pretty-print search using a Go template
    #[arg(long)]
    pub format: Option<String>,
    pub term: String,
}

/// Pulls `name` with docker's messages. `to_stderr` for `run`/`create`, whose stdout is the
/// container's.
pub async fn pull(
    client: &Client,
    name: &str,
    platform: Option<&str>,
    quiet: bool,
    to_stderr: bool,
) -> anyhow::Result<()> {
    let r = Reference::parse(name);
    let q = Query::new()
        .set("fromImage", r.repository())
        .opt("platform", platform)
        .opt("tag", r.digest.clone().or(r.tag_or_latest()).as_deref());
    let auth = auth::registry_auth_header(&r.domain);
    let stream = client.image_create(q, Body::Empty, Some(&auth)).await?;
    progress::display(stream.json_messages(), to_stderr, quiet).await?;
    Ok(())
}

pub async fn pull_cmd(client: &Client, a: PullArgs) -> anyhow::Result<i32> {
    let r = Reference::parse(&a.name);
    let mut q = Query::new()
        .set("fromImage", r.repository())
        .opt("platform", a.platform.as_deref());
    if !a.all_tags {
        if r.tag.is_none() && r.digest.is_none() && !a.quiet {
            println!("Using default tag: latest");
        }
        q = q.opt("tag", r.digest.clone().or(r.tag_or_latest()).as_deref());
    }
    let auth = auth::registry_auth_header(&r.domain);
    let stream = client.image_create(q, Body::Empty, Some(&auth)).await?;
    progress::display(stream.json_messages(), false, a.quiet).await?;
    println!("{}", if a.all_tags { r.repository() } else { r.full() });
    Ok(0)
}

pub async fn push(client: &Client, a: PushArgs) -> anyhow::Result<i32> {
    let r = Reference::parse(&a.name);
    let tag = if a.all_tags {
        None
    } else {
        if r.tag.is_none() && !a.quiet {
            println!("Using default tag: latest");
        }
        r.tag_or_latest()
    };
    let auth = auth::registry_auth_header(&r.domain);
    let stream = client
        .image_push(&r.repository(), tag.as_deref(), &auth)
        .await?;
    progress::display(stream.json_messages(), false, a.quiet).await?;
    if a.quiet {
        println!("{}", r.full());
    }
    Ok(0)
}

pub async fn login(client: &Client, a: LoginArgs) -> anyhow::Result<i32> {
    let server = match a.server.as_deref() {
        None | Some("docker.io") | Some("index.docker.io") => auth::INDEX_SERVER.to_string(),
        Some(s) => s
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string(),
    };
    let username = match a.username {
        Some(u) => u,
        None => prompt("Username: ")?,
    };
    let password = match (a.password, a.password_stdin) {
        (Some(_), true) => anyhow::bail!("--password and --password-stdin are mutually exclusive"),
        (Some(p), false) => {
            eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
            p
        }
        (None, true) => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => prompt("Password: ")?,
    };
    if password.is_empty() {
        anyhow::bail!("password is required");
    }
    let resp = client
        .auth(&json!({"username": username, "password": password, "serveraddress": server}))
        .await?;
    let mut cfg = auth::load_config();
    if let Some(h) = auth::helper_for(&cfg, &server) {
        let input = json!({"ServerURL": server, "Username": username, "Secret": password});
        auth::run_helper(&h, "store", &input.to_string())?;
        println!("Login Succeeded");
        return Ok(0);
    }
    if !cfg["auths"].is_object() {
        cfg["auths"] = json!({});
    }
    let pair = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    cfg["auths"][&server] = json!({"auth": pair});
    auth::save_config(&cfg)?;
    eprintln!(
        "WARNING! Your credentials are stored unencrypted in '{}'.\nConfigure a credential helper to remove this warning. See\nhttps://docs.docker.com/go/credential-store/\n",
        auth::config_path().display()
    );
    println!(
        "{}",
        if resp.status.is_empty() {
            "Login Succeeded".to_string()
        } else {
            resp.status
        }
    );
    Ok(0)
}

fn prompt(label: &str) -> anyhow::Result<String> {
    eprint!("{label}");
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading from stdin")?;
    Ok(line.trim().to_string())
}

pub async fn logout(a: LogoutArgs) -> anyhow::Result<i32> {
    let server = match a.server.as_deref() {
        None | Some("docker.io") => auth::INDEX_SERVER.to_string(),
        Some(s) => s.to_string(),
    };
    let mut cfg = auth::load_config();
    if let Some(h) = auth::helper_for(&cfg, &server) {
        let erased = auth::run_helper(&h, "erase", &server).is_ok();
        if let Some(m) = cfg["auths"].as_object_mut() {
            m.remove(&server);
        }
        auth::save_config(&cfg)?;
        println!(
            "{} {server}",
            if erased {
                "Removing login credentials for"
            } else {
                "Not logged in to"
            }
        );
        return Ok(0);
    }
    let removed = cfg["auths"]
        .as_object_mut()
        .and_then(|m| m.remove(&server))
        .is_some();
    if removed {
        println!("Removing login credentials for {server}");
        auth::save_config(&cfg)?;
    } else {
        println!("Not logged in to {server}");
    }
    Ok(0)
}

pub async fn search(client: &Client, a: SearchArgs) -> anyhow::Result<i32> {
    let q = Query::new()
        .opt("filters", crate::filters::to_json(&a.filter)?.as_deref())
        .opt("limit", a.limit.map(|l| l.to_string()).as_deref())
        .set("term", a.term.as_str());
    let domain = Reference::parse(&a.term).domain;
    let results = client
        .image_search(q, &auth::registry_auth_header(&domain))
        .await?;
    let rows: Vec<Value> = results
        .iter()
        .map(|r| {
            let desc = r.description.clone().unwrap_or_default().replace('\n', " ");
            let desc = if a.no_trunc {
                desc
            } else {
                crate::format::ellipsis(&desc, 45)
            };
            json!({
                "Name": r.name.clone().unwrap_or_default(),
                "Description": desc,
                "StarCount": r.star_count.unwrap_or(0).to_string(),
                "IsOfficial": if r.is_official.unwrap_or(false) { "[OK]" } else { "" },
            })
        })
        .collect();
    let headers = json!({"Name": "NAME", "Description": "DESCRIPTION", "StarCount": "STARS", "IsOfficial": "OFFICIAL"});
    let fmt = a.format.unwrap_or_else(|| {
        "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}".into()
    });
    print!("{}", crate::format::render_list(&fmt, &rows, &headers)?);
    Ok(0)
}
