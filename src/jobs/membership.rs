//! The `membership` target: a segment query → the members of one Campaign. Newcomers are
//! added, members who left are removed (or get `departed_status`), and members pgforce did
//! not add are never touched: the job tracks the members it added (`job_members`), and a
//! person who is already a member it did not add is left alone.
//!
//! Crash safety: before records are sent, the intent (`adding`, `removing`) is recorded;
//! the next run looks the in-flight people up in Salesforce and adopts what an interrupted
//! run created, so a member is never created twice. The safety limit refuses a run that
//! would remove more than `max_remove_percent` of the tracked members unless forced.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures::TryStreamExt;
use serde_json::{json, Map, Value};

use super::error::JobError;
use super::query::{key_text, run_query};
use super::runner::{RunCtx, RunReport};
use super::send::{send, Keyed, Sent, Write};
use super::store::{Member, RunState};
use crate::config::jobs::{MemberMatch, MembershipTarget};
use crate::salesforce::SalesforceClient;

/// Values per `IN (…)` list of a lookup query.
const LOOKUP_BATCH: usize = 100;
/// Adds or removes of at least this many go through Bulk.
const BULK_THRESHOLD: usize = 2_000;

/// What a run changes, decided from the segment, the tracked members and what Salesforce
/// holds for the people in question (pure, see [`decide`]).
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    /// People to add.
    pub add: Vec<String>,
    /// (person, member Id) to remove or mark departed.
    pub remove: Vec<(String, String)>,
    /// (person, member Id) who were marked departed and are back.
    pub returning: Vec<(String, String)>,
    /// (person, member Id) an interrupted run created: recorded, not sent again.
    pub adopt: Vec<(String, String)>,
    /// Tracked people to forget (an interrupted add that never landed, a finished remove).
    pub forget: Vec<String>,
    /// Members pgforce did not add (left alone).
    pub foreign: u64,
    /// Members pgforce added and keeps.
    pub kept: u64,
}

/// Decide the changes. `existing` maps people to their CampaignMember Id in Salesforce (only
/// the people looked up: newcomers and in-flight ones).
pub fn decide(
    desired: &BTreeSet<String>,
    tracked: &[Member],
    existing: &HashMap<String, String>,
) -> Changes {
    let mut c = Changes::default();
    let by_person: HashMap<&str, &Member> =
        tracked.iter().map(|m| (m.person_id.as_str(), m)).collect();
    for person in desired {
        match by_person.get(person.as_str()) {
            Some(m) if m.state == "added" => c.kept += 1,
            Some(m) if m.state == "departed" => match &m.member_id {
                Some(id) => c.returning.push((person.clone(), id.clone())),
                None => c.add.push(person.clone()),
            },
            // In flight from an interrupted run: adopt what landed, else add.
            Some(_) => match existing.get(person) {
                Some(id) => c.adopt.push((person.clone(), id.clone())),
                None => c.add.push(person.clone()),
            },
            None if existing.contains_key(person) => c.foreign += 1,
            None => c.add.push(person.clone()),
        }
    }
    for m in tracked.iter().filter(|m| !desired.contains(&m.person_id)) {
        let id = match m.state.as_str() {
            "added" => m.member_id.clone(),
            "departed" => continue,
            _ => existing.get(&m.person_id).cloned(),
        };
        match id {
            Some(id) => c.remove.push((m.person_id.clone(), id)),
            None => c.forget.push(m.person_id.clone()),
        }
    }
    c
}

