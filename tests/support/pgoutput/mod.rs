//! Shared by the pgoutput fixture, live and fuzz tests and the decode bench: the capture
//! scenarios (SQL that produces each pgoutput message kind), how to run one on a throwaway
//! cluster and peek the slot's binary changes, and the fixture file layout.
// The decode bench includes this file too and uses only part of it.
#![allow(dead_code)]

pub mod checks;

use std::path::PathBuf;

use pgforce::lsn::Lsn;
use pgforce::testing::pg::{ClusterOptions, TempCluster};
use tokio_postgres::{Client, NoTls};

/// Server settings every capture cluster gets.
pub fn cluster_options() -> ClusterOptions {
    ClusterOptions {
        extra_conf: vec![
            "logical_decoding_work_mem = 64kB".into(),
            "max_prepared_transactions = 10".into(),
        ],
        ..Default::default()
    }
}

/// One capture: its own database, schema, publication(s), slot and workload.
pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    /// DDL and publications, run before the slot exists (so not in the capture).
    pub setup: &'static str,
    /// Statements run after the slot is created; each entry is one simple-query batch on
    /// connection 0 unless prefixed with `@1 ` (then connection 1, for interleaving).
    pub workload: &'static [&'static str],
    pub publications: &'static str,
    /// Use protocol v1 (else the newest the server speaks: 3 on PG15, 4 on PG16+).
    pub v1: bool,
    pub streaming: bool,
    pub two_phase: bool,
    pub binary: bool,
}

impl Scenario {
    fn base(name: &'static str, about: &'static str, setup: &'static str) -> Self {
        Scenario {
            name,
            about,
            setup,
            workload: &[],
            publications: "p",
            v1: false,
            streaming: false,
            two_phase: false,
            binary: false,
        }
    }

    /// The pgoutput options for `major`.
    pub fn options(&self, major: u32) -> Vec<(&'static str, String)> {
        let proto = if self.v1 {
            1
        } else if major >= 16 {
            4
        } else {
            3
        };
        let mut o = vec![
            ("proto_version", proto.to_string()),
            ("publication_names", self.publications.to_string()),
            ("messages", "true".to_string()),
        ];
        if self.streaming {
            // v4 'parallel' makes Stream Abort carry its LSN and time.
            let mode = if proto >= 4 { "parallel" } else { "on" };
            o.push(("streaming", mode.to_string()));
        }
        if self.two_phase {
            o.push(("two_phase", "on".to_string()));
        }
        if self.binary {
            o.push(("binary", "true".to_string()));
        }
        o
    }
}

pub const ALL_TYPES_SETUP: &str = r#"
CREATE TABLE all_types (
  id int PRIMARY KEY, b bool, i2 int2, i4 int4, i8 int8,
  num numeric, num_nan numeric, num_inf numeric,
  f4 float4, f8 float8, f8_nan float8, f8_inf float8,
  t text, vc varchar(20), bp char(5), nm name, u uuid,
  d date, d_inf date, d_bc date, tm time, tmtz timetz,
  ts timestamp, ts_inf timestamp, ts_bc timestamp, tstz timestamptz, tstz_ninf timestamptz,
  iv interval, iv_neg interval, j json, jb jsonb, by bytea,
  a_b bool[], a_i2 int2[], a_i4 int4[], a_i8 int8[], a_num numeric[], a_f4 float4[],
  a_f8 float8[], a_t text[], a_vc varchar[], a_bp char(2)[], a_u uuid[], a_d date[],
  a_ts timestamp[], a_tstz timestamptz[], a_j json[], a_jb jsonb[], a_by bytea[],
  a_2d int4[], a_bounds int4[], a_empty text[]
);
CREATE PUBLICATION p FOR ALL TABLES;
"#;

