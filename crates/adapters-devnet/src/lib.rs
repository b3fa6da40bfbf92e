//! kyzlo's devnet stand-in venue. Jupiter routes only mainnet liquidity, so on devnet a
//! swap is stood in for by a real devnet transaction (a self-transfer carrying a memo with
//! the swap it stands for) whose fill is priced from Jupiter's mainnet quote. The whole
//! send, rebroadcast, confirm, expire and reconcile path runs for real against the chain,
//! with real latency and real failures, without real money.
//!
//! The stand-in is built the way a Jupiter route is on mainnet: the Solana adapter's
//! [`Assembler`] compiles it into kyzlo's own v0 message with compute-budget
//! instructions, a priority fee, a short-lived blockhash of kyzlo's choosing, and an
//! address lookup table (created on the chain at start-up, holding the stand-in's "pool"
//! account that each stand-in writes with a zero-lamport transfer, so the wallet's SOL
//! moves by the fee alone and the fill reads as before). So the whole v0 path, `isBlockhashValid`
//! and the fee read back from the landed transaction run against the chain.
//!
//! The pair's balances are virtual: kept in a JSON file, and each stand-in's expected fill
//! is written there when it is signed, before it can be sent, so a restart can settle a
//! transaction that landed while the bot was down.
//!
//! What it must not know: the executor's rules; it only quotes, builds, signs and reports.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use kyzlo_adapters_solana::lookup::{self, transfer};
use kyzlo_adapters_solana::{Assembler, CHAIN_REQUESTS, SolanaChain, SwapPlan};
use kyzlo_application::ports::{
    Balances, Blockhash, BuildCost, Chain, Fill, HealthProbe, Observed, PortError, Quote,
    QuoteRequest, RecentBlockhash, Side, SignedTransaction, Signer, StatusLookup, SwapRequest,
    SwapRouter, TxStatus, UnsignedTransaction, WalletAddress,
};
use kyzlo_domain::{ErrorClass, Lamports, TokenAmount, TxSignature};
use serde::{Deserialize, Serialize};
use solana_instruction::{AccountMeta, Instruction};
use solana_pubkey::Pubkey;

/// The SPL Memo program (v2).
pub const MEMO_PROGRAM: Pubkey =
    Pubkey::from_str_const("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr");
/// The seed of the stand-in's pool account.
const POOL_SEED: &str = "kyzlo-stand-in-pool";
/// Blocks a stand-in lives when the executor does not say.
const FULL_LIFE: u32 = 150;
/// The base fee a stand-in pays when the ledger cannot tell.
const BASE_FEE: u64 = 5_000;

/// Why the devnet venue failed.
#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    /// The state file could not be read or written.
    #[error("devnet wallet {path}: {operation}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        operation: &'static str,
        source: std::io::Error,
    },
    /// The state file is not a valid devnet wallet.
    #[error("devnet wallet {path} is corrupt: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The transaction could not be built.
    #[error("building the stand-in transaction: {0}")]
    Build(String),
}

