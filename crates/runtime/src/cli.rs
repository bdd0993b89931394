//! `berth runtime …`.
