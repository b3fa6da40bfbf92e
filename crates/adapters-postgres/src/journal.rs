//! [`PgJournal`]: the [`Journal`] port of one market on one leased wallet. Each write is
//! one transaction that first checks the lease (`kyzlo_fence`) and whose rows carry the
//! lease's epoch (checked again by each table's trigger); an intent's outcome and the
//! position it leaves are one transaction.

use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::{Object, Transaction};
use kyzlo_application::journal::{
    AttemptOutcome, AttemptRecord, IntentAction, IntentHistory, IntentOutcome, IntentRecord,
    Journal, JournalSnapshot, NonceUse, PositionRecord,
};
use kyzlo_application::ports::PortError;
use kyzlo_domain::exit_state::Transition;
use kyzlo_domain::trading_state::TradingState;
use kyzlo_domain::{IntentId, PositionId, TokenAmount};

use crate::codec;
use crate::database::{Lease, PgDatabase};
use crate::error::{PgError, mask};
use crate::{read, transitions};

/// Where one journal's rows live: a market on a wallet, written under one lease epoch.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    pub(crate) wallet: Arc<str>,
    pub(crate) market: Arc<str>,
    pub(crate) epoch: i64,
    pub(crate) owner: Arc<str>,
}

impl Scope {
    /// The mapping of a failed statement doing `context`: a fencing refusal is
    /// [`PgError::Fenced`].
    pub(crate) fn sql(
        &self,
        context: &'static str,
    ) -> impl FnOnce(tokio_postgres::Error) -> PgError {
        let wallet = Arc::clone(&self.wallet);
        let epoch = self.epoch;
        move |source| PgError::sql(context, &wallet, epoch, source)
    }
}

/// The durable journal of one market on a wallet this instance leases.
///
/// Cloning is cheap and shares the pool.
#[derive(Clone)]
pub struct PgJournal {
    db: PgDatabase,
    scope: Scope,
}

impl std::fmt::Debug for PgJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgJournal")
            .field("wallet", &self.scope.wallet)
            .field("market", &self.scope.market)
            .field("epoch", &self.scope.epoch)
            .finish_non_exhaustive()
    }
}

impl PgJournal {
    pub(crate) fn new(db: PgDatabase, lease: &Lease, market: &str) -> Self {
        Self {
            db,
            scope: Scope {
                wallet: Arc::from(lease.wallet.as_str()),
                market: Arc::from(market),
                epoch: lease.epoch,
                owner: Arc::from(lease.owner.as_str()),
            },
        }
    }

    /// The epoch this journal writes under.
    #[must_use]
    pub fn epoch(&self) -> i64 {
        self.scope.epoch
    }

    /// Every exit-state transition journaled for `intent`, oldest first: the audit trail.
    ///
    /// # Errors
    /// [`PgError::Corrupt`] for a stored row that does not read back; [`PgError::Sql`];
    /// [`PgError::Connect`].
    pub async fn transitions(&self, intent: IntentId) -> Result<Vec<Transition>, PgError> {
        self.read(async |tx, scope| transitions::of_intent(tx, scope, intent).await)
            .await
    }

