//! The replication connection: startup with `replication=database`, authentication,
//! simple replication commands and their result rows.
//!
//! tokio-postgres has no CopyBoth mode, so this speaks the protocol itself on top of
//! `postgres_protocol`'s codec. Connection settings come from a libpq-style conninfo or a
//! `postgres://` URL, parsed by [`crate::pgconn::PgTarget`]. TLS follows the same
//! `sslmode`/`sslrootcert` policy as every other connection (SSLRequest, rustls handshake,
//! then the normal startup). Supported authentication: trust, cleartext password, md5 and
//! SCRAM-SHA-256, bound to the TLS channel (SCRAM-SHA-256-PLUS, `tls-server-end-point`)
//! when TLS is up and the server offers it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::backend::{DataRowBody, Message, RowDescriptionBody};
use postgres_protocol::message::frontend;
use tokio::net::{TcpStream, UnixStream};
use tokio_postgres::config::{ChannelBinding, Host};
use tokio_postgres::fallible_iterator::FallibleIterator;
use tracing::{debug, instrument};

use super::error::{classify_server_error, ReplicationError, Result, ServerError};
use super::wire::{server_error, Backend, Transport, Wire};
use crate::lsn::Lsn;
use crate::pgconn::policy::Negotiation;
use crate::pgconn::tls::{negotiate, Negotiated};
use crate::pgconn::{Attempt, ConnectError, PgTarget};

/// Default `application_name` reported to the server.
pub const DEFAULT_APPLICATION_NAME: &str = "pgforce";

/// Where and as whom to connect; built from a conninfo string or URL.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    target: PgTarget,
    /// Reported as `application_name` (visible in pg_stat_replication).
    pub application_name: String,
}

impl ConnectOptions {
    /// Parse a libpq conninfo (`host=... user=...`) or a `postgres://` URL.
    pub fn parse(conninfo: &str) -> Result<ConnectOptions> {
        let target = PgTarget::parse(conninfo).map_err(|e| match e {
            ConnectError::Config(reason) => ReplicationError::Config(reason),
            other => ReplicationError::Pg(other),
        })?;
        Ok(ConnectOptions::from_target(target))
    }

    /// Use a parsed target (TLS keys included).
    pub fn from_target(target: PgTarget) -> ConnectOptions {
        let application_name = target
            .config()
            .get_application_name()
            .unwrap_or(DEFAULT_APPLICATION_NAME)
            .to_string();
        ConnectOptions {
            target,
            application_name,
        }
    }

    /// Use an already-built tokio-postgres config (TLS as without `sslmode`).
    pub fn from_config(config: tokio_postgres::Config) -> ConnectOptions {
        ConnectOptions::from_target(PgTarget::from_config(config))
    }

    /// The parsed configuration (its `ssl_mode` is not used: open ordinary clients with
    /// [`connect_client`], which applies pgforce's TLS settings).
    pub fn config(&self) -> &tokio_postgres::Config {
        self.target.config()
    }

    /// The target with its TLS settings.
    pub fn target(&self) -> &PgTarget {
        &self.target
    }

    /// The role name to log in as.
    pub fn user(&self) -> Result<&str> {
        self.config().get_user().ok_or_else(|| {
            ReplicationError::Config(
                "no user given: add `user=...` or `postgres://user@host/db`".into(),
            )
        })
    }

    /// The database (defaults to the user name, like libpq).
    pub fn dbname(&self) -> Result<&str> {
        match self.config().get_dbname() {
            Some(db) => Ok(db),
            None => self.user(),
        }
    }

    /// Where to connect: the first host, with its port (default 5432).
    fn endpoint(&self) -> Result<Endpoint> {
        let port = self.config().get_ports().first().copied().unwrap_or(5432);
        match self.config().get_hosts().first() {
            Some(Host::Tcp(host)) => Ok(Endpoint::Tcp(host.clone(), port)),
            Some(Host::Unix(dir)) => Ok(Endpoint::Unix(dir.join(format!(".s.PGSQL.{port}")))),
            None => Err(ReplicationError::Config(
                "no host given: add `host=...` or `postgres://user@host/db`".into(),
            )),
        }
    }
}