pub const ALL_TYPES_INSERT: &str = r#"
INSERT INTO all_types VALUES (
  1, true, -32768, 2147483647, -9223372036854775808,
  '123456789012345678901234567890.123456789000', 'NaN', '-Infinity',
  3.14, -2.718281828459045, 'NaN', 'Infinity',
  E'hello "world" \\ é', 'varchar', 'ab', 'name_val', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '2024-02-29', 'infinity', '0044-03-15 BC', '23:59:59.999999', '04:05:06.789-08',
  '2024-01-15 10:30:00.123456', '-infinity', '0044-03-15 10:00:00 BC',
  '2024-01-15 10:30:00+00', '-infinity',
  '1 year 2 mons 3 days 04:05:06.789', '-1 years -2 mons +3 days -04:05:06',
  '{"n": 12345678901234567890.12345678901234567890, "s": "x"}',
  '{"b": [1, 2.50, null], "a": true}', '\xdeadbeef',
  '{t,f,NULL}', '{1,-2}', '{1,2,3}', '{9223372036854775807}', '{1.5,NaN,-0.001}',
  '{1.5,-Infinity}', '{1e+300,NaN}', E'{"a b","c,d","e\\"f",NULL,"NULL",""}', '{x,y}',
  '{ab,c}', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', '{2024-01-01,infinity}',
  '{"2024-01-01 00:00:00"}', '{"2024-01-01 00:00:00+00"}', ARRAY['{"k": 1}']::json[],
  ARRAY['[1, 2.0]']::jsonb[], ARRAY['\x00ff'::bytea, NULL], '{{1,2},{3,4}}', '[0:1]={7,8}', '{}'
);
INSERT INTO all_types (id) VALUES (2);
"#;

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            v1: true,
            workload: &[
                "INSERT INTO customer VALUES (1, 'Ada', 'ada@example.com', 12.50), (2, 'Grace', NULL, -3.25)",
                "UPDATE customer SET email = 'grace@example.com' WHERE id = 2",
                "UPDATE customer SET id = 3 WHERE id = 1",
                "DELETE FROM customer WHERE id = 2",
            ],
            ..Scenario::base(
                "basic",
                "protocol v1: insert, update, key-changing update ('K'), delete, default replica identity",
                "CREATE TABLE customer (id int PRIMARY KEY, name text NOT NULL, email varchar(100), score numeric(10,2));
                 CREATE PUBLICATION p FOR ALL TABLES;",
            )
        },
        Scenario {
            publications: "p,p_ins",
            workload: &[
                "INSERT INTO full_t VALUES (1, 'a')",
                "UPDATE full_t SET v = 'b' WHERE id = 1",
                "DELETE FROM full_t WHERE id = 1",
                "INSERT INTO idx_t VALUES (1, 'c1', 'x')",
                "UPDATE idx_t SET v = 'y' WHERE id = 1",
                "UPDATE idx_t SET code = 'c2' WHERE id = 1",
                "DELETE FROM idx_t WHERE id = 1",
                "INSERT INTO nothing_t VALUES (1, 'n')",
            ],
            ..Scenario::base(
                "replica_identity",
                "REPLICA IDENTITY FULL ('O' old tuples), USING INDEX ('K' with the index key), NOTHING",
                "CREATE TABLE full_t (id int PRIMARY KEY, v text);
                 ALTER TABLE full_t REPLICA IDENTITY FULL;
                 CREATE TABLE idx_t (id int PRIMARY KEY, code text NOT NULL, v text);
                 CREATE UNIQUE INDEX idx_t_code ON idx_t (code);
                 ALTER TABLE idx_t REPLICA IDENTITY USING INDEX idx_t_code;
                 CREATE TABLE nothing_t (id int, v text);
                 ALTER TABLE nothing_t REPLICA IDENTITY NOTHING;
                 CREATE PUBLICATION p FOR TABLE full_t, idx_t;
                 CREATE PUBLICATION p_ins FOR TABLE nothing_t WITH (publish = 'insert');",
            )
        },
        Scenario {
            workload: &[
                "INSERT INTO doc SELECT 1, 'first', repeat('0123456789', 1000)",
                "UPDATE doc SET title = 'second' WHERE id = 1",
            ],
            ..Scenario::base(
                "toast",
                "update of a row whose large (out-of-line TOAST) column is unchanged: 'u'",
                "CREATE TABLE doc (id int PRIMARY KEY, title text, body text);
                 ALTER TABLE doc ALTER COLUMN body SET STORAGE EXTERNAL;
                 CREATE PUBLICATION p FOR ALL TABLES;",
            )
        },
        Scenario {
            workload: &[
                "INSERT INTO parent VALUES (1); INSERT INTO child (parent_id) VALUES (1); INSERT INTO other VALUES (1)",
                "TRUNCATE other",
                "TRUNCATE parent RESTART IDENTITY CASCADE",
            ],
            ..Scenario::base(
                "truncate",
                "plain TRUNCATE and TRUNCATE ... RESTART IDENTITY CASCADE (option flags)",
                "CREATE TABLE parent (id int PRIMARY KEY);
                 CREATE TABLE child (id serial PRIMARY KEY, parent_id int REFERENCES parent (id));
                 CREATE TABLE other (id int PRIMARY KEY);
                 CREATE PUBLICATION p FOR ALL TABLES;",
            )
        },
        Scenario {
            workload: &[
                "SELECT pg_logical_emit_message(false, 'pgforce.test', 'non-transactional')",
                "BEGIN; INSERT INTO t VALUES (1);
                 SELECT pg_logical_emit_message(true, 'pgforce.test', 'transactional');
                 SELECT pg_logical_emit_message(true, 'bin', '\\x00ff'::bytea); COMMIT",
            ],
            ..Scenario::base(
                "messages",
                "pg_logical_emit_message, non-transactional and transactional (text and bytea)",
                "CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION p FOR ALL TABLES;",
            )
        },
        Scenario {
            workload: &[
                "INSERT INTO t VALUES (1, 'plain')",
                "SELECT pg_replication_origin_session_setup('pgforce')",
                "INSERT INTO t VALUES (2, 'from pgforce')",
                "SELECT pg_replication_origin_session_reset()",
                "SELECT pg_replication_origin_session_setup('other_origin')",
                "INSERT INTO t VALUES (3, 'from other')",
                "SELECT pg_replication_origin_session_reset()",
                "INSERT INTO t VALUES (4, 'plain again')",
            ],
            ..Scenario::base(
                "origin",
                "transactions replayed under replication origins 'pgforce' and 'other_origin'",
                "CREATE TABLE t (id int PRIMARY KEY, v text); CREATE PUBLICATION p FOR ALL TABLES;
                 SELECT pg_replication_origin_create('pgforce');
                 SELECT pg_replication_origin_create('other_origin');",
            )
        },
        Scenario {
            streaming: true,
            workload: &[
                "INSERT INTO big SELECT g, repeat('x', 100) FROM generate_series(1, 600) g",
                "BEGIN; INSERT INTO big SELECT g, repeat('y', 100) FROM generate_series(1001, 1600) g; ROLLBACK",
                "BEGIN; INSERT INTO big SELECT g, 'kept' FROM generate_series(2001, 2005) g;
                 SAVEPOINT s1;
                 INSERT INTO big SELECT g, repeat('z', 100) FROM generate_series(3001, 3600) g;
                 ROLLBACK TO SAVEPOINT s1;
                 INSERT INTO big SELECT g, 'kept too' FROM generate_series(4001, 4003) g; COMMIT",
                "INSERT INTO big VALUES (5000, 'small')",
            ],
            ..Scenario::base(
                "streaming",
                "logical_decoding_work_mem=64kB: streamed commit, streamed abort, subtransaction abort inside a stream",
                "CREATE TABLE big (id int PRIMARY KEY, payload text); CREATE PUBLICATION p FOR ALL TABLES;",
            )
        },
        Scenario {
            streaming: true,
            workload: &[
                "BEGIN",
                "@1 BEGIN",
                "INSERT INTO big SELECT g, repeat('a', 100) FROM generate_series(1, 400) g",
                "@1 INSERT INTO big SELECT g, repeat('b', 100) FROM generate_series(10001, 10400) g",
                "INSERT INTO big SELECT g, repeat('a', 100) FROM generate_series(401, 800) g",
                "@1 COMMIT",
                "COMMIT",
            ],
            ..Scenario::base(
                "stream_interleaved",
                "two large concurrent transactions whose stream chunks interleave; the later one commits first",
                "CREATE TABLE big (id int PRIMARY KEY, payload text); CREATE PUBLICATION p FOR ALL TABLES;",
            )
        },
        Scenario {
            streaming: true,
            two_phase: true,
            workload: &[
                "BEGIN; INSERT INTO t VALUES (1, 'prepared then committed'); PREPARE TRANSACTION 'g1'",
                "COMMIT PREPARED 'g1'",
                "BEGIN; INSERT INTO t VALUES (2, 'prepared then rolled back'); PREPARE TRANSACTION 'g2'",
                "ROLLBACK PREPARED 'g2'",
                "BEGIN; INSERT INTO t SELECT g, repeat('p', 100) FROM generate_series(100, 699) g; PREPARE TRANSACTION 'g3'",
                "COMMIT PREPARED 'g3'",
            ],
            ..Scenario::base(
                "two_phase",
                "two_phase: Begin Prepare/Prepare, Commit Prepared, Rollback Prepared, Stream Prepare",
                "CREATE TABLE t (id int PRIMARY KEY, v text); CREATE PUBLICATION p FOR ALL TABLES;",
            )
        },
        Scenario {
            workload: &["INSERT INTO typed VALUES (1, 'happy', '{sad,happy}', 5, ROW(1, 'x'))"],
            ..Scenario::base(
                "types",
                "Type messages for an enum, its array, a domain and a composite type",
                "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
                 CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);
                 CREATE TYPE pair AS (a int, b text);
                 CREATE TABLE typed (id int PRIMARY KEY, m mood, moods mood[], p posint, c pair);
                 CREATE PUBLICATION p FOR ALL TABLES;",
            )
        },
        Scenario {
            workload: &[ALL_TYPES_INSERT],
            ..Scenario::base(
                "all_types",
                "one row holding every parsed type (TimeZone Asia/Kolkata), one row of NULLs",
                ALL_TYPES_SETUP,
            )
        },
        Scenario {
            workload: &[
                "INSERT INTO evolving VALUES (1, 'x')",
                "ALTER TABLE evolving ADD COLUMN b int",
                "INSERT INTO evolving VALUES (2, 'y', 5)",
                "ALTER TABLE evolving DROP COLUMN a",
                "INSERT INTO evolving VALUES (3, 6)",
            ],
            ..Scenario::base(
                "alter_table",
                "ALTER TABLE between inserts: a new Relation message replaces the old one",
                "CREATE TABLE evolving (id int PRIMARY KEY, a text); CREATE PUBLICATION p FOR ALL TABLES;",
            )
        },
        Scenario {
            binary: true,
            workload: &["INSERT INTO bin VALUES (1, 'x', 1.5)"],
            ..Scenario::base(
                "binary",
                "binary = true: 'b' tuple columns",
                "CREATE TABLE bin (id int PRIMARY KEY, t text, n numeric); CREATE PUBLICATION p FOR ALL TABLES;",
            )
        },
    ]
}

