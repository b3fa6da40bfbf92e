//! The ports: the traits, named for their role, through which services reach the
//! outside world. Adapters implement them; services depend only on them.
//!
//! Every fallible call returns a [`PortError`] carrying the domain's [`ErrorClass`]:
//! services decide on the class, never on message text.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kyzlo_domain::{
    ClassifiedError, ErrorClass, Lamports, PositionId, Price, Slippage, TokenAmount, TxSignature,
};

/// A failure at a port, classified by the adapter that saw it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} failed: {class}{}: {detail}", code.map(|c| format!(" (code {c})")).unwrap_or_default())]
pub struct PortError {
    /// The port operation, e.g. `"jupiter.quote"`, `"rpc.sendTransaction"`.
    pub operation: &'static str,
    /// The domain class the adapter mapped the failure to.
    pub class: ErrorClass,
    /// How long the remote asked us to wait, when it said.
    pub retry_after: Option<Duration>,
    /// The remote's own code (HTTP status, JSON-RPC code, program error code), if any.
    pub code: Option<i64>,
    /// Human context for logs; never used for decisions and never holding secrets.
    pub detail: String,
}

impl PortError {
    /// A failure of `class` at `operation` with a context line.
    pub fn new(operation: &'static str, class: ErrorClass, detail: impl Into<String>) -> Self {
        Self {
            operation,
            class,
            retry_after: None,
            code: None,
            detail: detail.into(),
        }
    }

    /// Adds the remote's code.
    #[must_use]
    pub fn with_code(mut self, code: i64) -> Self {
        self.code = Some(code);
        self
    }

    /// Adds the remote's retry-after.
    #[must_use]
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }

    /// The class and retry-after, as the domain's retry rules take them.
    #[must_use]
    pub fn classified(&self) -> ClassifiedError {
        ClassifiedError {
            class: self.class,
            retry_after: self.retry_after,
        }
    }
}

/// A price observation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PriceTick {
    /// The price of one base token in quote tokens.
    pub price: Price,
}

/// Where prices come from.
#[async_trait]
pub trait PriceFeed: Send + Sync {
    /// The current price of the traded pair.
    ///
    /// # Errors
    /// A classified [`PortError`]; a malformed or non-positive price is `Unknown`.
    async fn price(&self) -> Result<PriceTick, PortError>;
}

/// Which way a swap goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Spend the quote token (e.g. USDC) to buy the base token (e.g. SOL): an entry.
    Buy,
    /// Sell the base token for the quote token: an exit.
    Sell,
}

impl Side {
    /// `"buy"` or `"sell"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

/// What to ask the router for: an exact-input swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuoteRequest {
    pub side: Side,
    /// Exact input amount in base units of the input token.
    pub amount_in: TokenAmount,
    /// Worst accepted move from the quoted output.
    pub slippage: Slippage,
}

/// A route offered by the router.
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    /// The request it answers.
    pub request: QuoteRequest,
    /// Expected output in base units of the output token.
    pub expected_out: TokenAmount,
    /// Output below which the swap fails on chain (expected less slippage).
    pub min_out: TokenAmount,
    /// The router's own price-impact estimate, in percent.
    pub price_impact_pct: f64,
    /// A short human label for the route (e.g. the AMMs it goes through).
    pub route_label: String,
    /// The router's response exactly as received, to be posted back unchanged.
    pub raw: Arc<[u8]>,
}

/// A quote turned into a transaction, and the fee and lifetime it should carry.
#[derive(Debug, Clone, PartialEq)]
pub struct SwapRequest {
    /// The quote to execute.
    pub quote: Quote,
    /// Priority fee to pay, in lamports.
    pub priority_fee: Lamports,
    /// Ask for a blockhash that expires after this many slots, so an attempt dies
    /// quickly and the next one can be built safely.
    pub expiry_slots: Option<u32>,
    /// The attempt number, from 1 (an own-message builder bids more on later attempts).
    pub attempt: u32,
    /// Build on this durable nonce instead of a recent blockhash: the nonce's advance as
    /// the first instruction and its value as the message's blockhash, so the transaction
    /// never expires and at most one transaction on one value can ever land
    /// (`expiry_slots` is then ignored; the transaction's last valid height is
    /// [`NO_LAST_VALID_HEIGHT`]). A router that cannot build on a nonce refuses.
    pub nonce: Option<DurableNonce>,
}

/// The last valid block height of a transaction on a durable nonce: no height bounds it.
/// The largest a signed 64-bit integer holds, so that every journal can store it.
pub const NO_LAST_VALID_HEIGHT: u64 = i64::MAX as u64;

