//! How a client reaches the simulated cluster: the gate every call passes (blackouts,
//! rate limits, unhealthy and lagging nodes, per-provider outages) and the failover over
//! several endpoints, modelled on the Solana adapter's.

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

    /// A chain read through the client's endpoint list, as kyzlo's Solana adapter makes
    /// it: each endpoint it tries (see `Cluster::candidates`) is down (the request hangs
    /// for the client's request timeout), draws its own 429 or -32005, or answers from
    /// its own view; an endpoint failure passes it over for the cool-down and the call
    /// moves on; any other answer ends the call and clears the endpoint's cool-down.
    pub(super) async fn on_endpoints<T>(
        &self,
        operation: &'static str,
        answer: impl Fn(&mut State, Node) -> Result<T, SimError>,
    ) -> Result<T, PortError> {
        let (client, candidates) = {
            let now = self.run_time();
            let s = self.lock();
            (s.cluster.client(), s.cluster.candidates(now))
        };
        let injected = |class, retry_after, code| SimError::Injected {
            operation,
            class,
            retry_after,
            code,
        };
        let mut last = None;
        for endpoint in candidates {
            let now = self.run_time();
            let (node, down) = {
                let mut s = self.lock();
                self.settle(&mut s, now);
                let tip = s.ledger.slot_at(now);
                let view = s.cluster.view(endpoint, tip, now);
                (Node { now, tip, view }, s.cluster.down(endpoint, now))
            };
            let fault = if down {
                Some(ErrorClass::RpcTimeout)
            } else {
                self.schedule.call_fails_on(now, endpoint)
            };
            let outcome = match fault {
                Some(ErrorClass::RpcTimeout) => {
                    tokio::time::sleep(client.request_timeout).await;
                    Err(injected(ErrorClass::RpcTimeout, None, None))
                }
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
                _ => answer(&mut self.lock(), node),
            };
            match outcome {
                Err(e) if fails_endpoint(&e) => {
                    let until = self.run_time().saturating_add(client.cooldown);
                    self.lock().cluster.cool(endpoint, until);
                    last = Some(e);
                }
                outcome => {
                    self.lock().cluster.answered(endpoint);
                    return outcome.map_err(|e| e.to_port(operation));
                }
            }
        }
        Err(last
            .unwrap_or_else(|| injected(ErrorClass::Unknown, None, None))
            .to_port(operation))
    }
}
