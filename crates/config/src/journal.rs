//! `[journal]`: where state is kept. The data folder always holds the paper and devnet
//! wallet files; the journal itself is the folder's SQLite file unless `url` names a
//! PostgreSQL database shared by a fleet, where each wallet is held under a lease.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::check::{ConfigError, invalid};
use crate::secret::Secret;

/// The default lease on a wallet in a PostgreSQL journal, in seconds.
pub const DEFAULT_LEASE_S: u64 = 15;

/// The shortest lease allowed: renewed every third of it, a lease under 3 s would be
/// renewed faster than a database round trip under load can be trusted to take.
pub const MIN_LEASE_S: u64 = 3;

/// The longest lease allowed: a crashed instance's wallet waits this long for a successor.
pub const MAX_LEASE_S: u64 = 600;

/// How often, by default, an instance re-reads the fleet's halt record besides what
/// LISTEN/NOTIFY pushes, in milliseconds.
pub const DEFAULT_FLEET_POLL_MS: u64 = 2_000;

/// `[journal]` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalFile {
    /// The folder of the SQLite journal and of the paper and devnet wallets.
    pub data_dir: PathBuf,
    /// `postgres://user:password@host:port/database`: the journal on PostgreSQL instead
    /// of the data folder's SQLite file. A secret (it holds the password).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<Secret>,
    /// Seconds a wallet's lease lasts in a PostgreSQL journal; renewed every third of it.
    pub lease_s: u64,
    /// Milliseconds between two reads of the fleet's halt record (a fallback for
    /// LISTEN/NOTIFY, which pushes it at once).
    pub fleet_poll_ms: u64,
    /// Seconds the fleet's database may be unreachable before the markets go ReduceOnly;
    /// below `lease_s`, by default two thirds of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet_unreachable_s: Option<u64>,
}

impl Default for JournalFile {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("kyzlo-data"),
            url: None,
            lease_s: DEFAULT_LEASE_S,
            fleet_poll_ms: DEFAULT_FLEET_POLL_MS,
            fleet_unreachable_s: None,
        }
    }
}

/// Which journal the bot writes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalBackend {
    /// The data folder's `journal.db` (the default): one process per folder.
    Sqlite,
    /// A PostgreSQL database, each wallet held by one instance under a renewed lease.
    Postgres {
        /// The connection URL, password included.
        url: Secret,
        /// How long a lease lasts unrenewed; it is renewed every third of it.
        lease: Duration,
        /// Between two reads of the fleet's halt record.
        fleet_poll: Duration,
        /// How long the database may be unreachable before the markets go ReduceOnly.
        fleet_unreachable: Duration,
    },
}

impl JournalFile {
    /// The data directory and the journal's backend.
    pub(crate) fn validate(&self) -> Result<(PathBuf, JournalBackend), ConfigError> {
        let text = self.data_dir.to_string_lossy();
        if text.trim().is_empty() {
            return Err(invalid(
                "journal.data_dir",
                "\"\"",
                "a folder for the journal, e.g. kyzlo-data",
            ));
        }
        if text.chars().any(char::is_control) {
            return Err(invalid(
                "journal.data_dir",
                format!("{:?}", self.data_dir),
                "a path without control characters",
            ));
        }
        if self.data_dir.exists() && !self.data_dir.is_dir() {
            return Err(invalid(
                "journal.data_dir",
                self.data_dir.display(),
                "a folder (this path exists and is not one)",
            ));
        }
        if !(MIN_LEASE_S..=MAX_LEASE_S).contains(&self.lease_s) {
            return Err(invalid(
                "journal.lease_s",
                self.lease_s,
                format!("{MIN_LEASE_S} to {MAX_LEASE_S} seconds"),
            ));
        }
        if !(100..=60_000).contains(&self.fleet_poll_ms) {
            return Err(invalid(
                "journal.fleet_poll_ms",
                self.fleet_poll_ms,
                "100 to 60000 milliseconds",
            ));
        }
        let unreachable_s = self
            .fleet_unreachable_s
            .unwrap_or((self.lease_s * 2 / 3).max(1));
        if unreachable_s == 0 {
            return Err(invalid(
                "journal.fleet_unreachable_s",
                unreachable_s,
                "at least 1 second",
            ));
        }
        let backend = match &self.url {
            None => JournalBackend::Sqlite,
            Some(url) => {
                check_url(url.expose())?;
                if unreachable_s >= self.lease_s {
                    return Err(invalid(
                        "journal.fleet_unreachable_s",
                        unreachable_s,
                        format!(
                            "less than journal.lease_s ({}): past the lease the wallet is lost anyway, so ReduceOnly must come first",
                            self.lease_s
                        ),
                    ));
                }
                JournalBackend::Postgres {
                    url: url.clone(),
                    lease: Duration::from_secs(self.lease_s),
                    fleet_poll: Duration::from_millis(self.fleet_poll_ms),
                    fleet_unreachable: Duration::from_secs(unreachable_s),
                }
            }
        };
        Ok((self.data_dir.clone(), backend))
    }
}

