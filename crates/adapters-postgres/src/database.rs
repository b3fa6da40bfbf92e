//! [`PgDatabase`]: the pool of connections to the fleet's database, migrated on connect,
//! and the wallet leases whose epochs fence every journal write.

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::error::{PgError, mask};
use crate::journal::PgJournal;
use crate::schema;

/// How long a connection attempt, or a wait for a free pooled connection, may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a session may sit idle inside a transaction before the server ends it (and
/// rolls the transaction back).
///
/// A write transaction's fence holds the wallet's lease row `FOR SHARE` until it ends, and
/// a takeover must update that row. Should the owner stall mid-transaction (a partition
/// that drops packets, a paused process), PostgreSQL keeps the session and its locks until
/// TCP gives up, which takes minutes to hours; the successor would wait on it long after
/// the lease expired. With this limit the lease row is free at most this long after the
/// owner's last statement: a takeover waits at most this past the expiry. It is below the
/// shortest lease kyzlo allows (3 s, `journal.lease_s`), and far above the gap between two
/// statements of a healthy write (one round trip).
pub const IDLE_IN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a session waits for a lock before its statement fails: longer than
/// [`IDLE_IN_TRANSACTION_TIMEOUT`], so that a takeover waiting on a stalled former owner
/// gets the lease row when the server ends that session rather than failing first; bounded,
/// so that a lock held by a session without these limits (an operator's `psql`) fails a
/// write instead of hanging it.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(3);

/// How long one statement may run: every statement of the journal touches a handful of
/// rows by key; one that runs this long is stuck, and keeps the locks it holds until it
/// ends.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);

/// A wallet's lease as its owner holds it: the epoch is the fencing token every journal
/// write carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The wallet (its address, as text).
    pub wallet: String,
    /// The instance holding it.
    pub owner: String,
    /// The lease's epoch: strictly greater than every earlier owner's.
    pub epoch: i64,
}

/// A wallet's lease as anyone may read it (for `fleet status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseView {
    /// The lease.
    pub lease: Lease,
    /// Milliseconds until it expires by the database's clock (negative once expired).
    pub expires_in_ms: i64,
}

/// The fleet's database: a pool of connections, the schema migrated.
///
/// Cloning is cheap and shares the pool.
#[derive(Clone)]
pub struct PgDatabase {
    pool: Pool,
    /// The connection settings, for a connection of its own outside the pool (the
    /// fleet's LISTEN).
    config: Arc<tokio_postgres::Config>,
    /// The URL's password, masked out of every error text.
    password: Option<Arc<str>>,
}

impl std::fmt::Debug for PgDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgDatabase")
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

impl PgDatabase {
    /// Connects to `url` (`postgres://user:password@host:port/database`) with a pool of at
    /// most `max_connections`, checks one connection out and migrates the schema.
    ///
    /// # Errors
    /// [`PgError::InvalidUrl`]; [`PgError::Connect`] when the server cannot be reached or
    /// refuses the credentials; [`PgError::SchemaTooNew`]; [`PgError::Migration`].
    pub async fn connect(url: &str, max_connections: usize) -> Result<Self, PgError> {
        let db = Self::pool(url, max_connections)?;
        let mut client = db.client().await?;
        schema::migrate(&mut client).await?;
        Ok(db)
    }

    /// Connects to `url` without migrating: for operators' commands, which must not
    /// move a shared schema on (a newer command-line tool during a rolling upgrade).
    ///
    /// # Errors
    /// As [`PgDatabase::connect`]; [`PgError::SchemaMismatch`] when the database is not at
    /// this build's schema version (never migrated, older or newer).
    pub async fn connect_unmigrated(url: &str, max_connections: usize) -> Result<Self, PgError> {
        let db = Self::pool(url, max_connections)?;
        let client = db.client().await?;
        let found: Option<i32> = client
            .query_opt("SELECT version FROM kyzlo_schema", &[])
            .await
            .ok()
            .flatten()
            .map(|row| row.get(0));
        if found != Some(schema::SCHEMA_VERSION) {
            return Err(PgError::SchemaMismatch {
                found: found.unwrap_or(0),
                known: schema::SCHEMA_VERSION,
            });
        }
        drop(client);
        Ok(db)
    }

