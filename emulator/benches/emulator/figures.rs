//! Where the benches' figures go and the process facts they report: one JSON object in
//! `<workspace target>/bench/<bench>.json` (so runs compare across commits), the resident set
//! size and the load average. Shared by the emulator's bench and pgforce's (whose
//! `benches/support` includes this file), so there is one writer of `target/bench`.

use std::path::PathBuf;

use serde_json::Value;

/// `$CARGO_TARGET_DIR/bench`, else the `bench` folder of the target dir this bench runs
/// from (`<target>/<profile>/deps/<bench>`), so every crate of the workspace writes to
/// the same `target/bench`.
fn out_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir).join("bench");
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("bench")
}

/// Writes `figures` to `bench/<bench>.json` and says where; a failure to write is printed,
/// not fatal (the figures were already printed).
pub fn write_json(bench: &str, figures: &Value) {
    let dir = out_dir();
    let path = dir.join(format!("{bench}.json"));
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        let text = serde_json::to_string_pretty(figures).unwrap_or_default();
        std::fs::write(&path, text + "\n")
    });
    match written {
        Ok(()) => println!("figures written to {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
}

/// Resident set size of this process in bytes (`VmRSS` of /proc/self/status), if known.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The 1-minute load average (the machine's business during the run), if known.
pub fn load_average() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next()?.parse().ok()
}
