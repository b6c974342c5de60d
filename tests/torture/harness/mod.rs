//! The randomized torture harness of issue 10: a seeded workload generator ([`workload`])
//! over a switchable vocabulary ([`vocab`]), failures injected between its transactions
//! ([`chaos`]), the real `pgforce run` binary against a throwaway Postgres and the
//! in-process emulator ([`env`]), and an oracle comparing both sides row by row
//! ([`oracle`]). [`run`] ties one seed together.
#![allow(dead_code)]

pub mod chaos;
pub mod env;
pub mod oracle;
pub mod run;
pub mod vocab;
pub mod workload;
