//! A throwaway PostgreSQL cluster for kyzlo's tests and benchmarks: never a mock, never a
//! shared server.
//!
//! [`PgCluster::start`] finds the machine's server binaries (`initdb`, `pg_ctl`), creates a
//! cluster in a fresh temporary directory, starts it on a free loopback port with password
//! (SCRAM) authentication, and waits until it accepts connections. PostgreSQL refuses to
//! run as root, so when the test runs as root the cluster belongs to an unprivileged system
//! user ([`RUN_AS_USER`], created with `useradd` when missing) and every server command runs
//! through `runuser`; an unprivileged test runs them directly.
//!
//! The cluster is stopped and its directory removed when the [`PgCluster`] is dropped, and
//! also when the test process dies without dropping it (a `static` cluster, a panic that
//! aborts, a SIGKILL): a small watchdog process started beside the server waits for the
//! test process to end and then stops the server and removes the directory.
//!
//! The binaries are looked for in `KYZLO_PG_BIN` (a directory), then on the `PATH`, then
//! under `/usr/lib/postgresql/<version>/bin` (Debian's layout, newest version first).
//! `scripts/test.sh` installs Debian's `postgresql` when none is found.
#![forbid(unsafe_code)]

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The system user a cluster started by root belongs to (override with `KYZLO_PG_USER`).
pub const RUN_AS_USER: &str = "kyzlo-test";

/// The database role the cluster is created with; its password is in the URLs.
pub const SUPERUSER: &str = "kyzlo";

/// How many fresh ports are tried before giving up (another process may take the free
/// port found between the probe and the server's bind).
const START_TRIES: u32 = 5;

/// What went wrong starting or using a throwaway cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// No `initdb` / `pg_ctl` pair was found.
    #[error(
        "no PostgreSQL server binaries (initdb and pg_ctl) found in {searched:?}: install Debian's postgresql or set KYZLO_PG_BIN"
    )]
    NoBinaries {
        /// The directories looked in.
        searched: Vec<PathBuf>,
    },
    /// A file-system step failed.
    #[error("cannot {step} {}", path.display())]
    Io {
        /// What was being done.
        step: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A program could not be run.
    #[error("cannot run {program}")]
    Spawn {
        /// The program.
        program: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A program ran and failed.
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        /// The program with its first argument.
        program: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The end of what it printed on stderr (and the server log, for a start).
        stderr: String,
    },
    /// No free loopback port could be bound.
    #[error("no free loopback port")]
    NoPort(#[source] std::io::Error),
}

/// How much the server honours durability: tests run faster without `fsync`; a benchmark
/// of durable writes must keep it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `fsync`, `synchronous_commit` and full-page writes on: PostgreSQL's defaults.
    Durable,
    /// `fsync=off`, `synchronous_commit=off`: a crash of the machine may lose the
    /// cluster, which is thrown away anyway.
    Fast,
}

/// Who runs the server's commands.
#[derive(Debug, Clone)]
enum RunAs {
    /// This process is unprivileged: run them directly.
    Me,
    /// This process is root: run them as this system user, through `runuser`.
    User { name: String, uid: u32, gid: u32 },
}

impl RunAs {
    fn command(&self, program: &Path) -> Command {
        match self {
            RunAs::Me => Command::new(program),
            RunAs::User { name, .. } => {
                let mut command = Command::new("runuser");
                command.args(["-u", name, "--"]).arg(program);
                command
            }
        }
    }
}

/// A running throwaway cluster. Dropping it stops the server and removes its directory.
#[derive(Debug)]
pub struct PgCluster {
    root: PathBuf,
    data: PathBuf,
    bin: PathBuf,
    port: u16,
    password: String,
    run_as: RunAs,
    watchdog: Mutex<Option<Child>>,
}

