//! The simulated venue: router, chain, signer and health probe in one, over a
//! [`SimMarket`] and a [`FaultSchedule`], on tokio's clock. It is as hostile as the
//! schedule's profile says, down to the ways a real Solana cluster breaks naive clients:
//!
//! - **A cluster of RPC nodes** ([`ClusterProfile`]): each answers from its own view
//!   slot, some slots behind the tip, never going backwards; behind one load-balanced URL
//!   two consecutive reads may come from two nodes. Every answer carries its view as the
//!   context slot. Nodes without history refuse history look-ups (-32011) and forget
//!   statuses after [`STATUS_CACHE_SLOTS`]. On a cluster of several providers
//!   ([`Topology::Endpoints`]) the bot's client ([`EndpointClient`]) picks the endpoint
//!   of each call and fails over as kyzlo's Solana adapter does; an endpoint may be down
//!   (a request hangs until the client gives up, a send reaches no leader) or far behind
//!   for a window ([`EndpointOutage`](crate::faults::EndpointOutage)).
//! - **Landings** happen at the first block after a forwarded copy reaches a leader, if
//!   the transaction's *real* blockhash is still valid (150 blocks from the block it
//!   names; skipped slots do not count) and the fee payer can pay and stay rent-exempt.
//!   A landing is processed first and confirmed a few slots later; one on an abandoned
//!   fork is seen as processed for a few slots and then vanishes, and a later copy may
//!   still land. The fill is the market price at landing, `base_slippage_bps` worse, with
//!   the profile's noise; a failed landing still pays its fee. Its details may be
//!   unreadable for a while ([`ClusterProfile::fill_delay`]).
//! - **Sends** meet the schedule's fate for their leader window (429, -32005, a hang, a
//!   drop, a landing after the latency); with preflight on, the node answering first
//!   simulates the transaction on its own view: an unknown or expired blockhash
//!   (`BlockhashNotFound`), a swap whose output is below its minimum at the node's price
//!   (custom error 6001), or funds short are refused, even while an earlier copy of the
//!   same bytes is on its way to land. A node that already sees the transaction answers
//!   `AlreadyProcessed`, which is success. Inside a blackout every call hangs and nothing
//!   sent reaches the chain.
//! - **The router** quotes at the market price with the profile's drift and builds on a
//!   blockhash from its own (possibly lagging) node: an older one, so the transaction
//!   lives the `expiry_slots` asked for, or, when it ignores the request, the newest one
//!   while it reports the shorter life.
//! - **One wallet**: with a native base token (SOL), the same lamports are the traded
//!   asset, the fees and the rent.
//!
//! Times are run times: tokio's clock since the market's start. Every random draw is
//! keyed on the schedule's seed. In paper mode ([`SimVenue::with_paper_wallet`]) slots
//! continue past every one the wallet file ever handed out, so a restart finds every
//! earlier transaction provably dead, and every landing is written to the file. A
//! [`Trace`] given with [`SimVenue::with_trace`] receives every send and landing.

mod chain;
mod cluster;
mod endpoints;
mod ledger;
mod router;
mod send;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use kyzlo_application::clock::Clock;
use kyzlo_application::ports::{
    Balances, Blockhash, Chain, Commitment, DurableNonce, Fill, HealthProbe, NO_LAST_VALID_HEIGHT,
    NonceAccount, Observed, Pair, PortError, Quote, QuoteRequest, RecentBlockhash, Side,
    SignedTransaction, Signer, StatusLookup, SwapRequest, SwapRouter, TxStatus,
    UnsignedTransaction, WalletAddress,
};
use kyzlo_domain::{ErrorClass, Lamports, TokenAmount, TxSignature};

use crate::error::{NODE_BEHIND_CODE, SimError, TOO_MANY_REQUESTS};
use crate::faults::{FaultSchedule, STATUS_CACHE_SLOTS, SendFate, Topology};
use crate::market::SimMarket;
use crate::rng::{SimRng, mix64};
use crate::trace::{Trace, TraceEvent};
pub use crate::wallet::{HeightSource, LedgerEntry, LedgerStatus, PaperWallet, SimWallet};
use cluster::{Cluster, NodeView};
pub use ledger::RENT_EXEMPT_MINIMUM;
use ledger::{
    BLOCKHASH_LIFE, Built, BuiltNonce, ChainRules, FINALIZE_SLOTS, Holdings, Landed, Ledger,
    SwapOut,
};