/// One run of a membership job.
pub(super) async fn run(ctx: &mut RunCtx<'_>, m: &MembershipTarget) -> Result<RunReport, JobError> {
    let job = ctx.job;
    let sf_err = |e| JobError::salesforce(&job.name, e);
    let rows = run_query(ctx.db, job, &[]).await?;
    let mut report = RunReport::new(job, ctx.opts.dry_run);
    report.rows_seen = rows.len() as u64;
    let values: BTreeSet<String> = rows
        .iter()
        .filter_map(|r| key_text(r.values.get(&m.column)))
        .map(|v| match m.match_by {
            MemberMatch::Email => v.trim().to_lowercase(),
            MemberMatch::Id => v.trim().to_string(),
        })
        .collect();
    let campaign = campaign_id(ctx, m).await?;
    let (desired, unmatched) = resolve(ctx.sf, m.match_by, &values).await.map_err(sf_err)?;
    let tracked = ctx
        .store
        .members(&job.name, &campaign)
        .await
        .map_err(JobError::state(&job.name))?;
    let lookup: BTreeSet<String> = desired
        .keys()
        .filter(|p| {
            !tracked
                .iter()
                .any(|t| &t.person_id == *p && t.state != "adding")
        })
        .chain(
            tracked
                .iter()
                .filter(|t| t.member_id.is_none())
                .map(|t| &t.person_id),
        )
        .cloned()
        .collect();
    let existing = existing_members(ctx.sf, &campaign, &lookup)
        .await
        .map_err(sf_err)?;
    let wanted: BTreeSet<String> = desired.keys().cloned().collect();
    let changes = decide(&wanted, &tracked, &existing);
    check_safety(job.name.as_str(), m, &tracked, &changes, ctx.opts.force)?;
    report.counts = vec![
        ("add", changes.add.len() as u64),
        ("remove", changes.remove.len() as u64),
        ("returning", changes.returning.len() as u64),
        ("kept", changes.kept),
        ("not_added_by_pgforce", changes.foreign),
        ("unmatched", unmatched),
    ];
    for p in &changes.add {
        report.sample(p, "add", &add_record(&campaign, p, m.status.as_deref()));
    }
    for (p, id) in &changes.remove {
        report.sample(
            p,
            "remove",
            &Map::from_iter([("Id".to_string(), json!(id))]),
        );
    }
    if ctx.opts.dry_run {
        let outcome = report.outcome(RunState::DryRun, None);
        ctx.store
            .end_run(ctx.run_id, &outcome)
            .await
            .map_err(JobError::state(&job.name))?;
        return Ok(report);
    }
    apply(ctx, m, &campaign, changes, report).await
}

/// Record the intents, send, and record the outcome.
async fn apply(
    ctx: &mut RunCtx<'_>,
    m: &MembershipTarget,
    campaign: &str,
    changes: Changes,
    mut report: RunReport,
) -> Result<RunReport, JobError> {
    let job = ctx.job;
    let state_err = JobError::state(&job.name);
    let intents: Vec<Member> = changes
        .add
        .iter()
        .map(|p| member(p, None, "adding"))
        .chain(
            changes
                .remove
                .iter()
                .map(|(p, id)| member(p, Some(id), "removing")),
        )
        .collect();
    ctx.store
        .set_members(&job.name, campaign, &intents)
        .await
        .map_err(state_err)?;
    let sf_err = |e| JobError::salesforce(&job.name, e);
    let added = send_adds(ctx.sf, campaign, &changes.add, m.status.as_deref())
        .await
        .map_err(sf_err)?;
    let removed = send_removes(ctx.sf, &changes.remove, m.departed_status.as_deref())
        .await
        .map_err(sf_err)?;
    let back = send_status(
        ctx.sf,
        &changes.returning,
        m.status.as_deref().unwrap_or("Sent"),
    )
    .await
    .map_err(sf_err)?;
    let mut set: Vec<Member> = Vec::new();
    let mut forget = changes.forget.clone();
    set.extend(
        changes
            .adopt
            .iter()
            .map(|(p, id)| member(p, Some(id), "added")),
    );
    set.extend(added.ok.iter().map(|(p, id)| member(p, Some(id), "added")));
    forget.extend(added.failed.iter().map(|e| e.key.clone()));
    forget.extend(added.unprocessed.iter().cloned());
    let remove_ids: HashMap<&str, &str> = changes
        .remove
        .iter()
        .map(|(p, id)| (p.as_str(), id.as_str()))
        .collect();
    for (p, _) in &removed.ok {
        match m.departed_status {
            Some(_) => set.push(member(p, remove_ids.get(p.as_str()).copied(), "departed")),
            None => forget.push(p.clone()),
        }
    }
    for p in removed
        .failed
        .iter()
        .map(|e| &e.key)
        .chain(&removed.unprocessed)
    {
        set.push(member(p, remove_ids.get(p.as_str()).copied(), "added"));
    }
    set.extend(back.ok.iter().map(|(p, _)| member(p, None, "added")));
    report.sent = (added.ok.len() + removed.ok.len() + back.ok.len()) as u64;
    report.calls = added.calls + removed.calls + back.calls;
    let unprocessed = added.unprocessed.len() + removed.unprocessed.len() + back.unprocessed.len();
    for s in [added, removed, back] {
        report.errors.extend(s.failed);
    }
    let (state, message) = match unprocessed {
        0 => (RunState::Done, None),
        n => (
            RunState::Failed,
            Some(format!(
                "{n} member change(s) were not processed; they are retried next run"
            )),
        ),
    };
    let outcome = report.outcome(state, message);
    ctx.store
        .finish_membership(
            ctx.run_id,
            &job.name,
            campaign,
            &set,
            &forget,
            &report.errors,
            &outcome,
        )
        .await
        .map_err(JobError::state(&job.name))?;
    Ok(report)
}

