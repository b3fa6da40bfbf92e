//! Checking and decoding Jupiter's answers: amounts, numbers and addresses, the quote
//! against what was asked, and errors that keep the body they came from.

use super::*;

pub(super) fn bool_str(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

pub(super) fn config_error(field: &'static str, reason: &str) -> JupiterError {
    JupiterError::Config {
        field,
        reason: reason.to_owned(),
    }
}

pub(super) fn check_mint(field: &'static str, mint: &str) -> Result<(), JupiterError> {
    match bs58::decode(mint).into_vec() {
        Ok(bytes) if bytes.len() == 32 => Ok(()),
        _ => Err(config_error(field, "must be a base58 32-byte mint address")),
    }
}

pub(super) fn decode_error(body: &JsonBody, reason: String) -> JupiterError {
    JupiterError::Decode {
        status: body.status,
        reason,
        body: BodyExcerpt::new(&body.bytes),
    }
}

pub(super) fn missing_field(body: &JsonBody, field: &str) -> JupiterError {
    decode_error(body, format!("missing field `{field}`"))
}

pub(super) fn decode_json<T: DeserializeOwned>(body: &JsonBody) -> Result<T, JupiterError> {
    serde_json::from_slice(&body.bytes).map_err(|e| decode_error(body, e.to_string()))
}

pub(super) fn parse_amount(
    body: &JsonBody,
    field: &str,
    text: &str,
) -> Result<TokenAmount, JupiterError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(decode_error(
            body,
            format!("`{field}` is not a base-unit amount"),
        ));
    }
    text.parse::<u64>()
        .map(TokenAmount::new)
        .map_err(|e| decode_error(body, format!("`{field}`: {e}")))
}

pub(super) fn parse_number(
    body: &JsonBody,
    field: &str,
    value: &wire::NumberOrString,
) -> Result<f64, JupiterError> {
    let number = match value {
        wire::NumberOrString::Number(n) => *n,
        wire::NumberOrString::String(text) => text
            .trim()
            .parse::<f64>()
            .map_err(|e| decode_error(body, format!("`{field}`: {e}")))?,
    };
    if number.is_finite() {
        Ok(number)
    } else {
        Err(decode_error(body, format!("`{field}` is not finite")))
    }
}

pub(super) fn parse_address(
    body: &JsonBody,
    field: &str,
    text: &str,
) -> Result<Address, JupiterError> {
    let mut bytes = [0u8; 32];
    match bs58::decode(text).onto(&mut bytes) {
        Ok(32) => Ok(Address::new_from_array(bytes)),
        _ => Err(decode_error(
            body,
            format!("`{field}` is not a base58 32-byte key"),
        )),
    }
}

pub(super) fn simulation_error(wire: wire::SimulationErrorWire) -> JupiterError {
    let message = wire.error.unwrap_or_default();
    JupiterError::Simulation {
        error_code: wire.error_code.unwrap_or_default(),
        failure: crate::simulation::decode(&message),
        message: BodyExcerpt::new(message.as_bytes()),
    }
}

pub(super) fn check_quote(
    quote: &JupiterQuote,
    params: &QuoteParams<'_>,
    swap_mode: &str,
) -> Result<(), JupiterError> {
    let mismatch = |field, expected: &dyn ToString, got: &dyn ToString| {
        Err(JupiterError::QuoteMismatch {
            field,
            expected: expected.to_string(),
            got: got.to_string(),
        })
    };
    if quote.input_mint != params.input_mint {
        return mismatch("inputMint", &params.input_mint, &quote.input_mint);
    }
    if quote.output_mint != params.output_mint {
        return mismatch("outputMint", &params.output_mint, &quote.output_mint);
    }
    if quote.in_amount != params.amount {
        return mismatch("inAmount", &params.amount, &quote.in_amount);
    }
    if swap_mode != SWAP_MODE_EXACT_IN {
        return mismatch("swapMode", &SWAP_MODE_EXACT_IN, &swap_mode);
    }
    let slippage_bps = u32::from(params.slippage.bps().get());
    if quote.slippage_bps != slippage_bps {
        return mismatch("slippageBps", &slippage_bps, &quote.slippage_bps);
    }
    if quote.other_amount_threshold > quote.out_amount {
        return mismatch(
            "otherAmountThreshold",
            &format!("at most outAmount {}", quote.out_amount),
            &quote.other_amount_threshold,
        );
    }
    Ok(())
}