    /// A write transaction whose first statement holds the lease (shared) until commit:
    /// refused with [`PgError::Fenced`] unless this journal's owner still holds the
    /// wallet's lease at this journal's epoch.
    async fn begin<'c>(&self, client: &'c mut Object) -> Result<Transaction<'c>, PgError> {
        let tx = client
            .transaction()
            .await
            .map_err(self.scope.sql("begin a write"))?;
        let fence = tx
            .prepare_cached("SELECT kyzlo_fence($1, $2, $3)")
            .await
            .map_err(self.scope.sql("prepare the fence"))?;
        tx.execute(
            &fence,
            &[&&*self.scope.wallet, &self.scope.epoch, &&*self.scope.owner],
        )
        .await
        .map_err(self.scope.sql("check the lease"))?;
        Ok(tx)
    }

    /// Runs `write` in one write transaction (see [`PgJournal::begin`]) and commits it.
    async fn write(
        &self,
        write: impl AsyncFnOnce(&Transaction<'_>) -> Result<(), PgError>,
    ) -> Result<(), PgError> {
        let mut client = self.db.client().await?;
        match self.begin(&mut client).await {
            Ok(tx) => return self.commit(tx, write).await,
            Err(e) if !e.is_connection_lost() => return Err(e),
            Err(_) => {}
        }
        forget(std::mem::replace(&mut client, self.db.client().await?));
        let tx = self.begin(&mut client).await?;
        self.commit(tx, write).await
    }

    /// Runs `write` in `tx`, then commits it.
    async fn commit(
        &self,
        tx: Transaction<'_>,
        write: impl AsyncFnOnce(&Transaction<'_>) -> Result<(), PgError>,
    ) -> Result<(), PgError> {
        write(&tx).await?;
        tx.commit().await.map_err(self.scope.sql("commit a write"))
    }

    /// `result` as the port reports it, the URL's password masked out of its detail.
    fn port<T>(&self, operation: &'static str, result: Result<T, PgError>) -> Result<T, PortError> {
        result.map_err(|e| {
            let mut port = e.to_port_error(operation);
            port.detail = mask(&port.detail, self.db.password());
            port
        })
    }

    async fn record_intent_inner(&self, intent: &IntentRecord) -> Result<(), PgError> {
        const T: &str = "intents";
        let id = codec::int(intent.intent.0, T, "id")?;
        let position = codec::int(intent.position.0, T, "position_id")?;
        let amount = codec::int(intent.amount_in.get(), T, "amount_in")?;
        let created = codec::micros(intent.created_at, T, "created_at_us")?;
        let (action, kind) = match intent.action {
            IntentAction::Enter => ("enter", None),
            IntentAction::Exit(kind) => ("exit", Some(kind.as_str())),
        };
        let s = &self.scope;
        self.write(async |tx| {
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO intents (wallet, market, id, position_id, action, exit_kind, side,
                                          amount_in, created_at_us, epoch)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                     ON CONFLICT (wallet, market, id) DO UPDATE SET
                        position_id = excluded.position_id, action = excluded.action,
                        exit_kind = excluded.exit_kind, side = excluded.side,
                        amount_in = excluded.amount_in, created_at_us = excluded.created_at_us,
                        outcome = NULL, landed_signature = NULL, fill_amount_in = NULL,
                        fill_amount_out = NULL, fill_fee_lamports = NULL, resolved_at = NULL,
                        epoch = excluded.epoch, recorded_at = clock_timestamp()",
                )
                .await
                .map_err(s.sql("prepare an intent insert"))?;
            tx.execute(
                &stmt,
                &[
                    &&*s.wallet,
                    &&*s.market,
                    &id,
                    &position,
                    &action,
                    &kind,
                    &intent.side.as_str(),
                    &amount,
                    &created,
                    &s.epoch,
                ],
            )
            .await
            .map_err(s.sql("insert an intent"))?;
            Ok(())
        })
        .await
    }

    async fn record_attempt_inner(&self, attempt: &AttemptRecord) -> Result<(), PgError> {
        const T: &str = "attempts";
        let intent = codec::int(attempt.intent.0, T, "intent_id")?;
        let height = codec::int(
            attempt.last_valid_block_height,
            T,
            "last_valid_block_height",
        )?;
        let fee = codec::int(attempt.priority_fee.get(), T, "priority_fee_lamports")?;
        let amount = codec::int(attempt.amount_in.get(), T, "amount_in")?;
        let min_out = codec::int(attempt.min_out.get(), T, "min_out")?;
        let valid_at = codec::int(attempt.valid_at_slot, T, "valid_at_slot")?;
        let sent = codec::micros(attempt.sent_at, T, "sent_at_us")?;
        let (nonce_account, cancel) = nonce_columns(attempt)?;
        let s = &self.scope;
        self.write(async |tx| {
            read::require_intent(tx, s, T, attempt.intent).await?;
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO attempts (wallet, market, intent_id, attempt, signature, blockhash,
                                           valid_at_slot, last_valid_block_height, slippage_bps,
                                           priority_fee_lamports, amount_in, min_out, sent_at_us,
                                           epoch, nonce_account, cancel)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                             $16)
                     ON CONFLICT (wallet, market, intent_id, attempt) DO UPDATE SET
                        signature = excluded.signature, blockhash = excluded.blockhash,
                        valid_at_slot = excluded.valid_at_slot,
                        last_valid_block_height = excluded.last_valid_block_height,
                        slippage_bps = excluded.slippage_bps,
                        priority_fee_lamports = excluded.priority_fee_lamports,
                        amount_in = excluded.amount_in, min_out = excluded.min_out,
                        sent_at_us = excluded.sent_at_us,
                        nonce_account = excluded.nonce_account, cancel = excluded.cancel,
                        outcome = NULL, outcome_class = NULL, resolved_at = NULL,
                        epoch = excluded.epoch, recorded_at = clock_timestamp()",
                )
                .await
                .map_err(s.sql("prepare an attempt insert"))?;
            tx.execute(
                &stmt,
                &[
                    &&*s.wallet,
                    &&*s.market,
                    &intent,
                    &i64::from(attempt.attempt),
                    &codec::signature_text(&attempt.signature),
                    &codec::blockhash_text(&attempt.blockhash),
                    &valid_at,
                    &height,
                    &i64::from(attempt.slippage.bps().get()),
                    &fee,
                    &amount,
                    &min_out,
                    &sent,
                    &s.epoch,
                    &nonce_account,
                    &cancel,
                ],
            )
            .await
            .map_err(s.sql("insert an attempt"))?;
            Ok(())
        })
        .await
    }

    async fn record_attempt_outcome_inner(
        &self,
        intent: IntentId,
        attempt: u32,
        outcome: AttemptOutcome,
    ) -> Result<(), PgError> {
        let intent = codec::int(intent.0, "attempts", "intent_id")?;
        let (name, class) = match outcome {
            AttemptOutcome::Landed => ("landed", None),
            AttemptOutcome::Failed(class) => ("failed", Some(class.as_str())),
            AttemptOutcome::Expired => ("expired", None),
        };
        let s = &self.scope;
        self.write(async |tx| {
            let stmt = tx
                .prepare_cached(
                    "UPDATE attempts SET outcome = $5, outcome_class = $6,
                                         resolved_at = clock_timestamp(), epoch = $7
                      WHERE wallet = $1 AND market = $2 AND intent_id = $3 AND attempt = $4",
                )
                .await
                .map_err(s.sql("prepare an attempt outcome update"))?;
            tx.execute(
                &stmt,
                &[
                    &&*s.wallet,
                    &&*s.market,
                    &intent,
                    &i64::from(attempt),
                    &name,
                    &class,
                    &s.epoch,
                ],
            )
            .await
            .map_err(s.sql("update an attempt's outcome"))?;
            Ok(())
        })
        .await
    }

    async fn record_transition_inner(
        &self,
        intent: IntentId,
        transition: &Transition,
    ) -> Result<(), PgError> {
        self.write(async |tx| {
            transitions::insert(tx, &self.scope, intent, transition).await?;
            Ok(())
        })
        .await
    }

    async fn settle_intent_inner(
        &self,
        intent: IntentId,
        outcome: &IntentOutcome,
        position: Option<&PositionRecord>,
    ) -> Result<(), PgError> {
        const T: &str = "intents";
        let id = codec::int(intent.0, T, "id")?;
        let (name, landed) = match outcome {
            IntentOutcome::Filled(_) => ("filled", None),
            IntentOutcome::Landed { signature, .. } => {
                ("landed", Some(codec::signature_text(signature)))
            }
            IntentOutcome::Failed => ("failed", None),
        };
        let fill = outcome
            .fill()
            .map(|fill| {
                Ok::<_, PgError>((
                    codec::int(fill.amount_in.get(), T, "fill_amount_in")?,
                    codec::int(fill.amount_out.get(), T, "fill_amount_out")?,
                    codec::int(fill.fee.get(), T, "fill_fee_lamports")?,
                ))
            })
            .transpose()?;
        let position = position
            .map(|p| {
                const P: &str = "positions";
                Ok::<_, PgError>((
                    codec::int(p.position.0, P, "id")?,
                    p.entry_price.get(),
                    codec::int(p.size.amount().get(), P, "size")?,
                    codec::int(p.remaining.get(), P, "remaining")?,
                ))
            })
            .transpose()?;
        let s = &self.scope;
        self.write(async |tx| {
            let stmt = tx
                .prepare_cached(
                    "UPDATE intents SET outcome = $4, fill_amount_in = $5, fill_amount_out = $6,
                                        fill_fee_lamports = $7, landed_signature = $8,
                                        resolved_at = clock_timestamp(), epoch = $9
                      WHERE wallet = $1 AND market = $2 AND id = $3",
                )
                .await
                .map_err(s.sql("prepare an intent outcome update"))?;
            tx.execute(
                &stmt,
                &[
                    &&*s.wallet,
                    &&*s.market,
                    &id,
                    &name,
                    &fill.map(|f| f.0),
                    &fill.map(|f| f.1),
                    &fill.map(|f| f.2),
                    &landed,
                    &s.epoch,
                ],
            )
            .await
            .map_err(s.sql("update an intent's outcome"))?;
            if let Some((id, price, size, remaining)) = position {
                let stmt = tx
                    .prepare_cached(
                        "INSERT INTO positions (wallet, market, id, entry_price, size, remaining,
                                                epoch)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)
                         ON CONFLICT (wallet, market, id) DO UPDATE SET
                            entry_price = excluded.entry_price, size = excluded.size,
                            remaining = excluded.remaining, epoch = excluded.epoch,
                            recorded_at = clock_timestamp()",
                    )
                    .await
                    .map_err(s.sql("prepare a position upsert"))?;
                tx.execute(
                    &stmt,
                    &[
                        &&*s.wallet,
                        &&*s.market,
                        &id,
                        &price,
                        &size,
                        &remaining,
                        &s.epoch,
                    ],
                )
                .await
                .map_err(s.sql("upsert a position"))?;
            }
            Ok(())
        })
        .await
    }

    async fn record_trading_state_inner(&self, state: &TradingState) -> Result<(), PgError> {
        const T: &str = "trading_state";
        let (cause, detail, since) = match state {
            TradingState::Active => (None, None, None),
            TradingState::ReduceOnly { cause, since } => (
                Some(cause.as_str()),
                None,
                Some(codec::micros(*since, T, "since_us")?),
            ),
            TradingState::Halted { reason, since } => (
                Some(reason.cause.as_str()),
                Some(reason.detail.as_str()),
                Some(codec::micros(*since, T, "since_us")?),
            ),
        };
        let s = &self.scope;
        self.write(async |tx| {
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO trading_state (wallet, market, state, cause, detail, since_us, epoch)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .await
                .map_err(s.sql("prepare a trading state insert"))?;
            tx.execute(
                &stmt,
                &[
                    &&*s.wallet,
                    &&*s.market,
                    &state.as_str(),
                    &cause,
                    &detail,
                    &since,
                    &s.epoch,
                ],
            )
            .await
            .map_err(s.sql("insert a trading state"))?;
            Ok(())
        })
        .await
    }

    async fn record_control_inner(&self, key: &'static str, value: u64) -> Result<(), PgError> {
        let value = codec::int(value, "control", "value")?;
        let s = &self.scope;
        self.write(async |tx| {
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO control (wallet, market, key, value, epoch)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (wallet, market, key) DO UPDATE SET
                        value = excluded.value, epoch = excluded.epoch,
                        recorded_at = clock_timestamp()",
                )
                .await
                .map_err(s.sql("prepare a control counter upsert"))?;
            tx.execute(&stmt, &[&&*s.wallet, &&*s.market, &key, &value, &s.epoch])
                .await
                .map_err(s.sql("set a control counter"))?;
            Ok(())
        })
        .await
    }

    /// Runs `f` in one read transaction (see [`read::begin`]).
    async fn read<T>(
        &self,
        f: impl AsyncFnOnce(&Transaction<'_>, &Scope) -> Result<T, PgError>,
    ) -> Result<T, PgError> {
        let mut client = self.db.client().await?;
        match read::begin(&mut client, &self.scope).await {
            Ok(tx) => return self.end_read(tx, f).await,
            Err(e) if !e.is_connection_lost() => return Err(e),
            Err(_) => {}
        }
        forget(std::mem::replace(&mut client, self.db.client().await?));
        let tx = read::begin(&mut client, &self.scope).await?;
        self.end_read(tx, f).await
    }

    /// Runs `f` in `tx`, then ends it.
    async fn end_read<T>(
        &self,
        tx: Transaction<'_>,
        f: impl AsyncFnOnce(&Transaction<'_>, &Scope) -> Result<T, PgError>,
    ) -> Result<T, PgError> {
        let value = f(&tx, &self.scope).await?;
        tx.commit().await.map_err(self.scope.sql("end a read"))?;
        Ok(value)
    }
}

/// An attempt's `nonce_account` (base58, NULL on a recent blockhash) and `cancel`
/// columns. The nonce's value is stored once, as the `blockhash` the message carries, so
/// an attempt whose nonce value is not its blockhash is refused rather than stored as
/// something else.
fn nonce_columns(attempt: &AttemptRecord) -> Result<(Option<String>, bool), PgError> {
    match attempt.nonce {
        None => Ok((None, false)),
        Some(NonceUse { nonce, .. }) if nonce.value != attempt.blockhash => {
            Err(PgError::NonceNotBlockhash {
                intent: attempt.intent.0,
                attempt: attempt.attempt,
            })
        }
        Some(NonceUse { nonce, cancel }) => {
            Ok((Some(codec::nonce_account_text(&nonce.account)), cancel))
        }
    }
}

/// Drops a pooled connection found lost as a transaction began, out of the pool, so no
/// later call is handed it.
///
/// A connection the server or the network ended while the pool held it (a session ended
/// by the idle-in-transaction timeout during a partition, a restarted server) can look
/// alive when it is checked out: the driver learns of the end only as it reads it. Only
/// `BEGIN` (and the fence, which writes nothing) can have been sent on it, and its session
/// is gone with any transaction, so the call begins again once on a fresh connection
/// instead of failing for a reason that is not its own.
fn forget(lost: Object) {
    drop(Object::take(lost));
}

#[async_trait]
impl Journal for PgJournal {
    async fn record_intent(&self, intent: &IntentRecord) -> Result<(), PortError> {
        let result = self.record_intent_inner(intent).await;
        self.port("journal.record_intent", result)
    }

    async fn record_attempt(&self, attempt: &AttemptRecord) -> Result<(), PortError> {
        let result = self.record_attempt_inner(attempt).await;
        self.port("journal.record_attempt", result)
    }

    async fn record_attempt_outcome(
        &self,
        intent: IntentId,
        attempt: u32,
        outcome: AttemptOutcome,
    ) -> Result<(), PortError> {
        let result = self
            .record_attempt_outcome_inner(intent, attempt, outcome)
            .await;
        self.port("journal.record_attempt_outcome", result)
    }

    async fn record_transition(
        &self,
        intent: IntentId,
        transition: &Transition,
    ) -> Result<(), PortError> {
        let result = self.record_transition_inner(intent, transition).await;
        self.port("journal.record_transition", result)
    }

    async fn settle_intent(
        &self,
        intent: IntentId,
        outcome: &IntentOutcome,
        position: Option<&PositionRecord>,
    ) -> Result<(), PortError> {
        let result = self.settle_intent_inner(intent, outcome, position).await;
        self.port("journal.settle_intent", result)
    }

    async fn record_trading_state(&self, state: &TradingState) -> Result<(), PortError> {
        let result = self.record_trading_state_inner(state).await;
        self.port("journal.record_trading_state", result)
    }

    async fn record_exit_failures(&self, consecutive: u32) -> Result<(), PortError> {
        let result = self
            .record_control_inner("exit_failures", u64::from(consecutive))
            .await;
        self.port("journal.record_exit_failures", result)
    }

    async fn record_free_base(&self, free: TokenAmount) -> Result<(), PortError> {
        let result = self.record_control_inner("free_base", free.get()).await;
        self.port("journal.record_free_base", result)
    }

    async fn position(&self, id: PositionId) -> Result<Option<PositionRecord>, PortError> {
        let result = self
            .read(async |tx, scope| read::position(tx, scope, id).await)
            .await;
        self.port("journal.position", result)
    }

    async fn load(&self) -> Result<JournalSnapshot, PortError> {
        let result = self
            .read(async |tx, scope| read::load(tx, scope).await)
            .await;
        self.port("journal.load", result)
    }

    async fn exit_history(&self, limit: usize) -> Result<Vec<IntentHistory>, PortError> {
        let result = self
            .read(async |tx, scope| read::exit_history(tx, scope, limit).await)
            .await;
        self.port("journal.exit_history", result)
    }
}
