//! Several RPC endpoints, primary first, and what the adapter knows of each one's health.
//!
//! **Health is kept in the background.** With more than one endpoint, a prober (one tokio
//! task, started by the first call and ended when the endpoints are dropped) asks every
//! endpoint `getSlot` every [`PROBE_INTERVAL`], each request under the request timeout.
//! An endpoint fails (transport error, timeout, HTTP 429 or 5xx, node-unhealthy JSON-RPC
//! code: see [`SolanaError::is_endpoint_failure`]) on a probe or on a call: it is then
//! passed over for the cool-down from its latest failure, and after it until a probe
//! succeeds, so no call pays a dead endpoint's request timeout to learn whether it came
//! back, and one good probe in the middle of a provider's trouble does not bring it back.
//! Any other answer to a call, even an error, is the node answering: it clears the
//! failure. An endpoint whose latest probe saw a slot more than [`BEHIND_SLOTS`] behind the
//! furthest of the endpoints not failing is tried after the others: it answers, but from
//! an old view (stale statuses, newer blockhashes unknown to its preflight).
//!
//! **Reads are hedged.** A read goes to the first candidate; when it has not answered
//! within [`HEDGE_DELAY`], the same read also goes to the next, and so on; an endpoint
//! failure starts the next at once. The first answer wins (a node's error answer too) and
//! the requests still out are dropped: a dropped request says nothing of its endpoint,
//! the prober judges it.
//!
//! **Sends** without send lanes go to one candidate at a time and fail over the same way
//! on an endpoint failure; they are not hedged (which error a failed send reports depends
//! on every endpoint it reached, see [`Endpoints::send`]).
//!
//! When every endpoint is passed over, all are tried anyway, the one whose cool-down ends
//! first first: a call is never refused without one attempt. With one endpoint there is
//! nothing to choose between, and nothing is probed.
//!
//! The probes are requests the application's request budget does not count: one per
//! endpoint per [`PROBE_INTERVAL`].

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures::FutureExt as _;
use futures::StreamExt as _;
use futures::future::{BoxFuture, join_all};
use futures::stream::FuturesUnordered;
use kyzlo_application::ports::PortError;
use kyzlo_domain::ErrorClass;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_client::rpc_client::RpcClientConfig;
use solana_commitment_config::CommitmentConfig;
use tokio::task::AbortHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::{SolanaConfig, endpoint_label};
use crate::error::{SolanaError, classify};
use crate::sender::HttpRpcSender;

/// How often every endpoint is probed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// How long a read waits for its endpoint's answer before it also goes to the next one:
/// above a healthy provider's usual answer time, far below the request timeout.
pub const HEDGE_DELAY: Duration = Duration::from_millis(200);
/// How far behind the furthest endpoint's slot an endpoint may be before it is tried
/// after the others (4 s of slots).
pub const BEHIND_SLOTS: u64 = 10;

/// What the adapter knows of one endpoint.
#[derive(Debug, Clone, Copy, Default)]
struct Health {
    /// Its latest failure (a call's or a probe's), while it is passed over.
    failed_at: Option<Instant>,
    /// The slot its latest successful probe saw.
    slot: Option<u64>,
}

/// One endpoint and its health.
pub(crate) struct Endpoint {
    label: String,
    client: RpcClient,
    health: Mutex<Health>,
}

