//! Both ways: matching records by an ordinary field on first contact (`match_by`), pairs
//! of a table and an object, echo suppression and conflicts, replay's refusal of matched
//! mappings, against a real Postgres and the emulator.

mod match_by;
mod pair;
mod replay;