/// A PostgreSQL URL with a host. The value is never repeated: at most its scheme shows.
fn check_url(url: &str) -> Result<(), ConfigError> {
    const EXPECTED: &str = "a PostgreSQL URL, postgres://user:password@host:port/database";
    let parsed = url::Url::parse(url).map_err(|e| {
        invalid(
            "journal.url",
            "*** (not shown: it holds the password)",
            format!("{EXPECTED} ({e})"),
        )
    })?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return Err(invalid(
            "journal.url",
            format!("{}://***", parsed.scheme()),
            format!("{EXPECTED} (the scheme is postgres or postgresql)"),
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid(
            "journal.url",
            "postgres://***",
            format!("{EXPECTED} (the host is missing)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_url(url: &str) -> JournalFile {
        JournalFile {
            url: Some(Secret::new(url)),
            ..JournalFile::default()
        }
    }

    #[test]
    fn no_url_is_the_sqlite_journal() {
        let (dir, backend) = JournalFile::default().validate().unwrap();
        assert_eq!(dir, PathBuf::from("kyzlo-data"));
        assert_eq!(backend, JournalBackend::Sqlite);
    }

    #[test]
    fn a_postgres_url_is_the_postgres_journal_with_its_lease() {
        for url in [
            "postgres://kyzlo:s3cret@db:5432/fleet",
            "postgresql://kyzlo:s3cret@10.0.0.7/fleet",
        ] {
            let (_, backend) = with_url(url).validate().unwrap();
            assert_eq!(
                backend,
                JournalBackend::Postgres {
                    url: Secret::new(url),
                    lease: Duration::from_secs(DEFAULT_LEASE_S),
                    fleet_poll: Duration::from_millis(DEFAULT_FLEET_POLL_MS),
                    fleet_unreachable: Duration::from_secs(DEFAULT_LEASE_S * 2 / 3),
                }
            );
        }
    }

    #[test]
    fn a_url_that_is_not_postgres_is_refused_by_key_without_its_password() {
        for url in [
            "mysql://kyzlo:s3cret@db/fleet",
            "https://kyzlo:s3cret@db/fleet",
            "kyzlo:s3cret",
            "postgres://kyzlo:s3cret@/fleet",
        ] {
            let error = with_url(url).validate().unwrap_err();
            let text = error.to_string();
            assert!(text.contains("journal.url"), "{text}");
            assert!(!text.contains("s3cret"), "{text}");
            assert!(!format!("{error:?}").contains("s3cret"), "{error:?}");
        }
    }

    #[test]
    fn the_unreachable_bound_must_come_before_the_lease_runs_out() {
        let file = JournalFile {
            lease_s: 5,
            fleet_unreachable_s: Some(5),
            ..with_url("postgres://kyzlo:s3cret@db/fleet")
        };
        let text = file.validate().unwrap_err().to_string();
        assert!(text.contains("journal.fleet_unreachable_s"), "{text}");
        assert!(text.contains("journal.lease_s"), "{text}");
    }

    #[test]
    fn a_lease_out_of_range_is_refused() {
        for lease_s in [0, 2, 601] {
            let file = JournalFile {
                lease_s,
                ..with_url("postgres://kyzlo:s3cret@db/fleet")
            };
            let text = file.validate().unwrap_err().to_string();
            assert!(text.contains("journal.lease_s"), "{text}");
        }
    }
}
