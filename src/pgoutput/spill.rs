//! Buffered messages of one in-progress transaction (streamed or prepared), in memory
//! until the assembler's memory budget is exceeded, then appended to an anonymous temp
//! file, and read back one record at a time when the transaction commits.
//!
//! A record keeps the raw pgoutput bytes (decoded again on replay, so the file needs no
//! serialization format of its own) plus what decoding cannot recover later: the WAL
//! position, the (sub)transaction xid, whether it carried a stream xid, and the relation
//! descriptions in force when it arrived (by index into a per-transaction table of
//! `Arc<Relation>` snapshots kept in memory).
//!
//! Record layout: `lsn u64 | xid u32 | in_stream u8 | nrel u16 | nrel × u32 | len u32 |
//! bytes`, all big-endian.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

use crate::change::Relation;
use crate::lsn::Lsn;

/// One buffered message, as read back.
#[derive(Debug)]
pub(crate) struct Record {
    pub lsn: Lsn,
    pub xid: u32,
    pub in_stream: bool,
    pub relations: Vec<Arc<Relation>>,
    pub bytes: Vec<u8>,
}

/// The write side: records in memory, older ones possibly in a temp file.
#[derive(Debug, Default)]
pub(crate) struct TxnBuffer {
    mem: Vec<u8>,
    file: Option<BufWriter<File>>,
    file_len: u64,
    relations: Vec<Arc<Relation>>,
    /// `Arc::as_ptr` address → index in `relations` (the Arcs are held, so stable).
    relation_index: HashMap<usize, u32>,
}

impl TxnBuffer {
    /// Bytes held in memory (what counts against the budget).
    pub fn mem_len(&self) -> usize {
        self.mem.len()
    }

    fn relation_idx(&mut self, rel: &Arc<Relation>) -> u32 {
        let key = Arc::as_ptr(rel) as usize;
        if let Some(&i) = self.relation_index.get(&key) {
            return i;
        }
        let i = self.relations.len() as u32;
        self.relations.push(Arc::clone(rel));
        self.relation_index.insert(key, i);
        i
    }

    /// Append a record; returns how many bytes memory grew by.
    pub fn push(
        &mut self,
        lsn: Lsn,
        xid: u32,
        in_stream: bool,
        relations: &[Arc<Relation>],
        bytes: &[u8],
    ) -> usize {
        let before = self.mem.len();
        let idx: Vec<u32> = relations.iter().map(|r| self.relation_idx(r)).collect();
        self.mem.extend_from_slice(&lsn.0.to_be_bytes());
        self.mem.extend_from_slice(&xid.to_be_bytes());
        self.mem.push(u8::from(in_stream));
        // A Truncate lists at most what fits a message; clamp defensively anyway.
        let n = idx.len().min(u16::MAX as usize);
        self.mem.extend_from_slice(&(n as u16).to_be_bytes());
        for i in &idx[..n] {
            self.mem.extend_from_slice(&i.to_be_bytes());
        }
        self.mem
            .extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        self.mem.extend_from_slice(bytes);
        self.mem.len() - before
    }

    /// Move the in-memory records to the temp file (created in `dir` on first use);
    /// returns the bytes freed.
    pub fn spill(&mut self, dir: &Path) -> io::Result<usize> {
        if self.file.is_none() {
            self.file = Some(BufWriter::new(tempfile::tempfile_in(dir)?));
        }
        let file = self.file.as_mut().expect("just created");
        file.write_all(&self.mem)?;
        self.file_len += self.mem.len() as u64;
        let freed = self.mem.len();
        self.mem = Vec::new();
        Ok(freed)
    }

    /// Finish writing and read everything back in order: the file first, then memory.
    pub fn into_reader(self) -> io::Result<BufferReader> {
        let file = match self.file {
            Some(w) => {
                let mut f = w.into_inner().map_err(|e| e.into_error())?;
                f.seek(SeekFrom::Start(0))?;
                Some(BufReader::with_capacity(64 * 1024, f))
            }
            None => None,
        };
        Ok(BufferReader {
            file,
            file_left: self.file_len,
            mem: self.mem,
            mem_pos: 0,
            relations: self.relations,
        })
    }
}

/// The read side of a finished [`TxnBuffer`].
#[derive(Debug)]
pub(crate) struct BufferReader {
    file: Option<BufReader<File>>,
    file_left: u64,
    mem: Vec<u8>,
    mem_pos: usize,
    relations: Vec<Arc<Relation>>,
}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("spill record: {what}"))
}

