//! Helpers for tests, benches and `pgforce demo`: a throwaway PostgreSQL cluster, and the
//! in-memory state and destination the sink's unit tests run the epoch protocol against.
//! Shipped in the library (not `cfg(test)`) because the demo uses it too.

pub mod memory_destination;
pub mod memory_state;
pub mod pg;

pub use memory_destination::{Call, Fault, MemJobState, MemoryDestination};
pub use memory_state::{EventLog, MemoryState, StoredDeadLetter};
pub use pg::{ClusterError, TempCluster};
