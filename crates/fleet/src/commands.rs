//! The instance's side of the operators' fleet commands: force-exits queued in the
//! database (`kyzlo fleet exit`) for a wallet this instance holds are taken (by one
//! instance only), carried out through the market's own operator handle, and answered
//! in the database. Also the fleet's halt record reached from the bots' runtime.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use kyzlo_adapters_postgres::{COMMANDS_CHANNEL, FleetCommand, PgDatabase, PgFleet};
use kyzlo_application::fleet::{FleetHalt, FleetStore};
use kyzlo_application::metrics::{CountingMetrics, MetricsSummary};
use kyzlo_application::operator::Operator;
use kyzlo_application::ports::PortError;
use kyzlo_domain::PositionId;
use kyzlo_live::journal::bridged_within;
use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::runner::{InstanceSettings, MarketPlan};

/// The running markets' operator handles, by wallet and journal market.
#[derive(Clone, Default)]
pub struct Operators {
    inner: Arc<Mutex<BTreeMap<(String, String), Running>>>,
}

struct Running {
    name: String,
    operator: Operator,
    totals: Arc<CountingMetrics>,
}

impl Operators {
    pub(crate) fn insert(
        &self,
        plan: &MarketPlan,
        operator: Operator,
        totals: Arc<CountingMetrics>,
    ) {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                (plan.wallet.clone(), plan.market.clone()),
                Running {
                    name: plan.name.clone(),
                    operator,
                    totals,
                },
            );
    }

    /// Removes a market that stopped; its totals.
    pub(crate) fn remove(&self, plan: &MarketPlan) -> Option<MetricsSummary> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(plan.wallet.clone(), plan.market.clone()))
            .map(|r| r.totals.summary())
    }

    fn operator(&self, wallet: &str, market: &str) -> Option<Operator> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(wallet.to_owned(), market.to_owned()))
            .map(|r| r.operator.clone())
    }

    /// (wallet, market name) of every running market.
    pub(crate) fn names(&self) -> Vec<(String, String)> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|((wallet, _), r)| (wallet.clone(), r.name.clone()))
            .collect()
    }
}

/// Takes and carries out the commands for the wallets held, on every announcement and
/// every poll, until shutdown.
pub(crate) async fn serve(
    db: PgDatabase,
    handle: Handle,
    settings: InstanceSettings,
    operators: Operators,
    held: watch::Receiver<BTreeSet<String>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut announced = {
        let _db_runtime = handle.enter();
        db.listen(COMMANDS_CHANNEL)
    };
    let mut pulse = crate::runner::Pulse::every(&handle, settings.poll);
    loop {
        loop {
            let wallets: Vec<String> = held.borrow().iter().cloned().collect();
            if wallets.is_empty() {
                break;
            }
            let (d, owner) = (db.clone(), settings.owner.clone());
            let taken = bridged_within(&handle, crate::runner::DB_CALL, async move {
                d.take_command(&owner, &wallets).await
            })
            .await;
            let command = match taken {
                Ok(Ok(Some(command))) => command,
                Ok(Ok(None)) => break,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "the fleet's commands could not be read");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the fleet's commands could not be read");
                    break;
                }
            };
            let result = carry_out(&operators, &command).await;
            tracing::warn!(id = command.id, wallet = %command.wallet, market = %command.market, position = command.position, result = %result, "fleet command");
            let d = db.clone();
            let id = command.id;
            if let Ok(Err(e)) = bridged_within(&handle, crate::runner::DB_CALL, async move {
                d.finish_command(id, &result).await
            })
            .await
            {
                tracing::warn!(error = %e, "a fleet command's result could not be written");
            }
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = announced.changed() => {}
            () = pulse.beat() => {}
        }
    }
}

async fn carry_out(operators: &Operators, command: &FleetCommand) -> String {
    let Some(operator) = operators.operator(&command.wallet, &command.market) else {
        return format!(
            "refused: this instance runs no market {} on wallet {}",
            command.market, command.wallet
        );
    };
    match operator.force_exit(PositionId(command.position)).await {
        Ok(intent) => format!("exit started: intent {}", intent.0),
        Err(e) => format!("refused: {e}"),
    }
}

/// The fleet's halt record on PostgreSQL, every call run on the database's runtime.
pub(crate) struct BridgedFleet {
    store: Arc<PgFleet>,
    handle: Handle,
}

impl BridgedFleet {
    pub(crate) fn new(store: Arc<PgFleet>, handle: Handle) -> Self {
        Self { store, handle }
    }

    async fn on<T, F, Fut>(&self, call: F) -> Result<T, PortError>
    where
        F: FnOnce(Arc<PgFleet>) -> Fut,
        Fut: Future<Output = Result<T, PortError>> + Send + 'static,
        T: Send + 'static,
    {
        bridged_within(
            &self.handle,
            crate::runner::DB_CALL,
            call(Arc::clone(&self.store)),
        )
        .await?
    }
}

#[async_trait]
impl FleetStore for BridgedFleet {
    async fn read(&self) -> Result<FleetHalt, PortError> {
        self.on(|s| async move { s.read().await }).await
    }

    async fn halt(&self, detail: &str, by: &str) -> Result<FleetHalt, PortError> {
        let (detail, by) = (detail.to_owned(), by.to_owned());
        self.on(|s| async move { s.halt(&detail, &by).await }).await
    }

    async fn resume(&self, generation: u64, proof: &str, by: &str) -> Result<FleetHalt, PortError> {
        let (proof, by) = (proof.to_owned(), by.to_owned());
        self.on(|s| async move { s.resume(generation, &proof, &by).await })
            .await
    }

    fn announcements(&self) -> Option<watch::Receiver<u64>> {
        self.store.announcements()
    }
}