/// A resolved server address.
#[derive(Debug, Clone)]
enum Endpoint {
    Tcp(String, u16),
    Unix(PathBuf),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp(h, p) => write!(f, "{h}:{p}"),
            Endpoint::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

/// What IDENTIFY_SYSTEM reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemIdentity {
    /// Unique cluster identifier (as text: it does not fit in i64 on every cluster).
    pub systemid: String,
    pub timeline: u32,
    /// Current WAL flush position.
    pub xlogpos: Lsn,
    /// Database this connection is bound to.
    pub dbname: Option<String>,
}

/// One row of a simple-query result, values in text form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimpleRow {
    columns: Arc<Vec<String>>,
    values: Vec<Option<String>>,
}

impl SimpleRow {
    /// The value of column `name` (`None` when NULL or absent).
    pub fn get(&self, name: &str) -> Option<&str> {
        let idx = self.columns.iter().position(|c| c == name)?;
        self.values.get(idx)?.as_deref()
    }

    /// The value at position `idx`.
    pub fn get_idx(&self, idx: usize) -> Option<&str> {
        self.values.get(idx)?.as_deref()
    }

    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Column `name`, or a protocol error naming the command that should have sent it.
    pub(crate) fn require(&self, name: &str, command: &str) -> Result<&str> {
        self.get(name).ok_or_else(|| {
            ReplicationError::Protocol(format!("{command} returned no {name:?} column"))
        })
    }
}

/// A connection in replication mode (`replication=database`), idle and ready for commands.
pub struct ReplicationConnection {
    pub(crate) wire: Wire,
    params: HashMap<String, String>,
    backend_pid: i32,
    user: String,
    /// How TLS went: for error messages and SCRAM channel binding.
    session: Session,
}

/// What the transport negotiated.
#[derive(Debug, Clone)]
struct Session {
    attempt: Attempt,
    /// Whether the connection is encrypted.
    encrypted: bool,
    /// `tls-server-end-point` data, when TLS is up and the certificate allows it.
    channel_binding: Option<Vec<u8>>,
    /// The connection string's `channel_binding` setting.
    binding_policy: ChannelBinding,
    /// Whether SCRAM-SHA-256-PLUS was used.
    bound: bool,
}

impl std::fmt::Debug for ReplicationConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationConnection")
            .field("backend_pid", &self.backend_pid)
            .field("user", &self.user)
            .field("encrypted", &self.session.encrypted)
            .field("server_version", &self.params.get("server_version"))
            .finish()
    }
}

impl ReplicationConnection {
    /// Connect from a conninfo string or URL.
    pub async fn connect(conninfo: &str) -> Result<ReplicationConnection> {
        Self::connect_with(&ConnectOptions::parse(conninfo)?).await
    }

    /// Connect with parsed options.
    #[instrument(skip_all, fields(user = opts.config().get_user(), db = opts.config().get_dbname()))]
    pub async fn connect_with(opts: &ConnectOptions) -> Result<ReplicationConnection> {
        let user = opts.user()?.to_string();
        let (io, session) = open_transport(opts).await?;
        let mut conn = ReplicationConnection {
            wire: Wire::new(io),
            params: HashMap::new(),
            backend_pid: 0,
            user,
            session,
        };
        conn.startup(opts).await?;
        debug!(
            pid = conn.backend_pid,
            encrypted = conn.session.encrypted,
            "replication connection ready"
        );
        Ok(conn)
    }

    /// Whether the connection runs over TLS.
    pub fn is_encrypted(&self) -> bool {
        self.session.encrypted
    }