impl PgCluster {
    /// Creates and starts a cluster.
    ///
    /// # Errors
    /// [`ClusterError::NoBinaries`] when PostgreSQL is not installed; the failing step
    /// otherwise, with the end of its output.
    pub fn start(durability: Durability) -> Result<Self, ClusterError> {
        let bin = find_bin_dir()?;
        let run_as = run_as()?;
        let root = tempfile::Builder::new()
            .prefix("kyzlo-pg-")
            .tempdir()
            .map_err(|source| ClusterError::Io {
                step: "create the cluster's directory",
                path: std::env::temp_dir(),
                source,
            })?
            .keep();
        // From here on the directory is ours to remove: the guard does it on any error.
        let mut cluster = PgCluster {
            data: root.join("data"),
            root,
            bin,
            port: 0,
            password: password(),
            run_as,
            watchdog: Mutex::new(None),
        };
        cluster.init()?;
        cluster.spawn_watchdog()?;
        let mut last = None;
        for _ in 0..START_TRIES {
            cluster.port = free_port()?;
            match cluster.pg_ctl_start(durability) {
                Ok(()) => return Ok(cluster),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(ClusterError::NoPort(std::io::Error::other(
            "no start tried",
        ))))
    }

    /// The loopback port the server listens on.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL to `database`, with the superuser's password in it.
    #[must_use]
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// The superuser's password (random per cluster).
    #[must_use]
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Creates a fresh, empty database whose name starts with `prefix` (made unique in this
    /// cluster) and returns its URL.
    ///
    /// # Errors
    /// `createdb` failed.
    pub fn create_database(&self, prefix: &str) -> Result<String, ClusterError> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let name = format!(
            "{}_{}_{}",
            prefix
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect::<String>(),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut command = Command::new(self.bin.join("createdb"));
        command
            .args(["-h", "127.0.0.1", "-U", SUPERUSER, "-p"])
            .arg(self.port.to_string())
            .arg(&name)
            .env("PGPASSWORD", &self.password);
        checked(command, "createdb")?;
        Ok(self.url(&name))
    }

    fn init(&self) -> Result<(), ClusterError> {
        let pwfile = self.root.join("pw");
        std::fs::write(&pwfile, &self.password).map_err(|source| ClusterError::Io {
            step: "write the password file",
            path: pwfile.clone(),
            source,
        })?;
        if let RunAs::User { uid, gid, .. } = &self.run_as {
            for path in [&self.root, &pwfile] {
                std::os::unix::fs::chown(path, Some(*uid), Some(*gid)).map_err(|source| {
                    ClusterError::Io {
                        step: "hand over to the cluster's user",
                        path: path.clone(),
                        source,
                    }
                })?;
            }
        }
        let mut initdb = self.run_as.command(&self.bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&self.data)
            .args(["-U", SUPERUSER, "-E", "UTF8", "--no-locale", "--no-sync"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()));
        checked(initdb, "initdb").map(drop)
    }

    fn pg_ctl_start(&self, durability: Durability) -> Result<(), ClusterError> {
        let mut options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c max_connections=300",
            self.port,
            self.root.display()
        );
        if durability == Durability::Fast {
            options.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        let log = self.root.join("server.log");
        let mut start = self.run_as.command(&self.bin.join("pg_ctl"));
        start
            .arg("start")
            .arg("-D")
            .arg(&self.data)
            .args(["-w", "-t", "60", "-o", &options, "-l"])
            .arg(&log);
        checked(start, "pg_ctl start")
            .map(drop)
            .map_err(|e| match e {
                ClusterError::Failed {
                    program,
                    status,
                    stderr,
                } => ClusterError::Failed {
                    program,
                    status,
                    stderr: format!("{stderr}; server log: {}", tail(&read_lossy(&log))),
                },
                other => other,
            })
    }

    /// A process that outlives the test's crash: once this process is gone it stops the
    /// server at once and removes the directory.
    fn spawn_watchdog(&self) -> Result<(), ClusterError> {
        let script = r#"
            while kill -0 "$1" 2>/dev/null; do sleep 0.5; done
            if [ -n "$5" ]; then runuser -u "$5" -- "$2" stop -D "$3" -m immediate -w
            else "$2" stop -D "$3" -m immediate -w; fi
            rm -rf "$4"
        "#;
        let user = match &self.run_as {
            RunAs::Me => String::new(),
            RunAs::User { name, .. } => name.clone(),
        };
        let child = Command::new("sh")
            .args(["-c", script, "kyzlo-pg-watchdog"])
            .arg(std::process::id().to_string())
            .arg(self.bin.join("pg_ctl"))
            .arg(&self.data)
            .arg(&self.root)
            .arg(user)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| ClusterError::Spawn {
                program: "sh (watchdog)".to_owned(),
                source,
            })?;
        *self
            .watchdog
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(child);
        Ok(())
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self
            .watchdog
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        if self.data.join("postmaster.pid").exists() {
            let mut stop = self.run_as.command(&self.bin.join("pg_ctl"));
            stop.arg("stop")
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "-w"]);
            let _ = stop.stdout(Stdio::null()).stderr(Stdio::null()).status();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The directory holding `initdb` and `pg_ctl`.
fn find_bin_dir() -> Result<PathBuf, ClusterError> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("KYZLO_PG_BIN") {
        candidates.push(PathBuf::from(dir));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    debian.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    candidates.extend(debian.into_iter().map(|(_, dir)| dir));
    for dir in &candidates {
        if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
            // A PATH entry may hold symlinks into the real directory (as Debian's
            // wrappers do): the real one also holds createdb and postgres.
            let real = std::fs::canonicalize(dir.join("initdb"))
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf))
                .unwrap_or_else(|| dir.clone());
            if real.join("pg_ctl").is_file() && real.join("createdb").is_file() {
                return Ok(real);
            }
        }
    }
    Err(ClusterError::NoBinaries {
        searched: candidates,
    })
}

