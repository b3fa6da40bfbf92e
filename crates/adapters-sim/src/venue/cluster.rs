//! The RPC cluster: nodes that each see the chain as of their own view slot (some slots
//! behind the tip, never going backwards), some without transaction history, behind a
//! load balancer that picks a node per request or a list of endpoints with failover.
//! The router has a node of its own, from which it takes its blockhashes.

use std::time::Duration;

use crate::faults::{ClusterProfile, Topology};
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
        }
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
            Topology::Failover => self.primary,
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
        let lag = self.lag(node, t);
        let n = &mut self.nodes[node];
        n.view = tip.saturating_sub(lag).max(n.view).min(tip);
        NodeView {
            node,
            history: n.history,
            view: n.view,
        }
    }
}