    /// Server parameter reported at startup (e.g. `server_version`, `integer_datetimes`).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// `server_version_num`, e.g. 150004: from the `server_version_num` ParameterStatus
    /// when the server reports it, else parsed from the `server_version` it always reports.
    pub fn server_version_num(&self) -> Option<u32> {
        if let Some(n) = self
            .parameter("server_version_num")
            .and_then(|v| v.parse().ok())
        {
            return Some(n);
        }
        parse_server_version(self.parameter("server_version")?)
    }

    /// Major version, e.g. 15.
    pub fn server_major(&self) -> Option<u32> {
        self.server_version_num().map(|n| n / 10_000)
    }

    /// The backend process id serving this connection (the walsender's PID).
    pub fn backend_pid(&self) -> i32 {
        self.backend_pid
    }

    /// The role we are logged in as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Run IDENTIFY_SYSTEM.
    pub async fn identify_system(&mut self) -> Result<SystemIdentity> {
        let rows = self.simple_query("IDENTIFY_SYSTEM").await?;
        let row = rows
            .first()
            .ok_or_else(|| ReplicationError::Protocol("IDENTIFY_SYSTEM returned no row".into()))?;
        let cmd = "IDENTIFY_SYSTEM";
        Ok(SystemIdentity {
            systemid: row.require("systemid", cmd)?.to_string(),
            timeline: parse_field(row.require("timeline", cmd)?, "timeline")?,
            xlogpos: parse_field(row.require("xlogpos", cmd)?, "xlogpos")?,
            dbname: row.get("dbname").map(str::to_string),
        })
    }

    /// Run one simple-protocol command (replication commands, or SQL on a
    /// `replication=database` connection) and return its rows as text.
    #[instrument(skip(self), level = "debug")]
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<SimpleRow>> {
        frontend::query(sql, self.wire.wbuf())
            .map_err(|e| ReplicationError::Protocol(format!("cannot encode query: {e}")))?;
        self.wire.flush().await?;
        self.read_query_result(None).await
    }

