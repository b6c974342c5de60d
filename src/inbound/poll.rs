//! The polling source: a [`ChangeSource`] for objects or orgs without Change Data Capture.
//!
//! Each poll reads a SOQL window through `queryAll` (so soft deletes, `IsDeleted = true`,
//! are seen) ordered by (SystemModstamp, Id), starting `overlap` before the watermark to
//! catch records committed late with an older SystemModstamp, and getDeleted for hard
//! deletes (its windows are minute-truncated). Record versions already delivered in this
//! subscription are not delivered again.
//!
//! The position is conservative: the smaller of the SOQL watermark and the getDeleted
//! coverage, so a restart from it never skips a change; it may deliver again a version
//! applied just before the restart, which the applier absorbs (mirror rows are guarded by
//! SystemModstamp, audit rows are unique by record and position).

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use futures::TryStreamExt;

use super::convert::parse_datetime;
use super::event::{ChangeKind, InboundEvent, Position, SourceBatch, Start};
use super::record::{deleted_event, record_event, select_list, soql_datetime};
use super::source::{ChangeSource, SourceError};
use crate::config::inbound::InboundConfig;
use crate::error_class::Classify;
use crate::salesforce::{SalesforceClient, SalesforceError};

/// Most record versions in one batch.
const MAX_BATCH: usize = 2000;

/// getDeleted reaches back about 15 days.
const DELETE_LOG_DAYS: i64 = 15;

/// Polls one object.
pub struct PollSource {
    client: SalesforceClient,
    entry: InboundConfig,
    interval: Duration,
    overlap: TimeDelta,
    /// The last (SystemModstamp, Id) delivered from SOQL.
    watermark: Option<(DateTime<Utc>, String)>,
    /// getDeleted has been read up to here.
    deleted_through: Option<DateTime<Utc>>,
    /// Versions delivered within the overlap: (SystemModstamp, Id).
    seen: BTreeSet<(DateTime<Utc>, String)>,
    /// Ids whose delete was delivered (so getDeleted does not repeat a soft delete).
    deleted_seen: VecDeque<(DateTime<Utc>, String)>,
    first: bool,
}

impl PollSource {
    pub fn new(client: SalesforceClient, entry: InboundConfig) -> PollSource {
        PollSource {
            interval: Duration::from_secs(entry.poll_interval_secs.max(1)),
            overlap: TimeDelta::seconds(i64::try_from(entry.poll_overlap_secs).unwrap_or(60)),
            client,
            entry,
            watermark: None,
            deleted_through: None,
            seen: BTreeSet::new(),
            deleted_seen: VecDeque::new(),
            first: true,
        }
    }

    fn topic(&self) -> String {
        format!("poll:{}", self.entry.object)
    }

    fn error(&self, e: SalesforceError) -> SourceError {
        let topic = self.topic();
        let reason = e.to_string();
        match e.class() {
            crate::error_class::ErrorClass::Auth => SourceError::Auth { topic, reason },
            c if c.is_retryable() => SourceError::Transient { topic, reason },
            _ => SourceError::Permanent { topic, reason },
        }
    }

    /// Where the source stands (see the module doc).
    fn position(&self) -> Option<Position> {
        let (ts, id) = self.watermark.clone()?;
        Some(match self.deleted_through {
            Some(d) if d < ts => Position::Poll {
                systemmodstamp: d,
                id: String::new(),
            },
            _ => Position::Poll {
                systemmodstamp: ts,
                id,
            },
        })
    }

    async fn poll_records(&mut self) -> Result<Vec<InboundEvent>, SourceError> {
        let Some((wm_ts, wm_id)) = self.watermark.clone() else {
            return Ok(Vec::new());
        };
        let from = wm_ts - self.overlap;
        let soql = format!(
            "SELECT {} FROM {} WHERE SystemModstamp >= {} ORDER BY SystemModstamp, Id",
            select_list(&self.entry).join(", "),
            self.entry.object,
            soql_datetime(from)
        );
        let mut stream = self.client.query_all(soql);
        let mut out = Vec::new();
        let placeholder = Position::Poll {
            systemmodstamp: wm_ts,
            id: wm_id.clone(),
        };
        while let Some(record) = stream.try_next().await.map_err(|e| self.error(e))? {
            let Some(event) = record_event(&self.entry, &record, placeholder.clone()) else {
                continue;
            };
            let version = (event.commit_timestamp, event.record_ids[0].clone());
            let after = version > (wm_ts, wm_id.clone());
            if self.seen.contains(&version) {
                continue;
            }
            if !after {
                tracing::debug!(object = %self.entry.object, id = %version.1, "poll overlap: a version at or before the watermark");
            }
            self.seen.insert(version);
            out.push(event);
            if out.len() >= MAX_BATCH {
                break;
            }
        }
        Ok(out)
    }