impl Endpoint {
    fn health(&self) -> Health {
        *self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update<R>(&self, change: impl FnOnce(&mut Health) -> R) -> R {
        change(&mut self.health.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// What an operator sees of one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointStatus {
    /// Scheme, host and port (no credentials).
    pub label: String,
    /// Whether calls pass it over: it failed, and its cool-down has not ended or no probe
    /// has succeeded since.
    pub passed_over: bool,
    /// How much longer its cool-down runs, if it does.
    pub cooling_for: Option<Duration>,
    /// The slot its latest successful probe saw.
    pub slot: Option<u64>,
}

/// The HTTP client every `RpcClient` of this adapter posts through: the configured
/// timeouts, and no redirects (a redirect would carry a lane's headers to another host).
pub(crate) fn http_client(
    config: &SolanaConfig,
    field: &'static str,
) -> Result<reqwest::Client, SolanaError> {
    reqwest::Client::builder()
        .timeout(config.request_timeout)
        .connect_timeout(config.connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .map_err(|_| SolanaError::Config {
            field,
            expected: "an HTTP client that can be built (TLS available)",
        })
}

/// A call on one endpoint's client.
pub(crate) type Call<'a, T> = BoxFuture<'a, Result<T, SolanaError>>;

/// The probe: a cheap read answering the endpoint's slot.
type Probe = Arc<dyn for<'a> Fn(&'a RpcClient) -> Call<'a, u64> + Send + Sync>;

fn probe_of<F>(probe: F) -> Probe
where
    F: for<'a> Fn(&'a RpcClient) -> Call<'a, u64> + Send + Sync + 'static,
{
    Arc::new(probe)
}

/// `getSlot` at `commitment`.
fn get_slot(commitment: CommitmentConfig) -> Probe {
    probe_of(move |client| {
        Box::pin(async move {
            client
                .get_slot_with_commitment(commitment)
                .await
                .map_err(|e| classify(&e))
        })
    })
}

/// The endpoints and their health, shared with the prober.
struct Pool {
    list: Vec<Endpoint>,
    cooldown: Duration,
}

impl Pool {
    fn passed_over(&self, health: &Health) -> bool {
        health.failed_at.is_some()
    }

    /// The endpoints to try, in order: those not failing, the ones behind last; if every
    /// one is failing, all, the one whose cool-down ends first first.
    fn candidates(&self) -> Vec<&Endpoint> {
        let health: Vec<Health> = self.list.iter().map(Endpoint::health).collect();
        let furthest = health
            .iter()
            .filter(|h| !self.passed_over(h))
            .filter_map(|h| h.slot)
            .max();
        let behind = |h: &Health| matches!((h.slot, furthest), (Some(slot), Some(top)) if slot.saturating_add(BEHIND_SLOTS) < top);
        let mut usable: Vec<(bool, &Endpoint)> = self
            .list
            .iter()
            .zip(&health)
            .filter(|(_, h)| !self.passed_over(h))
            .map(|(e, h)| (behind(h), e))
            .collect();
        if !usable.is_empty() {
            usable.sort_by_key(|(behind, _)| *behind);
            return usable.into_iter().map(|(_, e)| e).collect();
        }
        let mut all: Vec<(&Endpoint, Option<Instant>)> = self
            .list
            .iter()
            .zip(&health)
            .map(|(e, h)| (e, h.failed_at))
            .collect();
        all.sort_by_key(|(_, failed_at)| *failed_at);
        all.into_iter().map(|(e, _)| e).collect()
    }

    fn failed(&self, endpoint: &Endpoint, error: &SolanaError, by: &'static str) {
        let was = endpoint.update(|h| h.failed_at.replace(Instant::now()));
        if was.is_none() {
            tracing::warn!(
                endpoint = %endpoint.label,
                by,
                class = %error.class(),
                error = %error,
                cooldown_s = self.cooldown.as_secs_f64(),
                "RPC endpoint failing: passed over for the cool-down and until a probe succeeds"
            );
        }
    }

    /// A call's outcome on `endpoint`.
    fn record(&self, endpoint: &Endpoint, outcome: Result<(), &SolanaError>) {
        match outcome {
            Err(error) if error.is_endpoint_failure() => self.failed(endpoint, error, "call"),
            // Any answer from the node, even an error, shows it is reachable.
            _ => endpoint.update(|h| h.failed_at = None),
        }
    }

    /// A probe's outcome on `endpoint`: a failure passes it over; an answer brings it
    /// back once its cool-down has ended.
    fn probed(&self, endpoint: &Endpoint, outcome: Result<u64, &SolanaError>) {
        let now = Instant::now();
        match outcome {
            Err(error) if error.is_endpoint_failure() => self.failed(endpoint, error, "probe"),
            answer => {
                let back = endpoint.update(|h| {
                    if let Ok(slot) = answer {
                        h.slot = Some(slot);
                    }
                    let back = h.failed_at.is_some_and(|at| at + self.cooldown <= now);
                    if back {
                        h.failed_at = None;
                    }
                    back
                });
                if back {
                    tracing::info!(endpoint = %endpoint.label, "RPC endpoint back: its probe succeeded after its cool-down");
                }
            }
        }
    }

    /// One probe of every endpoint, at once.
    async fn probe_all(&self, probe: &Probe) {
        join_all(self.list.iter().map(|endpoint| async move {
            let outcome = probe(&endpoint.client).await;
            self.probed(endpoint, outcome.as_ref().copied());
        }))
        .await;
    }
}

/// Probes every endpoint every [`PROBE_INTERVAL`] while the endpoints exist.
async fn probe_forever(pool: Weak<Pool>, probe: Probe) {
    let mut interval = tokio::time::interval(PROBE_INTERVAL);
    // A round that outlasts the interval (a dead endpoint's request timeout) delays the
    // next rather than bunching probes.
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        pool.probe_all(&probe).await;
    }
}

/// `call` started on `endpoint`, its outcome tagged with the endpoint.
fn launch<'s, T, F>(
    call: &F,
    endpoint: &'s Endpoint,
) -> impl Future<Output = (&'s Endpoint, Result<T, SolanaError>)> + 's
where
    F: for<'a> Fn(&'a RpcClient) -> Call<'a, T>,
    T: 's,
{
    call(&endpoint.client).map(move |outcome| (endpoint, outcome))
}