impl BufferReader {
    pub fn next_record(&mut self) -> io::Result<Option<Record>> {
        if self.file_left > 0 {
            let file = self.file.as_mut().ok_or_else(|| corrupt("missing file"))?;
            let mut src = FileSrc {
                r: file,
                left: &mut self.file_left,
            };
            return read_record(&mut src, &self.relations).map(Some);
        }
        if self.mem_pos < self.mem.len() {
            let mut src = MemSrc {
                buf: &self.mem,
                pos: &mut self.mem_pos,
            };
            return read_record(&mut src, &self.relations).map(Some);
        }
        Ok(None)
    }
}

trait Src {
    fn take(&mut self, out: &mut [u8]) -> io::Result<()>;
    fn left(&self) -> u64;
}

struct FileSrc<'a> {
    r: &'a mut BufReader<File>,
    left: &'a mut u64,
}

impl Src for FileSrc<'_> {
    fn take(&mut self, out: &mut [u8]) -> io::Result<()> {
        if (out.len() as u64) > *self.left {
            return Err(corrupt("truncated"));
        }
        self.r.read_exact(out)?;
        *self.left -= out.len() as u64;
        Ok(())
    }
    fn left(&self) -> u64 {
        *self.left
    }
}

struct MemSrc<'a> {
    buf: &'a [u8],
    pos: &'a mut usize,
}

impl Src for MemSrc<'_> {
    fn take(&mut self, out: &mut [u8]) -> io::Result<()> {
        let end = self
            .pos
            .checked_add(out.len())
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| corrupt("truncated"))?;
        out.copy_from_slice(&self.buf[*self.pos..end]);
        *self.pos = end;
        Ok(())
    }
    fn left(&self) -> u64 {
        (self.buf.len() - *self.pos) as u64
    }
}

fn read_record(src: &mut dyn Src, table: &[Arc<Relation>]) -> io::Result<Record> {
    let mut head = [0u8; 15];
    src.take(&mut head)?;
    let lsn = Lsn(u64::from_be_bytes(head[0..8].try_into().expect("8 bytes")));
    let xid = u32::from_be_bytes(head[8..12].try_into().expect("4 bytes"));
    let in_stream = head[12] != 0;
    let nrel = u16::from_be_bytes([head[13], head[14]]) as usize;
    let mut relations = Vec::with_capacity(nrel.min(64));
    for _ in 0..nrel {
        let mut i = [0u8; 4];
        src.take(&mut i)?;
        let rel = table
            .get(u32::from_be_bytes(i) as usize)
            .ok_or_else(|| corrupt("bad relation index"))?;
        relations.push(Arc::clone(rel));
    }
    let mut len = [0u8; 4];
    src.take(&mut len)?;
    let len = u32::from_be_bytes(len) as u64;
    if len > src.left() {
        return Err(corrupt("length past the end"));
    }
    let mut bytes = vec![0u8; len as usize];
    src.take(&mut bytes)?;
    Ok(Record {
        lsn,
        xid,
        in_stream,
        relations,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::ReplicaIdentity;

    fn rel(oid: u32) -> Arc<Relation> {
        Arc::new(Relation {
            oid,
            schema: "public".into(),
            name: format!("t{oid}"),
            replica_identity: ReplicaIdentity::Default,
            columns: vec![],
        })
    }

    #[test]
    fn memory_then_file_then_memory_reads_back_in_order() {
        let dir = std::env::temp_dir();
        let (a, b) = (rel(1), rel(2));
        let mut buf = TxnBuffer::default();
        buf.push(Lsn(1), 10, true, std::slice::from_ref(&a), b"one");
        buf.push(Lsn(2), 11, false, &[a.clone(), b.clone()], b"two");
        assert!(buf.spill(&dir).unwrap() > 0);
        assert_eq!(buf.mem_len(), 0);
        buf.push(Lsn(3), 10, true, std::slice::from_ref(&b), b"three");
        buf.spill(&dir).unwrap();
        buf.push(Lsn(4), 12, false, &[], b"");
        let mut r = buf.into_reader().unwrap();
        let mut seen = vec![];
        while let Some(rec) = r.next_record().unwrap() {
            seen.push((
                rec.lsn.0,
                rec.xid,
                rec.in_stream,
                rec.relations.iter().map(|r| r.oid).collect::<Vec<_>>(),
                rec.bytes,
            ));
        }
        assert_eq!(
            seen,
            vec![
                (1, 10, true, vec![1], b"one".to_vec()),
                (2, 11, false, vec![1, 2], b"two".to_vec()),
                (3, 10, true, vec![2], b"three".to_vec()),
                (4, 12, false, vec![], vec![]),
            ]
        );
    }
}
