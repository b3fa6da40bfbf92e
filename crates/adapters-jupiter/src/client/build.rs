//! Jupiter Swap API v2 `GET /swap/v2/build`: one call answers the route and its raw
//! instructions, for kyzlo to compile its own v0 message with its own blockhash, compute
//! budget and priority fee.
//!
//! Shapes checked against Jupiter's published Swap API v2 reference
//! (`developers.jup.ag/docs/api-reference/swap/build`) and its migration guide
//! (`developers.jup.ag/docs/swap/migration/metis-to-build`), as read on 2026-11-26:
//! query `inputMint`, `outputMint`, `amount`, `taker`, `slippageBps`, `maxAccounts`,
//! `excludeDexes`; answer `inputMint`, `outputMint`, `inAmount`, `outAmount`,
//! `otherAmountThreshold`, `swapMode`, `slippageBps`, `routePlan`,
//! `computeBudgetInstructions` (the compute-unit price only), `setupInstructions`,
//! `swapInstruction`, `cleanupInstruction` (may be null), `otherInstructions`,
//! `tipInstruction` (only when a tip was asked for), `addressesByLookupTableAddress`
//! (lookup-table address to its addresses) and `blockhashWithMetadata`. Errors travel as
//! in v1 (`errorCode`, `error`) and are classified by [`crate::http`].
//!
//! What kyzlo keeps: the priced route, the setup, swap, cleanup and other instructions,
//! and the lookup tables' addresses. What it drops: Jupiter's compute-budget instructions
//! (kyzlo sets its own limit and price) and Jupiter's blockhash (kyzlo picks its own, so
//! every attempt's last valid height is known exactly).

use super::*;

/// The compute-budget program: its instructions are kyzlo's own to set.
const COMPUTE_BUDGET_PROGRAM: &str = "ComputeBudget111111111111111111111111111111";

/// A checked `/swap/v2/build` answer.
#[derive(Debug, Clone, PartialEq)]
pub struct SwapBuild {
    /// The priced route, checked against what was asked.
    pub quote: JupiterQuote,
    /// Account set-up (token accounts, SOL wrapping).
    pub setup: Vec<Instruction>,
    /// The swap itself.
    pub swap: Instruction,
    /// Clean-up (SOL unwrapping), when there is any.
    pub cleanup: Option<Instruction>,
    /// Anything else the route needs.
    pub other: Vec<Instruction>,
    /// The lookup tables the route uses, each with the addresses Jupiter says it holds
    /// (the assembler reads the tables from the chain and checks them).
    pub lookup_tables: Vec<(Address, Vec<Address>)>,
}

impl SwapBuild {
    /// The instructions to compile, in order: setup, swap, cleanup, other. Compute-budget
    /// instructions are not among them.
    #[must_use]
    pub fn instructions(&self) -> Vec<Instruction> {
        let mut all = self.setup.clone();
        all.push(self.swap.clone());
        all.extend(self.cleanup.iter().cloned());
        all.extend(self.other.iter().cloned());
        all
    }
}

