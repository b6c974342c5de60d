//! HTTP compression of Bulk API 2.0 bodies, as Salesforce supports it: uploads sent with
//! `Content-Encoding: gzip` (or `deflate`) are inflated before parsing, bounded by the
//! upload limit so a small bomb cannot exhaust memory; result downloads are gzipped when
//! the request's `Accept-Encoding` accepts gzip.

use std::io::{Read, Write};

use axum::body::Bytes;
use axum::http::{header, HeaderMap};
use flate2::read::{GzDecoder, ZlibDecoder};
use flate2::write::GzEncoder;
use flate2::Compression;

use super::ingest::{too_large, MAX_UPLOAD_BYTES};
use super::BulkError;

/// The upload body with its `Content-Encoding` undone.
pub fn decode_upload(headers: &HeaderMap, body: Bytes) -> Result<Bytes, BulkError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "" | "identity" => Ok(body),
        "gzip" | "x-gzip" => inflate(GzDecoder::new(&body[..]), "gzip"),
        "deflate" => inflate(ZlibDecoder::new(&body[..]), "deflate"),
        other => Err(BulkError::InvalidJob(format!(
            "Unsupported Content-Encoding: {other}; use gzip or deflate"
        ))),
    }
}

fn inflate(reader: impl Read, name: &str) -> Result<Bytes, BulkError> {
    let mut out = Vec::new();
    let limit = u64::try_from(MAX_UPLOAD_BYTES).unwrap_or(u64::MAX) + 1;
    reader.take(limit).read_to_end(&mut out).map_err(|e| {
        BulkError::InvalidJob(format!("The request body is not valid {name} data: {e}"))
    })?;
    if out.len() > MAX_UPLOAD_BYTES {
        return Err(too_large());
    }
    Ok(Bytes::from(out))
}

/// Whether `Accept-Encoding` accepts gzip (`gzip`, `x-gzip` or `*`, with `q` above 0).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            matches!(coding.as_str(), "gzip" | "x-gzip" | "*") && q > 0.0
        })
}

/// Gzips `body` (in memory; result pages are bounded by `maxRecords` and the page size).
pub fn gzip(body: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::with_capacity(body.len() / 4 + 64), Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(body);
    enc.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, value.parse().unwrap());
        h
    }

    #[test]
    fn accept_encoding_is_parsed_with_q_values() {
        let yes = ["gzip", "deflate, gzip", "gzip;q=0.5", "*", "br, x-gzip"];
        for v in yes {
            assert!(accepts_gzip(&headers(header::ACCEPT_ENCODING, v)), "{v}");
        }
        for v in ["deflate", "gzip;q=0", "identity", "br"] {
            assert!(!accepts_gzip(&headers(header::ACCEPT_ENCODING, v)), "{v}");
        }
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn gzip_round_trips_and_garbage_is_an_error() {
        let h = headers(header::CONTENT_ENCODING, "gzip");
        let body = Bytes::from(gzip(b"Name\nAcme\n"));
        assert_eq!(
            decode_upload(&h, body).unwrap(),
            Bytes::from_static(b"Name\nAcme\n")
        );
        assert!(decode_upload(&h, Bytes::from_static(b"not gzip")).is_err());
        let br = headers(header::CONTENT_ENCODING, "br");
        assert!(decode_upload(&br, Bytes::from_static(b"x")).is_err());
    }
}
