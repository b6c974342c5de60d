//! The logical replication connection: slot and publication management, the CopyBoth stream, keepalives, snapshot backfill.
