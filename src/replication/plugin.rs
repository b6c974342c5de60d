//! pgoutput's options for START_REPLICATION, chosen from the server version.
//!
//! proto_version 2 on PostgreSQL 14 (streaming 'on'), 3 on 15 (two_phase), 4 on 16+
//! (streaming 'parallel'); each can be configured down, never past what the server
//! supports. `origin` filtering needs 16+.

use std::time::Duration;

use super::error::{ReplicationError, Result};
use crate::lsn::Lsn;

/// pgoutput's `streaming` option: how large in-progress transactions are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamingMode {
    /// Only whole committed transactions.
    Off,
    /// Stream in-progress transactions (proto_version ≥ 2, PostgreSQL 14+).
    On,
    /// Like `On`, marked for parallel apply (proto_version ≥ 4, PostgreSQL 16+).
    Parallel,
}

impl StreamingMode {
    fn as_option(self) -> &'static str {
        match self {
            StreamingMode::Off => "off",
            StreamingMode::On => "on",
            StreamingMode::Parallel => "parallel",
        }
    }
}

/// What to stream and how. `None` fields are chosen from the server version.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    pub slot: String,
    pub publications: Vec<String>,
    /// Where to start; the server starts at the slot's `confirmed_flush_lsn` when this is
    /// older (so `Lsn::ZERO` means "where the slot is").
    pub start_lsn: Lsn,
    /// pgoutput protocol version; default: 2 on 14, 3 on 15, 4 on 16+.
    pub proto_version: Option<u32>,
    /// Default: `Parallel` with proto 4, `On` with proto 2–3.
    pub streaming: Option<StreamingMode>,
    /// Decode prepared transactions at PREPARE time. Default: on with proto ≥ 3.
    /// Note: once enabled, PostgreSQL keeps two_phase on for the slot.
    pub two_phase: Option<bool>,
    /// Send `pg_logical_emit_message` messages.
    pub messages: bool,
    /// Only changes with this origin (`"none"` = local changes only; PostgreSQL 16+).
    pub origin: Option<String>,
    /// Interval of unsolicited standby status updates; keep it well under
    /// `wal_sender_timeout` (default 60s).
    pub status_interval: Duration,
    /// Messages buffered between the socket task and the consumer.
    pub channel_capacity: usize,
}

impl StreamOptions {
    /// Defaults for `slot` and `publications`: start where the slot is, 10s status updates.
    pub fn new(slot: impl Into<String>, publications: Vec<String>) -> StreamOptions {
        StreamOptions {
            slot: slot.into(),
            publications,
            start_lsn: Lsn::ZERO,
            proto_version: None,
            streaming: None,
            two_phase: None,
            messages: true,
            origin: None,
            status_interval: Duration::from_secs(10),
            channel_capacity: 256,
        }
    }
}

/// The pgoutput options sent to the server, after defaults were resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginOptions {
    pub proto_version: u32,
    pub streaming: StreamingMode,
    pub two_phase: bool,
    pub messages: bool,
    pub origin: Option<String>,
}

/// Resolve `opts` against the server's major version, refusing impossible combinations.
pub fn resolve_plugin_options(opts: &StreamOptions, server_major: u32) -> Result<PluginOptions> {
    let max_proto = match server_major {
        0..=13 => 1,
        14 => 2,
        15 => 3,
        _ => 4,
    };
    let proto_version = opts.proto_version.unwrap_or(max_proto);
    let invalid = |why: String| Err(ReplicationError::Config(why));
    if proto_version == 0 || proto_version > max_proto {
        return invalid(format!(
            "pgoutput proto_version {proto_version} is not supported by PostgreSQL {server_major} (1..={max_proto})"
        ));
    }
    let streaming = opts.streaming.unwrap_or(match proto_version {
        4.. => StreamingMode::Parallel,
        2..=3 => StreamingMode::On,
        _ => StreamingMode::Off,
    });
    let needed = match streaming {
        StreamingMode::Off => 1,
        StreamingMode::On => 2,
        StreamingMode::Parallel => 4,
    };
    if proto_version < needed {
        return invalid(format!(
            "streaming '{}' needs pgoutput proto_version {needed} or newer (have {proto_version})",
            streaming.as_option()
        ));
    }
    let two_phase = opts.two_phase.unwrap_or(proto_version >= 3);
    if two_phase && proto_version < 3 {
        return invalid(format!(
            "two_phase needs pgoutput proto_version 3 (have {proto_version})"
        ));
    }
    if opts.origin.is_some() && server_major < 16 {
        return invalid(format!(
            "origin filtering needs PostgreSQL 16 or newer (server is {server_major})"
        ));
    }
    Ok(PluginOptions {
        proto_version,
        streaming,
        two_phase,
        messages: opts.messages,
        origin: opts.origin.clone(),
    })
}

