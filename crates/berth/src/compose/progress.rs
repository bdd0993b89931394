//! Docker Compose v2's progress display on stderr: in a terminal a block redrawn in place
//! (`[+] Running 3/3` then ` ✔ Container app-db-1  Started  0.3s` lines); otherwise one plain
//! line per event (` Container app-db-1  Started`), as compose's `--progress plain`.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Instant;

struct Item {
    /// `Container`, `Network`, `Volume`, `Image`, or empty (a service being pulled/built).
    kind: String,
    name: String,
    status: String,
    done: bool,
    failed: bool,
    started: Instant,
    finished: Option<Instant>,
}

struct State {
    title: String,
    tty: bool,
    items: Vec<Item>,
    /// Lines drawn last time (to move the cursor back over them).
    drawn: usize,
}

/// A shared progress writer; clones write to the same display.
#[derive(Clone)]
pub struct Progress(Arc<Mutex<State>>);

impl Progress {
    /// `title` is compose's verb for the whole operation: `Running`, `Stopping`, `Removing`, …
    pub fn new(title: &str) -> Self {
        let tty = std::io::stderr().is_terminal()
            && std::env::var("COMPOSE_PROGRESS").map_or(true, |v| v != "plain");
        Self(Arc::new(Mutex::new(State {
            title: title.to_string(),
            tty,
            items: Vec::new(),
            drawn: 0,
        })))
    }

    /// An operation in progress (`Creating`, `Starting`, `Waiting`, …).
    pub fn working(&self, kind: &str, name: &str, status: &str) {
        self.event(kind, name, status, false, false);
    }

    /// An operation that finished (`Created`, `Started`, `Healthy`, …).
    pub fn done(&self, kind: &str, name: &str, status: &str) {
        self.event(kind, name, status, true, false);
    }

    pub fn failed(&self, kind: &str, name: &str, status: &str) {
        self.event(kind, name, status, true, true);
    }

    fn event(&self, kind: &str, name: &str, status: &str, done: bool, failed: bool) {
        let Ok(mut st) = self.0.lock() else { return };
        let now = Instant::now();
        match st
            .items
            .iter_mut()
            .find(|i| i.kind == kind && i.name == name)
        {
            Some(i) => {
                i.status = status.to_string();
                i.done = done;
                i.failed = failed;
                i.finished = done.then_some(now);
            }
            None => st.items.push(Item {
                kind: kind.to_string(),
                name: name.to_string(),
                status: status.to_string(),
                done,
                failed,
                started: now,
                finished: done.then_some(now),
            }),
        }
        if st.tty {
            st.redraw();
        } else {
            let label = if kind.is_empty() {
                name.to_string()
            } else {
                format!("{kind} {name}")
            };
            eprintln!(" {label}  {status}");
        }
    }
}

impl State {
    fn redraw(&mut self) {
        let mut out = String::new();
        if self.drawn > 0 {
            out.push_str(&format!("\x1b[{}A", self.drawn));
        }
        let total = self.items.len();
        let finished = self.items.iter().filter(|i| i.done).count();
        out.push_str(&format!(
            "\x1b[2K\x1b[34m[+] {} {finished}/{total}\x1b[0m\n",
            self.title
        ));
        let width = self
            .items
            .iter()
            .map(|i| i.kind.len() + 1 + i.name.len())
            .max()
            .unwrap_or(0);
        let now = Instant::now();
        for i in &self.items {
            let (mark, color) = match (i.done, i.failed) {
                (_, true) => ("✘", "\x1b[31m"),
                (true, false) => ("✔", "\x1b[32m"),
                (false, false) => ("⠿", "\x1b[33m"),
            };
            let label = if i.kind.is_empty() {
                i.name.clone()
            } else {
                format!("{} {}", i.kind, i.name)
            };
            let secs = i.finished.unwrap_or(now).duration_since(i.started);
            out.push_str(&format!(
                "\x1b[2K {color}{mark}\x1b[0m {label:<width$}  {color}{:<10}\x1b[0m {:>5.1}s\n",
                i.status,
                secs.as_secs_f64()
            ));
        }
        self.drawn = total + 1;
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(out.as_bytes());
        let _ = e.flush();
    }
}
