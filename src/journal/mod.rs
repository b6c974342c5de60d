//! The change journal: mapped changes with their commit LSNs, kept on local disk by age and
//! size, so `pgforce replay` can re-apply a range to Salesforce after the slot has moved on.
//!
//! Layout: a directory of segment files named by the first LSN they hold
//! (`0000000016B374D848.seg`). Each record is
//! `[len u32][crc32 u32][lsn u64][unix_ms i64][payload len bytes]`, little-endian; the CRC
//! covers lsn, time and payload. A torn or corrupt tail (a crash mid-append) is cut off
//! when the journal is opened; nothing before it is lost. Segments roll at a size limit;
//! retention drops whole segments, oldest first. Payloads are opaque bytes to the journal;
//! what the pipeline stores in them is `pipeline::pending_codec`'s (the journal sits below
//! the pipeline and knows nothing of changes).

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::lsn::Lsn;

const HEADER: usize = 4 + 4 + 8 + 8;
/// Largest record accepted (a guard against reading garbage lengths).
const MAX_RECORD: usize = 64 * 1024 * 1024;

/// A journal failure.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("journal: LSN {requested} is older than the oldest retained change ({oldest}); replay from {oldest} or later, or raise journal retention")]
    TooOld { requested: Lsn, oldest: Lsn },
    #[error("journal is empty: no changes retained in {0}")]
    Empty(PathBuf),
    #[error("journal record of {0} bytes exceeds the 64 MiB limit")]
    TooLarge(usize),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Retention and segment size.
#[derive(Debug, Clone)]
pub struct JournalOptions {
    pub max_bytes: u64,
    pub max_age: Duration,
    pub segment_bytes: u64,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            max_bytes: 1024 * 1024 * 1024,
            max_age: Duration::from_secs(7 * 24 * 3600),
            segment_bytes: 64 * 1024 * 1024,
        }
    }
}

/// One retained change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub lsn: Lsn,
    pub unix_ms: i64,
    pub payload: Vec<u8>,
}

/// An append-only journal in one directory.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    opts: JournalOptions,
    writer: Option<(PathBuf, BufWriter<File>, u64)>,
}

impl Journal {
    /// Open (creating) the journal in `dir`, cutting off a torn tail.
    pub fn open(dir: impl Into<PathBuf>, opts: JournalOptions) -> Result<Self, JournalError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let mut j = Journal {
            dir,
            opts,
            writer: None,
        };
        if let Some(last) = j.segments()?.pop() {
            let valid = scan_valid_len(&last)?;
            let f = OpenOptions::new()
                .write(true)
                .open(&last)
                .map_err(io(&last))?;
            f.set_len(valid).map_err(io(&last))?;
            let mut f = f;
            f.seek(SeekFrom::End(0)).map_err(io(&last))?;
            j.writer = Some((last, BufWriter::new(f), valid));
        }
        Ok(j)
    }

    /// Segment files, oldest first.
    fn segments(&self) -> Result<Vec<PathBuf>, JournalError> {
        let mut segs: Vec<PathBuf> = fs::read_dir(&self.dir)
            .map_err(io(&self.dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "seg"))
            .collect();
        segs.sort();
        Ok(segs)
    }

    /// Append one change.
    pub fn append(&mut self, lsn: Lsn, payload: &[u8]) -> Result<(), JournalError> {
        if payload.len() > MAX_RECORD {
            return Err(JournalError::TooLarge(payload.len()));
        }
        let roll = match &self.writer {
            None => true,
            Some((_, _, size)) => *size >= self.opts.segment_bytes,
        };
        if roll {
            self.roll(lsn)?;
        }
        let now = now_ms();
        let mut crc = crc32fast::Hasher::new();
        crc.update(&lsn.0.to_le_bytes());
        crc.update(&now.to_le_bytes());
        crc.update(payload);
        let (path, w, size) = self.writer.as_mut().expect("rolled above");
        let mut rec = Vec::with_capacity(HEADER + payload.len());
        rec.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        rec.extend_from_slice(&crc.finalize().to_le_bytes());
        rec.extend_from_slice(&lsn.0.to_le_bytes());
        rec.extend_from_slice(&now.to_le_bytes());
        rec.extend_from_slice(payload);
        w.write_all(&rec).map_err(io(path))?;
        *size += rec.len() as u64;
        Ok(())
    }

    /// Make appended records durable.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        if let Some((path, w, _)) = self.writer.as_mut() {
            w.flush().map_err(io(path))?;
            w.get_ref().sync_data().map_err(io(path))?;
        }
        Ok(())
    }

    fn roll(&mut self, first_lsn: Lsn) -> Result<(), JournalError> {
        self.sync()?;
        let path = self.dir.join(format!("{:020X}.seg", first_lsn.0));
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        let size = f.metadata().map_err(io(&path))?.len();
        self.writer = Some((path, BufWriter::new(f), size));
        self.enforce_retention()
    }

    /// Drop whole segments beyond the size or age limit (never the one being written).
    pub fn enforce_retention(&mut self) -> Result<(), JournalError> {
        let mut segs = self.segments()?;
        let current = self.writer.as_ref().map(|(p, _, _)| p.clone());
        segs.retain(|p| Some(p) != current.as_ref());
        let mut total: u64 = segs
            .iter()
            .filter_map(|p| fs::metadata(p).ok())
            .map(|m| m.len())
            .sum::<u64>()
            + self.writer.as_ref().map_or(0, |(_, _, s)| *s);
        let cutoff = SystemTime::now() - self.opts.max_age;
        for seg in segs {
            let meta = fs::metadata(&seg).map_err(io(&seg))?;
            let old = meta.modified().map(|m| m < cutoff).unwrap_or(false);
            if total > self.opts.max_bytes || old {
                fs::remove_file(&seg).map_err(io(&seg))?;
                total = total.saturating_sub(meta.len());
            }
        }
        Ok(())
    }

    /// The oldest retained LSN.
    pub fn oldest_lsn(&mut self) -> Result<Option<Lsn>, JournalError> {
        self.sync()?;
        for seg in self.segments()? {
            if let Some(e) = SegmentReader::open(&seg)?.next() {
                return Ok(Some(e?.lsn));
            }
        }
        Ok(None)
    }

    /// Every retained change with `from <= lsn <= to`, oldest first. Errors if `from` is
    /// older than what is retained.
    pub fn read_range(&mut self, from: Lsn, to: Lsn) -> Result<Vec<Entry>, JournalError> {
        let oldest = self
            .oldest_lsn()?
            .ok_or_else(|| JournalError::Empty(self.dir.clone()))?;
        if from < oldest {
            return Err(JournalError::TooOld {
                requested: from,
                oldest,
            });
        }
        let mut out = Vec::new();
        for seg in self.segments()? {
            for e in SegmentReader::open(&seg)? {
                let e = e?;
                if e.lsn > to {
                    return Ok(out);
                }
                if e.lsn >= from {
                    out.push(e);
                }
            }
        }
        Ok(out)
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Reads valid records of one segment, stopping at the first torn or corrupt one.
struct SegmentReader {
    path: PathBuf,
    r: BufReader<File>,
    pos: u64,
}

impl SegmentReader {
    fn open(path: &Path) -> Result<Self, JournalError> {
        let f = File::open(path).map_err(io(path))?;
        Ok(SegmentReader {
            path: path.to_path_buf(),
            r: BufReader::new(f),
            pos: 0,
        })
    }
}

impl Iterator for SegmentReader {
    type Item = Result<Entry, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut head = [0u8; HEADER];
        if let Err(e) = self.r.read_exact(&mut head) {
            return match e.kind() {
                std::io::ErrorKind::UnexpectedEof => None,
                _ => Some(Err(io(&self.path)(e))),
            };
        }
        let len = u32::from_le_bytes(head[0..4].try_into().ok()?) as usize;
        let crc = u32::from_le_bytes(head[4..8].try_into().ok()?);
        let lsn = u64::from_le_bytes(head[8..16].try_into().ok()?);
        let ms = i64::from_le_bytes(head[16..24].try_into().ok()?);
        if len > MAX_RECORD {
            return None;
        }
        let mut payload = vec![0u8; len];
        if self.r.read_exact(&mut payload).is_err() {
            return None;
        }
        let mut h = crc32fast::Hasher::new();
        h.update(&head[8..24]);
        h.update(&payload);
        if h.finalize() != crc {
            return None;
        }
        self.pos += (HEADER + len) as u64;
        Some(Ok(Entry {
            lsn: Lsn(lsn),
            unix_ms: ms,
            payload,
        }))
    }
}

