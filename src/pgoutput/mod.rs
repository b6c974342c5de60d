//! Pure pgoutput decoder: bytes of the logical replication stream → messages → typed values.
//! No I/O here, so every function is fuzzable; every error is a typed [`DecodeError`]-style value.

pub mod value;
