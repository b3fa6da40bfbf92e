//! The RPC nodes behind the venue: how many, how they are reached, how far they lag, what
//! they remember, when one of them is down or far behind, and the cluster's forks,
//! skipped slots and refused resends.

use super::*;

/// How requests reach the cluster's RPC nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Topology {
    /// One URL in front of every node, which picks a node per request (as public
    /// providers do): two consecutive reads may come from two nodes.
    #[default]
    LoadBalanced,
    /// Several endpoints: requests go to the current one and move to the next after it
    /// fails (the client's failover).
    Failover,
    /// Several providers, one endpoint each, primary first, reached the way kyzlo's
    /// Solana adapter reaches its `[rpc] endpoints`: the client probes every endpoint in
    /// the background (its slot, every 2 s); an endpoint failure on a probe or a call (no
    /// answer within the client's request timeout, 429, -32005 node unhealthy, -32011 no
    /// history, -32016 behind the asked slot) passes that endpoint over for the client's
    /// cool-down and then until a probe succeeds; one probed far behind the others is
    /// tried last. A read goes to the first endpoint not passed over and, unanswered after
    /// the hedge delay, to the next as well (an endpoint failure moves on at once); a send
    /// goes to one endpoint at a time; any answer, even a refusal, ends the call; when
    /// every endpoint is passed over, all are tried, the soonest out of its cool-down
    /// first. The client's request timeout, cool-down and how many of the endpoints it
    /// knows are the venue's [`EndpointClient`](crate::venue::EndpointClient). Each
    /// provider draws its own 429s and -32005s; blackouts, sends' fates at the leader and
    /// the ledger stay the cluster's.
    Endpoints,
}

/// What is wrong with one endpoint during an [`EndpointOutage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointFault {
    /// The provider is dead: a request to it gets no answer (the client gives up at its
    /// request timeout) and a transaction sent to it reaches no leader.
    Down,
    /// The provider answers, healthy by its own account, from a view this many slots
    /// behind the tip (on top of its usual lag; its view never goes backwards, so it
    /// stalls first): stale statuses, newer blockhashes unknown, expiry seen late,
    /// preflight on old state.
    Lagging {
        /// How far behind the tip it answers.
        slots: u64,
    },
}

/// One endpoint's trouble over a window of run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointOutage {
    /// The endpoint (0 is the primary).
    pub endpoint: u8,
    /// From (inclusive).
    pub from: Duration,
    /// Until (exclusive).
    pub until: Duration,
    /// What is wrong.
    pub fault: EndpointFault,
}

impl EndpointOutage {
    /// Whether it holds at `at`.
    #[must_use]
    pub fn covers(&self, at: Duration) -> bool {
        self.from <= at && at < self.until
    }
}

/// The RPC cluster behind the venue and the router in front of it.
///
/// Each node sees the chain as of its own *view* slot, some slots behind the tip; a view
/// never goes backwards. Every answer carries the node's view as its context slot. A
/// landing is visible as processed from its slot on and confirmed from its slot plus the
/// confirmation delay; a landing on a minority fork is visible as processed for a few
/// slots and then vanishes. Nodes without transaction history refuse history look-ups
/// (JSON-RPC -32011) and keep statuses for [`STATUS_CACHE_SLOTS`] only.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterProfile {
    /// RPC nodes (1 ..= 8).
    pub nodes: u8,
    /// How requests reach them.
    pub topology: Topology,
    /// A node's usual lag behind the tip: uniform in `0 ..= lag_slots` per 2 s segment.
    pub lag_slots: u64,
    /// P(a node lags badly during a 2 s segment).
    pub lagging: f64,
    /// How far a badly lagging node is behind: uniform in `lag_slots ..= lagging_slots`.
    pub lagging_slots: u64,
    /// P(a node other than the first keeps no transaction history).
    pub no_history: f64,
    /// Slots from processed to confirmed: uniform in this range.
    pub confirm_slots: (u64, u64),
    /// P(a landing is on a minority fork that the cluster abandons).
    pub forks: f64,
    /// P(a slot is skipped: no block, so the block height does not move).
    pub skipped_slots: f64,
    /// Whether a node simulates a sent transaction before forwarding it (preflight):
    /// a resend can then be refused (slippage, unknown blockhash) while an earlier copy
    /// still lands.
    pub preflight: bool,
    /// Whether the router ignores the requested blockhash life: it builds on the newest
    /// blockhash (150 blocks of life) and reports the shorter life that was asked for.
    pub router_ignores_expiry: bool,
    /// P(a resend of bytes already sent is refused at preflight by the node it reaches:
    /// a slippage simulation on that node's state, or `BlockhashNotFound` from a node that
    /// has not seen the blockhash), while an earlier copy may still land.
    pub refused_resends: f64,
    /// Standard deviation of a quote's drift from the market price, in bps.
    pub quote_drift_bps: f64,
    /// A landed transaction's details cannot be read for up to this long after landing
    /// (uniform per transaction).
    pub fill_delay: Duration,
    /// Endpoints down or far behind over windows of run time (none by default).
    pub outages: Vec<EndpointOutage>,
}

