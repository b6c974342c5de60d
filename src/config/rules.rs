//! Checks that need only the config itself (no database, no Salesforce): names, limits,
//! transform parameters, filter shapes, lookups to mapped objects and lookup cycles.

use std::collections::{BTreeMap, BTreeSet};

use super::error::KeyError;
use super::model::*;
use super::order::object_order;

/// Every problem found, each naming its key path.
pub(crate) fn check(config: &Config) -> Vec<KeyError> {
    let mut errs = Vec::new();
    if config.pipelines.is_empty() {
        errs.push(KeyError::new(
            "pipelines",
            "no pipelines: add at least one [[pipelines]] table",
        ));
    }
    let mut names = BTreeSet::new();
    for (i, p) in config.pipelines.iter().enumerate() {
        let key = format!("pipelines[{i}]");
        if !names.insert(p.name.as_str()) {
            errs.push(KeyError::new(
                format!("{key}.name"),
                format!("duplicate pipeline name `{}`", p.name),
            ));
        }
        check_pipeline(&key, p, &mut errs);
    }
    errs
}

/// An inline database URL must parse and must not hold a password (a referenced one is
/// checked when it is resolved and used).
fn check_database_url(source: &SourceConfig, err: &mut impl FnMut(&str, String)) {
    use secrecy::ExposeSecret;
    let url = &source.database_url;
    let (super::SecretRef::Inline, Ok(value)) = (url.reference(), url.value()) else {
        return;
    };
    let key = "source.database_url";
    match crate::pgconn::has_password(value.expose_secret()) {
        Ok(false) => {}
        Ok(true) => err(
            key,
            "a database URL with a password must not be written in the config: put it in an \
             environment variable or a file and write `env:DATABASE_URL` or \
             `file:/run/secrets/db_url`"
                .into(),
        ),
        Err(reason) => err(key, format!("invalid database URL: {reason}")),
    }
}

fn check_pipeline(key: &str, p: &PipelineConfig, errs: &mut Vec<KeyError>) {
    super::jobs::check_jobs(key, &p.jobs, errs);
    let mut err = |k: &str, msg: String| errs.push(KeyError::new(format!("{key}.{k}"), msg));
    if p.name.is_empty()
        || !p
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
    {
        err(
            "name",
            "must be non-empty letters, digits, `_` or `-`".into(),
        );
    }
    let outbound = !p.mappings.is_empty();
    if outbound && p.slot.is_empty() {
        err("slot", "required when the pipeline has mappings".into());
    } else if !p.slot.is_empty() && !is_slot_name(&p.slot) {
        err(
            "slot",
            "replication slot names are 1–63 lowercase letters, digits or `_`".into(),
        );
    }
    if outbound && p.publication.is_empty() {
        err(
            "publication",
            "required when the pipeline has mappings".into(),
        );
    }
    for (k, v) in [
        ("publication", &p.publication),
        ("replication_origin", &p.replication_origin),
        ("state_schema", &p.state_schema),
    ] {
        // An empty publication is reported above when it is required.
        if k == "publication" && v.is_empty() {
            continue;
        }
        if v.is_empty() || v.len() > 63 {
            err(k, "must be 1–63 characters (a Postgres identifier)".into());
        }
    }
    check_database_url(&p.source, &mut err);
    check_batching(&p.batching, &mut err);
    check_salesforce(&p.salesforce, &mut err);
    if p.mappings.is_empty() && p.inbound.is_empty() && p.jobs.is_empty() {
        err(
            "mappings",
            "no mappings, inbound entries or jobs: add at least one [[pipelines.mappings]], \
             [[pipelines.inbound]] or [[pipelines.jobs]] table"
                .into(),
        );
    }
    super::inbound::check_entries(&p.inbound, &mut err);
    super::pair::check_pairs(&p.pairs, &mut err);
    let mut mapping_names = BTreeSet::new();
    let objects: BTreeSet<&str> = p.mappings.iter().map(|m| m.object.as_str()).collect();
    for (j, m) in p.mappings.iter().enumerate() {
        if !mapping_names.insert(m.name.as_str()) {
            err(
                &format!("mappings[{j}].name"),
                format!("duplicate mapping name `{}`", m.name),
            );
        }
        check_mapping(&format!("mappings[{j}]"), m, &objects, &mut err);
    }
    if let Err(cycle) = object_order(p) {
        err(
            &cycle_key(p, &cycle.cycle),
            format!("{cycle}: break it by setting parent_synced = false on one lookup"),
        );
    }
}

