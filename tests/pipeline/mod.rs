//! The pipeline end to end: in-process runs, the shipped templates, and the real binary
//! under crashes, HA takeover and signals; transactions larger than the batch (`large_txn`).

mod compare;
mod crash;
mod e2e;
mod ha;
mod large_txn;
mod reliability;
mod resync;
mod signals;
mod templates_e2e;
mod throughput;
