//! Two-way sync (`[[pipelines.pairs]]`): what keeps a table ⇄ object pair from looping or
//! flip-flopping, on top of the two one-way engines a pair expands into.
//!
//! - **Postgres side**: every row pgforce writes into Postgres is written under a
//!   replication origin the outbound decoder skips (already so; nothing here).
//! - **Salesforce side**: pgforce's calls carry `Sforce-Call-Options:
//!   client=pgforce-<pipeline>` ([`client_tag`]); a change event whose `changeOrigin`
//!   carries it is pgforce's own and is dropped. Because a polled record (or an event)
//!   can combine pgforce's write with a person's edit, every value is also compared with
//!   the value the field was last synced with ([`synced`], state migration 6: one row per
//!   record and field, written when pgforce writes the field to Salesforce and when it
//!   applies it to Postgres, pruned by age). Only values that differ flow back.
//! - **Conflicts** ([`conflict`]): a Salesforce value arriving while the Postgres row holds
//!   a different, not yet synced value of the same field is a conflict; the field's policy
//!   picks the winner, the loser's side is overwritten (or not sent), and the decision is
//!   logged and counted (`pgforce_bidi_conflicts_total`).
//!
//! - **Outbound** ([`guard`]): before paired records are written, their Salesforce values
//!   are read and each field is decided against them, so a Salesforce edit the inbound
//!   side has not applied yet is not overwritten by an older or unrelated Postgres change;
//!   what is sent is recorded as synced before the call.
//!
//! [`values`] gives both sides one canonical form to compare. [`echo`] is the filter the
//! inbound engine runs a paired entry's events through.
//!
//! This room sits below `sink` and `inbound` (both call it) and uses only `checkpoint`
//! (the state session), `config` (the pair) and `metrics`.

pub mod conflict;
pub mod echo;
pub mod guard;
pub mod synced;
pub mod values;

/// The client id pgforce sends on pipeline `pipeline`'s Salesforce calls
/// (`Sforce-Call-Options: client=<tag>`), which change events carry back in
/// `changeOrigin`.
pub fn client_tag(pipeline: &str) -> String {
    format!("pgforce-{pipeline}")
}

/// Whether a `changeOrigin` (`com/salesforce/api/rest/62.0;client=pgforce-x`) names `tag`
/// as its client exactly (not `pgforce-x2`).
pub fn origin_is(change_origin: &str, tag: &str) -> bool {
    change_origin
        .split(';')
        .filter_map(|part| part.trim().strip_prefix("client="))
        .any(|c| c.trim() == tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_change_origins_are_recognised_exactly() {
        let tag = client_tag("users");
        assert!(origin_is(
            "com/salesforce/api/rest/62.0;client=pgforce-users",
            &tag
        ));
        assert!(!origin_is(
            "com/salesforce/api/rest/62.0;client=pgforce-users2",
            &tag
        ));
        assert!(!origin_is("com/salesforce/api/rest/62.0", &tag));
        assert!(!origin_is("", &tag));
    }
}
