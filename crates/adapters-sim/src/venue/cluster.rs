//! The RPC cluster: nodes that each see the chain as of their own view slot (some slots
//! behind the tip, never going backwards), some without transaction history, behind a
//! load balancer that picks a node per request, a list of endpoints with failover, or
//! several providers reached by the client's endpoint list (which endpoints cool down,
//! and until when, is kept here). The router has a node of its own, from which it takes
//! its blockhashes.

use std::time::Duration;

use super::EndpointClient;
use crate::faults::{ClusterProfile, EndpointFault, Topology};
use crate::rng::SimRng;

const STREAM_LAG: u64 = 201;
const STREAM_BALANCE: u64 = 202;
const STREAM_HISTORY: u64 = 203;
/// A node's lag is drawn anew every this long.
const LAG_SEGMENT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy)]
struct Node {
    history: bool,
    view: u64,
}

/// Which node answers, and what it sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NodeView {
    /// The node's index (the router's node is the last).
    pub node: usize,
    /// Whether it keeps transaction history.
    pub history: bool,
    /// The slot it sees the chain at: every answer's context slot.
    pub view: u64,
}

/// The cluster (see the module docs).
#[derive(Debug)]
pub(crate) struct Cluster {
    profile: ClusterProfile,
    seed: u64,
    nodes: Vec<Node>,
    requests: u64,
    primary: usize,
    client: EndpointClient,
    /// Per endpoint, the run time until which the client passes it over.
    cooling: Vec<Option<Duration>>,
}

impl Cluster {
    pub(crate) fn new(profile: &ClusterProfile, seed: u64) -> Self {
        let count = usize::from(profile.nodes.max(1));
        let nodes = (0..=count)
            .map(|i| Node {
                // The first node always keeps history: some node can always answer.
                history: i == 0
                    || SimRng::keyed(seed, STREAM_HISTORY, i as u64).uniform()
                        >= profile.no_history,
                view: 0,
            })
            .collect();
        Self {
            profile: profile.clone(),
            seed,
            nodes,
            requests: 0,
            primary: 0,
            client: EndpointClient::default(),
            cooling: vec![None; count],
        }
    }

    /// The client's settings.
    pub(crate) fn client(&self) -> EndpointClient {
        self.client
    }

    pub(crate) fn set_client(&mut self, client: EndpointClient) {
        self.client = client;
    }

    /// The endpoints the client tries for a call made at `now`, in order: those it knows
    /// that are not cooling down, primary first; when all are, all of them,
    /// soonest-recovered first (a call is never refused without one try).
    pub(crate) fn candidates(&self, now: Duration) -> Vec<usize> {
        let known = self.client.endpoints.clamp(1, self.rpc_nodes());
        let healthy: Vec<usize> = (0..known)
            .filter(|&e| self.cooling[e].is_none_or(|until| until <= now))
            .collect();
        if !healthy.is_empty() {
            return healthy;
        }
        let mut all: Vec<usize> = (0..known).collect();
        all.sort_by_key(|&e| self.cooling[e]);
        all
    }

    /// `endpoint` failed as an endpoint: passed over until `until`.
    pub(crate) fn cool(&mut self, endpoint: usize, until: Duration) {
        if let Some(c) = self.cooling.get_mut(endpoint) {
            *c = Some(until);
        }
    }

    /// A node answered through `endpoint` (even with an error): it is reachable.
    pub(crate) fn answered(&mut self, endpoint: usize) {
        if let Some(c) = self.cooling.get_mut(endpoint) {
            *c = None;
        }
    }

    /// Whether `endpoint` is down at `t`.
    pub(crate) fn down(&self, endpoint: usize, t: Duration) -> bool {
        endpoint < self.rpc_nodes()
            && self.profile.endpoint_fault(endpoint, t) == Some(EndpointFault::Down)
    }

    fn rpc_nodes(&self) -> usize {
        self.nodes.len() - 1
    }

    /// The node that answers the next request.
    pub(crate) fn pick(&mut self) -> usize {
        self.requests += 1;
        match self.profile.topology {
            Topology::LoadBalanced => {
                let n = self.rpc_nodes() as u64;
                usize::try_from(
                    SimRng::keyed(self.seed, STREAM_BALANCE, self.requests).next_u64() % n,
                )
                .unwrap_or(0)
            }
            // The client's list picks its endpoint itself (see `SimVenue::on_endpoints`);
            // a request made without it goes to the primary.
            Topology::Failover | Topology::Endpoints => self.primary,
        }
    }

    /// The router's own node.
    pub(crate) fn router_node(&self) -> usize {
        self.rpc_nodes()
    }

    /// A request to `node` failed: with failover, the next request goes to the next
    /// endpoint.
    pub(crate) fn failed(&mut self, node: usize) {
        if self.profile.topology == Topology::Failover && node == self.primary {
            self.primary = (self.primary + 1) % self.rpc_nodes();
        }
    }

    fn lag(&self, node: usize, t: Duration) -> u64 {
        let segment = u64::try_from(t.as_nanos() / LAG_SEGMENT.as_nanos()).unwrap_or(u64::MAX);
        let key = segment.wrapping_mul(64).wrapping_add(node as u64);
        let mut rng = SimRng::keyed(self.seed, STREAM_LAG, key);
        let p = &self.profile;
        if rng.uniform() < p.lagging {
            p.lag_slots + rng.next_u64() % (p.lagging_slots - p.lag_slots + 1)
        } else {
            rng.next_u64() % (p.lag_slots + 1)
        }
    }

    /// What `node` sees at run time `t` when the tip is at `tip`.
    pub(crate) fn view(&mut self, node: usize, tip: u64, t: Duration) -> NodeView {
        // The router's node is the router provider's, never one of the RPC endpoints.
        let behind = match self.profile.endpoint_fault(node, t) {
            Some(EndpointFault::Lagging { slots }) if node < self.rpc_nodes() => slots,
            _ => 0,
        };
        let lag = self.lag(node, t).saturating_add(behind);
        let n = &mut self.nodes[node];
        n.view = tip.saturating_sub(lag).max(n.view).min(tip);
        NodeView {
            node,
            history: n.history,
            view: n.view,
        }
    }
}