    async fn poll_deletes(&mut self) -> Result<Vec<InboundEvent>, SourceError> {
        let Some(start) = self.deleted_through else {
            return Ok(Vec::new());
        };
        let start = start.duration_trunc(TimeDelta::minutes(1)).unwrap_or(start);
        let now = Utc::now();
        if now - start < TimeDelta::minutes(1) {
            return Ok(Vec::new());
        }
        if now - start > TimeDelta::days(DELETE_LOG_DAYS) {
            return Err(SourceError::PositionLost {
                topic: self.topic(),
                reason: format!(
                    "hard deletes since {start} are past getDeleted's {DELETE_LOG_DAYS}-day window"
                ),
            });
        }
        // The server clamps `end` to its own clock; reach a little past ours for skew.
        let end = now + TimeDelta::minutes(2);
        let answer = match self
            .client
            .get_deleted(&self.entry.object, start, end)
            .await
        {
            Ok(a) => a,
            // The server says the window starts before its delete log.
            Err(e) if e.api_code() == Some("INVALID_REPLICATION_DATE") => {
                return Err(SourceError::PositionLost {
                    topic: self.topic(),
                    reason: format!("getDeleted refused the window from {start}: {e}"),
                })
            }
            Err(e) => return Err(self.error(e)),
        };
        if let Some(earliest) = answer
            .earliest_date_available
            .as_deref()
            .and_then(parse_datetime)
        {
            if earliest > start {
                return Err(SourceError::PositionLost {
                    topic: self.topic(),
                    reason: format!(
                        "the delete log starts at {earliest}, after the stored position {start}"
                    ),
                });
            }
        }
        let covered = answer
            .latest_date_covered
            .as_deref()
            .and_then(parse_datetime)
            .unwrap_or(start);
        let mut out = Vec::new();
        for d in &answer.deleted_records {
            let at = parse_datetime(&d.deleted_date).unwrap_or(covered);
            if self.deleted_seen.iter().any(|(_, id)| id == &d.id) {
                continue;
            }
            self.deleted_seen.push_back((at, d.id.clone()));
            out.push(deleted_event(
                &self.entry,
                &d.id,
                at,
                Position::Poll {
                    systemmodstamp: at,
                    id: d.id.clone(),
                },
            ));
        }
        self.deleted_through = Some(covered.max(start));
        Ok(out)
    }

    fn prune(&mut self) {
        let Some((wm, _)) = &self.watermark else {
            return;
        };
        let horizon = *wm - self.overlap - TimeDelta::seconds(1);
        self.seen = self.seen.split_off(&(horizon, String::new()));
        let keep_from = Utc::now() - TimeDelta::minutes(10);
        while self
            .deleted_seen
            .front()
            .is_some_and(|(t, _)| *t < keep_from)
        {
            self.deleted_seen.pop_front();
        }
    }

    /// The newest SystemModstamp Salesforce holds for the object (deleted records too).
    async fn newest_modstamp(&self) -> Result<Option<DateTime<Utc>>, SourceError> {
        let soql = format!(
            "SELECT SystemModstamp FROM {} ORDER BY SystemModstamp DESC LIMIT 1",
            self.entry.object
        );
        let mut stream = self.client.query_all(soql);
        let first = stream.try_next().await.map_err(|e| self.error(e))?;
        Ok(first
            .and_then(|r| r.get("SystemModstamp").cloned())
            .and_then(|v| v.as_str().and_then(parse_datetime)))
    }
}

impl ChangeSource for PollSource {
    async fn tip(&mut self) -> Result<Position, SourceError> {
        let newest = self.newest_modstamp().await?;
        Ok(Position::Poll {
            systemmodstamp: newest.unwrap_or_else(Utc::now),
            id: String::new(),
        })
    }

    async fn start(&mut self, start: Start) -> Result<(), SourceError> {
        let (ts, id) = match start {
            Start::After(Position::Poll { systemmodstamp, id }) => (systemmodstamp, id),
            Start::After(Position::Replay(_)) => {
                return Err(SourceError::PositionLost {
                    topic: self.topic(),
                    reason: "the stored position is a CDC replay id, this entry now polls".into(),
                })
            }
            Start::Latest => match self.tip().await? {
                Position::Poll { systemmodstamp, id } => (systemmodstamp, id),
                Position::Replay(_) => (Utc::now(), String::new()),
            },
            Start::Earliest => (
                Utc::now() - TimeDelta::days(DELETE_LOG_DAYS - 1),
                String::new(),
            ),
        };
        self.watermark = Some((ts, id));
        self.deleted_through = Some(ts);
        self.seen.clear();
        self.deleted_seen.clear();
        self.first = true;
        Ok(())
    }

    async fn next_batch(&mut self) -> Result<SourceBatch, SourceError> {
        if !self.first {
            tokio::time::sleep(self.interval).await;
        }
        self.first = false;
        let mut events = self.poll_records().await?;
        if let Some(last) = events
            .iter()
            .map(|e| (e.commit_timestamp, e.record_ids[0].clone()))
            .max()
        {
            if self.watermark.as_ref().is_none_or(|w| last > *w) {
                self.watermark = Some(last);
            }
        }
        for e in &events {
            if e.kind == ChangeKind::Delete {
                self.deleted_seen
                    .push_back((e.commit_timestamp, e.record_ids[0].clone()));
            }
        }
        events.extend(self.poll_deletes().await?);
        events.sort_by(|a, b| {
            (a.commit_timestamp, &a.record_ids).cmp(&(b.commit_timestamp, &b.record_ids))
        });
        self.prune();
        let position = self.position();
        // Each version's own identity (audit rows are unique by it); the batch's
        // conservative position is what the applier stores.
        for e in &mut events {
            e.position = Position::Poll {
                systemmodstamp: e.commit_timestamp,
                id: e.record_ids[0].clone(),
            };
        }
        Ok(SourceBatch { events, position })
    }
}
