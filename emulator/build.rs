//! Generates the Pub/Sub API (`eventbus.v1`) gRPC server and client from the real
//! `pubsub_api.proto` with protox (no `protoc` binary needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = "../proto-fixtures/pubsub";
    println!("cargo:rerun-if-changed={dir}/pubsub_api.proto");
    let fds = protox::compile(["pubsub_api.proto"], [dir])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