/// Length of the valid prefix of a segment.
fn scan_valid_len(path: &Path) -> Result<u64, JournalError> {
    let mut r = SegmentReader::open(path)?;
    for e in r.by_ref() {
        e?;
    }
    Ok(r.pos)
}

impl crate::error_class::Classify for JournalError {
    /// A journal that cannot be written needs an operator (disk, permissions).
    fn class(&self) -> crate::error_class::ErrorClass {
        crate::error_class::ErrorClass::Permanent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_reads_ranges_and_refuses_too_old() {
        let dir = tempfile::tempdir().unwrap();
        let opts = JournalOptions {
            segment_bytes: 100,
            ..Default::default()
        };
        let mut j = Journal::open(dir.path(), opts).unwrap();
        for i in 1..=20u64 {
            j.append(Lsn(i * 10), format!("change {i}").as_bytes())
                .unwrap();
        }
        j.sync().unwrap();
        let got = j.read_range(Lsn(50), Lsn(80)).unwrap();
        assert_eq!(
            got.iter().map(|e| e.lsn.0).collect::<Vec<_>>(),
            vec![50, 60, 70, 80]
        );
        assert_eq!(got[0].payload, b"change 5");
        assert!(j.segments().unwrap().len() > 1, "rolled segments");
        assert!(
            matches!(j.read_range(Lsn(1), Lsn(2)), Err(JournalError::TooOld { oldest, .. }) if oldest == Lsn(10))
        );
    }

    #[test]
    fn torn_tail_is_cut_off_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), JournalOptions::default()).unwrap();
        j.append(Lsn(1), b"one").unwrap();
        j.append(Lsn(2), b"two").unwrap();
        j.sync().unwrap();
        drop(j);
        let seg = fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[7, 0, 0, 0, 1, 2]).unwrap();
        drop(f);
        let mut j = Journal::open(dir.path(), JournalOptions::default()).unwrap();
        j.append(Lsn(3), b"three").unwrap();
        let all = j.read_range(Lsn(1), Lsn(10)).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[2].payload, b"three");
    }

    #[test]
    fn retention_drops_oldest_segments_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let opts = JournalOptions {
            segment_bytes: 64,
            max_bytes: 200,
            ..Default::default()
        };
        let mut j = Journal::open(dir.path(), opts).unwrap();
        for i in 1..=50u64 {
            j.append(Lsn(i), &[0u8; 40]).unwrap();
        }
        let oldest = j.oldest_lsn().unwrap().unwrap();
        assert!(oldest > Lsn(1), "old segments dropped, oldest now {oldest}");
        assert!(j.read_range(oldest, Lsn(50)).unwrap().len() < 50);
    }
}
