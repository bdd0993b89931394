//! berth-build: the Dockerfile front end, written by hand with BuildKit's grammar.
//!
//! - [`parser`]: directives (`# escape=`, `# syntax=`), continuations, comments, JSON and
//!   shell forms, heredocs, instruction flags — the same tree BuildKit's parser makes.
//! - [`shell`]: shell-word expansion (`$VAR`, `${VAR:-x}` …) as Docker applies it.
//! - [`instructions`]: the typed instructions and stages, with Docker's validation errors.
//! - [`dockerignore`]: `.dockerignore` reading and matching with Docker's rules.
//! - [`lint`]: the build checks behind `build --check`.
//!
//! It knows nothing of HTTP, containers or the daemon.

pub mod context;
pub mod copy;
pub mod dockerignore;
pub mod executor;
pub mod glob;
pub mod instructions;
pub mod lint;
pub mod parser;
pub mod shell;