/// The endpoints, primary first, and their prober.
pub(crate) struct Endpoints {
    pool: Arc<Pool>,
    probe: Probe,
    prober: Mutex<Option<AbortHandle>>,
}

impl Drop for Endpoints {
    fn drop(&mut self) {
        if let Some(prober) = self
            .prober
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            prober.abort();
        }
    }
}

impl Endpoints {
    /// Builds one `RpcClient` per endpoint over our no-retry sender.
    pub(crate) fn new(config: &SolanaConfig) -> Result<Self, SolanaError> {
        Self::with_probe(config, get_slot(config.commitment_config()))
    }

    fn with_probe(config: &SolanaConfig, probe: Probe) -> Result<Self, SolanaError> {
        config.validate()?;
        let http = http_client(config, "endpoints")?;
        let list = config
            .endpoints
            .iter()
            .map(|url| Endpoint {
                label: endpoint_label(url),
                client: RpcClient::new_sender(
                    HttpRpcSender::new(http.clone(), url.clone(), config.request_timeout),
                    RpcClientConfig::with_commitment(config.commitment_config()),
                ),
                health: Mutex::new(Health::default()),
            })
            .collect();
        Ok(Self {
            pool: Arc::new(Pool {
                list,
                cooldown: config.endpoint_cooldown,
            }),
            probe,
            prober: Mutex::new(None),
        })
    }

    /// Health of every endpoint, primary first.
    pub(crate) fn status(&self) -> Vec<EndpointStatus> {
        let now = Instant::now();
        self.pool
            .list
            .iter()
            .map(|e| {
                let health = e.health();
                EndpointStatus {
                    label: e.label.clone(),
                    passed_over: self.pool.passed_over(&health),
                    cooling_for: health
                        .failed_at
                        .map(|at| (at + self.pool.cooldown).saturating_duration_since(now))
                        .filter(|left| !left.is_zero()),
                    slot: health.slot,
                }
            })
            .collect()
    }

    /// Starts the prober if there is something to choose between and it is not running
    /// (it runs on the runtime of the call that starts it, and is started again if that
    /// runtime has gone).
    fn keep_probing(&self) {
        if self.pool.list.len() < 2 {
            return;
        }
        let mut prober = self.prober.lock().unwrap_or_else(PoisonError::into_inner);
        if prober.as_ref().is_some_and(|p| !p.is_finished()) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let task = runtime.spawn(probe_forever(
            Arc::downgrade(&self.pool),
            Arc::clone(&self.probe),
        ));
        *prober = Some(task.abort_handle());
    }