/// A nonce account's address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NonceAccount(pub [u8; 32]);

impl fmt::Debug for NonceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NonceAccount(")?;
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

/// A durable nonce as a transaction uses it: the account, and the value stored in it
/// that the transaction carries as its blockhash. Landing (or failing on chain) advances
/// the account to a new value, never seen before, so every other transaction on the same
/// value can never land.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DurableNonce {
    /// The nonce account (its authority is the wallet).
    pub account: NonceAccount,
    /// The value the transaction is built on.
    pub value: Blockhash,
}

/// An unsigned transaction from the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsignedTransaction {
    /// The serialized transaction with empty signature slots.
    pub bytes: Vec<u8>,
    /// The block height after which it can never land.
    pub last_valid_block_height: u64,
    /// The priority fee the transaction bids, when its builder set it exactly (kyzlo's
    /// own message); `None` when the router only honours a cap (the request's fee).
    pub priority_fee: Option<Lamports>,
}

/// Quotes and builds swaps (Jupiter, or the simulated venue).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait SwapRouter: Send + Sync {
    /// Asks for a route.
    ///
    /// # Errors
    /// `NoRoute` when there is none (permanent for this size), `RateLimited` with its
    /// retry-after, and the transport classes.
    async fn quote(&self, request: &QuoteRequest) -> Result<Quote, PortError>;

    /// Builds the swap transaction for `request`.
    ///
    /// # Errors
    /// As [`SwapRouter::quote`], plus `Unknown` for a transaction that fails its checks.
    async fn build_swap(&self, request: &SwapRequest) -> Result<UnsignedTransaction, PortError>;

    /// A transaction that only advances `nonce` (a cancel): once it lands, nothing built
    /// on the same value can. It bids `priority_fee` in all.
    ///
    /// # Errors
    /// A router that cannot build on nonces (one that only returns its own whole
    /// transactions) refuses with `Unknown`.
    async fn build_cancel(
        &self,
        nonce: DurableNonce,
        priority_fee: Lamports,
    ) -> Result<UnsignedTransaction, PortError> {
        let _ = (nonce, priority_fee);
        Err(PortError::new(
            "router.build_cancel",
            ErrorClass::Unknown,
            "this router builds no transactions on a durable nonce",
        ))
    }

    /// What one [`SwapRouter::build_swap`] costs in requests, for the request budgets:
    /// by default one request to the router's provider and none to the chain's.
    fn build_cost(&self) -> BuildCost {
        BuildCost {
            router: 1,
            chain: 0,
        }
    }
}

/// Requests one swap build makes, per provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildCost {
    /// Requests to the router's provider (Jupiter).
    pub router: u32,
    /// Requests to the chain's RPC provider (an own-message build's blockhash, fees,
    /// simulation and lookup tables).
    pub chain: u32,
}

/// A recent blockhash: what a transaction's life is measured from.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Blockhash(pub [u8; 32]);

impl fmt::Debug for Blockhash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Blockhash(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

/// A recent blockhash and the last block height at which a transaction carrying it can
/// land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecentBlockhash {
    /// The blockhash.
    pub blockhash: Blockhash,
    /// Past this block height, a transaction with it can never land.
    pub last_valid_block_height: u64,
}

/// A transaction signed by the wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTransaction {
    /// The wire bytes; resent unchanged while the attempt lives.
    pub bytes: Arc<[u8]>,
    /// Its signature: the transaction's identity on chain.
    pub signature: TxSignature,
    /// The blockhash its message carries (read from the bytes by the signer): the only
    /// thing that bounds its life.
    pub blockhash: Blockhash,
    /// The block height after which it can never land, as the router reported it: a
    /// hint for when to look, never proof of death.
    pub last_valid_block_height: u64,
}

/// A 32-byte wallet address.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct WalletAddress(pub [u8; 32]);

impl fmt::Debug for WalletAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WalletAddress(")?;
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

/// Signs transactions with the wallet's key. Signing is local and synchronous.
pub trait Signer: Send + Sync {
    /// The wallet's public address.
    fn address(&self) -> WalletAddress;

    /// Signs an unsigned transaction.
    ///
    /// # Errors
    /// `SignatureFailure` when the bytes are not a transaction this wallet can sign.
    fn sign(&self, unsigned: &UnsignedTransaction) -> Result<SignedTransaction, PortError>;
}

/// How far a status look-up searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusLookup {
    /// The node's recent status cache only (cheap; used while an attempt lives).
    Recent,
    /// Also the ledger history: the last look-up before declaring an attempt dead.
    WithHistory,
}

