//! layer (in progress)
