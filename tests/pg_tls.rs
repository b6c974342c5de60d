//! Postgres over TLS against throwaway clusters that serve a certificate made at test time
//! (rcgen): the replication stream, ordinary clients, the state store and a whole pipeline
//! over verified TLS; SCRAM bound to the channel; and every refusal (host name mismatch,
//! untrusted CA, server refusing TLS, plaintext refused by a hostssl-only server) as a
//! clear error that names the server and never the password.

use std::path::PathBuf;
use std::time::Duration;

use pgforce::checkpoint::StateStore;
use pgforce::pgconn::{self, ConnectError};
use pgforce::replication::{
    connect_client, ensure_publication, ConnectOptions, PublicationPolicy, ReplicationConnection,
    ReplicationError, ReplicationMessage, SnapshotAction, StreamOptions, TableRef,
};
use pgforce::testing::pg::{ClusterOptions, ClusterTls, TempCluster, HBA_TLS_ONLY};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

const SECS_20: Duration = Duration::from_secs(20);
const PASSWORD: &str = "hunter2-not-in-errors";

/// A CA, a server certificate it signed for `localhost` only, and an unrelated CA.
struct Pki {
    dir: tempfile::TempDir,
    server: ClusterTls,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = make_ca("pgforce test CA");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        let other = make_ca("some other CA");
        std::fs::write(dir.path().join("other-ca.pem"), other.pem()).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let cert = params.signed_by(&key, &ca).unwrap();
        Pki {
            dir,
            server: ClusterTls {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            },
        }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn other_ca(&self) -> PathBuf {
        self.dir.path().join("other-ca.pem")
    }

    /// A cluster serving this PKI's certificate, with `hba` as pg_hba.conf.
    fn cluster(&self, hba: &str) -> TempCluster {
        TempCluster::start_with(ClusterOptions {
            tls: Some(self.server.clone()),
            hba: Some(hba.to_string()),
            ..Default::default()
        })
        .expect("start a TLS cluster")
    }
}