pub async fn connect(cluster: &TempCluster, db: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(&cluster.conn_string(db), NoTls)
        .await
        .expect("connect");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    // The throwaway clusters run with synchronous_commit = off; logical decoding over
    // SQL only sees flushed WAL, so make our commits flush before we peek.
    client
        .batch_execute("SET synchronous_commit = on")
        .await
        .expect("synchronous_commit");
    client
}

/// Peek (without consuming) everything in `slot` with the given pgoutput options, in
/// the session settings pgforce expects (ISO dates, postgres intervals).
pub async fn peek(
    client: &Client,
    slot: &str,
    options: &[(&str, String)],
    upto_lsn: Option<&str>,
) -> Vec<(Lsn, Vec<u8>)> {
    client
        .batch_execute(
            "SET DateStyle = ISO; SET IntervalStyle = postgres; SET TimeZone = 'Asia/Kolkata'",
        )
        .await
        .expect("session settings");
    let mut sql = format!(
        "SELECT lsn::text, data FROM pg_logical_slot_peek_binary_changes('{slot}', {}, NULL",
        match upto_lsn {
            Some(l) => format!("'{l}'"),
            None => "NULL".into(),
        }
    );
    for (k, v) in options {
        sql.push_str(&format!(", '{k}', '{v}'"));
    }
    sql.push(')');
    let rows = client.query(&sql, &[]).await.expect("peek binary changes");
    rows.iter()
        .map(|r| {
            let lsn: String = r.get(0);
            (lsn.parse().expect("lsn"), r.get::<_, Vec<u8>>(1))
        })
        .collect()
}