/// The START_REPLICATION command text.
pub fn start_replication_command(
    slot: &str,
    start: Lsn,
    publications: &[String],
    plugin: &PluginOptions,
) -> String {
    let names: Vec<String> = publications
        .iter()
        .map(|p| format!("\"{}\"", p.replace('"', "\"\"")))
        .collect();
    let mut options = vec![
        format!("proto_version '{}'", plugin.proto_version),
        format!("publication_names {}", repl_literal(&names.join(","))),
        format!("messages '{}'", plugin.messages),
    ];
    if plugin.streaming != StreamingMode::Off {
        options.push(format!("streaming '{}'", plugin.streaming.as_option()));
    }
    if plugin.two_phase {
        options.push("two_phase 'true'".into());
    }
    if let Some(origin) = &plugin.origin {
        options.push(format!("origin {}", repl_literal(origin)));
    }
    format!(
        "START_REPLICATION SLOT \"{slot}\" LOGICAL {start} ({})",
        options.join(", ")
    )
}

/// A string literal for the replication command grammar: `'...'` with `'` doubled (that
/// lexer knows no `E'...'` escapes; backslashes are literal).
fn repl_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> StreamOptions {
        StreamOptions::new("s", vec!["pub".into()])
    }

    #[test]
    fn chooses_protocol_by_server_version() {
        let p = resolve_plugin_options(&opts(), 14).unwrap();
        assert_eq!(
            (p.proto_version, p.streaming, p.two_phase),
            (2, StreamingMode::On, false)
        );
        let p = resolve_plugin_options(&opts(), 15).unwrap();
        assert_eq!(
            (p.proto_version, p.streaming, p.two_phase),
            (3, StreamingMode::On, true)
        );
        let p = resolve_plugin_options(&opts(), 17).unwrap();
        assert_eq!(
            (p.proto_version, p.streaming, p.two_phase),
            (4, StreamingMode::Parallel, true)
        );
    }

    #[test]
    fn can_be_configured_down_but_not_past_the_server() {
        let mut o = opts();
        o.proto_version = Some(1);
        let p = resolve_plugin_options(&o, 17).unwrap();
        assert_eq!((p.streaming, p.two_phase), (StreamingMode::Off, false));
        o.proto_version = Some(4);
        assert!(resolve_plugin_options(&o, 15).is_err());
        o.proto_version = Some(2);
        o.streaming = Some(StreamingMode::Parallel);
        assert!(resolve_plugin_options(&o, 17).is_err());
        let mut o = opts();
        o.origin = Some("none".into());
        assert!(resolve_plugin_options(&o, 15).is_err());
        assert!(resolve_plugin_options(&o, 16).is_ok());
    }

    #[test]
    fn builds_the_command() {
        let mut o = opts();
        o.publications = vec!["a".into(), "we\"ird'".into()];
        o.origin = Some("none".into());
        let p = resolve_plugin_options(&o, 17).unwrap();
        let cmd = start_replication_command("s", Lsn(0x1_0000_0010), &o.publications, &p);
        assert_eq!(
            cmd,
            "START_REPLICATION SLOT \"s\" LOGICAL 1/10 (proto_version '4', publication_names '\"a\",\"we\"\"ird''\"', messages 'true', streaming 'parallel', two_phase 'true', origin 'none')"
        );
    }
}
