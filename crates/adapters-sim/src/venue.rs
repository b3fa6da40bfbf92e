//! The simulated venue: router, chain, signer and health probe in one, over a
//! [`SimMarket`] and a [`FaultSchedule`], on tokio's clock.
//!
//! - **quote** at the market's price now (`min_out = expected × (1 − slippage)`); a 429
//!   or a blackout (the call hangs [`HANG`], so the client's timeout cuts it) per
//!   [`FaultSchedule::call_fails`].
//! - **build_swap** registers the transaction (side, input, minimum output, priority fee,
//!   last valid height = height + `expiry_slots`, 150 when unset); its bytes encode the
//!   venue's session and the transaction's id.
//! - **sign** derives a signature from the bytes: deterministic and unique per
//!   transaction.
//! - **send** at run time `t`: every send of a signature that has not landed draws
//!   [`FaultSchedule::send_fate`]. A fate that reaches a leader (lands, hangs then lands)
//!   schedules a landing; a later send of the same bytes may reach a leader sooner, and
//!   the signature lands at the earliest of its copies, once: the same bytes can never
//!   execute twice. A send that is dropped, hangs without reaching a leader, or is
//!   refused (429, node behind) schedules nothing, so a rebroadcast draws again at its own
//!   time: this is what rebroadcasting buys on a real network. Inside a blackout every call
//!   hangs and nothing sent reaches the chain. A landing time at or past the blockhash's
//!   expiry never lands. Expired blockhashes are refused at preflight, as is a fee payer
//!   that cannot pay.
//! - **landing**, settled lazily on any call, in landing-time order: the fill is the
//!   market price at landing, `base_slippage_bps` worse, with the profile's noise; the
//!   wallet lacking the input fails it with `InsufficientFunds`, an output below the
//!   minimum fails it with `SlippageExceeded`; either way the fee (5,000 + priority fee
//!   lamports) is paid from `fee_lamports`.
//! - **statuses** `Confirmed` from the landing time on (a 429, node-behind or blackout
//!   per `call_fails`); **block_height** is chain time / slot time less the profile's
//!   lag; **fill** what a landing moved; **balances** the wallet.
//!
//! Times are run times: tokio's clock since the market's start. In paper mode
//! ([`SimVenue::with_paper_wallet`]) heights continue past the highest last valid height
//! the wallet file records (written before a transaction can be sent), so a restart finds
//! every earlier transaction provably expired; every landing is written to the file.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use kyzlo_application::clock::Clock;
use kyzlo_application::ports::{
    Balances, Chain, Commitment, Fill, HealthProbe, Pair, PortError, Quote, QuoteRequest, Side,
    SignedTransaction, Signer, StatusLookup, SwapRequest, SwapRouter, TxStatus,
    UnsignedTransaction, WalletAddress,
};
use kyzlo_domain::{ErrorClass, Lamports, TokenAmount, TxSignature};

use crate::error::{NODE_BEHIND_CODE, SimError, TOO_MANY_REQUESTS};
use crate::faults::{FaultSchedule, SendFate};
use crate::market::SimMarket;
use crate::rng::mix64;
use crate::wallet::chain_elapsed;
pub use crate::wallet::{HeightSource, LedgerEntry, LedgerStatus, PaperWallet, SimWallet};

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

const MAGIC: &[u8; 4] = b"KSIM";
const TX_LEN: usize = 20;

/// One landed transaction, as the chaos runner inspects it.
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
}

#[derive(Debug, Clone, Copy)]
struct Built {
    side: Side,
    amount_in: TokenAmount,
    min_out: TokenAmount,
    priority_fee: Lamports,
    last_valid: u64,
}

#[derive(Debug, Clone, Copy)]
struct Forwarded {
    built: Built,
    /// `None`: it never lands.
    lands_at: Option<Duration>,
}

#[derive(Debug, Clone, Copy)]
struct Landed {
    slot: u64,
    status: LedgerStatus,
    fill: Fill,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    built: BTreeMap<u64, Built>,
    forwarded: BTreeMap<TxSignature, Forwarded>,
    landed: BTreeMap<TxSignature, Landed>,
    landings: Vec<Landing>,
    wallet: SimWallet,
    fees_paid: Lamports,
    sends: u64,
    first_sent: BTreeMap<TxSignature, Duration>,
    paper: Option<PaperWallet>,
    unsaved: bool,
}

