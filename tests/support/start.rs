//! Starting the real parts a test runs against: a throwaway Postgres (started off the async
//! runtime's worker threads: initdb and pg_ctl block) and an in-process emulator on a free
//! loopback port. Every harness starts them here.

use pgforce::testing::TempCluster;
use pgforce_emulator::{Emulator, EmulatorConfig, EmulatorHandle};

/// A fresh throwaway cluster with the default options.
pub async fn postgres() -> TempCluster {
    tokio::task::spawn_blocking(TempCluster::start)
        .await
        .expect("the cluster start-up does not panic")
        .expect("start a throwaway Postgres")
}

/// A fresh throwaway cluster with `opts` (extra `postgresql.conf` lines, TLS, …).
pub async fn postgres_with(opts: pgforce::testing::pg::ClusterOptions) -> TempCluster {
    tokio::task::spawn_blocking(move || TempCluster::start_with(opts))
        .await
        .expect("the cluster start-up does not panic")
        .expect("start a throwaway Postgres")
}

/// The emulator with `config` on `127.0.0.1:0`.
pub async fn emulator(config: EmulatorConfig) -> EmulatorHandle {
    Emulator::start(config, "127.0.0.1:0".parse().expect("a socket address"))
        .await
        .expect("start the emulator")
}