    /// Read a simple-query response up to ReadyForQuery; the first error wins.
    pub(crate) async fn read_query_result(&mut self, slot: Option<&str>) -> Result<Vec<SimpleRow>> {
        let mut columns = Arc::new(Vec::new());
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            match self.wire.read("reading a command result").await? {
                Backend::Message(Message::RowDescription(body)) => {
                    columns = Arc::new(column_names(&body)?)
                }
                Backend::Message(Message::DataRow(body)) => rows.push(SimpleRow {
                    columns: columns.clone(),
                    values: data_row_values(&body)?,
                }),
                Backend::Message(Message::ErrorResponse(body)) => {
                    error.get_or_insert(server_error(body.fields()));
                }
                Backend::Message(Message::ReadyForQuery(_)) => break,
                other => self.handle_async(other)?,
            }
        }
        match error {
            Some(e) => Err(classify_server_error(e, slot, &self.user)),
            None => Ok(rows),
        }
    }

    /// Handle messages that may arrive at any time; anything else is a protocol error.
    pub(crate) fn handle_async(&mut self, msg: Backend) -> Result<()> {
        match msg {
            Backend::Message(Message::ParameterStatus(body)) => {
                let name = body.name().unwrap_or_default().to_string();
                let value = body.value().unwrap_or_default().to_string();
                self.params.insert(name, value);
            }
            Backend::Message(Message::NoticeResponse(body)) => {
                let n = server_error(body.fields());
                debug!(code = %n.code, message = %n.message, "server notice");
            }
            Backend::Message(
                Message::CommandComplete(_) | Message::EmptyQueryResponse | Message::NoData,
            ) => {}
            Backend::Message(Message::NotificationResponse(_)) => {}
            Backend::Message(_) => {
                return Err(ReplicationError::Protocol(
                    "unexpected backend message".into(),
                ))
            }
            Backend::CopyBothResponse => {
                return Err(ReplicationError::Protocol(
                    "unexpected CopyBothResponse outside START_REPLICATION".into(),
                ))
            }
        }
        Ok(())
    }

    /// Send Terminate and close the socket.
    pub async fn close(mut self) -> Result<()> {
        frontend::terminate(self.wire.wbuf());
        let res = self.wire.flush().await;
        self.wire.shutdown().await;
        res
    }

    /// Startup message, authentication, then parameters until ReadyForQuery.
    async fn startup(&mut self, opts: &ConnectOptions) -> Result<()> {
        let dbname = opts.dbname()?.to_string();
        let params = [
            ("user", self.user.as_str()),
            ("database", dbname.as_str()),
            ("replication", "database"),
            ("application_name", opts.application_name.as_str()),
            ("client_encoding", "UTF8"),
            // The decoder parses the walsender's text output in these formats.
            ("DateStyle", "ISO, MDY"),
            ("IntervalStyle", "postgres"),
            ("extra_float_digits", "3"),
        ];
        frontend::startup_message(params.iter().copied(), self.wire.wbuf())
            .map_err(|e| ReplicationError::Protocol(format!("cannot encode startup: {e}")))?;
        self.wire.flush().await?;
        self.authenticate(opts.config().get_password()).await?;
        loop {
            match self.wire.read("starting up").await? {
                Backend::Message(Message::BackendKeyData(body)) => {
                    self.backend_pid = body.process_id()
                }
                Backend::Message(Message::ReadyForQuery(_)) => return Ok(()),
                Backend::Message(Message::ErrorResponse(body)) => {
                    return Err(classify_server_error(
                        server_error(body.fields()),
                        None,
                        &self.user,
                    ))
                }
                other => self.handle_async(other)?,
            }
        }
    }

    /// Answer the server's authentication requests until AuthenticationOk.
    async fn authenticate(&mut self, password: Option<&[u8]>) -> Result<()> {
        let need_password = || {
            ReplicationError::Auth(
                "the server asks for a password but none was given: add `password=...` to the connection string".into(),
            )
        };
        loop {
            match self.wire.read("authenticating").await? {
                Backend::Message(Message::AuthenticationOk) => return self.check_bound(),
                Backend::Message(Message::AuthenticationCleartextPassword) => {
                    self.check_bound()?;
                    let pw = password.ok_or_else(need_password)?;
                    self.send_password(pw).await?;
                }
                Backend::Message(Message::AuthenticationMd5Password(body)) => {
                    self.check_bound()?;
                    let pw = password.ok_or_else(need_password)?;
                    let hash = md5_hash(self.user.as_bytes(), pw, body.salt());
                    self.send_password(hash.as_bytes()).await?;
                }
                Backend::Message(Message::AuthenticationSasl(body)) => {
                    let pw = password.ok_or_else(need_password)?;
                    let mechanisms: Vec<String> = body
                        .mechanisms()
                        .map(|m| Ok(m.to_string()))
                        .collect()
                        .map_err(|e| ReplicationError::Protocol(format!("bad SASL mechanisms: {e}")))?;
                    self.authenticate_scram(pw, &mechanisms).await?;
                }
                Backend::Message(Message::ErrorResponse(body)) => {
                    let err = server_error(body.fields());
                    if self.session.attempt.needs_tls(&err.code, &err.message) {
                        return Err(ConnectError::TlsRequiredByServer {
                            addr: self.session.attempt.addr.clone(),
                        }
                        .into());
                    }
                    return Err(match err.code.as_str() {
                        "28P01" | "28000" => ReplicationError::Auth(err.to_string()),
                        _ => classify_server_error(err, None, &self.user),
                    });
                }
                Backend::Message(
                    Message::AuthenticationGss
                    | Message::AuthenticationSspi
                    | Message::AuthenticationKerberosV5
                    | Message::AuthenticationScmCredential,
                ) => {
                    return Err(ReplicationError::Auth(
                        "the server requires GSSAPI/SSPI/Kerberos authentication, which pgforce does not support: use scram-sha-256 or md5 in pg_hba.conf".into(),
                    ))
                }
                _ => return Err(ReplicationError::Protocol("unexpected message during authentication".into())),
            }
        }
    }

    /// With `channel_binding=require`, authentication must have been SCRAM-SHA-256-PLUS
    /// (checked before a password is sent and when the server says OK).
    fn check_bound(&self) -> Result<()> {
        if self.session.binding_policy == ChannelBinding::Require && !self.session.bound {
            return Err(ReplicationError::Auth(
                "channel_binding=require, but the server authenticates without SCRAM channel binding: use scram-sha-256 in pg_hba.conf and TLS, or drop channel_binding=require".into(),
            ));
        }
        Ok(())
    }

    async fn send_password(&mut self, password: &[u8]) -> Result<()> {
        frontend::password_message(password, self.wire.wbuf())
            .map_err(|e| ReplicationError::Protocol(format!("cannot encode password: {e}")))?;
        self.wire.flush().await
    }

    /// SCRAM-SHA-256, as SCRAM-SHA-256-PLUS (bound to the TLS channel) when TLS is up, the
    /// certificate allows binding and the server offers it.
    async fn authenticate_scram(&mut self, password: &[u8], mechanisms: &[String]) -> Result<()> {
        let (mechanism, binding) = choose_scram(
            mechanisms,
            self.session.channel_binding.as_deref(),
            self.session.binding_policy,
        )
        .map_err(ReplicationError::Auth)?;
        self.session.bound = mechanism == sasl::SCRAM_SHA_256_PLUS;
        let mut scram = sasl::ScramSha256::new(password, binding);
        frontend::sasl_initial_response(mechanism, scram.message(), self.wire.wbuf())
            .map_err(|e| ReplicationError::Protocol(e.to_string()))?;
        self.wire.flush().await?;
        let scram_err =
            |e: std::io::Error| ReplicationError::Auth(format!("SCRAM exchange failed: {e}"));
        match self.wire.read("authenticating").await? {
            Backend::Message(Message::AuthenticationSaslContinue(body)) => {
                scram.update(body.data()).map_err(scram_err)?;
            }
            Backend::Message(Message::ErrorResponse(body)) => {
                return Err(ReplicationError::Auth(
                    server_error(body.fields()).to_string(),
                ))
            }
            _ => return Err(ReplicationError::Protocol("expected SASL continue".into())),
        }
        frontend::sasl_response(scram.message(), self.wire.wbuf())
            .map_err(|e| ReplicationError::Protocol(e.to_string()))?;
        self.wire.flush().await?;
        match self.wire.read("authenticating").await? {
            Backend::Message(Message::AuthenticationSaslFinal(body)) => {
                scram.finish(body.data()).map_err(scram_err)
            }
            Backend::Message(Message::ErrorResponse(body)) => Err(ReplicationError::Auth(
                server_error(body.fields()).to_string(),
            )),
            _ => Err(ReplicationError::Protocol("expected SASL final".into())),
        }
    }
}