/// How many slots a node keeps statuses for without transaction history.
pub const STATUS_CACHE_SLOTS: u64 = 300;

impl Default for ClusterProfile {
    fn default() -> Self {
        Self {
            nodes: 3,
            topology: Topology::LoadBalanced,
            lag_slots: 1,
            lagging: 0.0,
            lagging_slots: 1,
            no_history: 0.0,
            confirm_slots: (1, 2),
            forks: 0.0,
            skipped_slots: 0.0,
            preflight: true,
            router_ignores_expiry: false,
            refused_resends: 0.0,
            quote_drift_bps: 0.0,
            fill_delay: Duration::ZERO,
            outages: Vec::new(),
        }
    }
}

impl ClusterProfile {
    /// A cluster as hostile as mainnet on a bad day: nodes that lag by up to 40 slots,
    /// a third without history, processed-before-confirmed for 2-5 slots, 2% of landings
    /// on abandoned forks, 5% skipped slots, 10% of resends refused at preflight, quotes
    /// that drift, fills unreadable for up to 3 s.
    #[must_use]
    pub fn adversarial() -> Self {
        Self {
            nodes: 3,
            topology: Topology::LoadBalanced,
            lag_slots: 2,
            lagging: 0.1,
            lagging_slots: 40,
            no_history: 0.34,
            confirm_slots: (2, 5),
            forks: 0.02,
            skipped_slots: 0.05,
            preflight: true,
            router_ignores_expiry: false,
            refused_resends: 0.1,
            quote_drift_bps: 10.0,
            fill_delay: Duration::from_secs(3),
            outages: Vec::new(),
        }
    }

    /// A single node that sees the tip, confirms at once and never forks: the network
    /// of the simplest tests.
    #[must_use]
    pub fn ideal() -> Self {
        Self {
            nodes: 1,
            lag_slots: 0,
            lagging_slots: 0,
            confirm_slots: (0, 0),
            ..Self::default()
        }
    }
}

impl ClusterProfile {
    /// Checks every field against its range.
    ///
    /// # Errors
    /// [`SimError::InvalidParameter`] naming the first bad field.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |field, value: f64, expected| {
            Err(SimError::InvalidParameter {
                field,
                value,
                expected,
            })
        };
        if !(1..=8).contains(&self.nodes) {
            return bad("cluster.nodes", f64::from(self.nodes), "1 ..= 8");
        }
        for (field, p) in [
            ("cluster.lagging", self.lagging),
            ("cluster.no_history", self.no_history),
            ("cluster.forks", self.forks),
            ("cluster.refused_resends", self.refused_resends),
            ("cluster.skipped_slots", self.skipped_slots),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return bad(field, p, "a probability in 0 ..= 1");
            }
        }
        if self.skipped_slots > 0.5 {
            return bad("cluster.skipped_slots", self.skipped_slots, "at most 0.5");
        }
        if self.lagging_slots < self.lag_slots || self.lagging_slots > 10_000 {
            return bad(
                "cluster.lagging_slots",
                self.lagging_slots as f64,
                "lag_slots ..= 10000",
            );
        }
        let (lo, hi) = self.confirm_slots;
        if lo > hi || hi > 64 {
            return bad("cluster.confirm_slots", hi as f64, "lo <= hi <= 64");
        }
        if !(0.0..=1_000.0).contains(&self.quote_drift_bps) {
            return bad(
                "cluster.quote_drift_bps",
                self.quote_drift_bps,
                "0 ..= 1000",
            );
        }
        if self.fill_delay > Duration::from_secs(3_600) {
            return bad(
                "cluster.fill_delay",
                self.fill_delay.as_secs_f64(),
                "at most an hour",
            );
        }
        for outage in &self.outages {
            if outage.endpoint >= self.nodes {
                return bad(
                    "cluster.outages.endpoint",
                    f64::from(outage.endpoint),
                    "an endpoint below cluster.nodes",
                );
            }
            if outage.from >= outage.until {
                return bad("cluster.outages", outage.from.as_secs_f64(), "from < until");
            }
            if let EndpointFault::Lagging { slots } = outage.fault
                && slots > 10_000
            {
                return bad("cluster.outages.slots", slots as f64, "at most 10000");
            }
        }
        Ok(())
    }

    /// Whether every RPC endpoint is down at `at`: no provider can take a transaction.
    #[must_use]
    pub fn all_endpoints_down(&self, at: Duration) -> bool {
        (0..usize::from(self.nodes.max(1)))
            .all(|e| self.endpoint_fault(e, at) == Some(EndpointFault::Down))
    }

    /// What is wrong with `endpoint` at `at`, if anything (the first outage covering it).
    #[must_use]
    pub fn endpoint_fault(&self, endpoint: usize, at: Duration) -> Option<EndpointFault> {
        self.outages
            .iter()
            .find(|o| usize::from(o.endpoint) == endpoint && o.covers(at))
            .map(|o| o.fault)
    }
}