/// How final a landed transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Commitment {
    /// Processed by the node.
    Processed,
    /// Voted on by a supermajority.
    Confirmed,
    /// Rooted.
    Finalized,
}

/// What the chain says of a landed transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxStatus {
    /// Slot it landed in.
    pub slot: u64,
    /// Its commitment.
    pub commitment: Commitment,
    /// `None` when it succeeded; the class of its on-chain error otherwise.
    pub error: Option<ErrorClass>,
}

/// What a landed transaction moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fill {
    /// Input token spent.
    pub amount_in: TokenAmount,
    /// Output token received.
    pub amount_out: TokenAmount,
    /// Network and priority fees paid.
    pub fee: Lamports,
}

/// The wallet's holdings of the pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Balances {
    /// Base token (e.g. SOL held as the traded asset, or wrapped SOL).
    pub base: TokenAmount,
    /// Quote token (e.g. USDC).
    pub quote: TokenAmount,
    /// SOL available for fees.
    pub fee_lamports: Lamports,
}

/// A chain answer and the slot of the view it was read from (the JSON-RPC response's
/// context slot). Two answers from two nodes are comparable only through their slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed<T> {
    /// The slot the answering node had reached.
    pub context_slot: u64,
    /// The answer.
    pub value: T,
}

/// The chain: sending signed bytes and reading what happened.
#[async_trait]
pub trait Chain: Send + Sync {
    /// Sends signed bytes once, with no node-side retries. Sending the same bytes again
    /// can never execute twice: the signature is the transaction's identity.
    ///
    /// # Errors
    /// Classified; `RpcTimeout` and `Network` mean it may or may not have been forwarded.
    /// Any other class means no node accepted these bytes on this call (an adapter that
    /// sends to several endpoints reports a refusal only when every one refused).
    async fn send(&self, tx: &SignedTransaction) -> Result<(), PortError>;

    /// Statuses of up to 256 signatures, in order; `None` where the node answering knows
    /// nothing. The context slot says how far that node had got: "nothing" means
    /// nothing up to that slot (and, for a [`StatusLookup::Recent`] look-up, nothing in
    /// its recent status cache).
    ///
    /// # Errors
    /// Classified transport or node errors; a node without history refuses a
    /// [`StatusLookup::WithHistory`] look-up (`NodeUnhealthy`).
    async fn statuses(
        &self,
        signatures: &[TxSignature],
        lookup: StatusLookup,
    ) -> Result<Observed<Vec<Option<TxStatus>>>, PortError>;

    /// Whether `blockhash` can still carry a transaction, as seen by a node at least at
    /// `min_context_slot` (at the confirmed commitment). `false` from a node that has
    /// seen the blockhash (one past the slot where it was first seen valid) means no
    /// transaction with it can land any more.
    ///
    /// # Errors
    /// Classified transport or node errors; a node behind `min_context_slot` refuses
    /// (`NodeUnhealthy`).
    async fn blockhash_valid(
        &self,
        blockhash: Blockhash,
        min_context_slot: u64,
    ) -> Result<Observed<bool>, PortError>;

    /// The current block height (at the commitment the blockhashes are checked at).
    ///
    /// # Errors
    /// Classified transport or node errors.
    async fn block_height(&self) -> Result<u64, PortError>;

    /// The newest blockhash the answering node knows, and the block height past which a
    /// transaction carrying it can never land (for a transaction built here rather than
    /// by the router).
    ///
    /// # Errors
    /// Classified transport or node errors.
    async fn latest_blockhash(&self) -> Result<RecentBlockhash, PortError>;

    /// What a landed transaction moved, from the ledger.
    ///
    /// # Errors
    /// Classified transport or node errors; `Ok(None)` while the ledger has no record.
    async fn fill(&self, signature: TxSignature, side: Side) -> Result<Option<Fill>, PortError>;

    /// The wallet's balances of the pair.
    ///
    /// # Errors
    /// Classified transport or node errors.
    async fn balances(&self) -> Result<Balances, PortError>;

    /// The value stored in nonce `account` as the answering node sees it at
    /// `commitment`; `None` when the account holds no initialized nonce. Values never
    /// repeat: a value other than the one an attempt carries means that attempt can
    /// never land.
    ///
    /// # Errors
    /// Classified transport or node errors; a chain that keeps no nonce accounts (a
    /// stand-in without them) refuses with `Unknown`.
    async fn nonce(
        &self,
        account: NonceAccount,
        commitment: Commitment,
    ) -> Result<Observed<Option<Blockhash>>, PortError> {
        let _ = (account, commitment);
        Err(PortError::new(
            "chain.nonce",
            ErrorClass::Unknown,
            "this chain keeps no durable nonce accounts",
        ))
    }
}