/// Open the socket and negotiate TLS as the target's plan says.
async fn open_transport(opts: &ConnectOptions) -> Result<(Box<dyn Transport>, Session)> {
    let plan = opts.target.plan()?;
    let endpoint = opts.endpoint()?;
    let timeout = opts
        .config()
        .get_connect_timeout()
        .copied()
        .unwrap_or(Duration::from_secs(30));
    let connect_err = |source| ReplicationError::Connect {
        addr: endpoint.to_string(),
        source,
    };
    let timed_out = || std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
    let mut session = Session {
        attempt: plan.attempt.clone(),
        encrypted: false,
        channel_binding: None,
        binding_policy: opts.config().get_channel_binding(),
        bound: false,
    };
    match &endpoint {
        Endpoint::Tcp(host, port) => {
            let stream = tokio::time::timeout(timeout, TcpStream::connect((host.as_str(), *port)))
                .await
                .map_err(|_| connect_err(timed_out()))?
                .map_err(connect_err)?;
            let _ = stream.set_nodelay(true);
            let required = match plan.negotiation {
                Negotiation::Plain => return Ok((Box::new(stream), session)),
                Negotiation::Optional => false,
                Negotiation::Required => true,
            };
            let negotiated = tokio::time::timeout(
                timeout,
                negotiate(stream, plan.tls, required, &plan.attempt),
            )
            .await
            .map_err(|_| connect_err(timed_out()))??;
            match negotiated {
                Negotiated::Plain(stream) => {
                    session.attempt.plaintext = true;
                    Ok((Box::new(stream), session))
                }
                Negotiated::Tls {
                    stream,
                    channel_binding,
                } => {
                    session.encrypted = true;
                    session.channel_binding = channel_binding;
                    Ok((stream, session))
                }
            }
        }
        Endpoint::Unix(path) => {
            let stream = tokio::time::timeout(timeout, UnixStream::connect(path))
                .await
                .map_err(|_| connect_err(timed_out()))?
                .map_err(connect_err)?;
            Ok((Box::new(stream), session))
        }
    }
}

