//! berth-runtime (being written)
