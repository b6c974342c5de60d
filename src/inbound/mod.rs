//! Salesforce → Postgres: change events from Salesforce (Change Data Capture over the
//! Pub/Sub API, or polling) applied to Postgres tables, exactly once.
//!
//! The seam every part of this direction meets at is here: [`event::InboundEvent`] (one
//! Salesforce change, already decoded from Avro or read from SOQL, in REST JSON field
//! formats) and [`source::ChangeSource`] (an ordered stream of them with a resumable
//! [`event::Position`]). The CDC subscriber (`crate::cdc`) and the poller implement the
//! source; the applier consumes it and stores the position in the same Postgres
//! transaction as the rows it wrote.

pub mod event;
pub mod source;
