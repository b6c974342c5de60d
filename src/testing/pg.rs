//! A private, throwaway PostgreSQL cluster with `wal_level=logical`.
//!
//! Started from the installed server binaries in a fresh temp dir on a free port, run as an
//! unprivileged user when we are root (initdb refuses root), and stopped and deleted on
//! drop — also when a test panics. Nothing is shared between runs or between clusters,
//! so tests can run in parallel.
//!
//! Binaries are looked up in `PGFORCE_PG_BINDIR`, then `pg_config --bindir`, then the
//! newest `/usr/lib/postgresql/*/bin`.

use std::ffi::CString;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Why a throwaway cluster could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl) not found in {searched}: install them \
         (Debian/Ubuntu: `apt-get install postgresql`) or point PGFORCE_PG_BINDIR at the \
         directory that holds initdb"
    )]
    BinariesNotFound { searched: String },
    #[error("running as root, but there is no unprivileged user {user:?} to run the server as: create one (`useradd -r {user}`) or set PGFORCE_PG_USER")]
    NoUnprivilegedUser { user: String },
    #[error("{step} failed: {detail}")]
    Command { step: String, detail: String },
    #[error("I/O error while {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let context = context.into();
    move |source| ClusterError::Io { context, source }
}

/// Options for a cluster; `Default` gives a logical-replication-ready server.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Extra `postgresql.conf` lines, appended after the defaults (later lines win).
    pub extra_conf: Vec<String>,
    /// Override the binaries directory (else the lookup described in the module docs).
    pub bindir: Option<PathBuf>,
    /// Serve TLS (`ssl = on`) with this certificate and key.
    pub tls: Option<ClusterTls>,
    /// The whole pg_hba.conf (default [`HBA_TRUST`]); e.g. [`HBA_TLS_ONLY`].
    pub hba: Option<String>,
}

/// The server certificate (chain) and private key, PEM.
#[derive(Debug, Clone)]
pub struct ClusterTls {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Default pg_hba.conf: trust on the Unix socket and on TCP loopback, with or without TLS.
pub const HBA_TRUST: &str = "local all all trust\nhost all all 127.0.0.1/32 trust\nlocal replication all trust\nhost replication all 127.0.0.1/32 trust\n";

/// pg_hba.conf that accepts TCP only over TLS (the Unix socket stays open).
pub const HBA_TLS_ONLY: &str = "local all all trust\nhostssl all all 127.0.0.1/32 trust\nlocal replication all trust\nhostssl replication all 127.0.0.1/32 trust\n";

/// A running throwaway cluster. Dropping it stops the server and deletes its files.
#[derive(Debug)]
pub struct TempCluster {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    port: u16,
    run_as: Option<(u32, u32)>,
    running: bool,
}

/// The superuser name of every throwaway cluster.
pub const SUPERUSER: &str = "postgres";

impl TempCluster {
    /// Start a cluster with default options.
    pub fn start() -> Result<TempCluster, ClusterError> {
        Self::start_with(ClusterOptions::default())
    }

