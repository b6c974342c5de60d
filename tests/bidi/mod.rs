//! Both ways: matching records by an ordinary field on first contact (`match_by`), pairs
//! of a table and an object, echo suppression and conflicts, delete policies, replay's
//! refusal of matched mappings, against a real Postgres and the emulator.

mod cdc;
mod delete;
mod match_by;
mod pair;
mod replay;