impl JupiterClient {
    /// `GET /swap/v2/build`: an exact-input route with its raw instructions, for our
    /// wallet as the taker, checked against what was asked.
    ///
    /// # Errors
    /// [`JupiterError::NoRoute`] when Jupiter has none; the HTTP, transport and decode
    /// errors; [`JupiterError::QuoteMismatch`] when the answer is for another mint,
    /// amount or slippage; [`TxCheckError::ForeignSigner`] for an instruction wanting
    /// another signer; a decode error for a compute-budget instruction outside
    /// `computeBudgetInstructions` or a tip nobody asked for.
    pub async fn build(&self, params: &QuoteParams<'_>) -> Result<SwapBuild, JupiterError> {
        let mut url = self.endpoints.build.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("inputMint", params.input_mint)
                .append_pair("outputMint", params.output_mint)
                .append_pair("amount", &params.amount.get().to_string())
                .append_pair("taker", &self.wallet_base58)
                .append_pair("slippageBps", &params.slippage.bps().get().to_string());
            if let Some(max_accounts) = self.config.max_accounts {
                query.append_pair("maxAccounts", &max_accounts.to_string());
            }
            if !self.config.exclude_dexes.is_empty() {
                query.append_pair("excludeDexes", &self.config.exclude_dexes.join(","));
            }
        }
        let body = self.exchange(self.http.get(url), "jupiter.build").await?;
        let build = self.decode_build(body)?;
        check_quote(&build.quote, params, SWAP_MODE_EXACT_IN)?;
        Ok(build)
    }

    /// Decodes a `/swap/v2/build` answer kept as bytes (a [`JupiterQuote::raw`] from
    /// [`JupiterClient::build`]), checking its instructions again.
    ///
    /// # Errors
    /// As [`JupiterClient::build`], without the comparison to a request.
    pub fn build_from_raw(&self, raw: &[u8]) -> Result<SwapBuild, JupiterError> {
        self.decode_build(JsonBody {
            status: 200,
            bytes: raw.to_vec(),
        })
    }

    fn decode_build(&self, body: JsonBody) -> Result<SwapBuild, JupiterError> {
        let wire: wire::BuildWire = decode_json(&body)?;
        if wire.swap_mode != SWAP_MODE_EXACT_IN {
            return Err(JupiterError::QuoteMismatch {
                field: "swapMode",
                expected: SWAP_MODE_EXACT_IN.to_owned(),
                got: wire.swap_mode,
            });
        }
        if wire.tip_instruction.is_some() {
            return Err(decode_error(
                &body,
                "`tipInstruction` present though no tip was asked for".to_owned(),
            ));
        }
        let convert_all = |list: Vec<wire::InstructionWire>| {
            list.into_iter()
                .map(|ix| self.own_budget_instruction(&body, ix))
                .collect::<Result<Vec<_>, _>>()
        };
        let setup = convert_all(wire.setup_instructions)?;
        let other = convert_all(wire.other_instructions)?;
        let swap = self.own_budget_instruction(
            &body,
            wire.swap_instruction
                .ok_or_else(|| missing_field(&body, "swapInstruction"))?,
        )?;
        let cleanup = wire
            .cleanup_instruction
            .map(|ix| self.own_budget_instruction(&body, ix))
            .transpose()?;
        let mut lookup_tables = Vec::with_capacity(wire.addresses_by_lookup_table_address.len());
        for (table, addresses) in &wire.addresses_by_lookup_table_address {
            let table = parse_address(&body, "addressesByLookupTableAddress", table)?;
            let addresses = addresses
                .iter()
                .map(|a| parse_address(&body, "addressesByLookupTableAddress.*", a))
                .collect::<Result<Vec<_>, _>>()?;
            lookup_tables.push((table, addresses));
        }
        lookup_tables.sort_by_key(|(table, _)| *table.as_array());
        let quote = JupiterQuote {
            in_amount: parse_amount(&body, "inAmount", &wire.in_amount)?,
            out_amount: parse_amount(&body, "outAmount", &wire.out_amount)?,
            other_amount_threshold: parse_amount(
                &body,
                "otherAmountThreshold",
                &wire.other_amount_threshold,
            )?,
            // v2 documents no `priceImpactPct` on /build; it is only ever logged.
            price_impact_pct: wire
                .price_impact_pct
                .as_ref()
                .map(|v| parse_number(&body, "priceImpactPct", v))
                .transpose()?
                .unwrap_or(0.0),
            route_labels: wire
                .route_plan
                .into_iter()
                .map(|step| step.swap_info.label.unwrap_or_else(|| "?".to_owned()))
                .collect(),
            input_mint: wire.input_mint,
            output_mint: wire.output_mint,
            slippage_bps: wire.slippage_bps,
            context_slot: None,
            raw: Arc::from(body.bytes.as_slice()),
        };
        Ok(SwapBuild {
            quote,
            setup,
            swap,
            cleanup,
            other,
            lookup_tables,
        })
    }

    /// An instruction outside `computeBudgetInstructions`, which must not touch the
    /// compute budget (a second limit or price makes the transaction fail).
    fn own_budget_instruction(
        &self,
        body: &JsonBody,
        ix: wire::InstructionWire,
    ) -> Result<Instruction, JupiterError> {
        if ix.program_id == COMPUTE_BUDGET_PROGRAM {
            return Err(decode_error(
                body,
                "a compute-budget instruction outside `computeBudgetInstructions`".to_owned(),
            ));
        }
        self.instruction(body, ix)
    }
}
