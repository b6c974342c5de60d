//! Generates the Pub/Sub API client (`eventbus.v1`, used by `src/cdc/`) from
//! `proto-fixtures/pubsub/pubsub_api.proto`: protox compiles the `.proto` in-process (no
//! `protoc` binary needed) and tonic-prost-build writes the messages and the client stub
//! to `OUT_DIR`. Client only: pgforce never serves Pub/Sub (the emulator crate does).

use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new("proto-fixtures/pubsub");
    let proto = dir.join("pubsub_api.proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    let fds = protox::compile([&proto], [dir])?;
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .build_transport(false)
        .compile_fds(fds)?;
    Ok(())
}