    /// Runs `call` on the first candidate, hedged onto the next ones (see the module
    /// docs): the first answer wins.
    pub(crate) async fn read<T, F>(&self, operation: &'static str, call: F) -> Result<T, PortError>
    where
        F: for<'a> Fn(&'a RpcClient) -> Call<'a, T>,
    {
        self.keep_probing();
        let mut queue = self.pool.candidates().into_iter();
        let mut in_flight = FuturesUnordered::new();
        let mut last: Option<(String, SolanaError)> = None;
        let mut hedge_at = Instant::now();
        let mut start_next = true;
        loop {
            if std::mem::take(&mut start_next)
                && let Some(endpoint) = queue.next()
            {
                in_flight.push(launch(&call, endpoint));
                hedge_at = Instant::now() + HEDGE_DELAY;
            }
            if in_flight.is_empty() {
                break;
            }
            let more = queue.len() > 0;
            tokio::select! {
                biased;
                Some((endpoint, outcome)) = in_flight.next() => {
                    self.pool.record(endpoint, outcome.as_ref().map(|_| ()));
                    match outcome {
                        Ok(value) => return Ok(value),
                        Err(error) if error.is_endpoint_failure() => {
                            last = Some((endpoint.label.clone(), error));
                            start_next = true;
                        }
                        Err(error) => return Err(error.to_port_error(operation, &endpoint.label)),
                    }
                }
                () = tokio::time::sleep_until(hedge_at), if more => start_next = true,
            }
        }
        Err(match last {
            Some((label, error)) => error.to_port_error(operation, &label),
            None => PortError::new(operation, ErrorClass::Unknown, "no endpoint configured"),
        })
    }

    /// Runs `call` (a send) on the first candidate, then on the next while they fail as
    /// endpoints; an answer from a node, even a refusal, ends it. Succeeds when any
    /// endpoint succeeds. When none does, the error is the most cautious one seen: a class
    /// under which the transaction may still land (a timeout first) wins over a definite
    /// refusal, since an endpoint that timed out may have forwarded the bytes.
    pub(crate) async fn send<F>(&self, operation: &'static str, call: F) -> Result<(), PortError>
    where
        F: for<'a> Fn(&'a RpcClient) -> Call<'a, ()>,
    {
        self.keep_probing();
        let mut seen: Vec<(String, SolanaError)> = Vec::new();
        for endpoint in self.pool.candidates() {
            let outcome = call(&endpoint.client).await;
            self.pool.record(endpoint, outcome.as_ref().map(|_| ()));
            match outcome {
                Ok(()) => return Ok(()),
                Err(error) => {
                    let node_answered = !error.is_endpoint_failure();
                    seen.push((endpoint.label.clone(), error));
                    if node_answered {
                        break;
                    }
                }
            }
        }
        Err(most_cautious(operation, seen))
    }
}

fn caution_rank(class: ErrorClass) -> u8 {
    match class {
        ErrorClass::RpcTimeout => 0,
        ErrorClass::Network => 1,
        ErrorClass::NodeUnhealthy => 2,
        ErrorClass::RateLimited => 3,
        ErrorClass::Unknown => 4,
        _ => 5,
    }
}