    /// Start a cluster with the given options.
    pub fn start_with(opts: ClusterOptions) -> Result<TempCluster, ClusterError> {
        let bindir = match opts.bindir.clone() {
            Some(b) if has_server_binaries(&b) => b,
            Some(b) => {
                return Err(ClusterError::BinariesNotFound {
                    searched: b.display().to_string(),
                })
            }
            None => find_bindir()?,
        };
        let run_as = unprivileged_user()?;
        let dir = tempfile::Builder::new()
            .prefix("pgforce-pg-")
            .tempdir()
            .map_err(io_err("creating the cluster's temp dir"))?;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777))
            .map_err(io_err("opening the temp dir to the server user"))?;
        let mut cluster = TempCluster {
            dir,
            bindir,
            port: 0,
            run_as,
            running: false,
        };
        cluster.initdb()?;
        // A free port can be taken by a parallel test between our probe and the server's
        // bind; try a few.
        let mut last_err = None;
        for _ in 0..5 {
            cluster.port = free_port()?;
            cluster.write_conf(&opts)?;
            match cluster.pg_ctl_start() {
                Ok(()) => {
                    cluster.running = true;
                    return Ok(cluster);
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.expect("at least one attempt"))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Directory holding the server's Unix socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// A libpq-style connection string for `dbname` as the superuser over TCP loopback.
    pub fn conn_string(&self, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={} dbname={}",
            self.port, SUPERUSER, dbname
        )
    }

    /// A `postgres://` URL for `dbname` as the superuser.
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/{}",
            SUPERUSER, self.port, dbname
        )
    }

    /// Server major version (e.g. 15), read from `postgres --version`.
    pub fn major_version(&self) -> Result<u32, ClusterError> {
        let out = run(
            Command::new(self.bindir.join("postgres")).arg("--version"),
            "postgres --version",
        )?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .find_map(|w| w.split('.').next()?.parse::<u32>().ok())
            .ok_or_else(|| ClusterError::Command {
                step: "postgres --version".into(),
                detail: format!("unexpected output {text:?}"),
            })
    }

    /// Run SQL through `psql` (handy for setup in sync code and scripts).
    pub fn psql(&self, dbname: &str, sql: &str) -> Result<String, ClusterError> {
        let psql = self.bindir.join("psql");
        let psql = if psql.exists() {
            psql
        } else {
            PathBuf::from("psql")
        };
        let out = run(
            Command::new(psql)
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    SUPERUSER,
                    "-d",
                    dbname,
                ])
                .args(["-c", sql]),
            "psql",
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Stop the server (fast shutdown), keeping its data.
    pub fn stop(&mut self) -> Result<(), ClusterError> {
        if self.running {
            self.pg_ctl(&["stop", "-m", "fast", "-w"])?;
            self.running = false;
        }
        Ok(())
    }

    /// Crash the server (immediate shutdown, like a power cut), keeping its data.
    pub fn crash(&mut self) -> Result<(), ClusterError> {
        if self.running {
            self.pg_ctl(&["stop", "-m", "immediate", "-w"])?;
            self.running = false;
        }
        Ok(())
    }

    /// Start a stopped server again on the same port.
    pub fn restart(&mut self) -> Result<(), ClusterError> {
        self.stop()?;
        self.pg_ctl_start()?;
        self.running = true;
        Ok(())
    }

    /// Start again after [`stop`](Self::stop) or [`crash`](Self::crash).
    pub fn start_again(&mut self) -> Result<(), ClusterError> {
        if !self.running {
            self.pg_ctl_start()?;
            self.running = true;
        }
        Ok(())
    }

    fn initdb(&self) -> Result<(), ClusterError> {
        let data = self.data_dir();
        let sock = self.socket_dir();
        for d in [&data, &sock] {
            fs::create_dir_all(d).map_err(io_err("creating cluster directories"))?;
            self.chown(d)?;
        }
        fs::set_permissions(&data, fs::Permissions::from_mode(0o700))
            .map_err(io_err("setting data dir permissions"))?;
        let mut cmd = self.command("initdb");
        cmd.arg("-D").arg(&data).args([
            "-U",
            SUPERUSER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        run(&mut cmd, "initdb").map(|_| ())
    }

    fn write_conf(&self, opts: &ClusterOptions) -> Result<(), ClusterError> {
        let mut conf = format!(
            "# written by pgforce::testing::pg\n\
             listen_addresses = '127.0.0.1'\n\
             port = {port}\n\
             unix_socket_directories = '{sock}'\n\
             wal_level = logical\n\
             max_replication_slots = 32\n\
             max_wal_senders = 32\n\
             max_connections = 100\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             shared_buffers = 32MB\n\
             log_min_messages = warning\n\
             logging_collector = off\n",
            port = self.port,
            sock = self.socket_dir().display()
        );
        if let Some(tls) = &opts.tls {
            self.write_private("server.crt", &tls.cert_pem)?;
            self.write_private("server.key", &tls.key_pem)?;
            conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        }
        for line in &opts.extra_conf {
            conf.push_str(line);
            conf.push('\n');
        }
        let path = self.data_dir().join("postgresql.auto.conf");
        fs::write(&path, conf).map_err(io_err("writing postgresql.auto.conf"))?;
        self.chown(&path)?;
        let hba = opts.hba.as_deref().unwrap_or(HBA_TRUST);
        let hba_path = self.data_dir().join("pg_hba.conf");
        fs::write(&hba_path, hba).map_err(io_err("writing pg_hba.conf"))?;
        self.chown(&hba_path)
    }

    /// A file in the data dir readable only by the server (the key must be 0600).
    fn write_private(&self, name: &str, text: &str) -> Result<(), ClusterError> {
        let path = self.data_dir().join(name);
        fs::write(&path, text).map_err(io_err(format!("writing {name}")))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
            .map_err(io_err(format!("setting {name} permissions")))?;
        self.chown(&path)
    }

    fn pg_ctl_start(&self) -> Result<(), ClusterError> {
        let log = self.dir.path().join("server.log");
        self.pg_ctl(&[
            "start",
            "-w",
            "-t",
            "60",
            "-l",
            log.to_str().unwrap_or("server.log"),
        ])
        .map_err(|e| match e {
            ClusterError::Command { step, detail } => ClusterError::Command {
                step,
                detail: format!(
                    "{detail}\nserver log:\n{}",
                    fs::read_to_string(&log).unwrap_or_default()
                ),
            },
            other => other,
        })?;
        self.wait_ready()
    }

    fn wait_ready(&self) -> Result<(), ClusterError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ClusterError::Command {
                    step: "waiting for the server".into(),
                    detail: format!("nothing listening on 127.0.0.1:{} after 30s", self.port),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), ClusterError> {
        let mut cmd = self.command("pg_ctl");
        cmd.arg("-D").arg(self.data_dir()).args(args);
        run(&mut cmd, &format!("pg_ctl {}", args[0])).map(|_| ())
    }

    fn command(&self, bin: &str) -> Command {
        let mut cmd = Command::new(self.bindir.join(bin));
        cmd.current_dir(self.dir.path());
        cmd.stdin(Stdio::null());
        // Keep the server out of our process group so a Ctrl-C in a terminal reaches us
        // first and we shut it down in order.
        cmd.process_group(0);
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
            cmd.env("HOME", self.dir.path());
        }
        cmd
    }

    fn chown(&self, path: &Path) -> Result<(), ClusterError> {
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(io_err(format!("chown {}", path.display())))?;
        }
        Ok(())
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        if self.running {
            let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w"]);
        }
    }
}

