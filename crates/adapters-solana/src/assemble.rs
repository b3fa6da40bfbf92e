//! [`Assembler`]: kyzlo's own swap transaction, compiled from a router's instructions.
//!
//! For each attempt it:
//! 1. reads the route's address lookup tables from the chain (cached; read again when
//!    the router names addresses the cached copy lacks) and refuses a table that holds
//!    other addresses than the router says;
//! 2. picks its own blockhash for the life asked (`life_blocks`): the newest one's block
//!    height less the life is found with `getBlock`, so the attempt's last valid block
//!    height is that block's height plus [`MAX_PROCESSING_AGE`], known exactly rather
//!    than taken from the router;
//! 3. prices the compute unit from `getRecentPrioritizationFees` on the writable
//!    accounts at the configured percentile (never under the floor), times the attempt
//!    number, so each later attempt bids more, capped by the rung's priority fee;
//! 4. simulates the message with the largest compute-unit limit and sets the limit to
//!    the units consumed times the margin, capped; a simulation that fails is the
//!    attempt's classified error, and nothing is signed;
//! 5. compiles a v0 message: compute-unit limit, compute-unit price, the router's
//!    instructions, then one tip transfer per send lane that asks for one.
//!
//! On a durable nonce (`SwapPlan::nonce`) step 2 is skipped: the nonce's advance comes
//! first (before the compute budget), its value is the message's blockhash, and the
//! transaction never expires (`last_valid_block_height = NO_LAST_VALID_HEIGHT`): it is dead only
//! once the nonce holds another value. [`Assembler::cancel`] is the transaction that
//! only advances the nonce, so that nothing else on its value can land.
//!
//! Every RPC call goes through the chain's read endpoints with failover.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use kyzlo_application::ports::{
    DurableNonce, NO_LAST_VALID_HEIGHT, PortError, UnsignedTransaction,
};
use kyzlo_domain::{ErrorClass, Lamports};
use solana_address_lookup_table_interface::state::AddressLookupTable;
use solana_client::rpc_config::{RpcBlockConfig, RpcSimulateTransactionConfig};
use solana_compute_budget_interface::ComputeBudgetInstruction;
use solana_hash::Hash;
use solana_instruction::Instruction;
use solana_message::v0::Message;
use solana_message::{AddressLookupTableAccount, VersionedMessage};
use solana_pubkey::Pubkey;
use solana_signature::Signature;
use solana_transaction::versioned::VersionedTransaction;
use solana_transaction_status_client_types::{TransactionDetails, UiTransactionEncoding};

use crate::chain::SolanaChain;
use crate::error::{SolanaError, classify, transaction_error_class};
use crate::fees::{FEE_PERCENTILE, MAX_FEE_ACCOUNTS, total_fee};
use crate::nonce::{BUILTIN_COMPUTE_UNITS, advance};

/// Blocks a blockhash stays valid for after its own block (Agave's `MAX_PROCESSING_AGE`):
/// a transaction on a blockhash of block height `h` can land up to height `h + 150`.
pub const MAX_PROCESSING_AGE: u64 = 150;

/// The most compute units a transaction may ask for.
pub const MAX_COMPUTE_UNITS: u32 = 1_400_000;

/// The most bytes a Solana transaction can have (`PACKET_DATA_SIZE`).
pub const MAX_TRANSACTION_BYTES: usize = 1232;

/// The address lookup table program, owner of every table.
const LOOKUP_TABLE_PROGRAM: Pubkey =
    Pubkey::from_str_const("AddressLookupTab1e1111111111111111111111111");

/// RPC requests one assembly of a short-lived attempt makes when no slot is skipped and
/// the lookup tables are not cached yet: the slot, the older block, the recent fees, the
/// simulation and the tables.
pub const CHAIN_REQUESTS: u32 = 5;

/// Skipped slots `getBlock` steps over (towards newer) before taking the newest blockhash.
const SKIPPED_SLOTS_TRIED: u64 = 8;