/// The key of the first lookup on a cycle (from `cycle[0]` to `cycle[1]`).
fn cycle_key(p: &PipelineConfig, cycle: &[String]) -> String {
    for (j, m) in p.mappings.iter().enumerate() {
        if Some(&m.object) != cycle.first() {
            continue;
        }
        if let Some(k) = m
            .lookups
            .iter()
            .position(|l| Some(&l.object) == cycle.get(1))
        {
            return format!("mappings[{j}].lookups[{k}]");
        }
    }
    "mappings".into()
}

fn check_batching(b: &BatchingConfig, err: &mut impl FnMut(&str, String)) {
    if b.max_batch_rows == 0 {
        err("batching.max_batch_rows", "must be at least 1".into());
    }
    if b.max_batch_bytes == 0 || b.max_batch_bytes > 100_000_000 {
        err(
            "batching.max_batch_bytes",
            "must be 1–100000000: Salesforce accepts at most 100 MB of CSV per Bulk job".into(),
        );
    }
    if b.max_batch_age_ms == 0 {
        err("batching.max_batch_age_ms", "must be at least 1".into());
    }
    if b.collections_threshold > b.max_batch_rows {
        err(
            "batching.collections_threshold",
            "must not exceed max_batch_rows".into(),
        );
    }
    for (key, v) in [
        (
            "batching.max_concurrent_bulk_jobs",
            b.max_concurrent_bulk_jobs,
        ),
        ("batching.max_concurrent_calls", b.max_concurrent_calls),
    ] {
        if !(1..=MAX_CONCURRENCY).contains(&v) {
            err(
                key,
                format!("must be 1–{MAX_CONCURRENCY}: Salesforce allows {MAX_CONCURRENCY} concurrent long-running requests per org"),
            );
        }
    }
}

/// Salesforce's limit of concurrent long-running API requests per production org.
const MAX_CONCURRENCY: usize = 25;

fn check_salesforce(sf: &SalesforceConfig, err: &mut impl FnMut(&str, String)) {
    if let Err(e) = check_url(&sf.login_url) {
        err("salesforce.login_url", e);
    }
    if let Some(u) = &sf.instance_url {
        if let Err(e) = check_url(u) {
            err("salesforce.instance_url", e);
        }
    }
    if parse_api_version(&sf.api_version).is_none_or(|v| v < 46.0) {
        err(
            "salesforce.api_version",
            "must be a REST API version like \"62.0\", at least 46.0".into(),
        );
    }
    if sf.api_reserve_percent > 100 {
        err("salesforce.api_reserve_percent", "must be 0–100".into());
    }
    if let Err(e) = check_url(&sf.pubsub_endpoint) {
        err("salesforce.pubsub_endpoint", e);
    }
    if sf.limit_exceeded_pause_secs == 0 {
        err(
            "salesforce.limit_exceeded_pause_secs",
            "must be at least 1".into(),
        );
    }
    match &sf.auth {
        AuthConfig::ClientCredentials(_) if sf.instance_url.is_none() => err(
            "salesforce.instance_url",
            "client_credentials must be sent to the org's My Domain host: set \
             salesforce.instance_url (e.g. https://acme.my.salesforce.com)"
                .into(),
        ),
        AuthConfig::JwtBearer(j) => {
            if let Some(a) = &j.audience {
                if a.contains(".my.salesforce.com") {
                    err(
                        "salesforce.auth.audience",
                        "the JWT audience must be https://login.salesforce.com or \
                         https://test.salesforce.com, not the My Domain URL"
                            .into(),
                    );
                }
            }
        }
        _ => {}
    }
}