    fn pool(url: &str, max_connections: usize) -> Result<Self, PgError> {
        let mut config =
            tokio_postgres::Config::from_str(url).map_err(|e| PgError::InvalidUrl {
                reason: mask(&e.to_string(), password_in(url)),
            })?;
        let password = config
            .get_password()
            .map(|p| Arc::from(String::from_utf8_lossy(p).as_ref()));
        config.connect_timeout(CONNECT_TIMEOUT);
        // A connection whose peer vanished (a NAT or firewall dropping it, a failover) is
        // found dead in seconds, not after the system's two hours of TCP silence.
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5))
            .keepalives_interval(Duration::from_secs(2))
            .keepalives_retries(3)
            .tcp_user_timeout(Duration::from_secs(10));
        if config.get_application_name().is_none() {
            config.application_name("kyzlo");
        }
        // As startup options, so that no session of the pool runs a statement without them.
        let options = session_options(config.get_options());
        config.options(&options);
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| PgError::Connect {
                reason: e.to_string(),
            })?;
        Ok(Self {
            pool,
            config: Arc::new(config),
            password,
        })
    }

    /// A pooled connection.
    pub(crate) async fn client(&self) -> Result<Object, PgError> {
        self.pool.get().await.map_err(|e| PgError::Connect {
            reason: mask(&error_chain(&e), self.password.as_deref()),
        })
    }

    /// The journal of `market` on the wallet `lease` holds: every write it makes carries
    /// the lease's epoch and is refused by the database once that epoch is stale.
    #[must_use]
    pub fn journal(&self, lease: &Lease, market: &str) -> PgJournal {
        PgJournal::new(self.clone(), lease, market)
    }

    /// Claims `wallet` for `owner` for `ttl`, by the database's clock: succeeds only when
    /// nobody holds it or the holder's lease has expired (its own included), and then with
    /// an epoch one above the last. Of instances racing for a wallet, exactly one wins.
    ///
    /// # Errors
    /// [`PgError::Connect`], [`PgError::Sql`].
    pub async fn acquire(
        &self,
        wallet: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, PgError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "INSERT INTO leases AS l (wallet, owner, epoch, expires_at, acquired_at, renewed_at)
                 VALUES ($1, $2, 1, clock_timestamp() + $3::bigint * interval '1 millisecond',
                         clock_timestamp(), clock_timestamp())
                 ON CONFLICT (wallet) DO UPDATE SET
                    owner = excluded.owner, epoch = l.epoch + 1,
                    expires_at = excluded.expires_at, acquired_at = excluded.acquired_at,
                    renewed_at = excluded.renewed_at
                 WHERE l.expires_at <= clock_timestamp()
                 RETURNING epoch",
                &[&wallet, &owner, &millis(ttl)],
            )
            .await
            .map_err(|source| PgError::Sql {
                context: "acquire a lease",
                source,
            })?;
        Ok(row.map(|row| Lease {
            wallet: wallet.to_owned(),
            owner: owner.to_owned(),
            epoch: row.get(0),
        }))
    }

    /// Extends `lease` to `ttl` from now, by the database's clock.
    ///
    /// # Errors
    /// [`PgError::Fenced`] when the lease was lost (it expired, or another owner took it):
    /// the caller must stop the wallet's markets at once. [`PgError::Connect`],
    /// [`PgError::Sql`].
    pub async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<(), PgError> {
        let client = self.client().await?;
        let renewed = client
            .execute(
                "UPDATE leases
                    SET expires_at = clock_timestamp() + $4::bigint * interval '1 millisecond',
                        renewed_at = clock_timestamp()
                  WHERE wallet = $1 AND owner = $2 AND epoch = $3
                    AND expires_at > clock_timestamp()",
                &[&lease.wallet, &lease.owner, &lease.epoch, &millis(ttl)],
            )
            .await
            .map_err(|source| PgError::Sql {
                context: "renew a lease",
                source,
            })?;
        if renewed == 1 {
            Ok(())
        } else {
            Err(PgError::Fenced {
                wallet: lease.wallet.clone(),
                epoch: lease.epoch,
            })
        }
    }

    /// Gives `lease` up now, so another instance can take the wallet without waiting for
    /// it to expire. The row stays, so epochs keep increasing. Releasing a lease already
    /// lost does nothing.
    ///
    /// # Errors
    /// [`PgError::Connect`], [`PgError::Sql`].
    pub async fn release(&self, lease: &Lease) -> Result<(), PgError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE leases SET expires_at = clock_timestamp()
                  WHERE wallet = $1 AND owner = $2 AND epoch = $3
                    AND expires_at > clock_timestamp()",
                &[&lease.wallet, &lease.owner, &lease.epoch],
            )
            .await
            .map_err(|source| PgError::Sql {
                context: "release a lease",
                source,
            })?;
        Ok(())
    }

    /// Every wallet's lease, in wallet order, as the database sees it now.
    ///
    /// # Errors
    /// [`PgError::Connect`], [`PgError::Sql`].
    pub async fn leases(&self) -> Result<Vec<LeaseView>, PgError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT wallet, owner, epoch,
                        (extract(epoch FROM expires_at - clock_timestamp()) * 1000)::bigint
                   FROM leases ORDER BY wallet",
                &[],
            )
            .await
            .map_err(|source| PgError::Sql {
                context: "read the leases",
                source,
            })?;
        Ok(rows
            .iter()
            .map(|row| LeaseView {
                lease: Lease {
                    wallet: row.get(0),
                    owner: row.get(1),
                    epoch: row.get(2),
                },
                expires_in_ms: row.get(3),
            })
            .collect())
    }

    /// A connection of its own, outside the pool, and the task driving it: what the
    /// fleet's LISTEN runs on.
    pub(crate) fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The password to mask out of error texts.
    pub(crate) fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }
}