/// Run `scenario` in a fresh database of `cluster` and return the captured messages.
pub async fn capture(cluster: &TempCluster, scenario: &Scenario) -> Vec<(Lsn, Vec<u8>)> {
    let major = cluster.major_version().expect("server version");
    let admin = connect(cluster, "postgres").await;
    let db = format!("s_{}", scenario.name);
    let slot = format!("slot_{}", scenario.name);
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .expect("create database");
    let c0 = connect(cluster, &db).await;
    let c1 = connect(cluster, &db).await;
    c0.batch_execute(scenario.setup).await.expect("setup");
    c0.query(
        "SELECT pg_create_logical_replication_slot($2, 'pgoutput', false, $1)",
        &[&scenario.two_phase, &slot],
    )
    .await
    .expect("create slot");
    for stmt in scenario.workload {
        match stmt.strip_prefix("@1 ") {
            Some(s) => c1.batch_execute(s).await,
            None => c0.batch_execute(stmt).await,
        }
        .unwrap_or_else(|e| panic!("{}: {stmt}: {e}", scenario.name));
    }
    peek(&c0, &slot, &scenario.options(major), None).await
}

/// `proto-fixtures/pg<major>/<scenario>.txt`
pub fn fixture_path(major: u32, scenario: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("proto-fixtures")
        .join(format!("pg{major}"))
        .join(format!("{scenario}.txt"))
}

/// The majors we keep fixtures for.
pub const FIXTURE_MAJORS: &[u32] = &[15, 17];

/// Load a stored capture.
pub fn load_fixture(major: u32, scenario: &str) -> Vec<(Lsn, Vec<u8>)> {
    let path = fixture_path(major, scenario);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (regenerate: see proto-fixtures/README.md)",
            path.display()
        )
    });
    pgforce::pgoutput::fixture::parse(&text).expect("fixture parses")
}
