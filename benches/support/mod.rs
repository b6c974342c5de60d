//! Helpers shared by the benches: each bench writes its figures as one JSON object to
//! `target/bench/<bench>.json` (so runs can be compared across commits), and reads the
//! process's resident memory.
#![allow(dead_code)]

#[path = "../../emulator/benches/emulator/figures.rs"]
mod figures;
// Each bench uses some of these.
#[allow(unused_imports)]
pub use figures::{load_average, rss_bytes, write_json};