fn check_mapping(
    key: &str,
    m: &MappingConfig,
    objects: &BTreeSet<&str>,
    err: &mut impl FnMut(&str, String),
) {
    let mut e = |k: &str, msg: String| err(&format!("{key}.{k}"), msg);
    if m.name.is_empty() {
        e("name", "must not be empty".into());
    }
    if split_table(&m.table).is_none() {
        e(
            "table",
            "must be `schema.table` or `table` (letters, digits, `_`, `$`)".into(),
        );
    }
    api_name(&m.object, "object", &mut e);
    if m.external_id.column.is_empty() {
        e("external_id.column", "must not be empty".into());
    }
    api_name(&m.external_id.field, "external_id.field", &mut e);
    let mut targets: BTreeMap<String, String> = BTreeMap::new();
    targets.insert(m.external_id.field.clone(), "external_id.field".into());
    for (col, spec) in &m.fields {
        let k = format!("fields.{}", quote_key(col));
        api_name(&spec.field, &k, &mut e);
        claim_target(&mut targets, &spec.field, &k, &mut e);
        if let Some(t) = &spec.transform {
            check_transform(&format!("{k}.transform"), t, &mut e);
        }
        if m.write_back.as_ref().is_some_and(|w| &w.column == col) {
            e(
                &k,
                format!("`{col}` is the write_back column; it cannot also be a source field"),
            );
        }
    }
    for (n, l) in m.lookups.iter().enumerate() {
        check_lookup(&format!("lookups[{n}]"), l, objects, &mut targets, &mut e);
    }
    for (n, f) in m.filter.iter().enumerate() {
        check_filter(&format!("filter[{n}]"), f, &mut e);
    }
    if let DeletePolicy::Soft { field, .. } = &m.delete {
        api_name(field, "delete.soft.field", &mut e);
    }
    if let Some(w) = &m.write_back {
        if w.column.is_empty() {
            e("write_back.column", "must not be empty".into());
        }
    }
}

/// Record that `field` is written by `key`; a second writer is an error.
fn claim_target(
    targets: &mut BTreeMap<String, String>,
    field: &str,
    key: &str,
    e: &mut impl FnMut(&str, String),
) {
    if let Some(first) = targets.get(field) {
        e(
            key,
            format!("field `{field}` is already written by `{first}`; each field takes one column"),
        );
    } else {
        targets.insert(field.to_string(), key.to_string());
    }
}

fn check_lookup(
    key: &str,
    l: &LookupConfig,
    objects: &BTreeSet<&str>,
    targets: &mut BTreeMap<String, String>,
    e: &mut impl FnMut(&str, String),
) {
    if l.column.is_empty() {
        e(&format!("{key}.column"), "must not be empty".into());
    }
    api_name(&l.object, &format!("{key}.object"), e);
    api_name(&l.relationship, &format!("{key}.relationship"), e);
    api_name(&l.external_id_field, &format!("{key}.external_id_field"), e);
    if let Some(f) = &l.field {
        api_name(f, &format!("{key}.field"), e);
    }
    claim_target(targets, &l.lookup_field(), key, e);
    if l.parent_synced && !objects.contains(l.object.as_str()) {
        e(
            &format!("{key}.object"),
            format!(
                "lookup to unmapped object `{}`: map a table to {} in this pipeline, or set \
                 parent_synced = false if its records are maintained elsewhere",
                l.object, l.object
            ),
        );
    }
}