/// A cheap health check of the chain endpoint (e.g. `getSlot`), timed by the latency guard.
#[async_trait]
pub trait HealthProbe: Send + Sync {
    /// Probes once.
    ///
    /// # Errors
    /// Classified; any error counts as a failed probe.
    async fn probe(&self) -> Result<(), PortError>;
}

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// For the record.
    Info,
    /// Needs a look.
    Warning,
    /// Needs a person now: trading halted, an exit failed.
    Critical,
}

impl Severity {
    /// A stable lowercase name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// What an alert is about, for de-duplication and routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertKind {
    /// Trading was halted.
    TradingHalted,
    /// Trading was resumed by an operator.
    TradingResumed,
    /// An exit did not close its position within the deadline.
    ExitDeadlineExceeded,
    /// An exit gave up.
    ExitFailed,
    /// The latency breaker changed state.
    LatencyBreaker,
    /// Reconciliation found a mismatch.
    Reconciliation,
    /// The operator API keeps receiving wrong credentials.
    WrongCredentials,
    /// A position's stop is being retried while trading is halted.
    ProtectiveExit,
}

impl AlertKind {
    /// A stable snake_case name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertKind::TradingHalted => "trading_halted",
            AlertKind::TradingResumed => "trading_resumed",
            AlertKind::ExitDeadlineExceeded => "exit_deadline_exceeded",
            AlertKind::ExitFailed => "exit_failed",
            AlertKind::LatencyBreaker => "latency_breaker",
            AlertKind::Reconciliation => "reconciliation",
            AlertKind::WrongCredentials => "wrong_credentials",
            AlertKind::ProtectiveExit => "protective_exit",
        }
    }
}

/// A message for an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// What it is about.
    pub kind: AlertKind,
    /// How urgent.
    pub severity: Severity,
    /// The text; never holds secrets.
    pub message: String,
    /// The position concerned, if any.
    pub position: Option<PositionId>,
}

/// Where alerts go (webhooks, the log). Sending must not block trading for long: adapters
/// queue or time out.
#[async_trait]
pub trait AlertSink: Send + Sync {
    /// Delivers one alert.
    ///
    /// # Errors
    /// Classified delivery failure; callers log it and carry on.
    async fn send(&self, alert: &Alert) -> Result<(), PortError>;
}

/// The traded pair's decimals, and whether the base token is the chain's native token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    /// Decimals of the base token (SOL: 9).
    pub base_decimals: u8,
    /// Decimals of the quote token (USDC: 6).
    pub quote_decimals: u8,
    /// Whether the base token is SOL itself: then the lamports that pay fees and rent
    /// are the traded asset too, and a full exit must leave a reserve for them.
    pub native_base: bool,
}

impl Pair {
    /// SOL/USDC.
    pub const SOL_USDC: Pair = Pair {
        base_decimals: 9,
        quote_decimals: 6,
        native_base: true,
    };

    /// The price at which `base` base units trade for `quote` quote units; `None` when
    /// either is zero.
    #[must_use]
    pub fn price_of(self, base: TokenAmount, quote: TokenAmount) -> Option<Price> {
        let base_ui = base.get() as f64 / 10f64.powi(i32::from(self.base_decimals));
        let quote_ui = quote.get() as f64 / 10f64.powi(i32::from(self.quote_decimals));
        Price::new(quote_ui / base_ui).ok()
    }

    /// Quote units worth `base` base units at `price`, rounded down.
    #[must_use]
    pub fn quote_value(self, base: TokenAmount, price: Price) -> TokenAmount {
        let base_ui = base.get() as f64 / 10f64.powi(i32::from(self.base_decimals));
        let quote = base_ui * price.get() * 10f64.powi(i32::from(self.quote_decimals));
        // Float-to-int casts saturate; a negative or NaN product cannot arise from a Price.
        TokenAmount::new(quote as u64)
    }

    /// Base units bought by `quote` quote units at `price`, rounded down.
    #[must_use]
    pub fn base_for(self, quote: TokenAmount, price: Price) -> TokenAmount {
        let quote_ui = quote.get() as f64 / 10f64.powi(i32::from(self.quote_decimals));
        let base = quote_ui / price.get() * 10f64.powi(i32::from(self.base_decimals));
        TokenAmount::new(base as u64)
    }
}