impl DevnetError {
    fn to_port(&self, operation: &'static str) -> PortError {
        PortError::new(operation, ErrorClass::Unknown, self.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct StandIn {
    side: SideWire,
    amount_in: u64,
    amount_out: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum SideWire {
    Buy,
    Sell,
}

impl From<Side> for SideWire {
    fn from(side: Side) -> Self {
        match side {
            Side::Buy => SideWire::Buy,
            Side::Sell => SideWire::Sell,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    base: u64,
    quote: u64,
    /// Signed stand-ins by signature (hex), with the fill each stands for.
    signed: BTreeMap<String, StandIn>,
    /// Signatures whose fill has been applied to the balances.
    settled: BTreeSet<String>,
    /// The stand-in's address lookup table on the chain (base58), once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lookup_table: Option<String>,
}

#[derive(Debug)]
struct State {
    file: StateFile,
    unsigned: BTreeMap<Vec<u8>, StandIn>,
}

/// The devnet stand-in venue: router and signer of its own over any chain, health probe
/// and wallet signer (the Solana adapter's, in the binary), quotes from any router
/// (Jupiter's mainnet quotes).
pub struct DevnetVenue {
    rpc: Arc<SolanaChain>,
    assembler: Assembler,
    chain: Arc<dyn Chain>,
    probe: Arc<dyn HealthProbe>,
    signer: Arc<dyn Signer>,
    quotes: Arc<dyn SwapRouter>,
    path: PathBuf,
    state: Mutex<State>,
}

fn hex_of(signature: &TxSignature) -> String {
    hex::encode(signature.0)
}

impl DevnetVenue {
    /// A venue whose virtual balances live in `path` (created with `initial` when missing).
    ///
    /// # Errors
    /// [`DevnetError`] when the file cannot be read, written or parsed.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        rpc: Arc<SolanaChain>,
        assembler: Assembler,
        chain: Arc<dyn Chain>,
        probe: Arc<dyn HealthProbe>,
        signer: Arc<dyn Signer>,
        quotes: Arc<dyn SwapRouter>,
        path: &Path,
        initial: Balances,
    ) -> Result<Self, DevnetError> {
        let file = match fs::read(path) {
            Ok(bytes) => {
                let file: StateFile =
                    serde_json::from_slice(&bytes).map_err(|e| DevnetError::Corrupt {
                        path: path.to_owned(),
                        message: e.to_string(),
                    })?;
                if file.version != 1 {
                    return Err(DevnetError::Corrupt {
                        path: path.to_owned(),
                        message: format!("format version {} (this build reads 1)", file.version),
                    });
                }
                file
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StateFile {
                version: 1,
                base: initial.base.get(),
                quote: initial.quote.get(),
                signed: BTreeMap::new(),
                settled: BTreeSet::new(),
                lookup_table: None,
            },
            Err(source) => {
                return Err(DevnetError::Io {
                    path: path.to_owned(),
                    operation: "read",
                    source,
                });
            }
        };
        let venue = Self {
            rpc,
            assembler,
            chain,
            probe,
            signer,
            quotes,
            path: path.to_owned(),
            state: Mutex::new(State {
                file,
                unsigned: BTreeMap::new(),
            }),
        };
        let snapshot = venue.lock().file.clone();
        venue.save(&snapshot)?;
        Ok(venue)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the state atomically (temporary file, fsync, rename).
    fn save(&self, file: &StateFile) -> Result<(), DevnetError> {
        let io = |operation, source| DevnetError::Io {
            path: self.path.clone(),
            operation,
            source,
        };
        let json = serde_json::to_vec_pretty(file)
            .map_err(|e| io("serialize", std::io::Error::other(e)))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| io("create folder", e))?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let mut out = fs::File::create(&tmp).map_err(|e| io("create", e))?;
        out.write_all(&json).map_err(|e| io("write", e))?;
        out.sync_all().map_err(|e| io("sync", e))?;
        drop(out);
        fs::rename(&tmp, &self.path).map_err(|e| io("rename", e))
    }

    fn memo(payer: &Pubkey, text: &str) -> Instruction {
        Instruction::new_with_bytes(
            MEMO_PROGRAM,
            text.as_bytes(),
            vec![AccountMeta::new_readonly(*payer, true)],
        )
    }

    /// The stand-in's "pool": a system account derived from the wallet, which each
    /// stand-in writes (a zero-lamport transfer) through the lookup table.
    fn pool(payer: &Pubkey) -> Pubkey {
        Pubkey::create_with_seed(payer, POOL_SEED, &lookup::SYSTEM_PROGRAM).unwrap_or(*payer)
    }

    /// Makes sure the stand-in's lookup table exists on the chain, holding its pool:
    /// the one recorded in the state file when the chain still has it, else a new one
    /// (a fresh local validator has none), recorded before it is used.
    ///
    /// # Errors
    /// The chain's refusal to read or create it.
    pub async fn prepare_table(&self) -> Result<(), PortError> {
        let payer = Pubkey::new_from_array(self.signer.address().0);
        let pool = Self::pool(&payer);
        let recorded = self.lock().file.lookup_table.clone();
        if let Some(table) = recorded.and_then(|t| t.parse::<Pubkey>().ok()) {
            if lookup::holds(&self.rpc, &table, &[pool]).await? {
                return Ok(());
            }
            tracing::info!(%table, "the recorded lookup table is not on this chain: creating another");
        }
        let table = lookup::create_table(&self.rpc, self.signer.as_ref(), &[pool], &[pool]).await?;
        tracing::info!(%table, %pool, "stand-in lookup table created");
        let snapshot = {
            let mut s = self.lock();
            s.file.lookup_table = Some(table.to_string());
            s.file.clone()
        };
        self.save(&snapshot)
            .map_err(|e| e.to_port("devnet.prepare_table"))
    }
}

#[async_trait]
impl SwapRouter for DevnetVenue {
    async fn quote(&self, request: &QuoteRequest) -> Result<Quote, PortError> {
        self.quotes.quote(request).await
    }

    /// A stand-in on a durable nonce is refused: the venue keeps no nonce account (its
    /// chain and cancel keep the port's refusing defaults).
    async fn build_swap(&self, request: &SwapRequest) -> Result<UnsignedTransaction, PortError> {
        if request.nonce.is_some() {
            return Err(PortError::new(
                "devnet.build_swap",
                ErrorClass::Unknown,
                "the devnet stand-in builds no transactions on a durable nonce",
            ));
        }
        let payer = Pubkey::new_from_array(self.signer.address().0);
        let pool = Self::pool(&payer);
        let table = self.lock().file.lookup_table.clone().ok_or_else(|| {
            PortError::new(
                "devnet.build_swap",
                ErrorClass::Unknown,
                "the stand-in's lookup table is not ready (DevnetVenue::prepare_table)",
            )
        })?;
        let table = table.parse::<Pubkey>().map_err(|e| {
            DevnetError::Build(format!("lookup table {table}: {e}")).to_port("devnet.build_swap")
        })?;
        let q = &request.quote;
        let text = format!(
            "kyzlo devnet stand-in: {} {} for {} (Jupiter mainnet quote: {})",
            q.request.side.as_str(),
            q.request.amount_in,
            q.expected_out,
            q.route_label
        );
        let instructions = [transfer(&payer, &pool, 0), Self::memo(&payer, &text)];
        let assembled = self
            .assembler
            .assemble(&SwapPlan {
                instructions: &instructions,
                lookup_tables: &[(table, vec![pool])],
                fee_cap: request.priority_fee,
                attempt: request.attempt,
                life_blocks: request.expiry_slots.unwrap_or(FULL_LIFE),
                nonce: None,
            })
            .await?;
        self.lock().unsigned.insert(
            assembled.transaction.bytes.clone(),
            StandIn {
                side: q.request.side.into(),
                amount_in: q.request.amount_in.get(),
                amount_out: q.expected_out.get(),
            },
        );
        Ok(assembled.transaction)
    }

    /// No Jupiter request (the stand-in is built here); the assembler's RPC reads.
    fn build_cost(&self) -> BuildCost {
        BuildCost {
            router: 0,
            chain: CHAIN_REQUESTS,
        }
    }
}

impl Signer for DevnetVenue {
    fn address(&self) -> WalletAddress {
        self.signer.address()
    }

    fn sign(&self, unsigned: &UnsignedTransaction) -> Result<SignedTransaction, PortError> {
        let signed = self.signer.sign(unsigned)?;
        let snapshot = {
            let mut s = self.lock();
            let stand_in = s.unsigned.remove(&unsigned.bytes).ok_or_else(|| {
                PortError::new(
                    "devnet.sign",
                    ErrorClass::SignatureFailure,
                    "not a stand-in this venue built",
                )
            })?;
            s.file.signed.insert(hex_of(&signed.signature), stand_in);
            s.file.clone()
        };
        // Durable before the transaction can be sent.
        self.save(&snapshot).map_err(|e| e.to_port("devnet.sign"))?;
        Ok(signed)
    }
}

#[async_trait]
impl Chain for DevnetVenue {
    async fn send(&self, tx: &SignedTransaction) -> Result<(), PortError> {
        self.chain.send(tx).await
    }

    async fn statuses(
        &self,
        signatures: &[TxSignature],
        lookup: StatusLookup,
    ) -> Result<Observed<Vec<Option<TxStatus>>>, PortError> {
        self.chain.statuses(signatures, lookup).await
    }

    async fn blockhash_valid(
        &self,
        blockhash: Blockhash,
        min_context_slot: u64,
    ) -> Result<Observed<bool>, PortError> {
        self.chain
            .blockhash_valid(blockhash, min_context_slot)
            .await
    }

    async fn block_height(&self) -> Result<u64, PortError> {
        self.chain.block_height().await
    }

    async fn latest_blockhash(&self) -> Result<RecentBlockhash, PortError> {
        self.chain.latest_blockhash().await
    }

    async fn fill(&self, signature: TxSignature, side: Side) -> Result<Option<Fill>, PortError> {
        let Some(real) = self.chain.fill(signature, side).await? else {
            return Ok(None);
        };
        let key = hex_of(&signature);
        let (changed, stand_in) = {
            let mut s = self.lock();
            let Some(stand_in) = s.file.signed.get(&key).copied() else {
                return Err(PortError::new(
                    "devnet.fill",
                    ErrorClass::Unknown,
                    format!("{signature} is not a stand-in this wallet signed"),
                ));
            };
            let newly = s.file.settled.insert(key);
            if newly {
                let f = &mut s.file;
                match stand_in.side {
                    SideWire::Sell => {
                        f.base = f.base.saturating_sub(stand_in.amount_in);
                        f.quote = f.quote.saturating_add(stand_in.amount_out);
                    }
                    SideWire::Buy => {
                        f.quote = f.quote.saturating_sub(stand_in.amount_in);
                        f.base = f.base.saturating_add(stand_in.amount_out);
                    }
                }
            }
            (newly.then(|| s.file.clone()), stand_in)
        };
        if let Some(file) = changed {
            self.save(&file).map_err(|e| e.to_port("devnet.fill"))?;
        }
        let fee = if real.fee.get() == 0 {
            Lamports::new(BASE_FEE)
        } else {
            real.fee
        };
        Ok(Some(Fill {
            amount_in: TokenAmount::new(stand_in.amount_in),
            amount_out: TokenAmount::new(stand_in.amount_out),
            fee,
        }))
    }

    async fn balances(&self) -> Result<Balances, PortError> {
        let real = self.chain.balances().await?;
        let s = self.lock();
        Ok(Balances {
            base: TokenAmount::new(s.file.base),
            quote: TokenAmount::new(s.file.quote),
            fee_lamports: real.fee_lamports,
        })
    }
}

#[async_trait]
impl HealthProbe for DevnetVenue {
    async fn probe(&self) -> Result<(), PortError> {
        self.probe.probe().await
    }
}
