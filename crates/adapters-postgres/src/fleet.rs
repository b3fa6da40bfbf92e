//! The fleet's coordination on its database: the halt record every instance follows
//! ([`PgFleet`], the application's `FleetStore`: one row, `fleet_halt`, whose every
//! change is announced on the channel `kyzlo_fleet` by a trigger and LISTENed for on a
//! connection of its own), the instances' registry (`instances`, for `fleet status`), and
//! the operators' commands to the instance holding a wallet (`fleet_commands`, announced
//! on `kyzlo_commands`).

use std::time::Duration;

use async_trait::async_trait;
use kyzlo_application::fleet::{FleetHalt, FleetStore};
use kyzlo_application::ports::PortError;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls, Row};

use crate::database::PgDatabase;
use crate::error::PgError;

/// The channel a change of the halt record is announced on.
pub const FLEET_CHANNEL: &str = "kyzlo_fleet";
/// The channel a new operator command is announced on.
pub const COMMANDS_CHANNEL: &str = "kyzlo_commands";
/// How long the listener waits before connecting again after losing its connection.
const RELISTEN: Duration = Duration::from_secs(1);

fn sql(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> PgError {
    move |source| PgError::Sql { context, source }
}

fn halt_of(row: &Row) -> Result<FleetHalt, PgError> {
    let generation: i64 = row.get("generation");
    Ok(FleetHalt {
        generation: u64::try_from(generation).map_err(|_| PgError::Corrupt {
            table: "fleet_halt",
            column: "generation",
            value: generation.to_string(),
        })?,
        halted: row.get("halted"),
        detail: row.get("detail"),
        by: row.get("by_whom"),
        proof: row.get("proof"),
    })
}

const HALT_COLUMNS: &str = "generation, halted, detail, by_whom, proof";

impl PgDatabase {
    /// The fleet's halt record now.
    ///
    /// # Errors
    /// [`PgError::Connect`], [`PgError::Sql`], [`PgError::Corrupt`].
    pub async fn fleet_halt(&self) -> Result<FleetHalt, PgError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                &format!("SELECT {HALT_COLUMNS} FROM fleet_halt WHERE id = 1"),
                &[],
            )
            .await
            .map_err(sql("read the fleet's halt record"))?;
        halt_of(&row)
    }

    /// Halts the fleet (a new generation) unless it is halted; the record after.
    ///
    /// # Errors
    /// As [`PgDatabase::fleet_halt`].
    pub async fn halt_fleet(&self, detail: &str, by: &str) -> Result<FleetHalt, PgError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "UPDATE fleet_halt SET generation = generation + 1, halted = true,
                            detail = $1, by_whom = $2, proof = NULL, changed_at = clock_timestamp()
                      WHERE id = 1 AND NOT halted
                  RETURNING {HALT_COLUMNS}"
                ),
                &[&detail, &by],
            )
            .await
            .map_err(sql("halt the fleet"))?;
        drop(client);
        match row {
            Some(row) => halt_of(&row),
            None => self.fleet_halt().await,
        }
    }

    /// Resumes the fleet halted at `generation` with `proof`; nothing if the record
    /// moved on. The record after.
    ///
    /// # Errors
    /// As [`PgDatabase::fleet_halt`].
    pub async fn resume_fleet(
        &self,
        generation: u64,
        proof: &str,
        by: &str,
    ) -> Result<FleetHalt, PgError> {
        let generation = i64::try_from(generation).map_err(|_| PgError::Overflow {
            table: "fleet_halt",
            column: "generation",
            value: generation,
        })?;
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "UPDATE fleet_halt SET generation = generation + 1, halted = false,
                            detail = 'resumed', by_whom = $3, proof = $2,
                            changed_at = clock_timestamp()
                      WHERE id = 1 AND halted AND generation = $1
                  RETURNING {HALT_COLUMNS}"
                ),
                &[&generation, &proof, &by],
            )
            .await
            .map_err(sql("resume the fleet"))?;
        drop(client);
        match row {
            Some(row) => halt_of(&row),
            None => self.fleet_halt().await,
        }
    }

    /// Records that `owner` runs `markets` (`wallet market` each), now: what `fleet
    /// status` lists as the fleet's instances.
    ///
    /// # Errors
    /// [`PgError::Connect`], [`PgError::Sql`].
    pub async fn register(&self, owner: &str, markets: &[String]) -> Result<(), PgError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO instances (owner, started_at, seen_at, markets)
                 VALUES ($1, clock_timestamp(), clock_timestamp(), $2)
                 ON CONFLICT (owner) DO UPDATE SET seen_at = clock_timestamp(), markets = $2",
                &[&owner, &markets.join("\n")],
            )
            .await
            .map_err(sql("register an instance"))?;
        Ok(())
    }

    /// Removes `owner` from the registry (a clean stop).
    ///
    /// # Errors
    /// [`PgError::Connect`], [`PgError::Sql`].
    pub async fn unregister(&self, owner: &str) -> Result<(), PgError> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM instances WHERE owner = $1", &[&owner])
            .await
            .map_err(sql("unregister an instance"))?;
        Ok(())
    }

    /// Every registered instance, with how long ago it was last seen.
    ///
    /// # Errors
    /// [`PgError::Connect`], [`PgError::Sql`].
    pub async fn instances(&self) -> Result<Vec<InstanceView>, PgError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT owner, markets,
                        (extract(epoch FROM clock_timestamp() - seen_at) * 1000)::bigint
                   FROM instances ORDER BY owner",
                &[],
            )
            .await
            .map_err(sql("read the instances"))?;
        Ok(rows
            .iter()
            .map(|row| InstanceView {
                owner: row.get(0),
                markets: row.get::<_, String>(1).lines().map(str::to_owned).collect(),
                seen_ms_ago: row.get(2),
            })
            .collect())
    }

    /// Every market journaled: its latest trading state and its open positions.
    ///
    /// # Errors
    /// [`PgError::Connect`], [`PgError::Sql`].
    pub async fn markets(&self) -> Result<Vec<MarketView>, PgError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "WITH markets AS (
                     SELECT DISTINCT wallet, market FROM intents
                     UNION SELECT DISTINCT wallet, market FROM trading_state)
                 SELECT m.wallet, m.market,
                        (SELECT t.state || coalesce(' (' || t.cause || ')', '')
                           FROM trading_state t
                          WHERE t.wallet = m.wallet AND t.market = m.market
                          ORDER BY t.id DESC LIMIT 1),
                        (SELECT count(*) FROM positions p
                          WHERE p.wallet = m.wallet AND p.market = m.market AND p.remaining > 0),
                        (SELECT coalesce(string_agg(p.id::text, ',' ORDER BY p.id), '')
                           FROM positions p
                          WHERE p.wallet = m.wallet AND p.market = m.market AND p.remaining > 0)
                   FROM markets m ORDER BY m.wallet, m.market",
                &[],
            )
            .await
            .map_err(sql("read the markets"))?;
        Ok(rows
            .iter()
            .map(|row| MarketView {
                wallet: row.get(0),
                market: row.get(1),
                state: row
                    .get::<_, Option<String>>(2)
                    .unwrap_or_else(|| "active".to_owned()),
                open_positions: u64::try_from(row.get::<_, i64>(3)).unwrap_or(0),
                position_ids: row
                    .get::<_, String>(4)
                    .split(',')
                    .filter_map(|id| id.parse().ok())
                    .collect(),
            })
            .collect())
    }

    /// Queues an operator's force-exit of `position` for the instance holding `wallet`;
    /// its id.
    ///
    /// # Errors
    /// [`PgError::Connect`], [`PgError::Sql`], [`PgError::Overflow`].
    pub async fn request_exit(
        &self,
        wallet: &str,
        market: &str,
        position: u64,
        by: &str,
    ) -> Result<i64, PgError> {
        let position = i64::try_from(position).map_err(|_| PgError::Overflow {
            table: "fleet_commands",
            column: "position_id",
            value: position,
        })?;
        let client = self.client().await?;
        let row = client
            .query_one(
                "INSERT INTO fleet_commands (wallet, market, position_id, kind, requested_by)
                 VALUES ($1, $2, $3, 'force_exit', $4) RETURNING id",
                &[&wallet, &market, &position, &by],
            )
            .await
            .map_err(sql("queue a command"))?;
        Ok(row.get(0))
    }

    /// Takes the oldest command not yet taken for one of `wallets` whose lease `owner`
    /// holds now (by the database's clock), so that no other instance takes it too and a
    /// former holder takes nothing.
    ///
    /// # Errors
    /// [`PgError::Connect`], [`PgError::Sql`].
    pub async fn take_command(
        &self,
        owner: &str,
        wallets: &[String],
    ) -> Result<Option<FleetCommand>, PgError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "UPDATE fleet_commands SET taken_by = $1, taken_at = clock_timestamp()
                  WHERE id = (SELECT c.id FROM fleet_commands c
                               WHERE c.taken_by IS NULL AND c.wallet = ANY($2)
                                 AND EXISTS (SELECT 1 FROM leases l
                                              WHERE l.wallet = c.wallet AND l.owner = $1
                                                AND l.expires_at > clock_timestamp())
                               ORDER BY c.id LIMIT 1 FOR UPDATE SKIP LOCKED)
              RETURNING id, wallet, market, position_id",
                &[&owner, &wallets],
            )
            .await
            .map_err(sql("take a command"))?;
        Ok(row.map(|row| FleetCommand {
            id: row.get(0),
            wallet: row.get(1),
            market: row.get(2),
            position: u64::try_from(row.get::<_, i64>(3)).unwrap_or(0),
        }))
    }

    /// Records a taken command's result.
    ///
    /// # Errors
    /// [`PgError::Connect`], [`PgError::Sql`].
    pub async fn finish_command(&self, id: i64, result: &str) -> Result<(), PgError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE fleet_commands SET result = $2, done_at = clock_timestamp() WHERE id = $1",
                &[&id, &result],
            )
            .await
            .map_err(sql("finish a command"))?;
        Ok(())
    }

    /// A command's progress: who took it and its result, once done.
    ///
    /// # Errors
    /// [`PgError::Connect`], [`PgError::Sql`].
    pub async fn command(&self, id: i64) -> Result<Option<CommandView>, PgError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT taken_by, result FROM fleet_commands WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(sql("read a command"))?;
        Ok(row.map(|row| CommandView {
            taken_by: row.get(0),
            result: row.get(1),
        }))
    }

    /// Withdraws a command nobody took.
    ///
    /// # Errors
    /// [`PgError::Connect`], [`PgError::Sql`].
    pub async fn withdraw_command(&self, id: i64) -> Result<bool, PgError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "DELETE FROM fleet_commands WHERE id = $1 AND taken_by IS NULL",
                &[&id],
            )
            .await
            .map_err(sql("withdraw a command"))?;
        Ok(n == 1)
    }

    /// Listens on `channel` on a connection of its own, for as long as the returned
    /// receiver is held: every notification's payload is announced (parsed as a number,
    /// 0 when it is not one). The connection is made again after it is lost.
    #[must_use]
    pub fn listen(&self, channel: &'static str) -> watch::Receiver<u64> {
        let (tx, rx) = watch::channel(0);
        let config = self.config().clone();
        tokio::spawn(async move {
            while !tx.is_closed() {
                if let Err(e) = listen_once(&config, channel, &tx).await {
                    tracing::warn!(channel, error = %e, "fleet LISTEN connection lost; polling until it is back");
                }
                tokio::time::sleep(RELISTEN).await;
            }
        });
        rx
    }
}