/// How the assembler prices and sizes an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssembleSettings {
    /// The compute-unit limit is the simulated units times this percentage.
    pub compute_unit_margin_pct: u32,
    /// The compute-unit limit never exceeds this.
    pub max_compute_units: u32,
    /// The percentile (0 to 100) of recent per-slot fees bid by the first attempt.
    pub fee_percentile: u32,
    /// The least compute-unit price bid, in micro-lamports (recent fees of zero do not
    /// make an attempt free of priority).
    pub fee_floor_micro_lamports: u64,
}

impl Default for AssembleSettings {
    /// 120% of the simulated units (Jupiter's own guide uses the same margin), at most
    /// 1,400,000; the 75th percentile; a floor of 1,000 micro-lamports per unit.
    fn default() -> Self {
        Self {
            compute_unit_margin_pct: 120,
            max_compute_units: MAX_COMPUTE_UNITS,
            fee_percentile: FEE_PERCENTILE,
            fee_floor_micro_lamports: 1_000,
        }
    }
}

/// What to assemble.
#[derive(Debug, Clone, Copy)]
pub struct SwapPlan<'a> {
    /// The router's instructions, without compute-budget ones.
    pub instructions: &'a [Instruction],
    /// The lookup tables, each with the addresses the router says it holds.
    pub lookup_tables: &'a [(Pubkey, Vec<Pubkey>)],
    /// The rung's cap on the priority fee.
    pub fee_cap: Lamports,
    /// The attempt number, from 1: attempt `n` bids `n` times the first's price.
    pub attempt: u32,
    /// Blocks the attempt may live (ignored on a nonce).
    pub life_blocks: u32,
    /// Build on this durable nonce instead of a recent blockhash.
    pub nonce: Option<DurableNonce>,
}

/// An assembled attempt and what it bids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembled {
    /// The unsigned transaction, with its exact last valid block height.
    pub transaction: UnsignedTransaction,
    /// The compute-unit limit set.
    pub compute_unit_limit: u32,
    /// The compute-unit price set, in micro-lamports.
    pub compute_unit_price: u64,
    /// Limit times price, rounded up: the priority fee the transaction pays if it lands.
    pub priority_fee: Lamports,
}

/// Compiles kyzlo's own swap transactions for one fee payer.
pub struct Assembler {
    chain: Arc<SolanaChain>,
    payer: Pubkey,
    tips: Vec<Instruction>,
    settings: AssembleSettings,
    tables: Mutex<HashMap<Pubkey, Arc<[Pubkey]>>>,
}

impl std::fmt::Debug for Assembler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assembler")
            .field("payer", &self.payer.to_string())
            .field("tips", &self.tips.len())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn failure(operation: &'static str, class: ErrorClass, detail: impl Into<String>) -> PortError {
    PortError::new(operation, class, detail)
}

impl Assembler {
    /// An assembler paying from `payer`, appending `tips` (one transfer per send lane
    /// that asks for a tip) to every transaction.
    #[must_use]
    pub fn new(
        chain: Arc<SolanaChain>,
        payer: Pubkey,
        tips: Vec<Instruction>,
        settings: AssembleSettings,
    ) -> Self {
        Self {
            chain,
            payer,
            tips,
            settings,
            tables: Mutex::new(HashMap::new()),
        }
    }