/// Pick the SASL mechanism and channel binding (RFC 5802 flags: `p` bound, `y` could bind
/// but the server offered no PLUS, `n` cannot bind).
fn choose_scram(
    offered: &[String],
    channel_binding: Option<&[u8]>,
    policy: ChannelBinding,
) -> std::result::Result<(&'static str, sasl::ChannelBinding), String> {
    let plus = offered.iter().any(|m| m == sasl::SCRAM_SHA_256_PLUS);
    let plain = offered.iter().any(|m| m == sasl::SCRAM_SHA_256);
    match channel_binding {
        Some(data) if plus && policy != ChannelBinding::Disable => Ok((
            sasl::SCRAM_SHA_256_PLUS,
            sasl::ChannelBinding::tls_server_end_point(data.to_vec()),
        )),
        _ if policy == ChannelBinding::Require => Err(format!(
            "channel_binding=require, but {}: use TLS (sslmode=verify-full) against a server that offers SCRAM-SHA-256-PLUS, or drop channel_binding=require",
            if channel_binding.is_none() {
                "this connection has no TLS channel to bind to"
            } else {
                "the server does not offer SCRAM-SHA-256-PLUS"
            }
        )),
        Some(_) if plain && policy != ChannelBinding::Disable => {
            Ok((sasl::SCRAM_SHA_256, sasl::ChannelBinding::unrequested()))
        }
        _ if plain => Ok((sasl::SCRAM_SHA_256, sasl::ChannelBinding::unsupported())),
        _ => Err(format!(
            "the server offers SASL mechanisms {offered:?}, none of which pgforce can use here (SCRAM-SHA-256, or SCRAM-SHA-256-PLUS over TLS)"
        )),
    }
}

fn column_names(body: &RowDescriptionBody) -> Result<Vec<String>> {
    body.fields()
        .map(|f| Ok(f.name().to_string()))
        .collect()
        .map_err(|e| ReplicationError::Protocol(format!("malformed RowDescription: {e}")))
}

fn data_row_values(body: &DataRowBody) -> Result<Vec<Option<String>>> {
    let buf = body.buffer();
    body.ranges()
        .map(|r| {
            Ok(r.and_then(|r| buf.get(r))
                .map(|b| String::from_utf8_lossy(b).into_owned()))
        })
        .collect()
        .map_err(|e| ReplicationError::Protocol(format!("malformed DataRow: {e}")))
}

fn parse_field<T: FromStr>(text: &str, what: &str) -> Result<T> {
    text.parse()
        .map_err(|_| ReplicationError::Protocol(format!("cannot parse {what} from {text:?}")))
}

/// `15.4 (Debian 15.4-1)` → 150004; `17devel` → 170000; `9.6.3` → 90603.
pub(crate) fn parse_server_version(v: &str) -> Option<u32> {
    let head: String = v
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = head
        .split('.')
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u32>().ok());
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    if major >= 10 {
        Some(major * 10_000 + minor)
    } else {
        let patch = parts.next().flatten().unwrap_or(0);
        Some(major * 10_000 + minor * 100 + patch)
    }
}