/// One LISTEN connection, until it fails or nobody listens.
async fn listen_once(
    config: &tokio_postgres::Config,
    channel: &'static str,
    tx: &watch::Sender<u64>,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (messages_tx, mut messages) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    let _ = messages_tx.send(Ok(n.payload().parse::<u64>().unwrap_or(0)));
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = messages_tx.send(Err(e));
                    return;
                }
            }
        }
    });
    let result = async {
        client.batch_execute(&format!("LISTEN {channel}")).await?;
        // Announced once connected: a change made while the listener was away is read.
        tx.send_modify(|_| {});
        loop {
            tokio::select! {
                message = messages.recv() => match message {
                    Some(Ok(n)) => tx.send_replace(n),
                    Some(Err(e)) => return Err(e),
                    None => return Ok(()),
                },
                () = tx.closed() => return Ok(()),
            };
        }
    }
    .await;
    driver.abort();
    result
}

/// An instance as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceView {
    /// Its owner id (host, process, random suffix).
    pub owner: String,
    /// The markets it runs, `wallet market` each.
    pub markets: Vec<String>,
    /// Milliseconds since it was last seen.
    pub seen_ms_ago: i64,
}

/// A market as the journal holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketView {
    /// The wallet.
    pub wallet: String,
    /// The market.
    pub market: String,
    /// Its latest trading state, with its cause.
    pub state: String,
    /// How many positions are open.
    pub open_positions: u64,
    /// Their ids.
    pub position_ids: Vec<u64>,
}