    /// Assembles one attempt (see the module documentation for the steps).
    ///
    /// # Errors
    /// Classified RPC errors; the simulation's transaction error, classified
    /// (`SlippageExceeded`, `InsufficientFunds`, …); `InvalidAccount` for a lookup table
    /// that is missing, not a table, or holds other addresses than the router says;
    /// `Unknown` for a message that does not compile or exceeds 1,232 bytes.
    pub async fn assemble(&self, plan: &SwapPlan<'_>) -> Result<Assembled, PortError> {
        let tables = self.tables(plan.lookup_tables).await?;
        let (blockhash, last_valid_block_height) = match plan.nonce {
            Some(nonce) => (Hash::new_from_array(nonce.value.0), NO_LAST_VALID_HEIGHT),
            None => self.blockhash(plan.life_blocks).await?,
        };
        let price = self.price(plan).await?;
        let mut instructions = Vec::with_capacity(plan.instructions.len() + 3 + self.tips.len());
        // The runtime knows a nonce transaction by its first instruction.
        if let Some(nonce) = plan.nonce {
            instructions.push(self.advance(nonce));
        }
        let budget = instructions.len();
        instructions.push(ComputeBudgetInstruction::set_compute_unit_limit(
            self.settings.max_compute_units,
        ));
        // Simulated at no price: the units are the same, and the largest limit at the
        // attempt's price could charge a thin wallet more than the real transaction will.
        instructions.push(ComputeBudgetInstruction::set_compute_unit_price(0));
        instructions.extend_from_slice(plan.instructions);
        instructions.extend(self.tips.iter().cloned());
        let probe = self.compile(&instructions, &tables, blockhash)?;
        let units = self.simulate(&probe).await?;
        let limit = u32::try_from(
            (u64::from(units) * u64::from(self.settings.compute_unit_margin_pct)).div_ceil(100),
        )
        .unwrap_or(u32::MAX)
        .clamp(1, self.settings.max_compute_units);
        // The price may have to come down so that the limit the simulation set keeps the
        // fee under the rung's cap.
        let price = price.min(cap_price(plan.fee_cap, limit));
        instructions[budget] = ComputeBudgetInstruction::set_compute_unit_limit(limit);
        instructions[budget + 1] = ComputeBudgetInstruction::set_compute_unit_price(price);
        self.finish(
            &instructions,
            &tables,
            blockhash,
            last_valid_block_height,
            limit,
            price,
        )
    }

    /// The cancel of `nonce`: its advance alone (and the send lanes' tips, which a lane
    /// may need to forward it), bidding `priority_fee` in all (rounded down to whole
    /// micro-lamports per unit). Nothing is read from the chain: the limit is the
    /// builtins' known units, so the cancel can be built while the chain is slow.
    ///
    /// # Errors
    /// `Unknown` for a message that does not compile.
    pub fn cancel(
        &self,
        nonce: DurableNonce,
        priority_fee: Lamports,
    ) -> Result<Assembled, PortError> {
        let builtins = u32::try_from(3 + self.tips.len()).unwrap_or(u32::MAX);
        let limit = BUILTIN_COMPUTE_UNITS
            .saturating_mul(builtins)
            .min(self.settings.max_compute_units);
        let price = cap_price(priority_fee, limit);
        let mut instructions = vec![
            self.advance(nonce),
            ComputeBudgetInstruction::set_compute_unit_limit(limit),
            ComputeBudgetInstruction::set_compute_unit_price(price),
        ];
        instructions.extend(self.tips.iter().cloned());
        let blockhash = Hash::new_from_array(nonce.value.0);
        self.finish(
            &instructions,
            &[],
            blockhash,
            NO_LAST_VALID_HEIGHT,
            limit,
            price,
        )
    }

    fn advance(&self, nonce: DurableNonce) -> Instruction {
        advance(&Pubkey::new_from_array(nonce.account.0), &self.payer)
    }

    /// The compiled, size-checked transaction and what it bids.
    fn finish(
        &self,
        instructions: &[Instruction],
        tables: &[AddressLookupTableAccount],
        blockhash: Hash,
        last_valid_block_height: u64,
        limit: u32,
        price: u64,
    ) -> Result<Assembled, PortError> {
        let tx = self.compile(instructions, tables, blockhash)?;
        let bytes = wincode::serialize(&tx).map_err(|e| {
            failure(
                "assemble.compile",
                ErrorClass::Unknown,
                format!("serialize: {e}"),
            )
        })?;
        if bytes.len() > MAX_TRANSACTION_BYTES {
            return Err(failure(
                "assemble.compile",
                ErrorClass::Unknown,
                format!(
                    "transaction of {} bytes exceeds {MAX_TRANSACTION_BYTES}",
                    bytes.len()
                ),
            ));
        }
        Ok(Assembled {
            transaction: UnsignedTransaction {
                bytes,
                last_valid_block_height,
                priority_fee: Some(total_fee(limit, price)),
            },
            compute_unit_limit: limit,
            compute_unit_price: price,
            priority_fee: total_fee(limit, price),
        })
    }

