//! The builtin runtime.
