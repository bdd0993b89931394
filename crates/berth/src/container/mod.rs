//! Container commands.

pub mod exec;
pub mod files;
pub mod lifecycle;
pub mod logs;
pub mod opts;
pub mod ps;
pub mod run;
pub mod stats;
pub mod stdio;
