//! Driving an OCI runtime binary (runc).