/// Open an ordinary (non-replication) tokio-postgres client with the same settings;
/// its connection task is spawned on the current runtime.
pub async fn connect_client(opts: &ConnectOptions) -> Result<tokio_postgres::Client> {
    let mut target = opts.target.clone();
    target.config_mut().application_name(&opts.application_name);
    let (client, connection) = target.connect().await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            debug!(%error, "ordinary connection ended");
        }
    });
    Ok(client)
}

/// Convert a `ServerError` from a tokio-postgres error, when it carries one.
pub(crate) fn server_error_of(err: &tokio_postgres::Error) -> Option<ServerError> {
    let db = err.as_db_error()?;
    Some(ServerError {
        severity: db.severity().to_string(),
        code: db.code().code().to_string(),
        message: db.message().to_string(),
        detail: db.detail().map(str::to_string),
        hint: db.hint().map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_versions() {
        assert_eq!(
            parse_server_version("15.4 (Debian 15.4-1.pgdg120+1)"),
            Some(150004)
        );
        assert_eq!(parse_server_version("17.2"), Some(170002));
        assert_eq!(parse_server_version("17devel"), Some(170000));
        assert_eq!(parse_server_version("9.6.3"), Some(90603));
        assert_eq!(parse_server_version("garbage"), None);
    }

    #[test]
    fn binds_scram_to_tls_when_it_can() {
        let both = [
            sasl::SCRAM_SHA_256_PLUS.to_string(),
            sasl::SCRAM_SHA_256.to_string(),
        ];
        let plain = [sasl::SCRAM_SHA_256.to_string()];
        let cb = Some(&[1u8, 2, 3][..]);
        let pick =
            |offered: &[String], cb, policy| choose_scram(offered, cb, policy).map(|(m, _)| m);
        assert_eq!(
            pick(&both, cb, ChannelBinding::Prefer),
            Ok(sasl::SCRAM_SHA_256_PLUS)
        );
        assert_eq!(
            pick(&both, cb, ChannelBinding::Disable),
            Ok(sasl::SCRAM_SHA_256)
        );
        assert_eq!(
            pick(&both, None, ChannelBinding::Prefer),
            Ok(sasl::SCRAM_SHA_256)
        );
        assert_eq!(
            pick(&plain, cb, ChannelBinding::Prefer),
            Ok(sasl::SCRAM_SHA_256)
        );
        let err = pick(&plain, cb, ChannelBinding::Require).unwrap_err();
        assert!(err.contains("does not offer SCRAM-SHA-256-PLUS"), "{err}");
        let err = pick(&both, None, ChannelBinding::Require).unwrap_err();
        assert!(err.contains("no TLS channel"), "{err}");
        assert!(pick(&["OTHER".to_string()], cb, ChannelBinding::Prefer).is_err());
    }

    #[test]
    fn reads_conninfo_and_urls() {
        let o = ConnectOptions::parse("host=127.0.0.1 port=5433 user=alice dbname=app").unwrap();
        assert_eq!(o.user().unwrap(), "alice");
        assert_eq!(o.dbname().unwrap(), "app");
        assert!(matches!(o.endpoint().unwrap(), Endpoint::Tcp(h, 5433) if h == "127.0.0.1"));
        let o =
            ConnectOptions::parse("postgres://bob:pw@localhost/shop?application_name=x").unwrap();
        assert_eq!(o.user().unwrap(), "bob");
        assert_eq!(o.application_name, "x");
        let o = ConnectOptions::parse("host=/tmp/sock port=6000 user=u").unwrap();
        assert_eq!(o.dbname().unwrap(), "u");
        assert!(matches!(o.endpoint().unwrap(), Endpoint::Unix(p) if p.ends_with(".s.PGSQL.6000")));
        assert!(ConnectOptions::parse("user=u").unwrap().endpoint().is_err());
        assert!(ConnectOptions::parse("host=x").unwrap().user().is_err());
    }
}
