//! The RPC cluster: nodes that each see the chain as of their own view slot (some slots
//! behind the tip, never going backwards), some without transaction history, behind a
//! load balancer that picks a node per request, a list of endpoints with failover, or
//! several providers reached by the client's endpoint list (what the client knows of each
//! endpoint, from its calls and its background probes, is kept here). The router has a
//! node of its own, from which it takes its blockhashes.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use kyzlo_domain::ErrorClass;

use super::EndpointClient;
use crate::faults::{ClusterProfile, EndpointFault, FaultSchedule, Topology};
use crate::rng::SimRng;

/// How often the client probes every endpoint (the Solana adapter's `PROBE_INTERVAL`).
pub const PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// How long a read waits for an endpoint before it also goes to the next one (the Solana
/// adapter's `HEDGE_DELAY`).
pub const HEDGE_DELAY: Duration = Duration::from_millis(200);
/// How far behind the furthest endpoint's probed slot an endpoint may be before the
/// client tries it after the others (the Solana adapter's `BEHIND_SLOTS`).
pub const BEHIND_SLOTS: u64 = 10;

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
    /// What the client knows of its endpoints. Reads of it (`candidates`) bring its
    /// probes up to date, hence the cell.
    probing: RefCell<Probing>,
}

/// What the client knows of one endpoint.
#[derive(Debug, Clone, Copy, Default)]
struct Health {
    /// While it is passed over: when its cool-down (from its latest failure) ends.
    cool_until: Option<Duration>,
    /// The slot its latest successful probe saw.
    slot: Option<u64>,
}

/// The client's background probes, as the Solana adapter makes them: once it has made
/// its first call, every endpoint it knows is asked its slot every [`PROBE_INTERVAL`],
/// all at once; the next round starts an interval after this one, or when this one's
/// slowest probe (a dead endpoint's request timeout) ends if that is later. A probe that
/// gets no answer fails at the request timeout, a 429 or -32005 at once; an answer brings
/// an endpoint back once its cool-down has ended. With one endpoint nothing is probed.
#[derive(Debug, Default)]
struct Probing {
    health: Vec<Health>,
    /// How probes' fates are drawn, once the venue has armed them.
    world: Option<ProbeWorld>,
    /// The next round, once probing has started.
    next: Option<Duration>,
    /// Probes of dead endpoints still out, and when the client gives up on each.
    hung: VecDeque<(usize, Duration)>,
}

/// What a probe meets: the schedule's per-endpoint call faults and the chain's tip.
#[derive(Debug)]
struct ProbeWorld {
    schedule: Arc<FaultSchedule>,
    base_slot: u64,
    slot_time: Duration,
}

