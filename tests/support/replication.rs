//! Helpers shared by the `replication_*` integration tests: clusters, clients, and a tiny
//! pgoutput reader that decodes only what the tests check (the real decoder lives in
//! `pgforce::pgoutput`).

use std::collections::BTreeMap;
use std::time::Duration;

use pgforce::lsn::Lsn;
use pgforce::replication::{
    connect_client, ConnectOptions, ReplicationConnection, ReplicationMessage, ReplicationStream,
};
use pgforce::testing::pg::{ClusterOptions, TempCluster};
use tokio_postgres::Client;

pub use crate::support::wait::{check, wait_until, Deadline};

/// Start a throwaway cluster (blocking; fine during test setup).
pub fn cluster() -> TempCluster {
    TempCluster::start().expect("start cluster")
}

/// Start a cluster with extra postgresql.conf lines.
pub fn cluster_with(conf: &[&str]) -> TempCluster {
    TempCluster::start_with(ClusterOptions {
        extra_conf: conf.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
    .expect("start cluster")
}

/// An ordinary client as the superuser.
pub async fn client(c: &TempCluster) -> Client {
    client_as(c, "postgres").await
}

/// An ordinary client as `user`.
pub async fn client_as(c: &TempCluster, user: &str) -> Client {
    let conninfo = format!(
        "host=127.0.0.1 port={} user={user} dbname=postgres",
        c.port()
    );
    connect_client(&ConnectOptions::parse(&conninfo).unwrap())
        .await
        .expect("ordinary client")
}

/// A replication connection as the superuser.
pub async fn repl(c: &TempCluster) -> ReplicationConnection {
    ReplicationConnection::connect(&c.conn_string("postgres"))
        .await
        .expect("replication connection")
}

/// A pgoutput message, decoded just enough for the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    Begin {
        final_lsn: Lsn,
        xid: u32,
    },
    Relation {
        relid: u32,
        name: String,
    },
    Insert {
        relid: u32,
        new: Vec<Option<String>>,
    },
    Update {
        relid: u32,
        new: Vec<Option<String>>,
    },
    Delete {
        relid: u32,
        old: Vec<Option<String>>,
    },
    Commit {
        commit_lsn: Lsn,
        end_lsn: Lsn,
    },
    Other(u8),
}

/// Bytes reader that panics on malformed input (test-only).
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.take(2).try_into().unwrap())
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take(4).try_into().unwrap())
    }
    fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.take(8).try_into().unwrap())
    }
    fn cstr(&mut self) -> String {
        let end = self.0.iter().position(|&b| b == 0).unwrap();
        let s = String::from_utf8(self.take(end).to_vec()).unwrap();
        self.take(1);
        s
    }
    fn tuple(&mut self) -> Vec<Option<String>> {
        let n = self.u16();
        (0..n)
            .map(|_| match self.u8() {
                b't' => {
                    let len = self.u32() as usize;
                    Some(String::from_utf8(self.take(len).to_vec()).unwrap())
                }
                _ => None,
            })
            .collect()
    }
}

/// Decode one pgoutput message (top-level transactions only, no streaming).
pub fn decode(data: &[u8]) -> Msg {
    let mut r = Reader(data);
    match r.u8() {
        b'B' => {
            let final_lsn = Lsn(r.u64());
            r.u64();
            Msg::Begin {
                final_lsn,
                xid: r.u32(),
            }
        }
        b'R' => {
            let relid = r.u32();
            let _ns = r.cstr();
            Msg::Relation {
                relid,
                name: r.cstr(),
            }
        }
        b'I' => {
            let relid = r.u32();
            assert_eq!(r.u8(), b'N');
            Msg::Insert {
                relid,
                new: r.tuple(),
            }
        }
        b'U' => {
            let relid = r.u32();
            let mut kind = r.u8();
            if kind == b'K' || kind == b'O' {
                r.tuple();
                kind = r.u8();
            }
            assert_eq!(kind, b'N');
            Msg::Update {
                relid,
                new: r.tuple(),
            }
        }
        b'D' => {
            let relid = r.u32();
            r.u8();
            Msg::Delete {
                relid,
                old: r.tuple(),
            }
        }
        b'C' => {
            r.u8();
            let commit_lsn = Lsn(r.u64());
            Msg::Commit {
                commit_lsn,
                end_lsn: Lsn(r.u64()),
            }
        }
        other => Msg::Other(other),
    }
}

/// Read pgoutput messages until `commits` transactions have committed or `timeout`
/// passes; keepalives are skipped. Panics on stream errors.
pub async fn read_commits(
    stream: &mut ReplicationStream,
    commits: usize,
    timeout: Duration,
) -> Vec<Msg> {
    let mut out = Vec::new();
    let mut seen = 0;
    let deadline = tokio::time::Instant::now() + timeout;
    while seen < commits {
        let next = tokio::time::timeout_at(deadline, stream.next_message()).await;
        let Ok(next) = next else { break };
        if let ReplicationMessage::XLogData { data, .. } =
            next.expect("stream ended").expect("stream error")
        {
            let msg = decode(&data);
            if matches!(msg, Msg::Commit { .. }) {
                seen += 1;
            }
            out.push(msg);
        }
    }
    out
}

/// The first column of every Insert, parsed as i64.
pub fn inserted_ids(msgs: &[Msg]) -> Vec<i64> {
    msgs.iter()
        .filter_map(|m| match m {
            Msg::Insert { new, .. } => new.first()?.as_ref()?.parse().ok(),
            _ => None,
        })
        .collect()
}

/// Commit end LSNs in order.
pub fn commit_ends(msgs: &[Msg]) -> Vec<Lsn> {
    msgs.iter()
        .filter_map(|m| match m {
            Msg::Commit { end_lsn, .. } => Some(*end_lsn),
            _ => None,
        })
        .collect()
}

/// Apply inserts/updates/deletes keyed by the first column to `state`.
pub fn apply(state: &mut BTreeMap<i64, Vec<Option<String>>>, msgs: &[Msg]) {
    for m in msgs {
        match m {
            Msg::Insert { new, .. } | Msg::Update { new, .. } => {
                let id = new[0].as_ref().unwrap().parse().unwrap();
                state.insert(id, new.clone());
            }
            Msg::Delete { old, .. } => {
                let id = old[0].as_ref().unwrap().parse().unwrap();
                state.remove(&id);
            }
            _ => {}
        }
    }
}

/// The slot's confirmed_flush_lsn.
pub async fn confirmed_flush(client: &Client, slot: &str) -> Option<Lsn> {
    let row = client
        .query_one(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap();
    row.get::<_, Option<String>>(0).map(|s| s.parse().unwrap())
}

/// How the replication tests poll the server: every 50 ms, for up to 20 s.
pub const SLOT_POLL: Deadline = Deadline::secs(20).every_ms(50);