/// The network fee of every landed transaction, besides its priority fee.
pub const BASE_FEE: Lamports = Lamports::new(5_000);
/// How long a hung call hangs: past any client timeout.
pub const HANG: Duration = Duration::from_secs(3_600);
/// The blockhash life, in slots, when the swap request does not ask for one.
pub const DEFAULT_EXPIRY_SLOTS: u32 = 150;
/// The most signatures one status call accepts.
pub const MAX_STATUS_SIGNATURES: usize = 256;
/// The simulated wallet's address.
pub const SIM_ADDRESS: WalletAddress = WalletAddress([0x5A; 32]);
/// The first slot of a simulated chain (so that older blockhashes exist from the start).
pub const GENESIS_SLOT: u64 = 1_000;

const MAGIC: &[u8; 4] = b"KSIM";
const BLOCKHASH_MAGIC: &[u8; 4] = b"KBH1";
const TX_LEN: usize = 20;
const STREAM_DRIFT: u64 = 301;
const STREAM_RESEND: u64 = 302;

/// How the bot's RPC client reaches a cluster of several providers
/// ([`Topology::Endpoints`]): the settings of kyzlo's Solana adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointClient {
    /// How many of the providers it is configured with: the first ones, primary first.
    pub endpoints: usize,
    /// How long it waits for one answer before the endpoint counts as failing.
    pub request_timeout: Duration,
    /// How long a failing endpoint is passed over.
    pub cooldown: Duration,
}

impl Default for EndpointClient {
    /// Every provider, with the live defaults: `rpc.request_timeout_ms` (1 s) and the
    /// adapter's 30 s cool-down.
    fn default() -> Self {
        Self {
            endpoints: usize::MAX,
            request_timeout: Duration::from_secs(1),
            cooldown: Duration::from_secs(30),
        }
    }
}

/// Whether an error says the endpoint itself failed (no answer, 429, node unhealthy,
/// behind, without history): what makes a client with several endpoints move on.
fn fails_endpoint(e: &SimError) -> bool {
    matches!(
        e.class(),
        ErrorClass::RpcTimeout
            | ErrorClass::Network
            | ErrorClass::RateLimited
            | ErrorClass::NodeUnhealthy
    )
}

/// One landed transaction, as the chaos runner and the invariant checker inspect it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Landing {
    /// Its signature.
    pub signature: TxSignature,
    /// Run time of the landing.
    pub at: Duration,
    /// Its direction.
    pub side: Side,
    /// Input asked for (spent only when `ok`).
    pub amount_in: TokenAmount,
    /// Output received (zero when it failed).
    pub amount_out: TokenAmount,
    /// Fee paid.
    pub fee: Lamports,
    /// Whether it succeeded.
    pub ok: bool,
    /// Its on-chain error when it failed.
    pub error: Option<ErrorClass>,
    /// Whether it was a cancel (a durable nonce's advance alone: it swaps nothing).
    pub cancel: bool,
}

#[derive(Debug)]
struct State {
    next_id: u64,
    /// Transaction ids the router built, by id.
    ids: BTreeMap<u64, TxSignature>,
    ledger: Ledger,
    cluster: Cluster,
    sends: u64,
    first_sent: BTreeMap<TxSignature, Duration>,
    paper: Option<PaperWallet>,
    unsaved: bool,
    /// Main-fork landings already traced and persisted.
    reported: usize,
    /// What the landed swaps' fills fell short of the market price at landing, in quote
    /// units (negative when noise favoured them).
    slippage_quote: i128,
}

/// The simulated router, chain, signer and health probe (see the module docs).
pub struct SimVenue {
    market: Arc<SimMarket>,
    schedule: Arc<FaultSchedule>,
    clock: Clock,
    pair: Pair,
    session: u64,
    trace: Option<Arc<Trace>>,
    state: Mutex<State>,
}

fn rules(schedule: &FaultSchedule, base_slot: u64, native_base: bool) -> ChainRules {
    let p = schedule.profile();
    ChainRules {
        seed: schedule.seed(),
        slot_time: p.slot_time.max(Duration::from_millis(1)),
        base_slot: base_slot.max(GENESIS_SLOT),
        skipped_slots: p.cluster.skipped_slots.clamp(0.0, 0.5),
        forks: p.cluster.forks.clamp(0.0, 1.0),
        confirm_slots: (
            p.cluster.confirm_slots.0,
            p.cluster.confirm_slots.1.max(p.cluster.confirm_slots.0),
        ),
        fill_delay: p.cluster.fill_delay,
        native_base,
    }
}

