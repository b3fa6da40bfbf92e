//! Jupiter's JSON, as serde types: what the endpoints answer and what `/swap` is sent.
//! Nothing outside this crate sees these types.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A `/swap/v1/quote` answer: the fields the adapter reads. Amounts are decimal strings.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QuoteWire {
    pub(crate) input_mint: String,
    pub(crate) in_amount: String,
    pub(crate) output_mint: String,
    pub(crate) out_amount: String,
    pub(crate) other_amount_threshold: String,
    pub(crate) swap_mode: String,
    pub(crate) slippage_bps: u32,
    pub(crate) price_impact_pct: NumberOrString,
    pub(crate) route_plan: Vec<RoutePlanStepWire>,
    #[serde(default)]
    pub(crate) context_slot: Option<u64>,
}

/// A number Jupiter may send as a JSON number or as a decimal string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum NumberOrString {
    Number(f64),
    String(String),
}

/// One hop of a route.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RoutePlanStepWire {
    pub(crate) swap_info: SwapInfoWire,
}

/// The AMM of a hop.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SwapInfoWire {
    #[serde(default)]
    pub(crate) label: Option<String>,
}

/// `prioritizationFeeLamports` in a `/swap` request.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum PrioritizationFeeWire {
    /// `{"priorityLevelWithMaxLamports": {...}}`.
    Capped {
        #[serde(rename = "priorityLevelWithMaxLamports")]
        capped: CappedFeeWire,
    },
    /// A plain lamport amount.
    Lamports(u64),
}

/// A fee estimated at a level, capped.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CappedFeeWire {
    pub(crate) priority_level: &'static str,
    pub(crate) max_lamports: u64,
}

/// The body of `/swap/v1/swap` and `/swap/v1/swap-instructions`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SwapBodyWire<'a> {
    pub(crate) user_public_key: &'a str,
    /// The quote exactly as received: serialized verbatim, never re-encoded.
    pub(crate) quote_response: &'a RawValue,
    pub(crate) wrap_and_unwrap_sol: bool,
    pub(crate) dynamic_compute_unit_limit: bool,
    pub(crate) prioritization_fee_lamports: PrioritizationFeeWire,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) blockhash_slots_to_expiry: Option<u32>,
}

/// `simulationError` in a swap answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SimulationErrorWire {
    #[serde(default)]
    pub(crate) error_code: Option<String>,
    #[serde(default)]
    pub(crate) error: Option<String>,
}

/// A `/swap/v1/swap` answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SwapWire {
    #[serde(default)]
    pub(crate) swap_transaction: Option<String>,
    #[serde(default)]
    pub(crate) last_valid_block_height: Option<u64>,
    #[serde(default)]
    pub(crate) prioritization_fee_lamports: Option<u64>,
    #[serde(default)]
    pub(crate) compute_unit_limit: Option<u32>,
    #[serde(default)]
    pub(crate) simulation_error: Option<SimulationErrorWire>,
}

/// An instruction in a `/swap/v1/swap-instructions` answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InstructionWire {
    pub(crate) program_id: String,
    pub(crate) accounts: Vec<AccountMetaWire>,
    /// Base64.
    pub(crate) data: String,
}

/// An account of an instruction.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AccountMetaWire {
    pub(crate) pubkey: String,
    pub(crate) is_signer: bool,
    pub(crate) is_writable: bool,
}

/// A `/swap/v1/swap-instructions` answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SwapInstructionsWire {
    #[serde(default)]
    pub(crate) token_ledger_instruction: Option<InstructionWire>,
    #[serde(default)]
    pub(crate) compute_budget_instructions: Vec<InstructionWire>,
    #[serde(default)]
    pub(crate) setup_instructions: Vec<InstructionWire>,
    #[serde(default)]
    pub(crate) swap_instruction: Option<InstructionWire>,
    #[serde(default)]
    pub(crate) cleanup_instruction: Option<InstructionWire>,
    #[serde(default)]
    pub(crate) other_instructions: Vec<InstructionWire>,
    #[serde(default)]
    pub(crate) address_lookup_table_addresses: Vec<String>,
    #[serde(default)]
    pub(crate) prioritization_fee_lamports: Option<u64>,
    #[serde(default)]
    pub(crate) compute_unit_limit: Option<u32>,
    #[serde(default)]
    pub(crate) simulation_error: Option<SimulationErrorWire>,
}

/// A `/price/v3` answer: mint to entry; an entry may be `null`.
pub(crate) type PricesWire = HashMap<String, Option<PriceEntryWire>>;

/// One token's price.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PriceEntryWire {
    #[serde(default)]
    pub(crate) usd_price: Option<f64>,
}

/// `GET /swap/v2/build`'s answer (Swap API v2).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BuildWire {
    pub(crate) input_mint: String,
    pub(crate) in_amount: String,
    pub(crate) output_mint: String,
    pub(crate) out_amount: String,
    pub(crate) other_amount_threshold: String,
    pub(crate) swap_mode: String,
    pub(crate) slippage_bps: u32,
    #[serde(default)]
    pub(crate) price_impact_pct: Option<NumberOrString>,
    #[serde(default)]
    pub(crate) route_plan: Vec<RoutePlanStepWire>,
    #[serde(default)]
    pub(crate) setup_instructions: Vec<InstructionWire>,
    #[serde(default)]
    pub(crate) swap_instruction: Option<InstructionWire>,
    #[serde(default)]
    pub(crate) cleanup_instruction: Option<InstructionWire>,
    #[serde(default)]
    pub(crate) other_instructions: Vec<InstructionWire>,
    #[serde(default)]
    pub(crate) tip_instruction: Option<InstructionWire>,
    #[serde(default)]
    pub(crate) addresses_by_lookup_table_address: HashMap<String, Vec<String>>,
}