fn run(cmd: &mut Command, step: &str) -> Result<Output, ClusterError> {
    let out = cmd.output().map_err(io_err(format!("starting {step}")))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(ClusterError::Command {
            step: step.to_string(),
            detail: format!(
                "{}\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }
}

fn free_port() -> Result<u16, ClusterError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(io_err("finding a free port"))?;
    let port = l
        .local_addr()
        .map_err(io_err("finding a free port"))?
        .port();
    Ok(port)
}

/// Where the server binaries are: `PGFORCE_PG_BINDIR`, `pg_config --bindir`, or the newest
/// `/usr/lib/postgresql/*/bin` that holds `initdb`.
pub fn find_bindir() -> Result<PathBuf, ClusterError> {
    let has_initdb = |p: &Path| has_server_binaries(p);
    let mut searched = Vec::new();
    if let Ok(dir) = std::env::var("PGFORCE_PG_BINDIR") {
        let p = PathBuf::from(&dir);
        if has_initdb(&p) {
            return Ok(p);
        }
        return Err(ClusterError::BinariesNotFound {
            searched: format!("PGFORCE_PG_BINDIR={dir}"),
        });
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_initdb(&p) {
            return Ok(p);
        }
        searched.push(p.display().to_string());
    }
    let mut candidates: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, e.path().join("bin")))
        })
        .filter(|(_, p)| has_initdb(p))
        .collect();
    candidates.sort();
    if let Some((_, p)) = candidates.pop() {
        return Ok(p);
    }
    searched.push("/usr/lib/postgresql/*/bin".into());
    Err(ClusterError::BinariesNotFound {
        searched: searched.join(", "),
    })
}

fn has_server_binaries(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("pg_ctl").is_file()
}

/// When running as root, the uid/gid of the user to run the server as
/// (`PGFORCE_PG_USER`, default `postgres`). The crate's one `unsafe` (libc user lookup).
#[allow(unsafe_code)]
fn unprivileged_user() -> Result<Option<(u32, u32)>, ClusterError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let user = std::env::var("PGFORCE_PG_USER").unwrap_or_else(|_| "postgres".into());
    let name = CString::new(user.clone())
        .map_err(|_| ClusterError::NoUnprivilegedUser { user: user.clone() })?;
    // SAFETY: getpwnam returns a pointer into static storage or null; we copy the two
    // integers out immediately and never keep the pointer.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(ClusterError::NoUnprivilegedUser { user });
    }
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    if uid == 0 {
        return Err(ClusterError::NoUnprivilegedUser { user });
    }
    Ok(Some((uid, gid)))
}
