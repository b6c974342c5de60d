//! The pgoutput decoder and assembler: hand-built messages, stored captures, a live
//! server, hostile input, and value parsing.

mod assembler;
mod fixtures;
mod fuzz;
mod live;
mod values;
