//! The seeded workload generator: transactions of weighted operations drawn from the
//! enabled [`Vocab`], executed one after the other on one connection. The seed fixes the
//! sequence of operations and values; what the generator knows about the tables (which
//! ids exist, which are referenced, which parents are still to come, which rows are
//! invalid) is re-read from Postgres after every transaction, so a rolled-back or
//! interrupted transaction never leaves it believing something Postgres does not hold.

use std::collections::BTreeSet;

use rand::distr::{Alphanumeric, SampleString};
use rand::rngs::StdRng;
use rand::Rng;
use tokio_postgres::{Client, Transaction};

use super::vocab::Vocab;

/// Salesforce limits the workload breaks on purpose (see the emulator schema).
pub const SITE_MAX: usize = 80;
pub const SUBJECT_MAX: usize = 40;

/// What the generator knows about the tables (re-read after every transaction).
#[derive(Debug, Default, Clone)]
pub struct Model {
    pub accounts: Vec<i64>,
    pub contacts: Vec<i64>,
    pub tickets: Vec<i64>,
    /// Partner numbers (code `P<n>`).
    pub partners: Vec<i64>,
    referenced_accounts: BTreeSet<i64>,
    referenced_contacts: BTreeSet<i64>,
    /// Referenced by a child, not inserted yet (orphans wait for them).
    pub pending_accounts: Vec<i64>,
    pub pending_contacts: Vec<i64>,
    /// Rows Salesforce rejects as they are now, as (table, id).
    pub invalid: Vec<(Table, i64)>,
    pub hidden_tickets: Vec<i64>,
    pub visible_tickets: Vec<i64>,
}

/// A source table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Table {
    Accounts,
    Contacts,
    Tickets,
}

impl Model {
    /// Read the model from Postgres.
    pub async fn load(pg: &Client) -> Result<Model, tokio_postgres::Error> {
        let ids = |sql: &'static str| async move {
            Ok::<Vec<i64>, tokio_postgres::Error>(
                pg.query(sql, &[])
                    .await?
                    .into_iter()
                    .map(|r| r.get::<_, i64>(0))
                    .collect(),
            )
        };
        let accounts = ids("SELECT id FROM accounts ORDER BY id").await?;
        let contacts = ids("SELECT id FROM contacts ORDER BY id").await?;
        let tickets = ids("SELECT id FROM tickets ORDER BY id").await?;
        let partners = ids("SELECT substr(code, 2)::bigint FROM partners ORDER BY 1").await?;
        let referenced_accounts: BTreeSet<i64> = ids(
            "SELECT account_id FROM contacts WHERE account_id IS NOT NULL
             UNION SELECT account_id FROM tickets WHERE account_id IS NOT NULL",
        )
        .await?
        .into_iter()
        .collect();
        let referenced_contacts: BTreeSet<i64> =
            ids("SELECT DISTINCT contact_id FROM tickets WHERE contact_id IS NOT NULL")
                .await?
                .into_iter()
                .collect();
        let mut invalid = Vec::new();
        for (t, sql) in [
            (
                Table::Accounts,
                "SELECT id FROM accounts WHERE length(site) > 80 ORDER BY id",
            ),
            (
                Table::Contacts,
                "SELECT id FROM contacts WHERE last_name IS NULL ORDER BY id",
            ),
            (
                Table::Tickets,
                "SELECT id FROM tickets WHERE length(subject) > 40 ORDER BY id",
            ),
        ] {
            invalid.extend(ids(sql).await?.into_iter().map(|id| (t, id)));
        }
        let hidden_tickets =
            ids("SELECT id FROM tickets WHERE status = 'hidden' ORDER BY id").await?;
        let visible_tickets =
            ids("SELECT id FROM tickets WHERE status <> 'hidden' ORDER BY id").await?;
        let have_a: BTreeSet<i64> = accounts.iter().copied().collect();
        let have_c: BTreeSet<i64> = contacts.iter().copied().collect();
        Ok(Model {
            pending_accounts: referenced_accounts.difference(&have_a).copied().collect(),
            pending_contacts: referenced_contacts.difference(&have_c).copied().collect(),
            accounts,
            contacts,
            tickets,
            partners,
            referenced_accounts,
            referenced_contacts,
            invalid,
            hidden_tickets,
            visible_tickets,
        })
    }

    fn leaf_accounts(&self) -> Vec<i64> {
        self.accounts
            .iter()
            .copied()
            .filter(|a| !self.referenced_accounts.contains(a))
            .collect()
    }

    fn leaf_contacts(&self) -> Vec<i64> {
        self.contacts
            .iter()
            .copied()
            .filter(|c| !self.referenced_contacts.contains(c))
            .collect()
    }
}