fn member(person: &str, member_id: Option<&str>, state: &str) -> Member {
    Member {
        person_id: person.to_string(),
        member_id: member_id.map(str::to_string),
        state: state.to_string(),
    }
}

/// Refuse to remove more than the limit allows, unless forced.
fn check_safety(
    job: &str,
    m: &MembershipTarget,
    tracked: &[Member],
    c: &Changes,
    force: bool,
) -> Result<(), JobError> {
    let members = tracked.iter().filter(|t| t.state == "added").count();
    let remove = c.remove.len();
    if force || members == 0 || remove == 0 {
        return Ok(());
    }
    let percent = remove as f64 * 100.0 / members as f64;
    if percent > f64::from(m.max_remove_percent) {
        return Err(JobError::SafetyLimit {
            job: job.to_string(),
            campaign: m.campaign.clone(),
            remove,
            members,
            percent,
            limit: m.max_remove_percent,
        });
    }
    Ok(())
}

/// The Campaign's Id, creating the Campaign when configured.
async fn campaign_id(ctx: &RunCtx<'_>, m: &MembershipTarget) -> Result<String, JobError> {
    let job = &ctx.job.name;
    let soql = format!(
        "SELECT Id FROM Campaign WHERE Name = {}",
        soql_quote(&m.campaign)
    );
    let found: Vec<Map<String, Value>> = ctx
        .sf
        .query(soql)
        .try_collect()
        .await
        .map_err(|e| JobError::salesforce(job, e))?;
    if let Some(id) = found
        .first()
        .and_then(|r| r.get("Id"))
        .and_then(Value::as_str)
    {
        return Ok(id.to_string());
    }
    if !m.create_campaign {
        return Err(JobError::CampaignMissing {
            job: job.clone(),
            campaign: m.campaign.clone(),
        });
    }
    if ctx.opts.dry_run {
        return Ok("(new Campaign)".into());
    }
    let record = Map::from_iter([
        ("Name".to_string(), json!(m.campaign)),
        ("IsActive".to_string(), json!(true)),
    ]);
    ctx.sf
        .create_record("Campaign", &record)
        .await
        .map_err(|e| JobError::salesforce(job, e))
}

/// Segment values → person (Contact or Lead) Id → which object, and how many values
/// matched no one.
async fn resolve(
    sf: &SalesforceClient,
    by: MemberMatch,
    values: &BTreeSet<String>,
) -> crate::salesforce::Result<(BTreeMap<String, Person>, u64)> {
    let mut out = BTreeMap::new();
    if by == MemberMatch::Id {
        let mut unmatched = 0;
        for v in values {
            match person_kind(v) {
                Some(k) => {
                    out.insert(v.clone(), k);
                }
                None => unmatched += 1,
            }
        }
        return Ok((out, unmatched));
    }
    let mut left: BTreeSet<String> = values.clone();
    for (object, kind, extra) in [
        ("Contact", Person::Contact, ""),
        ("Lead", Person::Lead, " AND IsConverted = false"),
    ] {
        let list: Vec<String> = left.iter().cloned().collect();
        for chunk in list.chunks(LOOKUP_BATCH) {
            let soql = format!(
                "SELECT Id, Email FROM {object} WHERE Email IN ({}){extra} ORDER BY Id",
                chunk
                    .iter()
                    .map(|e| soql_quote(e))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let records: Vec<Map<String, Value>> = sf.query(soql).try_collect().await?;
            for r in records {
                let (Some(id), Some(email)) = (
                    r.get("Id").and_then(Value::as_str),
                    r.get("Email").and_then(Value::as_str),
                ) else {
                    continue;
                };
                if left.remove(&email.to_lowercase()) {
                    out.insert(id.to_string(), kind);
                }
            }
        }
    }
    Ok((out, left.len() as u64))
}

/// Whether a person is a Contact or a Lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Person {
    Contact,
    Lead,
}