fn make_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A conninfo as the superuser to `host` (with a password nobody checks, to prove it never
/// shows in errors) plus `extra`.
fn conninfo(c: &TempCluster, host: &str, extra: &str) -> String {
    format!(
        "host={host} port={} user=postgres password={PASSWORD} dbname=postgres {extra}",
        c.port()
    )
}

fn verify_full(c: &TempCluster, pki: &Pki) -> String {
    conninfo(
        c,
        "localhost",
        &format!("sslmode=verify-full sslrootcert={}", pki.ca().display()),
    )
}

/// The ordinary client over the Unix socket (never TLS), for setup and checks.
async fn local_client(c: &TempCluster) -> tokio_postgres::Client {
    let sock = format!(
        "host={} port={} user=postgres dbname=postgres",
        c.socket_dir().display(),
        c.port()
    );
    connect_client(&ConnectOptions::parse(&sock).unwrap())
        .await
        .expect("socket client")
}

async fn backend_uses_ssl(local: &tokio_postgres::Client, pid: i32) -> bool {
    local
        .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = $1", &[&pid])
        .await
        .unwrap()
        .get(0)
}

/// Both connection kinds fail for `conninfo`; returns their messages.
async fn both_fail(conninfo: &str) -> (ReplicationError, ConnectError) {
    let repl = ReplicationConnection::connect(conninfo)
        .await
        .expect_err("the replication connection is refused");
    let Err(ordinary) = pgconn::connect(conninfo).await else {
        panic!("the ordinary connection is refused");
    };
    for msg in [repl.to_string(), ordinary.to_string()] {
        assert!(!msg.contains(PASSWORD), "the password leaked: {msg}");
    }
    (repl, ordinary)
}

fn pg(e: &ReplicationError) -> &ConnectError {
    match e {
        ReplicationError::Pg(inner) => inner,
        other => panic!("expected a connection error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replication_stream_runs_over_verified_tls() {
    let pki = Pki::new();
    let c = pki.cluster(HBA_TLS_ONLY);
    let url = verify_full(&c, &pki);
    let local = local_client(&c).await;
    local
        .batch_execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        .await
        .unwrap();
    ensure_publication(
        &local,
        "pub",
        &[TableRef::parse("items")],
        PublicationPolicy::default(),
    )
    .await
    .unwrap();

    let mut r = ReplicationConnection::connect(&url).await.unwrap();
    assert!(r.is_encrypted());
    assert!(backend_uses_ssl(&local, r.backend_pid()).await);
    let slot = r
        .create_logical_slot("s", SnapshotAction::NoExport)
        .await
        .unwrap();
    let mut stream = r
        .start_replication(StreamOptions {
            start_lsn: slot.consistent_point,
            ..StreamOptions::new("s", vec!["pub".into()])
        })
        .await
        .unwrap();
    local
        .batch_execute("INSERT INTO items VALUES (1, 'over tls')")
        .await
        .unwrap();
    let mut saw_insert = false;
    while let Some(msg) = tokio::time::timeout(SECS_20, stream.next_message())
        .await
        .expect("a change arrives")
    {
        if let ReplicationMessage::XLogData { data, .. } = msg.unwrap() {
            saw_insert |= data.first() == Some(&b'I');
            if data.first() == Some(&b'C') {
                break;
            }
        }
    }
    assert!(saw_insert, "the INSERT came through the TLS stream");
    stream.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_clients_and_the_state_store_run_over_verified_tls() {
    let pki = Pki::new();
    let c = pki.cluster(HBA_TLS_ONLY);
    let url = verify_full(&c, &pki);
    let (client, conn) = pgconn::connect(&url).await.unwrap();
    tokio::spawn(conn);
    let ssl: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl);

    let pooled = connect_client(&ConnectOptions::parse(&url).unwrap())
        .await
        .unwrap();
    assert_eq!(
        pooled
            .query_one("SELECT 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
    StateStore::connect(&url, "pgforce", "p")
        .await
        .expect("the state store connects over TLS");
    // trust authentication cannot satisfy channel_binding=require.
    let err = ReplicationConnection::connect(&format!("{url} channel_binding=require"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ReplicationError::Auth(m) if m.contains("channel_binding=require")),
        "{err:?}"
    );

    // URL form, CA only (any host name).
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/postgres?sslmode=verify-ca&sslrootcert={}",
        c.port(),
        pki.ca().display()
    );
    assert!(pgconn::connect(&url).await.is_ok());
    assert!(ReplicationConnection::connect(&url)
        .await
        .unwrap()
        .is_encrypted());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_is_bound_to_the_tls_channel() {
    let pki = Pki::new();
    let hba = "local all all trust\nlocal replication all trust\n\
               hostssl all all 127.0.0.1/32 scram-sha-256\n\
               hostssl replication all 127.0.0.1/32 scram-sha-256\n";
    let c = pki.cluster(hba);
    local_client(&c)
        .await
        .batch_execute(&format!(
            "SET password_encryption = 'scram-sha-256';
             CREATE ROLE alice LOGIN REPLICATION PASSWORD '{PASSWORD}'"
        ))
        .await
        .unwrap();
    let url = format!(
        "host=localhost port={} user=alice password={PASSWORD} dbname=postgres \
         sslmode=verify-full sslrootcert={} channel_binding=require",
        c.port(),
        pki.ca().display()
    );
    // channel_binding=require fails unless SCRAM-SHA-256-PLUS was used and the server
    // accepted the binding.
    let mut r = ReplicationConnection::connect(&url).await.unwrap();
    assert!(r.identify_system().await.is_ok());
    let (client, conn) = pgconn::connect(&url).await.unwrap();
    tokio::spawn(conn);
    assert!(client.query_one("SELECT 1", &[]).await.is_ok());

    // A wrong password is still an authentication error, without the password.
    let wrong = url.replace(PASSWORD, "wrong-password");
    let err = ReplicationConnection::connect(&wrong).await.unwrap_err();
    assert!(matches!(err, ReplicationError::Auth(_)), "{err:?}");
    assert!(!err.to_string().contains("wrong-password"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_refuses_a_certificate_for_another_host_name() {
    let pki = Pki::new();
    let c = pki.cluster(HBA_TLS_ONLY);
    // The certificate names `localhost`, not 127.0.0.1.
    let url = conninfo(
        &c,
        "127.0.0.1",
        &format!("sslmode=verify-full sslrootcert={}", pki.ca().display()),
    );
    let (repl, ordinary) = both_fail(&url).await;
    for e in [pg(&repl), &ordinary] {
        assert!(matches!(e, ConnectError::HostnameMismatch { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains(&format!("127.0.0.1:{}", c.port())), "{msg}");
        assert!(
            msg.contains("subjectAltName") && msg.contains("verify-ca"),
            "{msg}"
        );
    }
    assert!(!repl.is_transient());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_ca_refuses_a_certificate_from_an_untrusted_ca() {
    let pki = Pki::new();
    let c = pki.cluster(HBA_TLS_ONLY);
    let other = pki.other_ca().display().to_string();
    let url = conninfo(
        &c,
        "localhost",
        &format!("sslmode=verify-ca sslrootcert={other}"),
    );
    let (repl, ordinary) = both_fail(&url).await;
    for e in [pg(&repl), &ordinary] {
        assert!(matches!(e, ConnectError::Untrusted { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("not trusted") && msg.contains(&other), "{msg}");
        assert!(msg.contains(&format!("localhost:{}", c.port())), "{msg}");
    }
    // The system trust store does not hold the test CA either.
    let url = conninfo(&c, "localhost", "sslmode=verify-full sslrootcert=system");
    let (repl, _) = both_fail(&url).await;
    assert!(
        matches!(
            pg(&repl),
            ConnectError::Untrusted { .. } | ConnectError::RootCert { .. }
        ),
        "{repl:?}"
    );
    // Plain `require` with the same CA file checks the chain too (as libpq does).
    let url = conninfo(
        &c,
        "localhost",
        &format!("sslmode=require sslrootcert={other}"),
    );
    let (repl, _) = both_fail(&url).await;
    assert!(
        matches!(pg(&repl), ConnectError::Untrusted { .. }),
        "{repl:?}"
    );
    // Without a CA file, `require` encrypts and accepts any certificate.
    let url = conninfo(&c, "localhost", "sslmode=require");
    assert!(ReplicationConnection::connect(&url)
        .await
        .unwrap()
        .is_encrypted());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_disable_against_a_tls_only_server_says_tls_is_required() {
    let pki = Pki::new();
    let c = pki.cluster(HBA_TLS_ONLY);
    let url = conninfo(&c, "127.0.0.1", "sslmode=disable");
    let (repl, ordinary) = both_fail(&url).await;
    for e in [pg(&repl), &ordinary] {
        assert!(
            matches!(e, ConnectError::TlsRequiredByServer { .. }),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains("only TLS") && msg.contains("sslmode=verify-full"),
            "{msg}"
        );
    }
    let Err(err) = StateStore::connect(&url, "pgforce", "p").await else {
        panic!("the state store is refused");
    };
    assert!(err.to_string().contains("only TLS"), "{err}");
    // Loopback without sslmode negotiates TLS on its own.
    let url = conninfo(&c, "127.0.0.1", "");
    assert!(ReplicationConnection::connect(&url)
        .await
        .unwrap()
        .is_encrypted());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_tls_is_refused_when_tls_is_required() {
    let c = TempCluster::start().expect("start a plaintext cluster");
    let url = conninfo(&c, "127.0.0.1", "sslmode=require");
    let (repl, ordinary) = both_fail(&url).await;
    for e in [pg(&repl), &ordinary] {
        assert!(matches!(e, ConnectError::TlsRefused { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("does not accept TLS") && msg.contains("sslmode=require"),
            "{msg}"
        );
        assert!(msg.contains(&format!("127.0.0.1:{}", c.port())), "{msg}");
    }
    // On loopback, no sslmode (prefer) falls back to plaintext.
    let url = conninfo(&c, "127.0.0.1", "");
    assert!(!ReplicationConnection::connect(&url)
        .await
        .unwrap()
        .is_encrypted());
    assert!(pgconn::connect(&url).await.is_ok());
}

/// `pgforce run` (the binary) on a TLS-only server: the database URL is written inline
/// (no password) with `sslmode=verify-full`, and a row reaches Salesforce.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgforce_run_syncs_over_verified_tls() {
    use crate::support::pipeline::*;
    init_tracing();
    let pki = Pki::new();
    let cluster = {
        let tls = pki.server.clone();
        tokio::task::spawn_blocking(move || {
            TempCluster::start_with(ClusterOptions {
                tls: Some(tls),
                hba: Some(HBA_TLS_ONLY.to_string()),
                ..Default::default()
            })
        })
        .await
        .unwrap()
        .expect("start a TLS cluster")
    };
    let db_url = format!(
        "postgres://postgres@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
        cluster.port(),
        pki.ca().display()
    );
    let (pg, conn) = pgconn::connect(&db_url).await.unwrap();
    tokio::spawn(conn);
    pg.batch_execute(SCHEMA).await.unwrap();
    let emulator = pgforce_emulator::Emulator::start(
        pgforce_emulator::EmulatorConfig::default(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let base = emulator.base_url();
    let config = pki.dir.path().join("pgforce.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[pipelines]]
name = "tls"
publication = "pgforce_tls"
slot = "pgforce_tls"
source = {{ database_url = "{db_url}" }}

[pipelines.salesforce]
login_url = "{base}"
instance_url = "{base}"
api_version = "62.0"
auth = {{ type = "client_credentials", client_id = "{client}", client_secret = "env:PGFORCE_TLS_SF_SECRET" }}
{mappings}
"#,
            client = pgforce_emulator::config::DEMO_CLIENT_ID,
            mappings = mappings(),
        ),
    )
    .unwrap();
    let log = pki.dir.path().join("run.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pgforce"))
        .args(["run", "--config"])
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"])
        .env(
            "PGFORCE_TLS_SF_SECRET",
            pgforce_emulator::config::DEMO_CLIENT_SECRET,
        )
        .env_remove("PGFORCE_OPS_LISTEN")
        .stdin(std::process::Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .expect("spawn pgforce run");
    let h = Harness {
        emulator,
        pg,
        db_url,
        cluster,
    };
    h.sql("INSERT INTO accounts (id, name) VALUES (1, 'Acme over TLS')")
        .await;
    let synced = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let name = h
                .record("Account", "1")
                .and_then(|r| r.get("Name").and_then(|v| v.as_str().map(str::to_string)));
            if name.as_deref() == Some("Acme over TLS") {
                return;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "pgforce run exited with {status}:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let local = local_client(&h.cluster).await;
    let plaintext: i64 = local
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.client_addr IS NOT NULL AND NOT s.ssl",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        synced.is_ok(),
        "the row did not reach Salesforce:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(plaintext, 0, "every TCP connection uses TLS");
}

/// A one-pipeline config with `database_url` as written.
fn config_with_url(database_url: &str) -> String {
    format!(
        r#"
[[pipelines]]
name = "p"
publication = "p"
slot = "p"
source = {{ database_url = "{database_url}" }}

[pipelines.salesforce]
login_url = "https://login.salesforce.com"
instance_url = "https://acme.my.salesforce.com"
auth = {{ type = "client_credentials", client_id = "abc", client_secret = "env:PGFORCE_TLS_TEST_SECRET" }}

[[pipelines.mappings]]
name = "accounts"
table = "public.accounts"
object = "Account"
external_id = {{ column = "id", field = "External_Id__c" }}
fields = {{ name = "Name" }}
"#
    )
}

#[test]
fn a_database_url_without_a_password_may_be_written_inline() {
    use secrecy::ExposeSecret;
    let url =
        "postgres://sync@db.example.com/app?sslmode=verify-full&sslrootcert=/etc/pgforce/ca.pem";
    let c = pgforce::config::Config::parse_unresolved(&config_with_url(url)).unwrap();
    let db = &c.pipelines[0].source.database_url;
    assert_eq!(db.value().unwrap().expose_secret(), url);
    assert!(!format!("{c:?}").contains("db.example.com"));
    let conninfo = "host=db.example.com user=sync sslmode=require";
    assert!(pgforce::config::Config::parse_unresolved(&config_with_url(conninfo)).is_ok());
}

#[test]
fn an_inline_database_url_with_a_password_is_an_error_naming_the_key() {
    for url in [
        "postgres://sync:s3cret-pw@db.example.com/app",
        "host=db.example.com user=sync password=s3cret-pw",
    ] {
        let err = pgforce::config::Config::parse_unresolved(&config_with_url(url)).unwrap_err();
        let e = &err.errors()[0];
        assert_eq!(e.key, "pipelines[0].source.database_url");
        assert!(e.message.contains("env:DATABASE_URL"), "{}", e.message);
        assert!(e.location.is_some());
        assert!(!err.to_string().contains("s3cret-pw"), "{err}");
    }
    // A malformed inline URL names the key and the reason, not the text.
    let err = pgforce::config::Config::parse_unresolved(&config_with_url(
        "host=db.example.com sslmode=sometimes",
    ))
    .unwrap_err();
    let e = &err.errors()[0];
    assert_eq!(e.key, "pipelines[0].source.database_url");
    assert!(
        e.message.contains("sslmode must be one of"),
        "{}",
        e.message
    );
}

#[test]
fn unusable_tls_settings_are_config_errors_naming_the_key() {
    let cases = [
        (
            "host=db.example.com user=u sslmode=verify-full",
            "needs sslrootcert",
        ),
        (
            "host=db.example.com user=u sslmode=verify-ca sslrootcert=/nonexistent/ca.pem",
            "/nonexistent/ca.pem",
        ),
        (
            "host=/var/run/postgresql user=u sslmode=require",
            "Unix socket",
        ),
    ];
    for (url, expected) in cases {
        let err = pgforce::config::Config::from_toml(&config_with_url(url))
            .expect_err("the TLS settings cannot work");
        let e = err
            .errors()
            .iter()
            .find(|e| e.key == "pipelines[0].source.database_url")
            .unwrap_or_else(|| panic!("no database_url error in {err}"));
        assert!(e.message.contains(expected), "{}", e.message);
    }
}

/// A fake server that answers the SSLRequest with `answer` and then closes.
async fn fake_server(answer: &'static [u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 8];
            if socket.read_exact(&mut request).await.is_ok() {
                let _ = socket.write_all(answer).await;
            }
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbled_answer_to_the_tls_request_is_an_error_not_a_panic() {
    let port = fake_server(b"X").await;
    let url = format!("host=127.0.0.1 port={port} user=u password={PASSWORD} sslmode=require");
    let err = ReplicationConnection::connect(&url).await.unwrap_err();
    assert!(matches!(pg(&err), ConnectError::Protocol { .. }), "{err:?}");
    assert!(err.to_string().contains("unexpected answer"), "{err}");

    // 'S', then garbage instead of a TLS ServerHello.
    let port = fake_server(b"S\x00\x01\x02garbage").await;
    let url = format!("host=127.0.0.1 port={port} user=u password={PASSWORD} sslmode=require");
    let (repl, ordinary) = both_fail(&url).await;
    for e in [pg(&repl), &ordinary] {
        assert!(matches!(e, ConnectError::Handshake { .. }), "{e:?}");
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    }
}
