//! How a client reaches the simulated cluster: the gate every call passes (blackouts,
//! rate limits, unhealthy and lagging nodes, per-provider outages) and the hedged reads
//! over several endpoints, modelled on the Solana adapter's (its background probes are
//! modelled in the cluster, see `Cluster::candidates`).

use std::collections::VecDeque;

use super::cluster::HEDGE_DELAY;
use super::*;

impl SimVenue {
    /// Picks the node for a call made now and applies the schedule's call faults: a
    /// 429, node-behind (chain reads), or a blackout hang ending in a timeout.
    /// The router's calls on a cluster of several providers reach the router's own node
    /// (the router is a provider of its own), never the RPC endpoints.
    pub(super) async fn gate(
        &self,
        operation: &'static str,
        chain_read: bool,
    ) -> Result<Node, PortError> {
        let now = self.run_time();
        let endpoints = self.schedule.profile().cluster.topology == Topology::Endpoints;
        let (node, down) = {
            let mut s = self.lock();
            if endpoints {
                // The router's calls come before any send the client makes.
                self.arm_probes(&mut s);
            }
            self.settle(&mut s, now);
            let tip = s.ledger.slot_at(now);
            let node = if endpoints && !chain_read {
                s.cluster.router_node()
            } else {
                s.cluster.pick()
            };
            let view = s.cluster.view(node, tip, now);
            let down = chain_read && s.cluster.down(node, now);
            (Node { now, tip, view }, down)
        };
        let injected = |class, retry_after, code| {
            Err(SimError::Injected {
                operation,
                class,
                retry_after,
                code,
            }
            .to_port(operation))
        };
        let fault = if down {
            Some(ErrorClass::RpcTimeout)
        } else {
            self.schedule.call_fails(now)
        };
        if fault.is_some() {
            self.lock().cluster.failed(node.view.node);
        }
        match fault {
            Some(ErrorClass::RpcTimeout) => {
                tokio::time::sleep(HANG).await;
                injected(ErrorClass::RpcTimeout, None, None)
            }
            Some(ErrorClass::RateLimited) => injected(
                ErrorClass::RateLimited,
                Some(self.schedule.profile().retry_after),
                Some(TOO_MANY_REQUESTS),
            ),
            Some(ErrorClass::NodeUnhealthy) if chain_read => {
                injected(ErrorClass::NodeUnhealthy, None, Some(NODE_BEHIND_CODE))
            }
            _ => Ok(node),
        }
    }

    /// A chain read: through the client's endpoint list on a cluster of several
    /// providers ([`SimVenue::on_endpoints`]), else from the node the cluster picks.
    /// `answer` is the node's answer; an error of it that says the endpoint failed moves
    /// a failover client to its next endpoint.
    pub(super) async fn read<T>(
        &self,
        operation: &'static str,
        answer: impl Fn(&mut State, Node) -> Result<T, SimError>,
    ) -> Result<T, PortError> {
        if self.schedule.profile().cluster.topology == Topology::Endpoints {
            return self.on_endpoints(operation, answer).await;
        }
        let node = self.gate(operation, true).await?;
        let mut s = self.lock();
        answer(&mut s, node).map_err(|e| {
            if fails_endpoint(&e) {
                s.cluster.failed(node.view.node);
            }
            e.to_port(operation)
        })
    }

    /// Lets the client's background probes draw their fates (see `Cluster::candidates`):
    /// done by every call that may come before the client's first.
    pub(super) fn arm_probes(&self, s: &mut State) {
        let base = s.ledger.slot_at(Duration::ZERO);
        let slot_time = s.ledger.time_of(base.saturating_add(1));
        s.cluster.arm_probes(&self.schedule, base, slot_time);
    }

