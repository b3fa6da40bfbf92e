//! Several RPC endpoints, primary first: a failing endpoint is passed over for a
//! cool-down; reads go to the first healthy one and fail over to the next within the same
//! call; sends without send lanes go to the first healthy one and fail over the same way.
//!
//! An endpoint fails (and cools down) on a transport error, a timeout, HTTP 429 or 5xx,
//! or a node-unhealthy JSON-RPC code (see [`SolanaError::is_endpoint_failure`]). Any other
//! answer, even an error, is the node answering: it is returned, not failed over. When
//! every endpoint is cooling down, all are tried anyway, soonest-recovered first: a call
//! is never refused without one attempt.

use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;
use kyzlo_application::ports::PortError;
use kyzlo_domain::ErrorClass;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_client::rpc_client::RpcClientConfig;
use tokio::time::Instant;

use crate::config::{SolanaConfig, endpoint_label};
use crate::error::SolanaError;
use crate::sender::HttpRpcSender;

/// One endpoint and its health.
pub(crate) struct Endpoint {
    label: String,
    client: RpcClient,
    cool_until: Mutex<Option<Instant>>,
}

impl Endpoint {
    fn cooling_until(&self, now: Instant) -> Option<Instant> {
        let guard = self.cool_until.lock().ok()?;
        (*guard).filter(|until| *until > now)
    }

    fn set_cool_until(&self, until: Option<Instant>) {
        if let Ok(mut guard) = self.cool_until.lock() {
            *guard = until;
        }
    }
}

/// What an operator sees of one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointStatus {
    /// Scheme, host and port (no credentials).
    pub label: String,
    /// How much longer it is passed over, if it is.
    pub cooling_for: Option<Duration>,
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

/// The endpoints, primary first.
pub(crate) struct Endpoints {
    list: Vec<Endpoint>,
    cooldown: Duration,
}

/// A call on one endpoint's client.
pub(crate) type Call<'a, T> = BoxFuture<'a, Result<T, SolanaError>>;

impl Endpoints {
    /// Builds one `RpcClient` per endpoint over our no-retry sender.
    pub(crate) fn new(config: &SolanaConfig) -> Result<Self, SolanaError> {
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
                cool_until: Mutex::new(None),
            })
            .collect();
        Ok(Self {
            list,
            cooldown: config.endpoint_cooldown,
        })
    }

    /// Health of every endpoint, primary first.
    pub(crate) fn status(&self) -> Vec<EndpointStatus> {
        let now = Instant::now();
        self.list
            .iter()
            .map(|e| EndpointStatus {
                label: e.label.clone(),
                cooling_for: e.cooling_until(now).map(|until| until - now),
            })
            .collect()
    }

    /// The endpoints to try, in order: the healthy ones; if none, all, soonest-recovered
    /// first.
    fn candidates(&self) -> Vec<&Endpoint> {
        let now = Instant::now();
        let healthy: Vec<&Endpoint> = self
            .list
            .iter()
            .filter(|e| e.cooling_until(now).is_none())
            .collect();
        if !healthy.is_empty() {
            return healthy;
        }
        let mut all: Vec<(&Endpoint, Option<Instant>)> = self
            .list
            .iter()
            .map(|e| (e, e.cooling_until(now)))
            .collect();
        all.sort_by_key(|(_, until)| *until);
        all.into_iter().map(|(e, _)| e).collect()
    }

    fn record(&self, endpoint: &Endpoint, outcome: Result<(), &SolanaError>) {
        match outcome {
            Err(error) if error.is_endpoint_failure() => {
                tracing::warn!(
                    endpoint = %endpoint.label,
                    class = %error.class(),
                    error = %error,
                    cooldown_s = self.cooldown.as_secs_f64(),
                    "RPC endpoint failing: passed over for the cool-down"
                );
                endpoint.set_cool_until(Some(Instant::now() + self.cooldown));
            }
            // Any answer from the node, even an error, shows it is reachable.
            _ => endpoint.set_cool_until(None),
        }
    }

    /// Runs `call` on the first healthy endpoint, failing over to the next on an
    /// endpoint failure.
    pub(crate) async fn read<T, F>(&self, operation: &'static str, call: F) -> Result<T, PortError>
    where
        F: for<'a> Fn(&'a RpcClient) -> Call<'a, T>,
    {
        let mut last: Option<(String, SolanaError)> = None;
        for endpoint in self.candidates() {
            let outcome = call(&endpoint.client).await;
            self.record(endpoint, outcome.as_ref().map(|_| ()));
            match outcome {
                Ok(value) => return Ok(value),
                Err(error) if error.is_endpoint_failure() => {
                    last = Some((endpoint.label.clone(), error));
                }
                Err(error) => return Err(error.to_port_error(operation, &endpoint.label)),
            }
        }
        Err(match last {
            Some((label, error)) => error.to_port_error(operation, &label),
            None => PortError::new(operation, ErrorClass::Unknown, "no endpoint configured"),
        })
    }

    /// Runs `call` (a send) on the first healthy endpoint, then on the next while they
    /// fail as endpoints; an answer from a node, even a refusal, ends it. Succeeds when any
    /// endpoint succeeds. When none does, the error is the most cautious one seen: a class
    /// under which the transaction may still land (a timeout first) wins over a definite
    /// refusal, since an endpoint that timed out may have forwarded the bytes.
    pub(crate) async fn send<F>(&self, operation: &'static str, call: F) -> Result<(), PortError>
    where
        F: for<'a> Fn(&'a RpcClient) -> Call<'a, ()>,
    {
        let mut seen: Vec<(String, SolanaError)> = Vec::new();
        for endpoint in self.candidates() {
            let outcome = call(&endpoint.client).await;
            self.record(endpoint, outcome.as_ref().map(|_| ()));
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