/// An operator's command for the instance holding a wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetCommand {
    /// Its id.
    pub id: i64,
    /// The wallet.
    pub wallet: String,
    /// The market.
    pub market: String,
    /// The position to exit.
    pub position: u64,
}

/// A command's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandView {
    /// The instance that took it.
    pub taken_by: Option<String>,
    /// Its result, once done.
    pub result: Option<String>,
}

/// The fleet's halt record on PostgreSQL, announced by LISTEN/NOTIFY.
pub struct PgFleet {
    db: PgDatabase,
    announced: watch::Receiver<u64>,
}

impl PgFleet {
    /// The record of `db`'s fleet, LISTENing for its changes from now on.
    #[must_use]
    pub fn new(db: PgDatabase) -> Self {
        let announced = db.listen(FLEET_CHANNEL);
        Self { db, announced }
    }
}

#[async_trait]
impl FleetStore for PgFleet {
    async fn read(&self) -> Result<FleetHalt, PortError> {
        self.db
            .fleet_halt()
            .await
            .map_err(|e| e.to_port_error("fleet.read"))
    }

    async fn halt(&self, detail: &str, by: &str) -> Result<FleetHalt, PortError> {
        self.db
            .halt_fleet(detail, by)
            .await
            .map_err(|e| e.to_port_error("fleet.halt"))
    }

    async fn resume(&self, generation: u64, proof: &str, by: &str) -> Result<FleetHalt, PortError> {
        self.db
            .resume_fleet(generation, proof, by)
            .await
            .map_err(|e| e.to_port_error("fleet.resume"))
    }

    fn announcements(&self) -> Option<watch::Receiver<u64>> {
        Some(self.announced.clone())
    }
}
