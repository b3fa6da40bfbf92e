//! A scriptable fake venue (router, chain, signer, health probe): each transaction lands,
//! fails, hangs or is dropped as scripted, resends can be refused, fills, quotes and
//! confirmations delayed, and routers made to hand out stale blockhashes.

use super::*;

/// What the fake chain does with the n-th transaction sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SendScript {
    /// Accepts it; it lands successfully `after` the send.
    Land {
        /// Delay to landing.
        after: Duration,
    },
    /// Accepts it; it lands with an on-chain error `after` the send.
    LandFailed {
        /// The error.
        class: ErrorClass,
        /// Delay to landing.
        after: Duration,
    },
    /// The send call hangs past any timeout, yet the transaction lands `lands_after`
    /// the send (`None`: it never lands).
    TimeoutThenLand {
        /// Delay to landing, if ever.
        lands_after: Option<Duration>,
    },
    /// The send is acknowledged but the transaction is dropped.
    Drop,
    /// The send is refused at preflight with `class`.
    Refuse {
        /// The error.
        class: ErrorClass,
    },
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    lands_at: Duration,
    settled: bool,
    error: Option<ErrorClass>,
    side: Side,
    amount_in: TokenAmount,
    amount_out: TokenAmount,
}

#[derive(Debug)]
struct VenueState {
    scripts: VecDeque<SendScript>,
    default_script: SendScript,
    by_signature: BTreeMap<TxSignature, Pending>,
    landed: Vec<(TxSignature, Side, TokenAmount)>,
    landed_ok: std::collections::BTreeSet<TxSignature>,
    balances: Balances,
    next_tx: u64,
    sends: u64,
    unsigned: BTreeMap<Vec<u8>, (Side, TokenAmount, TokenAmount, u64)>,
    /// The last valid height of each blockhash handed out.
    blockhashes: BTreeMap<Blockhash, u64>,
    quote_failures: VecDeque<PortError>,
    quotes: Vec<QuoteRequest>,
    /// Resends (not first sends) are refused with this class while set.
    refuse_resends: Option<ErrorClass>,
    /// A landing's fill cannot be read for this long.
    fill_delay: Duration,
    /// Each quote takes this long.
    quote_delay: Duration,
    /// A landing shows as processed for this long before it is confirmed.
    confirm_delay: Duration,
    swaps: Vec<SwapRequest>,
    /// The next builds use a blockhash this many blocks older than asked for (a router on
    /// a lagging node), in order.
    stale_builds: VecDeque<u64>,
}

/// The pair the fakes trade: SOL's decimals, but a base token that is not SOL itself, so
/// the fake wallet's base holdings and its fee lamports are separate (the simulated venue
/// models SOL as one balance).
pub const FAKE_PAIR: Pair = Pair {
    native_base: false,
    ..Pair::SOL_USDC
};

/// A scripted router, signer and chain in one, on tokio's clock. Block height advances
/// one per `slot_time`. Fills are at the feed's price (less nothing) and move the fake
/// wallet's balances; a sell landing without enough base fails on chain with
/// `InsufficientFunds`, as a real token program would.
pub struct FakeVenue {
    state: Mutex<VenueState>,
    feed: Arc<FakeFeed>,
    clock: Clock,
    pair: Pair,
    slot_time: Duration,
    ignore_expiry: std::sync::atomic::AtomicBool,
    /// The health probe fails while this is false.
    reachable: std::sync::atomic::AtomicBool,
}