    fn compile(
        &self,
        instructions: &[Instruction],
        tables: &[AddressLookupTableAccount],
        blockhash: Hash,
    ) -> Result<VersionedTransaction, PortError> {
        let message =
            Message::try_compile(&self.payer, instructions, tables, blockhash).map_err(|e| {
                failure(
                    "assemble.compile",
                    ErrorClass::Unknown,
                    format!("message does not compile: {e}"),
                )
            })?;
        let message = VersionedMessage::V0(message);
        let signers = usize::from(message.header().num_required_signatures);
        Ok(VersionedTransaction {
            signatures: vec![Signature::default(); signers],
            message,
        })
    }

    /// The lookup tables as the chain holds them, checked against the router's view.
    async fn tables(
        &self,
        wanted: &[(Pubkey, Vec<Pubkey>)],
    ) -> Result<Vec<AddressLookupTableAccount>, PortError> {
        const OP: &str = "rpc.getMultipleAccounts";
        let stale: Vec<Pubkey> = {
            let cache = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
            wanted
                .iter()
                .filter(|(key, said)| {
                    cache
                        .get(key)
                        .is_none_or(|held| !held.starts_with(said.as_slice()))
                })
                .map(|(key, _)| *key)
                .collect()
        };
        if !stale.is_empty() {
            let commitment = self.chain.commitment();
            let keys = stale.clone();
            let accounts = self
                .chain
                .endpoints()
                .read(OP, |client| {
                    let keys = keys.clone();
                    Box::pin(async move {
                        client
                            .get_multiple_accounts_with_commitment(&keys, commitment)
                            .await
                            .map(|r| r.value)
                            .map_err(|e| classify(&e))
                    })
                })
                .await?;
            let mut cache = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
            for (key, account) in stale.iter().zip(accounts) {
                let account = account.ok_or_else(|| {
                    failure(
                        OP,
                        ErrorClass::InvalidAccount,
                        format!("lookup table {key} does not exist"),
                    )
                })?;
                if account.owner != LOOKUP_TABLE_PROGRAM {
                    return Err(failure(
                        OP,
                        ErrorClass::InvalidAccount,
                        format!("{key} is not an address lookup table"),
                    ));
                }
                let table = AddressLookupTable::deserialize(&account.data).map_err(|e| {
                    failure(
                        OP,
                        ErrorClass::InvalidAccount,
                        format!("lookup table {key} does not decode: {e}"),
                    )
                })?;
                cache.insert(*key, Arc::from(table.addresses.as_ref()));
            }
        }
        let cache = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        wanted
            .iter()
            .map(|(key, said)| {
                let held = cache
                    .get(key)
                    .cloned()
                    .unwrap_or_else(|| Arc::from(Vec::new()));
                if held.starts_with(said.as_slice()) {
                    Ok(AddressLookupTableAccount {
                        key: *key,
                        addresses: held.to_vec(),
                    })
                } else {
                    Err(failure(
                        OP,
                        ErrorClass::InvalidAccount,
                        format!(
                            "lookup table {key} holds {} addresses the router's {} do not match",
                            held.len(),
                            said.len()
                        ),
                    ))
                }
            })
            .collect()
    }

    /// A blockhash whose last valid block height is about `life` blocks ahead, with that
    /// height.
    async fn blockhash(&self, life: u32) -> Result<(Hash, u64), PortError> {
        let back = MAX_PROCESSING_AGE.saturating_sub(u64::from(life));
        if back == 0 {
            let newest = self.chain.newest_blockhash().await?;
            return Ok((newest.blockhash, newest.last_valid_block_height));
        }
        let commitment = self.chain.commitment();
        let slot = self
            .chain
            .endpoints()
            .read("rpc.getSlot", |client| {
                Box::pin(async move {
                    client
                        .get_slot_with_commitment(commitment)
                        .await
                        .map_err(|e| classify(&e))
                })
            })
            .await?;
        // Skipped slots make heights lag slots, so the slot `back` behind holds a block
        // at most `back` heights behind: stepping towards newer slots only shortens
        // the distance.
        let mut slot = slot.saturating_sub(back);
        for _ in 0..SKIPPED_SLOTS_TRIED {
            let config = RpcBlockConfig {
                encoding: Some(UiTransactionEncoding::Base64),
                transaction_details: Some(TransactionDetails::None),
                rewards: Some(false),
                commitment: Some(commitment),
                max_supported_transaction_version: Some(0),
            };
            let block = self
                .chain
                .endpoints()
                .read("rpc.getBlock", |client| {
                    Box::pin(async move {
                        client
                            .get_block_with_config(slot, config)
                            .await
                            .map_err(|e| classify(&e))
                    })
                })
                .await;
            match block {
                Ok(block) => {
                    let (Some(height), Ok(hash)) =
                        (block.block_height, block.blockhash.parse::<Hash>())
                    else {
                        return Err(failure(
                            "rpc.getBlock",
                            ErrorClass::Unknown,
                            format!("block {slot} has no height or an unreadable blockhash"),
                        ));
                    };
                    return Ok((hash, height + MAX_PROCESSING_AGE));
                }
                Err(e) if matches!(e.class, ErrorClass::InvalidAccount | ErrorClass::Unknown) => {
                    tracing::debug!(slot, error = %e, "no block at this slot: trying the next");
                    slot += 1;
                }
                Err(e) => return Err(e),
            }
        }
        tracing::warn!(
            life,
            "no older block found: the attempt lives the full blockhash age"
        );
        let newest = self.chain.newest_blockhash().await?;
        Ok((newest.blockhash, newest.last_valid_block_height))
    }

