//! Response header names spelled as Salesforce spells them on HTTP/1.1
//! (`Sforce-NumberOfRecords`, not `sforce-numberofrecords`).
//!
//! `http::HeaderMap` keeps names lowercase, and hyper writes them that way unless told
//! otherwise. Hyper's `title_case_headers` covers most names (`Content-Type`,
//! `Sforce-Limit-Info`, `Location`), but not mixed-case ones. Hyper's documented
//! `preserve_header_case` option records the spellings of a parsed request in a private
//! extension and uses that extension when it is present on a response; this module parses
//! one canned request carrying the canonical spellings through hyper in memory, keeps the
//! resulting extensions, and [`apply`] copies them onto every response. Names without a
//! recorded spelling fall back to title case.

use std::convert::Infallible;
use std::sync::OnceLock;

use axum::http::{Extensions, Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// Header names whose Salesforce spelling differs from hyper's title case, or that
/// clients are known to look up case-sensitively.
pub const CANONICAL_NAMES: &[&str] = &[
    "Content-Type",
    "Content-Encoding",
    "Location",
    "Sforce-Limit-Info",
    "Sforce-Locator",
    "Sforce-NumberOfRecords",
    "ETag",
    "Last-Modified",
    "WWW-Authenticate",
];

static CASE_EXTENSIONS: OnceLock<Extensions> = OnceLock::new();

/// Copies the canonical spellings onto `resp` (a no-op until [`init`] ran).
pub fn apply<B>(mut resp: Response<B>) -> Response<B> {
    if let Some(ext) = CASE_EXTENSIONS.get() {
        resp.extensions_mut().extend(ext.clone());
    }
    resp
}

/// Records the canonical spellings once per process. Idempotent; if hyper does not
/// yield them, responses simply fall back to title case.
pub async fn init() {
    if CASE_EXTENSIONS.get().is_some() {
        return;
    }
    match record_spellings().await {
        Some(ext) => {
            let _ = CASE_EXTENSIONS.set(ext);
        }
        None => tracing::warn!("header spellings not recorded; responses use title case"),
    }
}

/// Parses one request listing [`CANONICAL_NAMES`] over an in-memory pipe with
/// `preserve_header_case` on, and returns the parsed request's extensions.
async fn record_spellings() -> Option<Extensions> {
    let (client, server) = tokio::io::duplex(4096);
    let (tx, mut rx) = mpsc::channel::<Extensions>(1);
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let tx = tx.clone();
        async move {
            let _ = tx.try_send(req.extensions().clone());
            Ok::<_, Infallible>(Response::new(String::new()))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .preserve_header_case(true)
        .keep_alive(false)
        .serve_connection(TokioIo::new(server), service);
    let serving = tokio::spawn(conn);
    let mut client = client;
    client.write_all(canned_request().as_bytes()).await.ok()?;
    let mut sink = Vec::new();
    let _ = client.read_to_end(&mut sink).await;
    let _ = serving.await;
    rx.recv().await
}

fn canned_request() -> String {
    let mut req = String::from("GET / HTTP/1.1\r\nHost: emulator\r\nConnection: close\r\n");
    for name in CANONICAL_NAMES {
        req.push_str(name);
        req.push_str(": x\r\n");
    }
    req.push_str("\r\n");
    req
}