fn check_filter(key: &str, f: &FilterCondition, e: &mut impl FnMut(&str, String)) {
    if f.column.is_empty() {
        e(&format!("{key}.column"), "must not be empty".into());
    }
    let vkey = format!("{key}.value");
    match (f.op, &f.value) {
        (FilterOp::Eq | FilterOp::Ne, Some(FilterValue::One(_))) => {}
        (FilterOp::Eq | FilterOp::Ne, _) => e(
            &vkey,
            "`=` and `!=` need one string, integer or boolean value".into(),
        ),
        (FilterOp::In | FilterOp::NotIn, Some(FilterValue::List(l))) if !l.is_empty() => {}
        (FilterOp::In | FilterOp::NotIn, _) => e(
            &vkey,
            "`in` and `not_in` need a non-empty list, e.g. [\"a\", \"b\"]".into(),
        ),
        (FilterOp::IsNull | FilterOp::IsNotNull, None) => {}
        (FilterOp::IsNull | FilterOp::IsNotNull, Some(_)) => {
            e(&vkey, "`is_null` and `is_not_null` take no value".into())
        }
    }
}

fn check_transform(key: &str, t: &Transform, e: &mut impl FnMut(&str, String)) {
    match t {
        Transform::ValueMap { values, .. } if values.is_empty() => e(
            &format!("{key}.values"),
            "value_map needs at least one entry".into(),
        ),
        Transform::Numeric { precision, scale } => {
            if *precision == 0 || *precision > 1000 {
                e(&format!("{key}.precision"), "must be 1–1000".into());
            }
            if scale > precision {
                e(
                    &format!("{key}.scale"),
                    format!("scale {scale} exceeds precision {precision}"),
                );
            }
        }
        Transform::Multipicklist { split: Some(s) } if s.is_empty() => {
            e(&format!("{key}.split"), "must not be empty".into())
        }
        Transform::String {
            max_length,
            truncate,
        } => {
            if max_length.is_some_and(|n| n == 0 || n > 131_072) {
                e(&format!("{key}.max_length"), "must be 1–131072".into());
            }
            if *truncate && max_length.is_none() {
                e(
                    &format!("{key}.truncate"),
                    "truncate needs max_length".into(),
                );
            }
        }
        Transform::Bool {
            true_values,
            false_values,
        } => {
            let t: BTreeSet<String> = true_values
                .iter()
                .flatten()
                .map(|s| s.to_lowercase())
                .collect();
            if let Some(both) = false_values
                .iter()
                .flatten()
                .find(|f| t.contains(&f.to_lowercase()))
            {
                e(
                    key,
                    format!("`{both}` is in both true_values and false_values"),
                );
            }
        }
        _ => {}
    }
}

/// Complain unless `name` looks like a Salesforce API name.
fn api_name(name: &str, key: &str, e: &mut impl FnMut(&str, String)) {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.ends_with('_');
    if !ok {
        e(
            key,
            format!("`{name}` is not a Salesforce API name (letters, digits and `_`, starting with a letter)"),
        );
    }
}

fn is_slot_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn check_url(u: &str) -> Result<(), String> {
    match url::Url::parse(u) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        Ok(_) => Err("must be an http(s) URL with a host".into()),
        Err(e) => Err(format!("not a URL: {e}")),
    }
}

/// `62.0` or `v62.0` → 62.0.
pub(crate) fn parse_api_version(v: &str) -> Option<f64> {
    let v = v.strip_prefix('v').unwrap_or(v);
    let (major, minor) = v.split_once('.')?;
    if major.is_empty()
        || !major
            .chars()
            .chain(minor.chars())
            .all(|c| c.is_ascii_digit())
        || minor.is_empty()
    {
        return None;
    }
    v.parse().ok()
}

/// `schema.table` → (schema, table); a bare name is in `public`.
pub fn split_table(t: &str) -> Option<(String, String)> {
    let ident = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
    };
    match t.split_once('.') {
        Some((s, n)) if ident(s) && ident(n) => Some((s.to_string(), n.to_string())),
        None if ident(t) => Some(("public".to_string(), t.to_string())),
        _ => None,
    }
}

/// A map key as it appears in a key path.
pub(crate) fn quote_key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        format!("{k:?}")
    }
}