/// A duration in whole milliseconds, saturated.
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The startup `options` of every session: the limits that keep a stalled session from
/// holding the lease row past [`IDLE_IN_TRANSACTION_TIMEOUT`] and a statement from waiting
/// or running unbounded, then the URL's own `options` (later settings win, so a URL may
/// override them). A pooler in front of the server must pass them through.
fn session_options(url_options: Option<&str>) -> String {
    let mut options = format!(
        "-c idle_in_transaction_session_timeout={} -c lock_timeout={} -c statement_timeout={}",
        millis(IDLE_IN_TRANSACTION_TIMEOUT),
        millis(LOCK_TIMEOUT),
        millis(STATEMENT_TIMEOUT)
    );
    if let Some(own) = url_options.map(str::trim).filter(|o| !o.is_empty()) {
        options.push(' ');
        options.push_str(own);
    }
    options
}

/// The password of a `postgres://user:password@…` URL, to mask it out of a parse error
/// (the driver's config could not be built, so it cannot say).
fn password_in(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let userinfo = rest.rsplit_once('@')?.0;
    userinfo.split_once(':').map(|(_, password)| password)
}

/// An error's text with its causes.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_found_in_a_url_to_mask_it() {
        let cases = [
            ("postgres://kyzlo:s3cret@db:5432/fleet", Some("s3cret")),
            ("postgres://kyzlo:p@ss@db/fleet", Some("p@ss")),
            ("postgres://kyzlo@db/fleet", None),
            ("postgres://db/fleet", None),
            ("not a url", None),
        ];
        for (url, expected) in cases {
            assert_eq!(password_in(url), expected, "{url}");
        }
    }

    #[test]
    fn every_session_gets_the_limits_and_keeps_the_urls_own_options() {
        let limits = "-c idle_in_transaction_session_timeout=2000 -c lock_timeout=3000 \
                      -c statement_timeout=5000";
        let cases = [
            (None, limits.to_owned()),
            (Some(""), limits.to_owned()),
            (
                Some("-c search_path=fleet"),
                format!("{limits} -c search_path=fleet"),
            ),
        ];
        for (url_options, expected) in cases {
            assert_eq!(session_options(url_options), expected, "{url_options:?}");
        }
    }

    #[tokio::test]
    async fn an_invalid_url_is_refused_without_repeating_its_password() {
        let error = PgDatabase::connect("postgres://kyzlo:s3cret@db:notaport/fleet", 1)
            .await
            .unwrap_err();
        assert!(matches!(error, PgError::InvalidUrl { .. }), "{error:?}");
        assert!(!error.to_string().contains("s3cret"), "{error}");
        assert!(!format!("{error:?}").contains("s3cret"), "{error:?}");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_connect_error_without_its_password() {
        // Port 1 on loopback: nothing listens there.
        let error = PgDatabase::connect("postgres://kyzlo:s3cret@127.0.0.1:1/fleet", 1)
            .await
            .unwrap_err();
        assert!(matches!(error, PgError::Connect { .. }), "{error:?}");
        assert!(
            !format!("{error} {error:?}").contains("s3cret"),
            "{error:?}"
        );
    }
}