/// Counters of what the workload did (printed in the run's summary).
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub transactions: u64,
    pub failed_transactions: u64,
    pub ops: std::collections::BTreeMap<&'static str, u64>,
}

/// The generator: the seed's rng, the vocabulary, and ids handed out so far.
pub struct Generator {
    pub rng: StdRng,
    pub vocab: Vocab,
    next_id: i64,
    version: i64,
    /// Keys the workload deleted (candidates for a re-insert).
    deleted: Vec<(Table, i64)>,
    pub stats: Stats,
}

/// One operation of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    InsertAccount,
    Partner,
    InsertContact,
    InsertTicket,
    UpdateAccount,
    UpdateContact,
    UpdateTicket,
    DeleteAccount,
    DeleteContact,
    DeleteTicket,
    Reinsert,
    DeleteReinsert,
    Family,
    Orphan,
    ResolveOrphan,
    FilterToggle,
    ExtIdChange,
    Reject,
    Fix,
    Nulls,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::InsertAccount => "insert_account",
            Op::Partner => "partner",
            Op::InsertContact => "insert_contact",
            Op::InsertTicket => "insert_ticket",
            Op::UpdateAccount => "update_account",
            Op::UpdateContact => "update_contact",
            Op::UpdateTicket => "update_ticket",
            Op::DeleteAccount => "delete_account",
            Op::DeleteContact => "delete_contact",
            Op::DeleteTicket => "delete_ticket",
            Op::Reinsert => "reinsert",
            Op::DeleteReinsert => "delete_reinsert_one_tx",
            Op::Family => "family",
            Op::Orphan => "orphan",
            Op::ResolveOrphan => "resolve_orphan",
            Op::FilterToggle => "filter_toggle",
            Op::ExtIdChange => "ext_id_change",
            Op::Reject => "reject",
            Op::Fix => "fix",
            Op::Nulls => "nulls",
        }
    }
}

/// (op, weight, the vocabulary item it needs)
const OPS: &[(Op, u32, &str)] = &[
    (Op::InsertAccount, 10, "insert"),
    (Op::Partner, 6, "two_mappings"),
    (Op::InsertContact, 12, "insert"),
    (Op::InsertTicket, 8, "insert"),
    (Op::UpdateAccount, 10, "update"),
    (Op::UpdateContact, 10, "update"),
    (Op::UpdateTicket, 6, "update"),
    (Op::DeleteAccount, 3, "delete"),
    (Op::DeleteContact, 4, "delete"),
    (Op::DeleteTicket, 3, "delete"),
    (Op::Reinsert, 3, "reinsert"),
    (Op::DeleteReinsert, 2, "reinsert"),
    (Op::Family, 3, "family"),
    (Op::Orphan, 4, "orphans"),
    (Op::ResolveOrphan, 4, "orphans"),
    (Op::FilterToggle, 4, "filter"),
    (Op::ExtIdChange, 3, "ext_id_change"),
    (Op::Reject, 3, "rejects"),
    (Op::Fix, 4, "rejects"),
    (Op::Nulls, 4, "nulls"),
];

type PgResult<T> = Result<T, tokio_postgres::Error>;

impl Generator {
    pub fn new(rng: StdRng, vocab: Vocab) -> Generator {
        Generator {
            rng,
            vocab,
            next_id: 1,
            version: 0,
            deleted: Vec::new(),
            stats: Stats::default(),
        }
    }

