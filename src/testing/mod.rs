//! Helpers for tests, benches and `pgforce demo`: a throwaway PostgreSQL cluster.
//! Shipped in the library (not `cfg(test)`) because the demo uses it too.

pub mod pg;

pub use pg::{ClusterError, TempCluster};