impl Person {
    fn field(self) -> &'static str {
        match self {
            Person::Contact => "ContactId",
            Person::Lead => "LeadId",
        }
    }
}

/// A Contact (`003`) or Lead (`00Q`) Id's kind.
fn person_kind(id: &str) -> Option<Person> {
    let valid = matches!(id.len(), 15 | 18) && id.chars().all(|c| c.is_ascii_alphanumeric());
    match id.get(..3) {
        Some("003") if valid => Some(Person::Contact),
        Some("00Q") if valid => Some(Person::Lead),
        _ => None,
    }
}

/// CampaignMember Ids of `people` in the Campaign.
async fn existing_members(
    sf: &SalesforceClient,
    campaign: &str,
    people: &BTreeSet<String>,
) -> crate::salesforce::Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for kind in [Person::Contact, Person::Lead] {
        let ids: Vec<&String> = people
            .iter()
            .filter(|p| person_kind(p) == Some(kind))
            .collect();
        for chunk in ids.chunks(LOOKUP_BATCH) {
            let field = kind.field();
            let soql =
                format!(
                "SELECT Id, {field} FROM CampaignMember WHERE CampaignId = {} AND {field} IN ({})",
                soql_quote(campaign),
                chunk.iter().map(|p| soql_quote(p)).collect::<Vec<_>>().join(", ")
            );
            let records: Vec<Map<String, Value>> = sf.query(soql).try_collect().await?;
            for r in records {
                if let (Some(id), Some(p)) = (
                    r.get("Id").and_then(Value::as_str),
                    r.get(field).and_then(Value::as_str),
                ) {
                    out.insert(p.to_string(), id.to_string());
                }
            }
        }
    }
    Ok(out)
}

fn add_record(campaign: &str, person: &str, status: Option<&str>) -> Map<String, Value> {
    let field = person_kind(person).unwrap_or(Person::Contact).field();
    let mut r = Map::from_iter([
        ("CampaignId".to_string(), json!(campaign)),
        (field.to_string(), json!(person)),
    ]);
    if let Some(s) = status {
        r.insert("Status".into(), json!(s));
    }
    r
}

/// Create the new members (Contacts and Leads separately, so Bulk results match back by
/// their own column).
async fn send_adds(
    sf: &SalesforceClient,
    campaign: &str,
    people: &[String],
    status: Option<&str>,
) -> crate::salesforce::Result<Sent> {
    let mut all = Sent::default();
    for kind in [Person::Contact, Person::Lead] {
        let records: Vec<Keyed> = people
            .iter()
            .filter(|p| person_kind(p) == Some(kind))
            .map(|p| (p.clone(), add_record(campaign, p, status)))
            .collect();
        let s = send(
            sf,
            "CampaignMember",
            Write::Insert,
            records,
            BULK_THRESHOLD,
            kind.field(),
        )
        .await?;
        merge(&mut all, s);
    }
    Ok(all)
}

/// Remove the departed (or set their status), keyed back by person.
async fn send_removes(
    sf: &SalesforceClient,
    remove: &[(String, String)],
    departed_status: Option<&str>,
) -> crate::salesforce::Result<Sent> {
    match departed_status {
        Some(status) => send_status(sf, remove, status).await,
        None => {
            let records = remove
                .iter()
                .map(|(_, id)| (id.clone(), Map::from_iter([("Id".to_string(), json!(id))])))
                .collect();
            let s = send(
                sf,
                "CampaignMember",
                Write::Delete,
                records,
                BULK_THRESHOLD,
                "Id",
            )
            .await?;
            Ok(by_person(s, remove))
        }
    }
}