    fn id(&mut self) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn v(&mut self) -> i64 {
        self.version += 1;
        self.version
    }

    fn count(&mut self, what: &'static str) {
        *self.stats.ops.entry(what).or_default() += 1;
    }

    fn pick<T: Copy>(&mut self, v: &[T]) -> Option<T> {
        (!v.is_empty()).then(|| v[self.rng.random_range(0..v.len())])
    }

    // ---- values ------------------------------------------------------------------

    /// A short text value: plain, CSV-hostile, or exactly `#N/A`, as the vocabulary allows.
    /// At most `max` characters.
    fn text(&mut self, base: &str, max: usize) -> String {
        let roll = self.rng.random_range(0..100);
        if self.vocab.has("na_text") && roll < 6 {
            return "#N/A".to_string();
        }
        if self.vocab.has("csv_hostile") && roll < 35 {
            const HOSTILE: &[&str] = &[
                "say \"hi\", bye",
                "a,b,c",
                "line one\nline two",
                "Zoë Ångström-Łódź",
                "日本語テキスト",
                "rocket 🚀 émoji",
                "\"",
                ",",
                "'; DROP TABLE x; --",
                "back\\slash",
                "tab\there",
                "null",
                "#N/A and more",
                "\"quoted\"",
                "semi;colon",
            ];
            let h = HOSTILE[self.rng.random_range(0..HOSTILE.len())];
            let s = format!("{h} {base}");
            return s.chars().take(max).collect();
        }
        let v = self.v();
        format!("{base} v{v}").chars().take(max).collect()
    }

    /// A value for a TOASTed column: large (out of line) when `toast` is on.
    fn big_text(&mut self) -> Option<String> {
        if self.vocab.has("toast") && self.rng.random_bool(0.7) {
            let n = self.rng.random_range(4000..9000);
            Some(Alphanumeric.sample_string(&mut self.rng, n))
        } else {
            let v = self.v();
            Some(format!("short text v{v}"))
        }
    }

    fn mrr(&mut self) -> Option<String> {
        if self.vocab.has("numeric_limit") && self.rng.random_bool(0.3) {
            const LIMITS: &[&str] = &[
                "9999999999999999.99",
                "-9999999999999999.99",
                "0.01",
                "-0.01",
                "0.00",
                "1234567890123456.78",
            ];
            return Some(LIMITS[self.rng.random_range(0..LIMITS.len())].to_string());
        }
        let cents: i64 = self.rng.random_range(0..100_000_000);
        Some(format!("{}.{:02}", cents / 100, cents % 100))
    }

    fn site(&mut self) -> Option<String> {
        Some(self.text("site", SITE_MAX))
    }

    fn subject(&mut self) -> Option<String> {
        Some(self.text("subject", SUBJECT_MAX))
    }

    fn email(&mut self, id: i64) -> Option<String> {
        let v = self.v();
        Some(format!("c{id}.v{v}@example.com"))
    }

    // ---- the initial rows (backfilled) ---------------------------------------------

    /// Rows present before pgforce's first start: more than one backfill chunk of accounts
    /// (chunks are 1000 rows), contacts and tickets.
    pub async fn seed_rows(&mut self, pg: &mut Client) -> PgResult<()> {
        let n_accounts = self.rng.random_range(1200..2500);
        let tx = pg.transaction().await?;
        let mut first_account = None;
        for _ in 0..n_accounts {
            let id = self.id();
            first_account.get_or_insert(id);
            self.insert_account(&tx, id).await?;
        }
        let first = first_account.unwrap_or(1);
        for _ in 0..self.rng.random_range(300..600) {
            let id = self.id();
            let parent = first + self.rng.random_range(0..n_accounts);
            self.insert_contact(&tx, id, Some(parent)).await?;
        }
        tx.commit().await?;
        let model = Model::load(pg).await?;
        let tx = pg.transaction().await?;
        for _ in 0..self.rng.random_range(100..300) {
            let id = self.id();
            let c = self.pick(&model.contacts);
            let a = self.pick(&model.accounts);
            self.insert_ticket(&tx, id, c, a).await?;
        }
        tx.commit().await
    }