/// What a send does once the state is updated.
enum SendEnd {
    Ok,
    /// Hang, then report success (it was forwarded).
    HangForwarded,
    /// Hang, then time out (nothing reached the chain).
    HangLost,
    Err(SimError),
}

/// The simulated router, chain, signer and health probe (see the module docs).
pub struct SimVenue {
    market: Arc<SimMarket>,
    schedule: Arc<FaultSchedule>,
    clock: Clock,
    pair: Pair,
    height: HeightSource,
    session: u64,
    state: Mutex<State>,
}

impl SimVenue {
    /// A venue over `market` and `schedule` holding `wallet`, on `clock` (the market's),
    /// for `pair`, with virtual block heights.
    #[must_use]
    pub fn new(
        market: Arc<SimMarket>,
        schedule: Arc<FaultSchedule>,
        wallet: SimWallet,
        clock: Clock,
        pair: Pair,
    ) -> Self {
        Self {
            market,
            schedule,
            clock,
            pair,
            height: HeightSource::Virtual,
            session: 0,
            state: Mutex::new(State {
                next_id: 1,
                wallet,
                ..State::default()
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

    /// Chooses where block heights come from.
    #[must_use]
    pub fn with_height_source(mut self, height: HeightSource) -> Self {
        self.height = height;
        self
    }

    /// Paper mode: balances and ledger from `paper`, heights continuing past every last
    /// valid height it ever handed out, signatures of its session, and every landing
    /// written to its file.
    #[must_use]
    pub fn with_paper_wallet(mut self, paper: PaperWallet) -> Self {
        self.height = paper.height_source();
        self.session = paper.session();
        let mut s = self.lock();
        s.wallet = paper.wallet();
        for e in paper.ledger() {
            s.landed.insert(
                e.signature,
                Landed {
                    slot: e.slot,
                    status: e.status,
                    fill: e.fill,
                },
            );
        }
        s.paper = Some(paper);
        drop(s);
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

    /// Every landing so far (successful or failed), in landing order.
    #[must_use]
    pub fn landings(&self) -> Vec<Landing> {
        let now = self.run_time();
        let mut s = self.lock();
        self.settle(&mut s, now);
        s.landings.clone()
    }

    /// Fees paid by landed transactions.
    #[must_use]
    pub fn fees_paid(&self) -> Lamports {
        let now = self.run_time();
        let mut s = self.lock();
        self.settle(&mut s, now);
        s.fees_paid
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

    /// The wallet now.
    #[must_use]
    pub fn wallet(&self) -> SimWallet {
        let now = self.run_time();
        let mut s = self.lock();
        self.settle(&mut s, now);
        s.wallet
    }

    /// The true block height now (what the node reports is `node_lag_slots` lower).
    #[must_use]
    pub fn height_now(&self) -> u64 {
        self.true_height(self.run_time())
    }

    /// The run time from which a transaction with last valid height `last_valid` can
    /// no longer land.
    #[must_use]
    pub fn expiry_time(&self, last_valid: u64) -> Duration {
        self.expires_at(last_valid, self.run_time())
    }

    fn slot_time(&self) -> Duration {
        self.schedule
            .profile()
            .slot_time
            .max(Duration::from_millis(1))
    }

    fn slots(&self, n: u64) -> Duration {
        let nanos = self.slot_time().as_nanos().saturating_mul(u128::from(n));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    fn height_of(&self, chain_time: Duration) -> u64 {
        u64::try_from(chain_time.as_nanos() / self.slot_time().as_nanos()).unwrap_or(u64::MAX)
    }

    fn true_height(&self, now: Duration) -> u64 {
        self.height_of(chain_elapsed(self.height, now, self.slot_time()))
    }

    /// Run time at which height first exceeds `last_valid`.
    fn expires_at(&self, last_valid: u64, now: Duration) -> Duration {
        let chain_now = chain_elapsed(self.height, now, self.slot_time());
        let expiry = self.slots(last_valid.saturating_add(1));
        now.saturating_add(expiry.saturating_sub(chain_now))
    }

    /// Applies landings whose time has come, in landing-time order.
    fn settle(&self, s: &mut State, now: Duration) {
        let mut due: Vec<(Duration, TxSignature, Built)> = s
            .forwarded
            .iter()
            .filter_map(|(sig, f)| match f.lands_at {
                Some(at) if at <= now && !s.landed.contains_key(sig) => Some((at, *sig, f.built)),
                _ => None,
            })
            .collect();
        due.sort_by_key(|(at, sig, _)| (*at, *sig));
        for (at, sig, built) in due {
            self.execute(s, sig, built, at, now);
        }
        if s.unsaved
            && let Some(paper) = &s.paper
        {
            match paper.save() {
                Ok(()) => s.unsaved = false,
                Err(e) => tracing::error!(error = %e, "paper wallet still not persisted"),
            }
        }
    }

    fn execute(
        &self,
        s: &mut State,
        signature: TxSignature,
        b: Built,
        at: Duration,
        now: Duration,
    ) {
        let profile = self.schedule.profile();
        let fee = BASE_FEE.saturating_add(b.priority_fee);
        let price = self.market.price_at(at);
        let fair = match b.side {
            Side::Sell => self.pair.quote_value(b.amount_in, price),
            Side::Buy => self.pair.base_for(b.amount_in, price),
        };
        let slippage = if profile.base_slippage_bps.is_nan() {
            0.0
        } else {
            profile.base_slippage_bps.clamp(0.0, 10_000.0)
        };
        let noise = self.schedule.price_noise_bps(at);
        let factor = ((1.0 - slippage / 10_000.0) * (1.0 + noise / 10_000.0)).clamp(0.0, 2.0);
        // Float-to-int casts saturate; the product is finite and not negative.
        let out = TokenAmount::new((fair.get() as f64 * factor) as u64);
        let held = match b.side {
            Side::Sell => s.wallet.base,
            Side::Buy => s.wallet.quote,
        };
        let status = if held < b.amount_in {
            LedgerStatus::InsufficientFunds
        } else if out < b.min_out {
            LedgerStatus::SlippageExceeded
        } else {
            LedgerStatus::Ok
        };
        let ok = status == LedgerStatus::Ok;
        s.wallet.fee_lamports =
            Lamports::new(s.wallet.fee_lamports.get().saturating_sub(fee.get()));
        s.fees_paid = s.fees_paid.saturating_add(fee);
        let amount_out = if ok { out } else { TokenAmount::ZERO };
        if ok {
            let w = &mut s.wallet;
            let (spent, got) = match b.side {
                Side::Sell => (&mut w.base, &mut w.quote),
                Side::Buy => (&mut w.quote, &mut w.base),
            };
            *spent = spent.checked_sub(b.amount_in).unwrap_or(TokenAmount::ZERO);
            *got = TokenAmount::new(got.get().saturating_add(out.get()));
        }
        let fill = Fill {
            amount_in: if ok { b.amount_in } else { TokenAmount::ZERO },
            amount_out,
            fee,
        };
        let chain_at = chain_elapsed(self.height, now, self.slot_time())
            .saturating_sub(now.saturating_sub(at));
        let slot = self.height_of(chain_at);
        s.landed.insert(signature, Landed { slot, status, fill });
        s.landings.push(Landing {
            signature,
            at,
            side: b.side,
            amount_in: b.amount_in,
            amount_out,
            fee,
            ok,
            error: status.error(),
        });
        tracing::debug!(%signature, ?at, side = b.side.as_str(), ?status, amount_out = amount_out.get(), "simulated landing");
        let wallet = s.wallet;
        if let Some(paper) = &mut s.paper {
            let entry = LedgerEntry {
                signature,
                status,
                slot,
                side: b.side,
                fill,
            };
            if let Err(e) = paper.record_landing(wallet, entry) {
                tracing::error!(error = %e, "paper wallet not persisted; retrying on the next call");
                s.unsaved = true;
            }
        }
    }

    /// The fault a call made now meets: a 429, node-behind (chain reads only), or a
    /// blackout hang ending in a timeout.
    async fn gate(&self, operation: &'static str, chain_read: bool) -> Result<(), PortError> {
        let now = self.run_time();
        let injected = |class, retry_after, code| {
            Err(SimError::Injected {
                operation,
                class,
                retry_after,
                code,
            }
            .to_port(operation))
        };
        match self.schedule.call_fails(now) {
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
            _ => Ok(()),
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

    fn begin_send(&self, tx: &SignedTransaction, now: Duration) -> SendEnd {
        let mut s = self.lock();
        s.sends += 1;
        s.first_sent.entry(tx.signature).or_insert(now);
        self.settle(&mut s, now);
        if self.schedule.in_blackout(now) {
            return SendEnd::HangLost;
        }
        if s.landed.contains_key(&tx.signature) {
            // Landed already (perhaps before a restart): acknowledged, never executed twice.
            return SendEnd::Ok;
        }
        let id = match self.decode(&tx.bytes) {
            Ok(id) if self.signature_of(id) == tx.signature => id,
            Ok(_) | Err(_) => {
                return SendEnd::Err(SimError::UnknownTransaction {
                    len: tx.bytes.len(),
                });
            }
        };
        let Some(built) = s.built.get(&id).copied() else {
            return SendEnd::Err(SimError::UnknownTransaction {
                len: tx.bytes.len(),
            });
        };
        let height = self.true_height(now);
        if height > built.last_valid {
            return SendEnd::Err(SimError::BlockhashExpired {
                last_valid: built.last_valid,
                height,
            });
        }
        let fee = BASE_FEE.saturating_add(built.priority_fee);
        if s.wallet.fee_lamports < fee {
            return SendEnd::Err(SimError::InsufficientFee {
                held: s.wallet.fee_lamports.get(),
                fee: fee.get(),
            });
        }
        let fate = self.schedule.send_fate(now, built.priority_fee);
        tracing::debug!(signature = %tx.signature, ?now, ?fate, "simulated send");
        let expires = self.expires_at(built.last_valid, now);
        let mut forward = |after: Option<Duration>| {
            let lands_at = after
                .map(|a| now.saturating_add(a))
                .filter(|at| *at < expires);
            // One signature, one landing: the earliest copy to reach a leader.
            let entry = s.forwarded.entry(tx.signature).or_insert(Forwarded {
                built,
                lands_at: None,
            });
            entry.lands_at = match (entry.lands_at, lands_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        };
        match fate {
            SendFate::Lands { after } => {
                forward(Some(after));
                SendEnd::Ok
            }
            SendFate::HangsThenLands { after } => {
                forward(Some(after));
                SendEnd::HangForwarded
            }
            // Neither reached a leader: the bytes stay unforwarded, so a rebroadcast
            // draws again.
            SendFate::HangsNeverLands => SendEnd::HangLost,
            SendFate::Dropped => SendEnd::Ok,
            SendFate::RateLimited { retry_after } => SendEnd::Err(SimError::Injected {
                operation: "sim.send",
                class: ErrorClass::RateLimited,
                retry_after: Some(retry_after),
                code: Some(TOO_MANY_REQUESTS),
            }),
            SendFate::NodeUnhealthy => SendEnd::Err(SimError::Injected {
                operation: "sim.send",
                class: ErrorClass::NodeUnhealthy,
                retry_after: None,
                code: Some(NODE_BEHIND_CODE),
            }),
            SendFate::Blackout => SendEnd::HangLost,
        }
    }
}

#[async_trait]
impl SwapRouter for SimVenue {
    async fn quote(&self, request: &QuoteRequest) -> Result<Quote, PortError> {
        const OP: &str = "sim.quote";
        self.gate(OP, false).await?;
        let price = self.market.price_at(self.run_time());
        let expected_out = match request.side {
            Side::Sell => self.pair.quote_value(request.amount_in, price),
            Side::Buy => self.pair.base_for(request.amount_in, price),
        };
        if request.amount_in.is_zero() || expected_out.is_zero() {
            return Err(SimError::NoRoute {
                amount_in: request.amount_in.get(),
            }
            .to_port(OP));
        }
        let bps = u128::from(request.slippage.bps().get());
        let cut = u128::from(expected_out.get()) * bps / 10_000;
        let min_out = TokenAmount::new(
            expected_out
                .get()
                .saturating_sub(u64::try_from(cut).unwrap_or(u64::MAX)),
        );
        Ok(Quote {
            request: *request,
            expected_out,
            min_out,
            price_impact_pct: 0.0,
            route_label: "sim".into(),
            raw: Arc::from(format!("{{\"price\":{}}}", price.get()).as_bytes()),
        })
    }

    async fn build_swap(&self, request: &SwapRequest) -> Result<UnsignedTransaction, PortError> {
        self.gate("sim.build_swap", false).await?;
        let now = self.run_time();
        let slots = request.expiry_slots.unwrap_or(DEFAULT_EXPIRY_SLOTS);
        let last_valid = self.true_height(now).saturating_add(u64::from(slots));
        let mut s = self.lock();
        if let Some(paper) = s.paper.as_mut() {
            paper
                .note_last_valid(last_valid)
                .map_err(|e| e.to_port("sim.build_swap"))?;
        }
        let id = s.next_id;
        s.next_id += 1;
        s.built.insert(
            id,
            Built {
                side: request.quote.request.side,
                amount_in: request.quote.request.amount_in,
                min_out: request.quote.min_out,
                priority_fee: request.priority_fee,
                last_valid,
            },
        );
        Ok(UnsignedTransaction {
            bytes: self.encode(id),
            last_valid_block_height: last_valid,
        })
    }
}

impl Signer for SimVenue {
    fn address(&self) -> WalletAddress {
        SIM_ADDRESS
    }

    fn sign(&self, unsigned: &UnsignedTransaction) -> Result<SignedTransaction, PortError> {
        let id = self
            .decode(&unsigned.bytes)
            .map_err(|e| e.to_port("sim.sign"))?;
        Ok(SignedTransaction {
            bytes: Arc::from(unsigned.bytes.as_slice()),
            signature: self.signature_of(id),
            last_valid_block_height: unsigned.last_valid_block_height,
        })
    }
}

#[async_trait]
impl Chain for SimVenue {
    async fn send(&self, tx: &SignedTransaction) -> Result<(), PortError> {
        const OP: &str = "sim.send";
        let now = self.run_time();
        match self.begin_send(tx, now) {
            SendEnd::Ok => Ok(()),
            SendEnd::Err(e) => Err(e.to_port(OP)),
            SendEnd::HangForwarded => {
                tokio::time::sleep(HANG).await;
                Ok(())
            }
            SendEnd::HangLost => {
                tokio::time::sleep(HANG).await;
                Err(SimError::Injected {
                    operation: OP,
                    class: ErrorClass::RpcTimeout,
                    retry_after: None,
                    code: None,
                }
                .to_port(OP))
            }
        }
    }

    async fn statuses(
        &self,
        signatures: &[TxSignature],
        _lookup: StatusLookup,
    ) -> Result<Vec<Option<TxStatus>>, PortError> {
        const OP: &str = "sim.statuses";
        self.gate(OP, true).await?;
        if signatures.len() > MAX_STATUS_SIGNATURES {
            return Err(SimError::TooManySignatures {
                count: signatures.len(),
                limit: MAX_STATUS_SIGNATURES,
            }
            .to_port(OP));
        }
        let now = self.run_time();
        let mut s = self.lock();
        self.settle(&mut s, now);
        Ok(signatures
            .iter()
            .map(|sig| {
                s.landed.get(sig).map(|l| TxStatus {
                    slot: l.slot,
                    commitment: Commitment::Confirmed,
                    error: l.status.error(),
                })
            })
            .collect())
    }

    async fn block_height(&self) -> Result<u64, PortError> {
        self.gate("sim.block_height", true).await?;
        let lag = self.schedule.profile().node_lag_slots;
        Ok(self.true_height(self.run_time()).saturating_sub(lag))
    }

    async fn fill(&self, signature: TxSignature, _side: Side) -> Result<Option<Fill>, PortError> {
        self.gate("sim.fill", true).await?;
        let now = self.run_time();
        let mut s = self.lock();
        self.settle(&mut s, now);
        Ok(s.landed.get(&signature).map(|l| l.fill))
    }

    async fn balances(&self) -> Result<Balances, PortError> {
        self.gate("sim.balances", true).await?;
        Ok(self.wallet().into())
    }
}

#[async_trait]
impl HealthProbe for SimVenue {
    async fn probe(&self) -> Result<(), PortError> {
        self.gate("sim.probe", true).await
    }
}

#[cfg(test)]
mod tests;
