//! Terminal progress bars for the backfill: one bar per table, created when the table's first
//! rows land (never an empty `0/0` bar), with rows, a rounded rate (`3,630 rows/s`) and, when
//! Postgres has a row estimate, a percentage and an ETA. The library reports through
//! [`BackfillProgress`]; only the CLI knows about the terminal.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use parking_lot::Mutex;
use pgforce::pipeline::BackfillProgress;

/// Bars on stderr, one per table.
#[derive(Default)]
pub struct TerminalProgress {
    bars: MultiProgress,
    tables: Mutex<HashMap<String, TableBar>>,
}

struct TableBar {
    bar: ProgressBar,
    started: Instant,
    rows_at_start: u64,
}

impl TerminalProgress {
    pub fn new() -> Self {
        Self::default()
    }

    fn new_bar(&self, pipeline: &str, table: &str, estimated: Option<u64>) -> ProgressBar {
        let bar = match estimated {
            Some(total) => {
                let bar = ProgressBar::new(total);
                bar.set_style(style("{prefix:32} {bar:30} {percent:>3}% {msg}"));
                bar
            }
            None => {
                let bar = ProgressBar::new_spinner();
                bar.set_style(style("{prefix:32} {spinner} {msg}"));
                bar
            }
        };
        bar.set_prefix(format!("{pipeline}: {table}"));
        self.bars.add(bar)
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl BackfillProgress for TerminalProgress {
    fn table_progress(&self, pipeline: &str, table: &str, rows_done: u64, estimated: Option<u64>) {
        let estimated = estimated.filter(|t| *t > 0);
        let mut tables = self.tables.lock();
        let entry = tables
            .entry(format!("{pipeline}/{table}"))
            .or_insert_with(|| TableBar {
                bar: self.new_bar(pipeline, table, estimated),
                started: Instant::now(),
                rows_at_start: rows_done,
            });
        if let Some(len) = entry.bar.length() {
            if rows_done > len {
                entry.bar.set_length(rows_done);
            }
        }
        entry.bar.set_position(rows_done);
        let rate = rows_per_sec(
            rows_done - entry.rows_at_start.min(rows_done),
            entry.started.elapsed(),
        );
        entry
            .bar
            .set_message(progress_message(rows_done, estimated, rate));
    }

    fn table_done(&self, pipeline: &str, table: &str, rows: u64) {
        if let Some(entry) = self.tables.lock().get(&format!("{pipeline}/{table}")) {
            let rate = rows_per_sec(rows, entry.started.elapsed());
            entry
                .bar
                .finish_with_message(format!("{} rows, {}", count(rows), rate_text(rate)));
        }
    }
}

/// Rows per second over `elapsed`; `None` before there is anything to average.
fn rows_per_sec(rows: u64, elapsed: Duration) -> Option<f64> {
    let secs = elapsed.as_secs_f64();
    (rows > 0 && secs >= 0.5).then(|| rows as f64 / secs)
}

/// `12,400 / 50,000 rows, 3,630 rows/s, ETA 11s` (the parts that are known).
fn progress_message(rows_done: u64, estimated: Option<u64>, rate: Option<f64>) -> String {
    let mut parts = vec![match estimated {
        Some(total) => format!("{} / {} rows", count(rows_done), count(total)),
        None => format!("{} rows", count(rows_done)),
    }];
    if let Some(rate) = rate {
        parts.push(rate_text(Some(rate)));
        if let Some(total) = estimated.filter(|t| *t > rows_done) {
            parts.push(format!(
                "ETA {}",
                duration_text((total - rows_done) as f64 / rate)
            ));
        }
    }
    parts.join(", ")
}

/// `3,630 rows/s`, `42 rows/s`, `4.2 rows/s`; `- rows/s` when unknown.
fn rate_text(rate: Option<f64>) -> String {
    match rate.filter(|r| r.is_finite() && *r >= 0.0) {
        Some(r) if r >= 10.0 => format!("{} rows/s", count(r.round() as u64)),
        Some(r) => format!("{r:.1} rows/s"),
        None => "- rows/s".to_string(),
    }
}

/// `1,234,567`.
fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `42s`, `5m 03s`, `2h 07m`.
fn duration_text(secs: f64) -> String {
    let s = if secs.is_finite() {
        secs.round().max(0.0) as u64
    } else {
        u64::MAX
    };
    match s {
        u64::MAX => "unknown".to_string(),
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(3_630), "3,630");
        assert_eq!(count(1_234_567), "1,234,567");
    }

    #[test]
    fn rates_are_rounded() {
        assert_eq!(rate_text(Some(3_630.401_2)), "3,630 rows/s");
        assert_eq!(rate_text(Some(42.49)), "42 rows/s");
        assert_eq!(rate_text(Some(4.24)), "4.2 rows/s");
        assert_eq!(rate_text(None), "- rows/s");
        assert_eq!(rate_text(Some(f64::NAN)), "- rows/s");
    }

    #[test]
    fn durations_read_like_an_eta() {
        assert_eq!(duration_text(41.6), "42s");
        assert_eq!(duration_text(303.0), "5m 03s");
        assert_eq!(duration_text(7_620.0), "2h 07m");
        assert_eq!(duration_text(f64::INFINITY), "unknown");
    }

    #[test]
    fn message_has_an_eta_only_with_an_estimate_and_a_rate() {
        assert_eq!(
            progress_message(12_400, Some(50_000), Some(3_630.4)),
            "12,400 / 50,000 rows, 3,630 rows/s, ETA 10s"
        );
        assert_eq!(
            progress_message(12_400, None, Some(3_630.4)),
            "12,400 rows, 3,630 rows/s"
        );
        assert_eq!(progress_message(10, Some(50_000), None), "10 / 50,000 rows");
        assert_eq!(
            progress_message(60_000, Some(50_000), Some(100.0)),
            "60,000 / 50,000 rows, 100 rows/s"
        );
    }

    #[test]
    fn rate_needs_rows_and_time() {
        assert_eq!(rows_per_sec(0, Duration::from_secs(5)), None);
        assert_eq!(rows_per_sec(100, Duration::from_millis(100)), None);
        assert_eq!(rows_per_sec(100, Duration::from_secs(2)), Some(50.0));
    }
}