/// Set members' Status (upsert by Id), keyed back by person.
async fn send_status(
    sf: &SalesforceClient,
    members: &[(String, String)],
    status: &str,
) -> crate::salesforce::Result<Sent> {
    let records = members
        .iter()
        .map(|(_, id)| {
            let r = Map::from_iter([
                ("Id".to_string(), json!(id)),
                ("Status".to_string(), json!(status)),
            ]);
            (id.clone(), r)
        })
        .collect();
    let s = send(
        sf,
        "CampaignMember",
        Write::Upsert("Id"),
        records,
        BULK_THRESHOLD,
        "Id",
    )
    .await?;
    Ok(by_person(s, members))
}

/// Re-key a [`Sent`] keyed by member Id to person Ids.
fn by_person(mut s: Sent, members: &[(String, String)]) -> Sent {
    let person: HashMap<String, String> = members
        .iter()
        .map(|(p, id)| (id.to_lowercase(), p.clone()))
        .collect();
    let key = |k: &str| {
        person
            .get(&k.to_lowercase())
            .or_else(|| {
                person
                    .iter()
                    .find(|(id, _)| id.starts_with(&k.to_lowercase()))
                    .map(|(_, p)| p)
            })
            .cloned()
            .unwrap_or_else(|| k.to_string())
    };
    s.ok = s.ok.into_iter().map(|(k, id)| (key(&k), id)).collect();
    for e in &mut s.failed {
        e.key = key(&e.key);
    }
    s.unprocessed = s.unprocessed.iter().map(|k| key(k)).collect();
    s
}

fn merge(all: &mut Sent, s: Sent) {
    all.ok.extend(s.ok);
    all.failed.extend(s.failed);
    all.unprocessed.extend(s.unprocessed);
    all.calls += s.calls;
}

/// A SOQL string literal.
pub(super) fn soql_quote(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracked(person: &str, id: Option<&str>, state: &str) -> Member {
        member(person, id, state)
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn adds_newcomers_and_removes_the_departed() {
        let t = vec![
            tracked("003A", Some("00vA"), "added"),
            tracked("003B", Some("00vB"), "added"),
        ];
        let c = decide(&set(&["003A", "003C"]), &t, &HashMap::new());
        assert_eq!(c.add, ["003C"]);
        assert_eq!(c.remove, [("003B".to_string(), "00vB".to_string())]);
        assert_eq!(c.kept, 1);
    }

    #[test]
    fn members_pgforce_did_not_add_are_left_alone() {
        let existing: HashMap<String, String> = [("003X".to_string(), "00vX".to_string())].into();
        let c = decide(&set(&["003X"]), &[], &existing);
        assert!(c.add.is_empty() && c.remove.is_empty());
        assert_eq!(c.foreign, 1);
    }

    #[test]
    fn an_interrupted_add_is_adopted_not_repeated() {
        let t = vec![
            tracked("003A", None, "adding"),
            tracked("003B", None, "adding"),
        ];
        let existing: HashMap<String, String> = [("003A".to_string(), "00vA".to_string())].into();
        let c = decide(&set(&["003A", "003B"]), &t, &existing);
        assert_eq!(c.adopt, [("003A".to_string(), "00vA".to_string())]);
        assert_eq!(c.add, ["003B"]);
    }

    #[test]
    fn the_safety_limit_counts_tracked_members() {
        let t: Vec<Member> = (0..10)
            .map(|i| tracked(&format!("003{i}"), Some(&format!("00v{i}")), "added"))
            .collect();
        let m: MembershipTarget =
            toml::from_str("campaign = \"C\"\ncolumn = \"email\"\nmax_remove_percent = 20")
                .unwrap();
        let c = decide(&set(&["0030", "0031", "0032"]), &t, &HashMap::new());
        let err = check_safety("seg", &m, &t, &c, false).unwrap_err();
        assert!(
            err.to_string().contains("refused to remove 7 of 10"),
            "{err}"
        );
        assert!(check_safety("seg", &m, &t, &c, true).is_ok());
    }

    #[test]
    fn person_ids_by_prefix() {
        assert_eq!(person_kind("003000000000001AAA"), Some(Person::Contact));
        assert_eq!(person_kind("00Q000000000001AAA"), Some(Person::Lead));
        assert_eq!(person_kind("001000000000001AAA"), None);
        assert_eq!(person_kind("003' OR 1=1"), None);
    }
}