/// Of several endpoints' or lanes' errors for one send, the one under which the
/// transaction is most likely to still land, as a [`PortError`] naming its endpoint.
pub(crate) fn most_cautious(
    operation: &'static str,
    seen: Vec<(String, SolanaError)>,
) -> PortError {
    seen.into_iter()
        .min_by_key(|(_, error)| caution_rank(error.class()))
        .map_or_else(
            || PortError::new(operation, ErrorClass::Unknown, "no endpoint configured"),
            |(label, error)| error.to_port_error(operation, &label),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use solana_transaction_error::TransactionError;

    const TIMEOUT: Duration = Duration::from_secs(1);
    const URLS: [&str; 3] = ["http://a.test/", "http://b.test/", "http://c.test/"];

    /// Three scripted endpoints: the first gives no answer (a request times out) until
    /// `dead_until` after the start; probes answer each endpoint's slot.
    struct World {
        start: Instant,
        dead_until: Duration,
        slots: [u64; 3],
        /// The reads (not probes) each endpoint received.
        reads: Mutex<[u32; 3]>,
    }

    impl World {
        fn new(dead_until: Duration, slots: [u64; 3]) -> Arc<Self> {
            Arc::new(Self {
                start: Instant::now(),
                dead_until,
                slots,
                reads: Mutex::new([0; 3]),
            })
        }

        fn endpoints(self: &Arc<Self>) -> Endpoints {
            let config = SolanaConfig {
                request_timeout: TIMEOUT,
                ..SolanaConfig::new(URLS.iter().map(|u| u.parse().unwrap()).collect())
            };
            let world = Arc::clone(self);
            let probe = probe_of(move |client| {
                let (world, url) = (Arc::clone(&world), client.url());
                Box::pin(async move { world.answer(&url).await })
            });
            Endpoints::with_probe(&config, probe).unwrap()
        }

        /// The endpoint's slot, after its request timeout while it is dead.
        async fn answer(&self, url: &str) -> Result<u64, SolanaError> {
            let i = URLS.iter().position(|u| *u == url).unwrap();
            if i == 0 && Instant::now() < self.start + self.dead_until {
                tokio::time::sleep(TIMEOUT).await;
                return Err(SolanaError::Timeout { after: TIMEOUT });
            }
            Ok(self.slots[i])
        }

        /// One read: which endpoint answered, and how long it took.
        async fn read(self: &Arc<Self>, endpoints: &Endpoints) -> (usize, Duration) {
            let started = Instant::now();
            let answered = endpoints
                .read("test.read", |client| {
                    let (world, url) = (Arc::clone(self), client.url());
                    Box::pin(async move {
                        let i = URLS.iter().position(|u| *u == url).unwrap();
                        world.reads.lock().unwrap()[i] += 1;
                        world.answer(&url).await.map(|_| i)
                    })
                })
                .await
                .unwrap();
            (answered, started.elapsed())
        }

        async fn at(&self, t: Duration) {
            tokio::time::sleep_until(self.start + t).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_dead_primary_is_hedged_then_passed_over_until_a_probe_after_its_cool_down() {
        let world = World::new(Duration::from_secs(60), [500; 3]);
        let endpoints = world.endpoints();
        // The primary gives no answer: the read also goes to the second endpoint after
        // the hedge delay, and its answer wins.
        assert_eq!(world.read(&endpoints).await, (1, HEDGE_DELAY));
        // The prober started with that read; its probe of the primary times out.
        world.at(Duration::from_millis(1_100)).await;
        assert!(endpoints.status()[0].passed_over);
        assert_eq!(world.read(&endpoints).await, (1, Duration::ZERO));
        // Alive again at 60 s, but its failed probe at 58 s (failing at 59 s) holds it
        // passed over until 89 s.
        world.at(Duration::from_secs(88)).await;
        assert_eq!(world.read(&endpoints).await, (1, Duration::ZERO));
        // The first probe after the cool-down (at 90 s) brings it back.
        world.at(Duration::from_millis(90_100)).await;
        assert!(!endpoints.status()[0].passed_over);
        assert_eq!(world.read(&endpoints).await, (0, Duration::ZERO));
        assert_eq!(
            *world.reads.lock().unwrap(),
            [2, 3, 0],
            "the dead primary got one read, hedged"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_endpoint_far_behind_the_others_is_tried_last() {
        let behind = World::new(Duration::ZERO, [1_000, 1_000 + BEHIND_SLOTS + 1, 1_000]);
        let endpoints = behind.endpoints();
        assert_eq!(behind.read(&endpoints).await.0, 0, "nothing probed yet");
        behind.at(Duration::from_millis(1)).await;
        assert_eq!(behind.read(&endpoints).await.0, 1);
        let close = World::new(Duration::ZERO, [1_000, 1_000 + BEHIND_SLOTS, 1_000]);
        let endpoints = close.endpoints();
        close.read(&endpoints).await;
        close.at(Duration::from_millis(1)).await;
        assert_eq!(close.read(&endpoints).await.0, 0);
    }

    #[test]
    fn a_possible_landing_outranks_a_refusal_when_combining_send_errors() {
        let seen = vec![
            (
                "a".to_owned(),
                SolanaError::Preflight {
                    error: TransactionError::InsufficientFundsForFee,
                },
            ),
            (
                "b".to_owned(),
                SolanaError::Timeout {
                    after: Duration::from_secs(2),
                },
            ),
        ];
        let error = most_cautious("rpc.sendTransaction", seen);
        assert_eq!(error.class, ErrorClass::RpcTimeout);
        assert!(error.detail.starts_with("b:"));
    }

    #[test]
    fn a_lone_refusal_is_reported_as_is() {
        let seen = vec![(
            "a".to_owned(),
            SolanaError::Preflight {
                error: TransactionError::BlockhashNotFound,
            },
        )];
        let error = most_cautious("rpc.sendTransaction", seen);
        assert_eq!(error.class, ErrorClass::BlockhashExpired);
        assert_eq!(error.code, Some(-32002));
    }
}