impl ProbeWorld {
    fn tip(&self, t: Duration) -> u64 {
        let n = t.as_nanos() / self.slot_time.as_nanos().max(1);
        self.base_slot
            .saturating_add(u64::try_from(n).unwrap_or(u64::MAX))
    }
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
            probing: RefCell::new(Probing {
                health: vec![Health::default(); count],
                ..Probing::default()
            }),
        }
    }

    /// Lets the client's probes draw their fates from `schedule` on a chain whose slot
    /// `base_slot` begins at run time zero and lasts `slot_time` (once; later calls do
    /// nothing).
    pub(crate) fn arm_probes(
        &mut self,
        schedule: &Arc<FaultSchedule>,
        base_slot: u64,
        slot_time: Duration,
    ) {
        let probing = self.probing.get_mut();
        if probing.world.is_none() {
            probing.world = Some(ProbeWorld {
                schedule: Arc::clone(schedule),
                base_slot,
                slot_time,
            });
        }
    }

    fn known(&self) -> usize {
        self.client.endpoints.clamp(1, self.rpc_nodes())
    }

    /// Runs the client's probes up to `now` (starting them with its first call, at `now`).
    fn probe_until(&self, now: Duration, first_call: bool) {
        let mut guard = self.probing.borrow_mut();
        let probing = &mut *guard;
        if probing.world.is_none() || self.known() < 2 {
            return;
        }
        if probing.next.is_none() {
            // The first round starts with the first call, whose endpoints are chosen
            // before any probe has answered.
            if first_call {
                probing.next = Some(now);
            }
            return;
        }
        loop {
            let next = probing.next.unwrap_or(Duration::MAX);
            // A probe that started in an earlier round gives up first.
            if let Some(&(endpoint, at)) = probing.hung.front()
                && at <= now
                && at <= next
            {
                probing.hung.pop_front();
                self.fail(&mut probing.health, endpoint, at);
                continue;
            }
            if next > now {
                return;
            }
            let Some(world) = &probing.world else {
                return;
            };
            let tip = world.tip(next);
            let mut slowest = Duration::ZERO;
            let mut hung = Vec::new();
            let mut answered = Vec::new();
            let mut failed = Vec::new();
            for endpoint in 0..self.known() {
                let fault = if self.down(endpoint, next) {
                    Some(ErrorClass::RpcTimeout)
                } else {
                    world.schedule.call_fails_on(next, endpoint)
                };
                match fault {
                    Some(ErrorClass::RpcTimeout) => {
                        slowest = self.client.request_timeout;
                        hung.push((endpoint, next.saturating_add(self.client.request_timeout)));
                    }
                    Some(_) => failed.push(endpoint),
                    None => answered.push((endpoint, self.probed_view(endpoint, tip, next))),
                }
            }
            probing.hung.extend(hung);
            for endpoint in failed {
                self.fail(&mut probing.health, endpoint, next);
            }
            for (endpoint, slot) in answered {
                if let Some(h) = probing.health.get_mut(endpoint) {
                    h.slot = Some(slot);
                    if h.cool_until.is_some_and(|until| until <= next) {
                        h.cool_until = None;
                    }
                }
            }
            probing.next = Some(next.saturating_add(PROBE_INTERVAL.max(slowest)));
        }
    }

    fn fail(&self, health: &mut [Health], endpoint: usize, at: Duration) {
        if let Some(h) = health.get_mut(endpoint) {
            h.cool_until = Some(at.saturating_add(self.client.cooldown));
        }
    }

    /// The slot `node` answers a probe with at `t`: what it would see (its view never
    /// goes backwards), without moving the view calls see.
    fn probed_view(&self, node: usize, tip: u64, t: Duration) -> u64 {
        let behind = match self.profile.endpoint_fault(node, t) {
            Some(EndpointFault::Lagging { slots }) => slots,
            _ => 0,
        };
        let lag = self.lag(node, t).saturating_add(behind);
        tip.saturating_sub(lag).max(self.nodes[node].view).min(tip)
    }

    /// The client's settings.
    pub(crate) fn client(&self) -> EndpointClient {
        self.client
    }

    pub(crate) fn set_client(&mut self, client: EndpointClient) {
        self.client = client;
    }

    /// The endpoints the client tries for a call it makes at `now` (its probes brought up
    /// to date first), in order: those it knows that are not passed over, primary first,
    /// those whose probe saw them more than [`BEHIND_SLOTS`] behind the furthest last;
    /// when all are passed over, all of them, the one whose cool-down ends first first (a
    /// call is never refused without one try).
    pub(crate) fn candidates(&self, now: Duration) -> Vec<usize> {
        self.probe_until(now, true);
        let probing = self.probing.borrow();
        let health = &probing.health[..self.known()];
        let usable = |h: &Health| h.cool_until.is_none();
        let furthest = health
            .iter()
            .filter(|h| usable(h))
            .filter_map(|h| h.slot)
            .max();
        let behind = |h: &Health| matches!((h.slot, furthest), (Some(slot), Some(top)) if slot.saturating_add(BEHIND_SLOTS) < top);
        let mut healthy: Vec<usize> = (0..health.len()).filter(|&e| usable(&health[e])).collect();
        if !healthy.is_empty() {
            healthy.sort_by_key(|&e| behind(&health[e]));
            return healthy;
        }
        let mut all: Vec<usize> = (0..health.len()).collect();
        all.sort_by_key(|&e| health[e].cool_until);
        all
    }

    /// `endpoint` failed as an endpoint: passed over until `until` (its cool-down) and
    /// then until a probe succeeds.
    pub(crate) fn cool(&mut self, endpoint: usize, until: Duration) {
        self.probe_until(until.saturating_sub(self.client.cooldown), false);
        if let Some(h) = self.probing.get_mut().health.get_mut(endpoint) {
            h.cool_until = Some(until);
        }
    }

    /// A node answered through `endpoint` (even with an error): it is reachable.
    pub(crate) fn answered(&mut self, endpoint: usize) {
        if let Some(h) = self.probing.get_mut().health.get_mut(endpoint) {
            h.cool_until = None;
        }
    }

    /// Whether the client passes `endpoint` over (for the tests).
    #[cfg(test)]
    pub(crate) fn passed_over(&self, endpoint: usize, now: Duration) -> bool {
        self.probe_until(now, false);
        self.probing.borrow().health[endpoint].cool_until.is_some()
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
