//! berth-daemon (being written)