    /// The compute-unit price of this attempt, in micro-lamports, before the cap.
    async fn price(&self, plan: &SwapPlan<'_>) -> Result<u64, PortError> {
        let mut writable: Vec<Pubkey> = plan
            .instructions
            .iter()
            .flat_map(|ix| ix.accounts.iter())
            .filter(|meta| meta.is_writable)
            .map(|meta| meta.pubkey)
            .collect();
        writable.sort_unstable();
        writable.dedup();
        writable.truncate(MAX_FEE_ACCOUNTS);
        let market = self
            .chain
            .priority_fee(&writable, self.settings.fee_percentile)
            .await?
            .micro_lamports_per_cu
            .max(self.settings.fee_floor_micro_lamports);
        Ok(market.saturating_mul(u64::from(plan.attempt.max(1))))
    }

    /// Units the transaction consumed in simulation.
    async fn simulate(&self, tx: &VersionedTransaction) -> Result<u32, PortError> {
        const OP: &str = "rpc.simulateTransaction";
        let config = RpcSimulateTransactionConfig {
            sig_verify: false,
            replace_recent_blockhash: true,
            commitment: Some(self.chain.commitment()),
            encoding: Some(UiTransactionEncoding::Base64),
            ..RpcSimulateTransactionConfig::default()
        };
        let result = self
            .chain
            .endpoints()
            .read(OP, |client| {
                let (config, tx) = (config.clone(), tx.clone());
                Box::pin(async move {
                    client
                        .simulate_transaction_with_config(&tx, config)
                        .await
                        .map(|r| r.value)
                        .map_err(|e| classify(&e))
                })
            })
            .await?;
        if let Some(err) = result.err {
            let err = err.into();
            return Err(failure(
                OP,
                transaction_error_class(&err),
                format!("the swap fails in simulation: {err}"),
            ));
        }
        let units = result.units_consumed.ok_or_else(|| {
            SolanaError::Malformed {
                detail: "simulation reported no units consumed".to_owned(),
            }
            .to_port_error(OP, "answer")
        })?;
        Ok(u32::try_from(units).unwrap_or(u32::MAX))
    }
}

/// The highest compute-unit price under which `limit` units cost at most `cap`.
fn cap_price(cap: Lamports, limit: u32) -> u64 {
    let micro = u128::from(cap.get()) * 1_000_000 / u128::from(limit.max(1));
    u64::try_from(micro).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_bounds_the_fee() {
        for (cap, limit) in [(50_000, 200_000), (500_000, 1_400_000), (1, 3), (0, 10)] {
            let price = cap_price(Lamports::new(cap), limit);
            assert!(total_fee(limit, price).get() <= cap, "{cap} {limit}");
        }
        assert_eq!(cap_price(Lamports::new(50_000), 200_000), 250_000);
        assert_eq!(total_fee(200_000, 250_000), Lamports::new(50_000));
        assert_eq!(total_fee(3, 1), Lamports::new(1));
    }
}