impl SimVenue {
    /// A venue over `market` and `schedule` holding `wallet`, on `clock` (the market's),
    /// for `pair`. With a native base token, `wallet.base` and `wallet.fee_lamports` are
    /// added into the one lamport balance.
    #[must_use]
    pub fn new(
        market: Arc<SimMarket>,
        schedule: Arc<FaultSchedule>,
        wallet: SimWallet,
        clock: Clock,
        pair: Pair,
    ) -> Self {
        let ledger = Ledger::new(
            rules(&schedule, GENESIS_SLOT, pair.native_base),
            Holdings::from_wallet(wallet, pair.native_base),
        );
        let cluster = Cluster::new(&schedule.profile().cluster, schedule.seed());
        Self {
            market,
            schedule,
            clock,
            pair,
            session: 0,
            trace: None,
            state: Mutex::new(State {
                next_id: 1,
                ids: BTreeMap::new(),
                ledger,
                cluster,
                sends: 0,
                first_sent: BTreeMap::new(),
                paper: None,
                unsaved: false,
                reported: 0,
                slippage_quote: 0,
            }),
        }
    }

    /// A paper-mode venue: [`SimVenue::new`] with `paper`'s balances, then
    /// [`SimVenue::with_paper_wallet`].
    ///
    /// # Errors
    /// [`SimError::InvalidParameter`] when the schedule's profile is invalid (see
    /// [`FaultProfile::validate`](crate::faults::FaultProfile::validate)): paper mode
    /// refuses a bad configuration at start rather than clamping it.
    pub fn paper(
        market: Arc<SimMarket>,
        schedule: Arc<FaultSchedule>,
        paper: PaperWallet,
        clock: Clock,
        pair: Pair,
    ) -> Result<Self, SimError> {
        schedule.profile().validate()?;
        let wallet = paper.wallet();
        Ok(Self::new(market, schedule, wallet, clock, pair).with_paper_wallet(paper))
    }

    /// Paper mode: balances and ledger from `paper`, slots continuing past every slot
    /// and last valid height it ever handed out, signatures of its session, and every
    /// landing written to its file.
    #[must_use]
    pub fn with_paper_wallet(mut self, paper: PaperWallet) -> Self {
        let HeightSource::Continuing { base_height } = paper.height_source() else {
            return self;
        };
        self.session = paper.session();
        let native = self.pair.native_base;
        let mut ledger = Ledger::new(
            rules(&self.schedule, base_height, native),
            Holdings::from_wallet(paper.wallet(), native),
        );
        for e in paper.ledger() {
            ledger.restore(e.signature, e.side, e.slot, e.status, e.fill);
        }
        let mut s = self.lock();
        s.reported = ledger.landings().len();
        s.ledger = ledger;
        s.paper = Some(paper);
        drop(s);
        self
    }

    /// Gives the wallet the durable nonce account `account` (its authority the wallet),
    /// so that transactions can be built on it ([`SwapRequest::nonce`]).
    #[must_use]
    pub fn with_nonce_account(self, account: NonceAccount) -> Self {
        self.lock().ledger.open_nonce(account);
        self
    }

    /// The wallet's nonce account's value now (after every landing), if it has one.
    #[must_use]
    pub fn nonce_value(&self) -> Option<Blockhash> {
        let now = self.run_time();
        let mut s = self.lock();
        self.settle(&mut s, now);
        s.ledger.nonce_tip()
    }

    /// Sends every send and landing to `trace`.
    #[must_use]
    pub fn with_trace(mut self, trace: Arc<Trace>) -> Self {
        self.trace = Some(trace);
        self
    }