    /// Asks `endpoint` at `now`: down (the request hangs until the client's request
    /// timeout), its own 429 or -32005, or its node's answer from its own view.
    fn ask<T>(
        &self,
        operation: &'static str,
        endpoint: usize,
        now: Duration,
        answer: &impl Fn(&mut State, Node) -> Result<T, SimError>,
    ) -> Asked<T> {
        let injected = |class, retry_after, code| SimError::Injected {
            operation,
            class,
            retry_after,
            code,
        };
        let mut s = self.lock();
        self.settle(&mut s, now);
        let tip = s.ledger.slot_at(now);
        let view = s.cluster.view(endpoint, tip, now);
        let fault = if s.cluster.down(endpoint, now) {
            Some(ErrorClass::RpcTimeout)
        } else {
            self.schedule.call_fails_on(now, endpoint)
        };
        let outcome = match fault {
            Some(ErrorClass::RpcTimeout) => return Asked::Hangs,
            Some(ErrorClass::RateLimited) => Err(injected(
                ErrorClass::RateLimited,
                Some(self.schedule.profile().retry_after),
                Some(TOO_MANY_REQUESTS),
            )),
            Some(ErrorClass::NodeUnhealthy) => Err(injected(
                ErrorClass::NodeUnhealthy,
                None,
                Some(NODE_BEHIND_CODE),
            )),
            _ => answer(&mut s, Node { now, tip, view }),
        };
        match outcome {
            Err(e) if fails_endpoint(&e) => Asked::Failed(e),
            outcome => Asked::Answered(outcome),
        }
    }

    /// A chain read through the client's endpoint list, as kyzlo's Solana adapter makes
    /// it: to the first of `Cluster::candidates`; when that has not answered within
    /// [`HEDGE_DELAY`] (a dead provider never does), also to the next, and so on; an
    /// endpoint failure (429, -32005, no history, behind the asked slot, or a dead
    /// provider's request timeout) passes that endpoint over and starts the next at once.
    /// The first answer, even a refusal, ends the call (requests still out are dropped,
    /// judging nothing) and clears that endpoint's failure.
    pub(super) async fn on_endpoints<T>(
        &self,
        operation: &'static str,
        answer: impl Fn(&mut State, Node) -> Result<T, SimError>,
    ) -> Result<T, PortError> {
        let (client, candidates) = {
            let now = self.run_time();
            let mut s = self.lock();
            self.arm_probes(&mut s);
            (s.cluster.client(), s.cluster.candidates(now))
        };
        let mut queue = candidates.into_iter();
        let mut hung: VecDeque<(usize, Duration)> = VecDeque::new();
        let mut hedge_at = Duration::ZERO;
        let mut last = None;
        let mut start_next = true;
        loop {
            if std::mem::take(&mut start_next)
                && let Some(endpoint) = queue.next()
            {
                let now = self.run_time();
                match self.ask(operation, endpoint, now, &answer) {
                    Asked::Hangs => {
                        hung.push_back((endpoint, now.saturating_add(client.request_timeout)));
                        hedge_at = now.saturating_add(HEDGE_DELAY);
                    }
                    Asked::Failed(e) => {
                        self.lock()
                            .cluster
                            .cool(endpoint, now.saturating_add(client.cooldown));
                        last = Some(e);
                        start_next = true;
                        continue;
                    }
                    Asked::Answered(outcome) => {
                        self.lock().cluster.answered(endpoint);
                        return outcome.map_err(|e| e.to_port(operation));
                    }
                }
            }
            let gives_up = hung.front().copied();
            let hedge = (queue.len() > 0).then_some(hedge_at);
            match (gives_up, hedge) {
                (None, None) => break,
                (Some((endpoint, at)), hedge) if hedge.is_none_or(|h| at <= h) => {
                    tokio::time::sleep(at.saturating_sub(self.run_time())).await;
                    hung.pop_front();
                    self.lock()
                        .cluster
                        .cool(endpoint, at.saturating_add(client.cooldown));
                    last = Some(SimError::Injected {
                        operation,
                        class: ErrorClass::RpcTimeout,
                        retry_after: None,
                        code: None,
                    });
                    start_next = true;
                }
                (_, hedge) => {
                    let at = hedge.unwrap_or(hedge_at);
                    tokio::time::sleep(at.saturating_sub(self.run_time())).await;
                    start_next = true;
                }
            }
        }
        Err(last
            .unwrap_or(SimError::Injected {
                operation,
                class: ErrorClass::Unknown,
                retry_after: None,
                code: None,
            })
            .to_port(operation))
    }
}

/// What one endpoint did with a request.
enum Asked<T> {
    /// No answer: the request hangs until the client's request timeout.
    Hangs,
    /// It failed as an endpoint.
    Failed(SimError),
    /// Its node answered (a refusal too).
    Answered(Result<T, SimError>),
}