/// Who runs the server: this process unless it is root.
fn run_as() -> Result<RunAs, ClusterError> {
    let me = std::fs::metadata("/proc/self").map_err(|source| ClusterError::Io {
        step: "read this process's user from",
        path: PathBuf::from("/proc/self"),
        source,
    })?;
    if me.uid() != 0 {
        return Ok(RunAs::Me);
    }
    let name = std::env::var("KYZLO_PG_USER").unwrap_or_else(|_| RUN_AS_USER.to_owned());
    ensure_user(&name)?;
    let id = |flag: &str| -> Result<u32, ClusterError> {
        let mut command = Command::new("id");
        command.arg(flag).arg(&name);
        let out = checked(command, "id")?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| ClusterError::Failed {
                program: format!("id {flag} {name}"),
                status: out.status,
                stderr: "not a number".to_owned(),
            })
    };
    Ok(RunAs::User {
        uid: id("-u")?,
        gid: id("-g")?,
        name,
    })
}

/// Creates the system user `name` when it does not exist.
fn ensure_user(name: &str) -> Result<(), ClusterError> {
    static CREATING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = CREATING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let exists = |name: &str| {
        Command::new("id")
            .arg(name)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if exists(name) {
        return Ok(());
    }
    let mut useradd = Command::new("useradd");
    useradd
        .args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
        ])
        .arg(name);
    match checked(useradd, "useradd") {
        // Another test process may have created it meanwhile.
        Err(_) if exists(name) => Ok(()),
        other => other.map(drop),
    }
}

/// A free loopback port, as the kernel hands one out.
fn free_port() -> Result<u16, ClusterError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(ClusterError::NoPort)?;
    Ok(listener.local_addr().map_err(ClusterError::NoPort)?.port())
}

/// A password unique enough for a throwaway cluster on loopback.
fn password() -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    format!("pw{:016x}", hasher.finish())
}

/// Runs `command`, and returns its output when it succeeded.
fn checked(mut command: Command, program: &str) -> Result<Output, ClusterError> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ClusterError::Spawn {
            program: program.to_owned(),
            source,
        })?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(ClusterError::Failed {
            program: program.to_owned(),
            status: output.status,
            stderr: tail(&String::from_utf8_lossy(&output.stderr)),
        })
    }
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The last 2,000 bytes of `text`, on a character boundary.
fn tail(text: &str) -> String {
    let mut start = text.len().saturating_sub(2_000);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_starts_accepts_a_database_and_is_removed_on_drop() {
        let cluster = PgCluster::start(Durability::Fast).unwrap();
        let root = cluster.root.clone();
        assert!(cluster.data.join("postmaster.pid").exists());
        let url = cluster.create_database("smoke").unwrap();
        assert!(url.starts_with("postgres://kyzlo:"), "{url}");
        // The server answers on its port with the password.
        let mut psql = Command::new(cluster.bin.join("psql"));
        psql.arg(&url).args(["-tAc", "select 40 + 2"]);
        let out = checked(psql, "psql").unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
        // A wrong password is refused: authentication is real.
        let mut wrong = Command::new(cluster.bin.join("psql"));
        wrong
            .arg(url.replace(cluster.password(), "wrong"))
            .args(["-tAc", "select 1"]);
        assert!(matches!(
            checked(wrong, "psql"),
            Err(ClusterError::Failed { .. })
        ));
        drop(cluster);
        assert!(!root.exists(), "{} left behind", root.display());
    }

    #[test]
    fn tail_keeps_the_end_on_a_character_boundary() {
        let text = format!("{}é{}", "a".repeat(10), "b".repeat(1_999));
        let cut = tail(&text);
        assert!(cut.len() <= 2_000);
        assert!(cut.ends_with('b'));
        assert_eq!(tail("  short \n"), "short");
    }
}