    /// The bot's RPC client on a cluster of several providers (by default every provider,
    /// with the live defaults; see [`EndpointClient`]).
    #[must_use]
    pub fn with_client(self, client: EndpointClient) -> Self {
        self.lock().cluster.set_client(client);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Run time: tokio's clock since the market's start.
    #[must_use]
    pub fn run_time(&self) -> Duration {
        self.clock.now().saturating_since(self.market.start)
    }

    /// The fault schedule.
    #[must_use]
    pub fn schedule(&self) -> &FaultSchedule {
        &self.schedule
    }

    /// The market.
    #[must_use]
    pub fn market(&self) -> &SimMarket {
        &self.market
    }

    /// Every main-fork landing so far (successful or failed), in landing order.
    #[must_use]
    pub fn landings(&self) -> Vec<Landing> {
        let now = self.run_time();
        let mut s = self.lock();
        self.settle(&mut s, now);
        s.ledger
            .landings()
            .iter()
            .map(|l| Landing {
                signature: l.signature,
                at: l.at,
                side: l.side,
                amount_in: if l.status == LedgerStatus::Ok {
                    l.fill.amount_in
                } else {
                    s.ledger
                        .built(&l.signature)
                        .map_or(TokenAmount::ZERO, |b| b.amount_in)
                },
                amount_out: l.fill.amount_out,
                fee: l.fill.fee,
                ok: l.status == LedgerStatus::Ok,
                error: l.status.error(),
                cancel: l.cancel,
            })
            .collect()
    }

    /// Fees paid by landed transactions.
    #[must_use]
    pub fn fees_paid(&self) -> Lamports {
        let now = self.run_time();
        let mut s = self.lock();
        self.settle(&mut s, now);
        Lamports::new(s.ledger.fees_paid())
    }

    /// Send calls made (first sends and resends).
    #[must_use]
    pub fn sends(&self) -> u64 {
        self.lock().sends
    }

    /// Run time of the first send call of `signature` (whatever its fate), if any.
    #[must_use]
    pub fn first_sent_at(&self, signature: TxSignature) -> Option<Duration> {
        self.lock().first_sent.get(&signature).copied()
    }

    /// The wallet after every landing so far. With a native base token, `base` is the one
    /// balance of lamports (and `fee_lamports` zero).
    #[must_use]
    pub fn wallet(&self) -> SimWallet {
        let now = self.run_time();
        let mut s = self.lock();
        self.settle(&mut s, now);
        s.ledger.tip().to_wallet(self.pair.native_base)
    }

    /// The tip slot now.
    #[must_use]
    pub fn slot_now(&self) -> u64 {
        let now = self.run_time();
        self.lock().ledger.slot_at(now)
    }

    /// The run time from which a transaction built with the blockhash of `signature`
    /// can no longer land, if this venue built it.
    #[must_use]
    pub fn dead_after(&self, signature: TxSignature) -> Option<Duration> {
        let mut s = self.lock();
        let built = s.ledger.built(&signature)?;
        if built.nonce.is_some() {
            // Only the nonce's value bounds it: no height does.
            return None;
        }
        let mut slot = s.ledger.slot_at(self.run_time());
        while s.ledger.height(slot) <= built.last_valid {
            slot += 1;
        }
        Some(s.ledger.time_of(slot))
    }

    /// The output of swapping `amount_in` on `side` at `price` (before slippage).
    fn fair_out(&self, side: Side, amount_in: TokenAmount, at: Duration) -> u64 {
        let price = self.market.price_at(at);
        match side {
            Side::Sell => self.pair.quote_value(amount_in, price),
            Side::Buy => self.pair.base_for(amount_in, price),
        }
        .get()
    }

    /// What `landed`'s fill fell short of the market price at its landing, in quote units.
    fn slippage_of(&self, landed: &Landed) -> i128 {
        let fair = i128::from(self.fair_out(landed.side, landed.fill.amount_in, landed.at));
        let short = fair - i128::from(landed.fill.amount_out.get());
        match landed.side {
            Side::Sell => short,
            Side::Buy => {
                let price = self.market.price_at(landed.at);
                let value = self
                    .pair
                    .quote_value(
                        TokenAmount::new(short.unsigned_abs().min(u128::from(u64::MAX)) as u64),
                        price,
                    )
                    .get();
                if short < 0 {
                    -i128::from(value)
                } else {
                    i128::from(value)
                }
            }
        }
    }

    /// What landed swaps lost to slippage against the market price at their landing, in
    /// quote units (negative when the noise of fills favoured them overall).
    #[must_use]
    pub fn slippage_paid(&self) -> i128 {
        let now = self.run_time();
        let mut s = self.lock();
        self.settle(&mut s, now);
        s.slippage_quote
    }

    fn swap_out(&self, at: Duration, side: Side, amount_in: TokenAmount) -> u64 {
        let profile = self.schedule.profile();
        let slippage = if profile.base_slippage_bps.is_nan() {
            0.0
        } else {
            profile.base_slippage_bps.clamp(0.0, 10_000.0)
        };
        let noise = self.schedule.price_noise_bps(at);
        let factor = ((1.0 - slippage / 10_000.0) * (1.0 + noise / 10_000.0)).clamp(0.0, 2.0);
        // Float-to-int casts saturate; the product is finite and not negative.
        (self.fair_out(side, amount_in, at) as f64 * factor) as u64
    }

    /// Lands what has reached a leader by `now`; traces and persists new landings.
    fn settle(&self, s: &mut State, now: Duration) {
        let out: &SwapOut<'_> = &|at, side, amount| self.swap_out(at, side, amount);
        let _ = s.ledger.settle(now, out);
        let landings = s.ledger.landings();
        for l in &landings[s.reported.min(landings.len())..] {
            if let Some(trace) = &self.trace {
                trace.record(TraceEvent::Landed {
                    signature: l.signature,
                    at: l.at,
                    slot: l.slot,
                    side: l.side,
                    amount_in: l.fill.amount_in,
                    amount_out: l.fill.amount_out,
                    error: l.status.error(),
                });
            }
        }
        let fresh: Vec<Landed> = landings[s.reported.min(landings.len())..].to_vec();
        s.reported = landings.len();
        for l in fresh.iter().filter(|l| l.status == LedgerStatus::Ok) {
            s.slippage_quote += self.slippage_of(l);
        }
        let wallet = s.ledger.tip().to_wallet(self.pair.native_base);
        if let Some(paper) = &mut s.paper {
            for l in fresh {
                let entry = LedgerEntry {
                    signature: l.signature,
                    status: l.status,
                    slot: l.slot,
                    side: l.side,
                    fill: l.fill,
                };
                if let Err(e) = paper.record_landing(wallet, entry) {
                    tracing::error!(error = %e, "paper wallet not persisted; retrying on the next call");
                    s.unsaved = true;
                }
            }
        }
        if s.unsaved
            && let Some(paper) = &mut s.paper
        {
            match paper.save() {
                Ok(()) => s.unsaved = false,
                Err(e) => tracing::error!(error = %e, "paper wallet still not persisted"),
            }
        }
    }

    fn encode(&self, id: u64) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(TX_LEN);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&self.session.to_le_bytes());
        bytes.extend_from_slice(&id.to_le_bytes());
        bytes
    }

    /// The transaction id in `bytes`, if they are a transaction of this venue's session.
    fn decode(&self, bytes: &[u8]) -> Result<u64, SimError> {
        let unknown = SimError::UnknownTransaction { len: bytes.len() };
        if bytes.len() != TX_LEN || &bytes[..4] != MAGIC {
            return Err(unknown);
        }
        let mut session = [0u8; 8];
        session.copy_from_slice(&bytes[4..12]);
        let mut id = [0u8; 8];
        id.copy_from_slice(&bytes[12..20]);
        if u64::from_le_bytes(session) != self.session {
            return Err(unknown);
        }
        Ok(u64::from_le_bytes(id))
    }

    /// The signature of transaction `id`: a mixed prefix (so logs tell signatures apart),
    /// then the session and the id (so signatures are unique), then more mixing.
    fn signature_of(&self, id: u64) -> TxSignature {
        let mut sig = [0u8; 64];
        let mut h = mix64(self.session ^ mix64(id));
        sig[..8].copy_from_slice(&h.to_le_bytes());
        sig[8..16].copy_from_slice(&self.session.to_le_bytes());
        sig[16..24].copy_from_slice(&id.to_le_bytes());
        for chunk in sig[24..].chunks_mut(8) {
            h = mix64(h);
            chunk.copy_from_slice(&h.to_le_bytes()[..chunk.len()]);
        }
        TxSignature(sig)
    }

    /// The blockhash of `slot` on this session's chain.
    fn blockhash_of(&self, slot: u64) -> Blockhash {
        let mut hash = [0u8; 32];
        hash[..4].copy_from_slice(BLOCKHASH_MAGIC);
        hash[4..12].copy_from_slice(&self.session.to_le_bytes());
        hash[12..20].copy_from_slice(&slot.to_le_bytes());
        hash[20..28].copy_from_slice(&mix64(slot ^ self.session).to_le_bytes());
        Blockhash(hash)
    }

    /// The slot whose blockhash `hash` is, if it is one of this session's chain.
    fn slot_of(&self, hash: Blockhash) -> Option<u64> {
        let b = hash.0;
        let mut session = [0u8; 8];
        session.copy_from_slice(&b[4..12]);
        let mut slot = [0u8; 8];
        slot.copy_from_slice(&b[12..20]);
        let slot = u64::from_le_bytes(slot);
        (&b[..4] == BLOCKHASH_MAGIC
            && u64::from_le_bytes(session) == self.session
            && hash == self.blockhash_of(slot))
        .then_some(slot)
    }
}

/// The node a call reached and when.
#[derive(Debug, Clone, Copy)]
struct Node {
    now: Duration,
    tip: u64,
    view: NodeView,
}

#[cfg(test)]
mod tests;