    // ---- transactions --------------------------------------------------------------

    /// Run one transaction of 1 op (or several with `multi_tx`, or a very large one with
    /// `large_tx`). Errors roll it back; the caller reloads the model.
    pub async fn transaction(&mut self, pg: &mut Client, model: &Model) -> PgResult<()> {
        let large = self.vocab.has("large_tx") && self.rng.random_bool(0.03);
        let n = if !large && self.vocab.has("multi_tx") && self.rng.random_bool(0.4) {
            self.rng.random_range(2..9)
        } else {
            1
        };
        let ops: Vec<Op> = (0..n).filter_map(|_| self.pick_op()).collect();
        let tx = pg.transaction().await?;
        if large {
            self.large(&tx, model).await?;
        }
        for op in ops {
            self.run_op(&tx, model, op).await?;
        }
        tx.commit().await?;
        self.stats.transactions += 1;
        Ok(())
    }

    fn pick_op(&mut self) -> Option<Op> {
        let enabled: Vec<(Op, u32)> = OPS
            .iter()
            .filter(|(_, _, item)| self.vocab.has(item))
            .map(|(op, w, _)| (*op, *w))
            .collect();
        let total: u32 = enabled.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return None;
        }
        let mut roll = self.rng.random_range(0..total);
        for (op, w) in enabled {
            if roll < w {
                return Some(op);
            }
            roll -= w;
        }
        None
    }

    async fn run_op(&mut self, tx: &Transaction<'_>, m: &Model, op: Op) -> PgResult<()> {
        let done = match op {
            Op::InsertAccount => {
                let id = self.id();
                self.insert_account(tx, id).await?
            }
            Op::Partner => self.partner(tx, m).await?,
            Op::InsertContact => {
                let id = self.id();
                let parent = self.pick(&m.accounts);
                self.insert_contact(tx, id, parent).await?
            }
            Op::InsertTicket => {
                let id = self.id();
                let c = self.pick(&m.contacts);
                let a = self.pick(&m.accounts);
                self.insert_ticket(tx, id, c, a).await?
            }
            Op::UpdateAccount => self.update_account(tx, m).await?,
            Op::UpdateContact => self.update_contact(tx, m).await?,
            Op::UpdateTicket => self.update_ticket(tx, m).await?,
            Op::DeleteAccount => {
                let leaves = m.leaf_accounts();
                self.delete(tx, Table::Accounts, &leaves).await?
            }
            Op::DeleteContact => {
                let leaves = m.leaf_contacts();
                self.delete(tx, Table::Contacts, &leaves).await?
            }
            Op::DeleteTicket => self.delete(tx, Table::Tickets, &m.tickets).await?,
            Op::Reinsert => self.reinsert(tx, m).await?,
            Op::DeleteReinsert => self.delete_reinsert(tx, m).await?,
            Op::Family => self.family(tx).await?,
            Op::Orphan => self.orphan(tx, m).await?,
            Op::ResolveOrphan => self.resolve_orphan(tx, m).await?,
            Op::FilterToggle => self.filter_toggle(tx, m).await?,
            Op::ExtIdChange => self.ext_id_change(tx, m).await?,
            Op::Reject => self.reject(tx, m).await?,
            Op::Fix => self.fix_one(tx, m).await?,
            Op::Nulls => self.nulls(tx, m).await?,
        };
        if done {
            self.count(op.name());
        }
        Ok(())
    }

    async fn insert_account(&mut self, tx: &Transaction<'_>, id: i64) -> PgResult<bool> {
        let name = self.text(&format!("Account {id}"), 120);
        let site = self.site();
        let description = self.big_text();
        let mrr = self.mrr();
        let n = tx
            .execute(
                "INSERT INTO accounts VALUES ($1, $2, $3, $4, $5::text::numeric)
                 ON CONFLICT (id) DO NOTHING",
                &[&id, &name, &site, &description, &mrr],
            )
            .await?;
        if n == 1 {
            incarnate(tx, "Account", &id.to_string()).await?;
        }
        Ok(n == 1)
    }

    async fn insert_contact(
        &mut self,
        tx: &Transaction<'_>,
        id: i64,
        account: Option<i64>,
    ) -> PgResult<bool> {
        let first = Some(self.text("First", 40));
        let last = Some(self.text(&format!("Last{id}"), 80));
        let email = self.email(id);
        let title = Some(self.text("Title", 128));
        let bio = self.big_text();
        let n = tx
            .execute(
                "INSERT INTO contacts VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
                &[&id, &account, &first, &last, &email, &title, &bio],
            )
            .await?;
        if n == 1 {
            incarnate(tx, "Contact", &id.to_string()).await?;
        }
        Ok(n == 1)
    }

    async fn insert_ticket(
        &mut self,
        tx: &Transaction<'_>,
        id: i64,
        contact: Option<i64>,
        account: Option<i64>,
    ) -> PgResult<bool> {
        let contact = contact.filter(|_| self.vocab.has("grandchildren"));
        let account = account.filter(|_| self.vocab.has("two_lookups"));
        let code = format!("T{id}");
        let subject = self.subject();
        let status = if self.vocab.has("filter") && self.rng.random_bool(0.2) {
            "hidden"
        } else {
            "open"
        };
        let body = self.big_text();
        let n = tx
            .execute(
                "INSERT INTO tickets VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                &[&id, &code, &contact, &account, &subject, &status, &body],
            )
            .await?;
        if n == 1 {
            incarnate(tx, "Ticket__c", &code).await?;
        }
        Ok(n == 1)
    }

    /// Insert, update or delete a row of `partners` (a second mapping onto Account, keyed
    /// by another external-id field).
    async fn partner(&mut self, tx: &Transaction<'_>, m: &Model) -> PgResult<bool> {
        let existing = self.pick(&m.partners);
        let roll = self.rng.random_range(0..10);
        let n = match existing {
            Some(id) if roll < 4 => {
                let name = self.text(&format!("Partner {id}"), 120);
                let site = self.site();
                tx.execute(
                    "UPDATE partners SET name = $2, site = $3 WHERE code = $1",
                    &[&format!("P{id}"), &name, &site],
                )
                .await?
            }
            Some(id) if roll < 6 && self.vocab.has("delete") => {
                tx.execute("DELETE FROM partners WHERE code = $1", &[&format!("P{id}")])
                    .await?
            }
            _ => {
                let id = self.id();
                let code = format!("P{id}");
                let name = self.text(&format!("Partner {id}"), 120);
                let site = self.site();
                let n = tx
                    .execute(
                        "INSERT INTO partners VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                        &[&code, &name, &site],
                    )
                    .await?;
                if n == 1 {
                    incarnate(tx, "Account", &code).await?;
                }
                n
            }
        };
        Ok(n == 1)
    }

    /// Updates; with `toast`, half of them leave the large column untouched.
    async fn update_account(&mut self, tx: &Transaction<'_>, m: &Model) -> PgResult<bool> {
        let Some(id) = self.pick(&m.accounts) else {
            return Ok(false);
        };
        let keep_toast = self.vocab.has("toast") && self.rng.random_bool(0.5);
        let n = if keep_toast {
            let mrr = self.mrr();
            let site = self.site();
            tx.execute(
                "UPDATE accounts SET mrr = $2::text::numeric, site = $3 WHERE id = $1",
                &[&id, &mrr, &site],
            )
            .await?
        } else {
            let name = self.text(&format!("Account {id}"), 120);
            let description = self.big_text();
            tx.execute(
                "UPDATE accounts SET name = $2, description = $3 WHERE id = $1",
                &[&id, &name, &description],
            )
            .await?
        };
        Ok(n == 1)
    }

    async fn update_contact(&mut self, tx: &Transaction<'_>, m: &Model) -> PgResult<bool> {
        let Some(id) = self.pick(&m.contacts) else {
            return Ok(false);
        };
        let n = match self.rng.random_range(0..3) {
            0 => {
                let Some(parent) = self.pick(&m.accounts) else {
                    return Ok(false);
                };
                tx.execute(
                    "UPDATE contacts SET account_id = $2 WHERE id = $1",
                    &[&id, &parent],
                )
                .await?
            }
            1 if self.vocab.has("toast") => {
                let title = self.text("Title", 128);
                tx.execute(
                    "UPDATE contacts SET title = $2 WHERE id = $1",
                    &[&id, &title],
                )
                .await?
            }
            _ => {
                let first = self.text("First", 40);
                let email = self.email(id);
                let bio = self.big_text();
                tx.execute(
                    "UPDATE contacts SET first_name = $2, email = $3, bio = $4 WHERE id = $1",
                    &[&id, &first, &email, &bio],
                )
                .await?
            }
        };
        Ok(n == 1)
    }

    async fn update_ticket(&mut self, tx: &Transaction<'_>, m: &Model) -> PgResult<bool> {
        let Some(id) = self.pick(&m.tickets) else {
            return Ok(false);
        };
        let subject = self.subject();
        let n = if self.vocab.has("toast") && self.rng.random_bool(0.6) {
            tx.execute(
                "UPDATE tickets SET subject = $2 WHERE id = $1",
                &[&id, &subject],
            )
            .await?
        } else {
            let body = self.big_text();
            tx.execute(
                "UPDATE tickets SET subject = $2, body = $3 WHERE id = $1",
                &[&id, &subject, &body],
            )
            .await?
        };
        Ok(n == 1)
    }

    async fn delete(&mut self, tx: &Transaction<'_>, t: Table, ids: &[i64]) -> PgResult<bool> {
        let Some(id) = self.pick(ids) else {
            return Ok(false);
        };
        let sql = match t {
            Table::Accounts => "DELETE FROM accounts WHERE id = $1",
            Table::Contacts => "DELETE FROM contacts WHERE id = $1",
            Table::Tickets => "DELETE FROM tickets WHERE id = $1",
        };
        let n = tx.execute(sql, &[&id]).await?;
        if n == 1 {
            self.deleted.push((t, id));
        }
        Ok(n == 1)
    }

    /// Insert a deleted key again: a new record in Salesforce.
    async fn reinsert(&mut self, tx: &Transaction<'_>, m: &Model) -> PgResult<bool> {
        if self.deleted.is_empty() {
            return Ok(false);
        }
        let i = self.rng.random_range(0..self.deleted.len());
        let (t, id) = self.deleted.swap_remove(i);
        self.insert_again(tx, m, t, id).await
    }

    async fn insert_again(
        &mut self,
        tx: &Transaction<'_>,
        m: &Model,
        t: Table,
        id: i64,
    ) -> PgResult<bool> {
        match t {
            Table::Accounts => self.insert_account(tx, id).await,
            Table::Contacts => {
                let parent = self.pick(&m.accounts);
                self.insert_contact(tx, id, parent).await
            }
            Table::Tickets => {
                let c = self.pick(&m.contacts);
                let a = self.pick(&m.accounts);
                self.insert_ticket(tx, id, c, a).await
            }
        }
    }

    /// Delete a key and insert it again in the same transaction (defect 13's shape).
    async fn delete_reinsert(&mut self, tx: &Transaction<'_>, m: &Model) -> PgResult<bool> {
        let t = match self.rng.random_range(0..3) {
            0 => Table::Accounts,
            1 => Table::Contacts,
            _ => Table::Tickets,
        };
        let ids = match t {
            Table::Accounts => m.leaf_accounts(),
            Table::Contacts => m.leaf_contacts(),
            Table::Tickets => m.tickets.clone(),
        };
        if !self.delete(tx, t, &ids).await? {
            return Ok(false);
        }
        let (t, id) = self.deleted.pop().expect("just deleted");
        self.insert_again(tx, m, t, id).await
    }

    /// A new account, its contacts and a ticket in one transaction, children sometimes
    /// before their parent.
    async fn family(&mut self, tx: &Transaction<'_>) -> PgResult<bool> {
        let account = self.id();
        let contacts: Vec<i64> = (0..self.rng.random_range(1..4))
            .map(|_| self.id())
            .collect();
        let ticket = self.id();
        let children_first = self.rng.random_bool(0.5);
        if !children_first {
            self.insert_account(tx, account).await?;
        }
        for &c in &contacts {
            self.insert_contact(tx, c, Some(account)).await?;
        }
        self.insert_ticket(tx, ticket, Some(contacts[0]), Some(account))
            .await?;
        if children_first {
            self.insert_account(tx, account).await?;
        }
        Ok(true)
    }

    /// A child whose parent does not exist yet (it comes in a later transaction).
    async fn orphan(&mut self, tx: &Transaction<'_>, m: &Model) -> PgResult<bool> {
        let child = self.id();
        let parent = self.id();
        if self.vocab.has("grandchildren") && self.rng.random_bool(0.4) {
            let a = self.pick(&m.accounts);
            self.insert_ticket(tx, child, Some(parent), a).await
        } else {
            self.insert_contact(tx, child, Some(parent)).await
        }
    }

    /// Insert a parent an orphan waits for.
    async fn resolve_orphan(&mut self, tx: &Transaction<'_>, m: &Model) -> PgResult<bool> {
        if let Some(a) = self.pick(&m.pending_accounts) {
            return self.insert_account(tx, a).await;
        }
        if let Some(c) = self.pick(&m.pending_contacts) {
            let parent = self.pick(&m.accounts);
            return self.insert_contact(tx, c, parent).await;
        }
        Ok(false)
    }

    /// Move a ticket out of the filter or back in (the large body left untouched).
    async fn filter_toggle(&mut self, tx: &Transaction<'_>, m: &Model) -> PgResult<bool> {
        let hide = self.rng.random_bool(0.5);
        let pool = if hide {
            &m.visible_tickets
        } else {
            &m.hidden_tickets
        };
        let Some(id) = self.pick(pool) else {
            return Ok(false);
        };
        let status = if hide { "hidden" } else { "open" };
        let code: Option<String> = tx
            .query_opt(
                "UPDATE tickets SET status = $2 WHERE id = $1 RETURNING code",
                &[&id, &status],
            )
            .await?
            .map(|r| r.get(0));
        // Leaving the filter deletes the record; coming back creates a new one.
        if let (false, Some(code)) = (hide, &code) {
            incarnate(tx, "Ticket__c", code).await?;
        }
        Ok(code.is_some())
    }

    /// Change a ticket's external id (`code`).
    async fn ext_id_change(&mut self, tx: &Transaction<'_>, m: &Model) -> PgResult<bool> {
        let Some(id) = self.pick(&m.tickets) else {
            return Ok(false);
        };
        let v = self.v();
        let code = format!("T{id}-k{v}");
        let n = tx
            .execute("UPDATE tickets SET code = $2 WHERE id = $1", &[&id, &code])
            .await?;
        if n == 1 {
            incarnate(tx, "Ticket__c", &code).await?;
        }
        Ok(n == 1)
    }

    /// Make a row invalid for Salesforce (too long, required field missing).
    async fn reject(&mut self, tx: &Transaction<'_>, m: &Model) -> PgResult<bool> {
        let n = match self.rng.random_range(0..3) {
            0 => {
                let Some(id) = self.pick(&m.accounts) else {
                    return Ok(false);
                };
                let site = "S".repeat(SITE_MAX + self.rng.random_range(1..40));
                tx.execute("UPDATE accounts SET site = $2 WHERE id = $1", &[&id, &site])
                    .await?
            }
            1 => {
                let Some(id) = self.pick(&m.contacts) else {
                    return Ok(false);
                };
                tx.execute("UPDATE contacts SET last_name = NULL WHERE id = $1", &[&id])
                    .await?
            }
            _ => {
                let Some(id) = self.pick(&m.tickets) else {
                    return Ok(false);
                };
                let subject = "J".repeat(SUBJECT_MAX + self.rng.random_range(1..20));
                tx.execute(
                    "UPDATE tickets SET subject = $2 WHERE id = $1",
                    &[&id, &subject],
                )
                .await?
            }
        };
        Ok(n == 1)
    }

    /// Fix one invalid row.
    async fn fix_one(&mut self, tx: &Transaction<'_>, m: &Model) -> PgResult<bool> {
        let Some((t, id)) = self.pick(&m.invalid) else {
            return Ok(false);
        };
        self.fix(tx, t, id).await
    }

    pub async fn fix(&mut self, tx: &Transaction<'_>, t: Table, id: i64) -> PgResult<bool> {
        let n = match t {
            Table::Accounts => {
                let site = self.site();
                tx.execute("UPDATE accounts SET site = $2 WHERE id = $1", &[&id, &site])
                    .await?
            }
            Table::Contacts => {
                let last = self.text(&format!("Fixed{id}"), 80);
                tx.execute(
                    "UPDATE contacts SET last_name = $2 WHERE id = $1",
                    &[&id, &last],
                )
                .await?
            }
            Table::Tickets => {
                let subject = self.subject();
                tx.execute(
                    "UPDATE tickets SET subject = $2 WHERE id = $1",
                    &[&id, &subject],
                )
                .await?
            }
        };
        Ok(n == 1)
    }

    /// Set a nullable field to NULL.
    async fn nulls(&mut self, tx: &Transaction<'_>, m: &Model) -> PgResult<bool> {
        const SQL: &[(Table, &str)] = &[
            (
                Table::Accounts,
                "UPDATE accounts SET site = NULL WHERE id = $1",
            ),
            (
                Table::Accounts,
                "UPDATE accounts SET description = NULL WHERE id = $1",
            ),
            (
                Table::Accounts,
                "UPDATE accounts SET mrr = NULL WHERE id = $1",
            ),
            (
                Table::Contacts,
                "UPDATE contacts SET first_name = NULL, email = NULL WHERE id = $1",
            ),
            (
                Table::Contacts,
                "UPDATE contacts SET title = NULL, bio = NULL WHERE id = $1",
            ),
            (
                Table::Contacts,
                "UPDATE contacts SET account_id = NULL WHERE id = $1",
            ),
            (
                Table::Tickets,
                "UPDATE tickets SET subject = NULL, body = NULL WHERE id = $1",
            ),
            (
                Table::Tickets,
                "UPDATE tickets SET contact_id = NULL WHERE id = $1",
            ),
            (
                Table::Tickets,
                "UPDATE tickets SET account_id = NULL WHERE id = $1",
            ),
        ];
        let (t, sql) = SQL[self.rng.random_range(0..SQL.len())];
        let ids = match t {
            Table::Accounts => &m.accounts,
            Table::Contacts => &m.contacts,
            Table::Tickets => &m.tickets,
        };
        let Some(id) = self.pick(ids) else {
            return Ok(false);
        };
        Ok(tx.execute(sql, &[&id]).await? == 1)
    }

    /// A very large transaction: hundreds of new contacts (with large bios under `toast`)
    /// and an update of every ticket.
    async fn large(&mut self, tx: &Transaction<'_>, m: &Model) -> PgResult<()> {
        let n = self.rng.random_range(500..1500);
        for _ in 0..n {
            let id = self.id();
            let parent = self.pick(&m.accounts);
            self.insert_contact(tx, id, parent).await?;
        }
        let v = self.v();
        tx.execute(
            "UPDATE tickets SET status = status || '' , subject = left(coalesce(subject, ''), 30) || ' L' || $1::text
             WHERE length(coalesce(subject, '')) <= 40",
            &[&v.to_string()],
        )
        .await?;
        self.count("large_tx");
        Ok(())
    }
}

/// Count an insert of `ext` (the oracle allows that many records per external id).
async fn incarnate(tx: &Transaction<'_>, object: &str, ext: &str) -> PgResult<u64> {
    tx.execute(
        "INSERT INTO incarnations VALUES ($1, $2, 1)
         ON CONFLICT (object, ext) DO UPDATE SET n = incarnations.n + 1",
        &[&object, &ext],
    )
    .await
}
