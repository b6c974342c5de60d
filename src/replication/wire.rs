//! Framing of the frontend/backend protocol over any byte stream.
//!
//! Messages are encoded with `postgres_protocol::message::frontend` and decoded with
//! `postgres_protocol::message::backend`; the one message that crate does not know,
//! CopyBothResponse (`'W'`), is recognised here. Lengths are checked before any buffer is
//! grown, so a hostile or corrupt length cannot make us allocate gigabytes or panic.
//! The transport is a boxed `AsyncRead + AsyncWrite`, so TLS can be slotted in later
//! without touching the rest.

use bytes::{Buf, BytesMut};
use postgres_protocol::message::backend::{ErrorFields, Message};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_postgres::fallible_iterator::FallibleIterator;

use super::error::{ReplicationError, Result, ServerError};

/// A byte stream the protocol runs over: TCP, a Unix socket, or (later) TLS.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

/// Largest backend message we accept (Postgres' own MaxAllocSize is 1 GiB).
const MAX_MESSAGE_LEN: usize = 1 << 30;
/// Tag of CopyBothResponse, which `postgres_protocol` does not decode.
const COPY_BOTH_RESPONSE_TAG: u8 = b'W';

/// A decoded backend message.
pub(crate) enum Backend {
    /// The server entered CopyBoth mode (START_REPLICATION accepted).
    CopyBothResponse,
    Message(Message),
}

/// A framed connection: a read buffer, a write buffer and the transport.
pub(crate) struct Wire {
    io: Box<dyn Transport>,
    rbuf: BytesMut,
    wbuf: BytesMut,
}

impl Wire {
    pub(crate) fn new(io: Box<dyn Transport>) -> Wire {
        Wire {
            io,
            rbuf: BytesMut::with_capacity(64 * 1024),
            wbuf: BytesMut::with_capacity(1024),
        }
    }

    /// The buffer frontend messages are encoded into; sent by [`Wire::flush`].
    pub(crate) fn wbuf(&mut self) -> &mut BytesMut {
        &mut self.wbuf
    }

    /// Write out everything queued in the write buffer.
    pub(crate) async fn flush(&mut self) -> Result<()> {
        while self.wbuf.has_remaining() {
            let n = self
                .io
                .write_buf(&mut self.wbuf)
                .await
                .map_err(ReplicationError::io("sending to the server"))?;
            if n == 0 {
                return Err(ReplicationError::ConnectionClosed {
                    context: Some("sending to the server"),
                });
            }
        }
        self.io
            .flush()
            .await
            .map_err(ReplicationError::io("sending to the server"))
    }

    /// Read the next backend message. Cancel-safe: a partly read message stays buffered.
    pub(crate) async fn read(&mut self, context: &'static str) -> Result<Backend> {
        loop {
            if let Some(msg) = parse_backend(&mut self.rbuf)? {
                return Ok(msg);
            }
            let n = self
                .io
                .read_buf(&mut self.rbuf)
                .await
                .map_err(ReplicationError::io(context))?;
            if n == 0 {
                return Err(ReplicationError::ConnectionClosed {
                    context: Some(context),
                });
            }
        }
    }

    /// Shut down the write half (best effort).
    pub(crate) async fn shutdown(&mut self) {
        let _ = self.io.shutdown().await;
    }
}

/// Split one complete message off `buf`, or `None` when more bytes are needed.
pub(crate) fn parse_backend(buf: &mut BytesMut) -> Result<Option<Backend>> {
    let Some(header) = buf.get(..5) else {
        return Ok(None);
    };
    let tag = header[0];
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if !(4..=MAX_MESSAGE_LEN).contains(&len) {
        return Err(ReplicationError::Protocol(format!(
            "backend message {:?} has invalid length {len}",
            char::from(tag)
        )));
    }
    if buf.len() < len + 1 {
        buf.reserve(len + 1 - buf.len());
        return Ok(None);
    }
    if tag == COPY_BOTH_RESPONSE_TAG {
        buf.advance(len + 1);
        return Ok(Some(Backend::CopyBothResponse));
    }
    match Message::parse(buf) {
        Ok(Some(m)) => Ok(Some(Backend::Message(m))),
        Ok(None) => Err(ReplicationError::Protocol(
            "complete message reported incomplete".into(),
        )),
        Err(e) => Err(ReplicationError::Protocol(format!(
            "malformed backend message {:?}: {e}",
            char::from(tag)
        ))),
    }
}

/// Collect the fields of an ErrorResponse or NoticeResponse.
pub(crate) fn server_error(mut fields: ErrorFields<'_>) -> ServerError {
    let mut err = ServerError::default();
    let mut localized_severity = String::new();
    while let Ok(Some(field)) = fields.next() {
        let value = String::from_utf8_lossy(field.value_bytes()).into_owned();
        match field.type_() {
            b'V' => err.severity = value,
            b'S' => localized_severity = value,
            b'C' => err.code = value,
            b'M' => err.message = value,
            b'D' => err.detail = Some(value),
            b'H' => err.hint = Some(value),
            _ => {}
        }
    }
    if err.severity.is_empty() {
        err.severity = localized_severity;
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    fn frame(tag: u8, body: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        b.put_u8(tag);
        b.put_u32(body.len() as u32 + 4);
        b.put_slice(body);
        b
    }

    #[test]
    fn waits_for_complete_messages() {
        let full = frame(b'Z', b"I");
        for cut in 0..full.len() {
            let mut part = BytesMut::from(&full[..cut]);
            assert!(parse_backend(&mut part).unwrap().is_none());
        }
        let mut b = full.clone();
        assert!(matches!(
            parse_backend(&mut b).unwrap(),
            Some(Backend::Message(Message::ReadyForQuery(_)))
        ));
        assert!(b.is_empty());
    }

    #[test]
    fn recognises_copy_both_response() {
        let mut b = frame(b'W', &[0, 0, 0]);
        assert!(matches!(
            parse_backend(&mut b).unwrap(),
            Some(Backend::CopyBothResponse)
        ));
    }

    #[test]
    fn rejects_bad_lengths_and_tags() {
        let mut b = BytesMut::from(&[b'd', 0, 0, 0, 1][..]);
        assert!(parse_backend(&mut b).is_err());
        let mut b = BytesMut::from(&[b'd', 0xFF, 0xFF, 0xFF, 0xFF][..]);
        assert!(parse_backend(&mut b).is_err());
        let mut b = frame(b'?', b"");
        assert!(parse_backend(&mut b).is_err());
        // A ReadyForQuery without its status byte.
        let mut b = frame(b'Z', b"");
        assert!(parse_backend(&mut b).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let mut b = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = parse_backend(&mut b) {}
        }
    }
}