impl FakeVenue {
    /// A venue pricing from `feed`, with wallet `balances`, where every send lands after
    /// 800 ms unless scripted otherwise.
    #[must_use]
    pub fn new(feed: Arc<FakeFeed>, balances: Balances, clock: Clock) -> Self {
        Self {
            state: Mutex::new(VenueState {
                scripts: VecDeque::new(),
                default_script: SendScript::Land {
                    after: Duration::from_millis(800),
                },
                by_signature: BTreeMap::new(),
                landed: Vec::new(),
                landed_ok: std::collections::BTreeSet::new(),
                balances,
                next_tx: 1,
                sends: 0,
                unsigned: BTreeMap::new(),
                blockhashes: BTreeMap::new(),
                quote_failures: VecDeque::new(),
                quotes: Vec::new(),
                refuse_resends: None,
                fill_delay: Duration::ZERO,
                quote_delay: Duration::ZERO,
                confirm_delay: Duration::ZERO,
                swaps: Vec::new(),
                stale_builds: VecDeque::new(),
            }),
            feed,
            clock,
            pair: FAKE_PAIR,
            slot_time: Duration::from_millis(400),
            ignore_expiry: std::sync::atomic::AtomicBool::new(false),
            reachable: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Makes the router ignore the requested blockhash life (150 blocks, ~60 s), as a
    /// router that does not support it would.
    pub fn ignore_expiry(&self) {
        self.ignore_expiry
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The block height now.
    #[must_use]
    pub fn height_now(&self) -> u64 {
        self.height()
    }

    /// When block height first exceeds `lvh`.
    #[must_use]
    pub fn expiry_time(&self, lvh: u64) -> Duration {
        self.slot_time * u32::try_from(lvh + 1).unwrap_or(u32::MAX)
    }

    fn with<T>(&self, f: impl FnOnce(&mut VenueState) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Scripts the next transactions (in order of first send).
    pub fn script(&self, scripts: impl IntoIterator<Item = SendScript>) {
        self.with(|s| s.scripts.extend(scripts));
    }

    /// Makes the health probe fail (`false`) or succeed again (`true`).
    pub fn set_reachable(&self, reachable: bool) {
        self.reachable
            .store(reachable, std::sync::atomic::Ordering::SeqCst);
    }

    /// What happens to transactions beyond the script.
    pub fn set_default(&self, script: SendScript) {
        self.with(|s| s.default_script = script);
    }

    /// Refuses every resend of bytes already sent with `class` (a node's preflight on its
    /// own state), while the first copy may still land.
    pub fn refuse_resends(&self, class: ErrorClass) {
        self.with(|s| s.refuse_resends = Some(class));
    }

    /// A landing's fill cannot be read for `delay` after it lands.
    pub fn delay_fills(&self, delay: Duration) {
        self.with(|s| s.fill_delay = delay);
    }

    /// Each quote takes `delay`.
    pub fn delay_quotes(&self, delay: Duration) {
        self.with(|s| s.quote_delay = delay);
    }

    /// A landing shows as processed for `delay` before it is confirmed.
    pub fn delay_confirmation(&self, delay: Duration) {
        self.with(|s| s.confirm_delay = delay);
    }

    /// The next builds use blockhashes these many blocks older than the life asked for
    /// would need (a router on a lagging node): at or past the life asked for they are
    /// already expired, past half of it they are nearly spent.
    pub fn stale_builds(&self, lags: impl IntoIterator<Item = u64>) {
        self.with(|s| s.stale_builds.extend(lags));
    }

    /// Makes the next quotes fail with these errors, in order.
    pub fn fail_quotes(&self, errors: impl IntoIterator<Item = PortError>) {
        self.with(|s| s.quote_failures.extend(errors));
    }

    /// Transactions that landed successfully: (signature, side, amount in).
    #[must_use]
    pub fn landed(&self) -> Vec<(TxSignature, Side, TokenAmount)> {
        self.with(|s| s.landed.clone())
    }

    /// Send calls made (first sends and rebroadcasts).
    #[must_use]
    pub fn sends(&self) -> u64 {
        self.with(|s| s.sends)
    }

    /// Quote requests seen.
    #[must_use]
    pub fn quotes(&self) -> Vec<QuoteRequest> {
        self.with(|s| s.quotes.clone())
    }

    /// Swap requests seen.
    #[must_use]
    pub fn swaps(&self) -> Vec<SwapRequest> {
        self.with(|s| s.swaps.clone())
    }

    /// The wallet now.
    #[must_use]
    pub fn balances(&self) -> Balances {
        self.settle();
        self.with(|s| s.balances)
    }

    fn elapsed(&self) -> Duration {
        Duration::from_micros(self.clock.now().as_micros())
    }

    fn height(&self) -> u64 {
        (self.elapsed().as_micros() / self.slot_time.as_micros().max(1)) as u64
    }

    /// Applies landings whose time has come, in landing order.
    fn settle(&self) {
        let now = self.elapsed();
        self.with(|s| {
            let mut due: Vec<(TxSignature, Pending)> = s
                .by_signature
                .iter()
                .filter(|(_, p)| !p.settled && p.lands_at <= now)
                .map(|(sig, p)| (*sig, *p))
                .collect();
            due.sort_by_key(|(_, p)| p.lands_at);
            for (sig, mut p) in due {
                p.settled = true;
                if p.error.is_none() {
                    let held = match p.side {
                        Side::Sell => s.balances.base,
                        Side::Buy => s.balances.quote,
                    };
                    if held < p.amount_in {
                        p.error = Some(ErrorClass::InsufficientFunds);
                    }
                }
                if p.error.is_none() {
                    match p.side {
                        Side::Sell => {
                            s.balances.base =
                                TokenAmount::new(s.balances.base.get() - p.amount_in.get());
                            s.balances.quote =
                                TokenAmount::new(s.balances.quote.get() + p.amount_out.get());
                        }
                        Side::Buy => {
                            s.balances.quote =
                                TokenAmount::new(s.balances.quote.get() - p.amount_in.get());
                            s.balances.base =
                                TokenAmount::new(s.balances.base.get() + p.amount_out.get());
                        }
                    }
                    s.landed.push((sig, p.side, p.amount_in));
                    s.landed_ok.insert(sig);
                }
                s.by_signature.insert(sig, p);
            }
        });
    }
}

#[async_trait]
impl SwapRouter for FakeVenue {
    async fn quote(&self, request: &QuoteRequest) -> Result<Quote, PortError> {
        let delay = self.with(|s| s.quote_delay);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if let Some(e) = self.with(|s| {
            s.quotes.push(*request);
            s.quote_failures.pop_front()
        }) {
            return Err(e);
        }
        let price = self.feed.price().await?.price;
        let expected_out = match request.side {
            Side::Sell => self.pair.quote_value(request.amount_in, price),
            Side::Buy => self.pair.base_for(request.amount_in, price),
        };
        let min_out = TokenAmount::new(
            expected_out.get()
                - expected_out.get() * u64::from(request.slippage.bps().get()) / 10_000,
        );
        Ok(Quote {
            request: *request,
            expected_out,
            min_out,
            price_impact_pct: 0.0,
            route_label: "fake".into(),
            raw: Arc::from(&b"{}"[..]),
        })
    }

    async fn build_swap(&self, request: &SwapRequest) -> Result<UnsignedTransaction, PortError> {
        let slots = if self
            .ignore_expiry
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            150
        } else {
            request.expiry_slots.unwrap_or(150)
        };
        let height = self.height();
        let bytes = self.with(|s| {
            let lag = s.stale_builds.pop_front().unwrap_or(0);
            let lvh = (height + u64::from(slots)).saturating_sub(lag);
            s.swaps.push(request.clone());
            let id = s.next_tx;
            s.next_tx += 1;
            let bytes = id.to_le_bytes().to_vec();
            s.blockhashes.insert(blockhash_of(&bytes), lvh);
            s.unsigned.insert(
                bytes.clone(),
                (
                    request.quote.request.side,
                    request.quote.request.amount_in,
                    request.quote.expected_out,
                    lvh,
                ),
            );
            (bytes, lvh)
        });
        let (bytes, lvh) = bytes;
        Ok(UnsignedTransaction {
            bytes,
            last_valid_block_height: lvh,
            priority_fee: None,
        })
    }
}

/// The fake blockhash of a transaction's bytes: one per transaction.
fn blockhash_of(bytes: &[u8]) -> Blockhash {
    let mut hash = [0xB1u8; 32];
    for (i, b) in bytes.iter().enumerate().take(32) {
        hash[i] = *b;
    }
    Blockhash(hash)
}

impl Signer for FakeVenue {
    fn address(&self) -> WalletAddress {
        WalletAddress([7; 32])
    }

    fn sign(&self, unsigned: &UnsignedTransaction) -> Result<SignedTransaction, PortError> {
        let mut sig = [0u8; 64];
        for (i, b) in unsigned.bytes.iter().enumerate().take(64) {
            sig[i] = *b;
        }
        sig[63] = 0xAB;
        Ok(SignedTransaction {
            bytes: Arc::from(unsigned.bytes.as_slice()),
            signature: TxSignature(sig),
            blockhash: blockhash_of(&unsigned.bytes),
            last_valid_block_height: unsigned.last_valid_block_height,
        })
    }
}

#[async_trait]
impl Chain for FakeVenue {
    async fn send(&self, tx: &SignedTransaction) -> Result<(), PortError> {
        let now = self.elapsed();
        let height = self.height();
        let script = self.with(|s| {
            s.sends += 1;
            if s.by_signature.contains_key(&tx.signature) {
                return s.refuse_resends.map(|class| SendScript::Refuse { class });
            }
            let (side, amount_in, amount_out, lvh) = s.unsigned.get(tx.bytes.as_ref()).copied()?;
            if height > lvh {
                return Some(SendScript::Refuse {
                    class: ErrorClass::BlockhashExpired,
                });
            }
            let script = s.scripts.pop_front().unwrap_or(s.default_script);
            // A transaction can only land while its blockhash is valid.
            let expires = self.slot_time * u32::try_from(lvh + 1).unwrap_or(u32::MAX);
            let pending = |after: Option<Duration>, error| Pending {
                settled: false,
                lands_at: after
                    .map(|a| now + a)
                    .filter(|at| *at < expires)
                    .unwrap_or(Duration::MAX),
                error,
                side,
                amount_in,
                amount_out,
            };
            match script {
                SendScript::Land { after } => {
                    s.by_signature
                        .insert(tx.signature, pending(Some(after), None));
                }
                SendScript::LandFailed { class, after } => {
                    s.by_signature
                        .insert(tx.signature, pending(Some(after), Some(class)));
                }
                SendScript::TimeoutThenLand { lands_after } => {
                    s.by_signature
                        .insert(tx.signature, pending(lands_after, None));
                }
                SendScript::Drop => {
                    s.by_signature.insert(tx.signature, pending(None, None));
                }
                SendScript::Refuse { .. } => {}
            }
            Some(script)
        });
        match script {
            Some(SendScript::TimeoutThenLand { .. }) => {
                // Hang past any sane timeout: the guard's timeout cuts it.
                tokio::time::sleep(Duration::from_secs(3_600)).await;
                Ok(())
            }
            Some(SendScript::Refuse { class }) => {
                Err(PortError::new("fake.send", class, "refused at preflight"))
            }
            _ => Ok(()),
        }
    }

    async fn statuses(
        &self,
        signatures: &[TxSignature],
        _lookup: StatusLookup,
    ) -> Result<Observed<Vec<Option<TxStatus>>>, PortError> {
        self.settle();
        let context_slot = self.height();
        let now = self.elapsed();
        let value = self.with(|s| {
            signatures
                .iter()
                .map(|sig| {
                    let p = s.by_signature.get(sig)?;
                    if !p.settled {
                        return None;
                    }
                    let confirmed = now >= p.lands_at.saturating_add(s.confirm_delay);
                    Some(TxStatus {
                        slot: 1,
                        commitment: if confirmed {
                            Commitment::Confirmed
                        } else {
                            Commitment::Processed
                        },
                        error: p.error,
                    })
                })
                .collect()
        });
        Ok(Observed {
            context_slot,
            value,
        })
    }

    async fn blockhash_valid(
        &self,
        blockhash: Blockhash,
        _min_context_slot: u64,
    ) -> Result<Observed<bool>, PortError> {
        let height = self.height();
        let lvh = self.with(|s| s.blockhashes.get(&blockhash).copied());
        Ok(Observed {
            context_slot: height,
            value: lvh.is_some_and(|lvh| height <= lvh),
        })
    }

    async fn block_height(&self) -> Result<u64, PortError> {
        Ok(self.height())
    }

    async fn latest_blockhash(&self) -> Result<RecentBlockhash, PortError> {
        let last_valid = self.height() + 150;
        let blockhash = self.with(|s| {
            let id = s.next_tx;
            s.next_tx += 1;
            let blockhash = blockhash_of(&id.to_le_bytes());
            s.blockhashes.insert(blockhash, last_valid);
            blockhash
        });
        Ok(RecentBlockhash {
            blockhash,
            last_valid_block_height: last_valid,
        })
    }

    async fn fill(&self, signature: TxSignature, _side: Side) -> Result<Option<Fill>, PortError> {
        self.settle();
        let now = self.elapsed();
        Ok(self.with(|s| {
            if !s.landed_ok.contains(&signature) {
                return None;
            }
            let p = s.by_signature.get(&signature)?;
            if now < p.lands_at.saturating_add(s.fill_delay) {
                return None;
            }
            Some(p).map(|p| Fill {
                amount_in: p.amount_in,
                amount_out: p.amount_out,
                fee: Lamports::new(5_000),
            })
        }))
    }

    async fn balances(&self) -> Result<Balances, PortError> {
        Ok(self.balances())
    }
}

#[async_trait]
impl HealthProbe for FakeVenue {
    async fn probe(&self) -> Result<(), PortError> {
        if self.reachable.load(std::sync::atomic::Ordering::SeqCst) {
            Ok(())
        } else {
            Err(PortError::new(
                "health",
                ErrorClass::NodeUnhealthy,
                "the probe found no healthy node",
            ))
        }
    }
}
