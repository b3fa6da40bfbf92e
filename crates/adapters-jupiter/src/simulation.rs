//! Decoding a swap's `simulationError`.
//!
//! Jupiter reports a failed simulation as `{"errorCode": "TRANSACTION_ERROR", "error":
//! "<TransactionError>"}`, where the second field is Solana's typed `TransactionError`
//! printed by its `Display` implementation, e.g. `Error processing Instruction 3: custom
//! program error: 0x1771`. The program error number exists nowhere else in the answer.
//!
//! This module inverts that `Display` for the few variants the executor decides on: the
//! whole text must match one canonical form exactly (anchored at both ends, numbers parsed
//! as numbers), or the failure stays [`SimulatedFailure::Unrecognized`]. Nothing is found by
//! searching inside free text; the unit tests check each form against the `Display` of the
//! real Solana types.

use crate::error::SimulatedFailure;

/// `TransactionError::InstructionError(index, _)`: prefix, index, separator, inner error.
const INSTRUCTION_PREFIX: &str = "Error processing Instruction ";
const INSTRUCTION_SEPARATOR: &str = ": ";
/// `InstructionError::Custom(n)` prints `n` as `{:#x}`.
const CUSTOM_PREFIX: &str = "custom program error: 0x";
/// `InstructionError::InsufficientFunds`.
const INSTRUCTION_INSUFFICIENT_FUNDS: &str = "insufficient funds for instruction";
/// `TransactionError::InsufficientFundsForFee`.
const INSUFFICIENT_FUNDS_FOR_FEE: &str = "Insufficient funds for fee";

/// Decodes the `error` text of a `simulationError`.
#[must_use]
pub fn decode(error: &str) -> SimulatedFailure {
    if error == INSUFFICIENT_FUNDS_FOR_FEE {
        return SimulatedFailure::InsufficientFundsForFee;
    }
    decode_instruction_error(error).unwrap_or(SimulatedFailure::Unrecognized)
}

fn decode_instruction_error(error: &str) -> Option<SimulatedFailure> {
    let rest = error.strip_prefix(INSTRUCTION_PREFIX)?;
    let (index, inner) = rest.split_once(INSTRUCTION_SEPARATOR)?;
    let instruction = parse_decimal_u8(index)?;
    if inner == INSTRUCTION_INSUFFICIENT_FUNDS {
        return Some(SimulatedFailure::InstructionInsufficientFunds { instruction });
    }
    let hex = inner.strip_prefix(CUSTOM_PREFIX)?;
    let code = parse_lower_hex_u32(hex)?;
    Some(SimulatedFailure::ProgramError { instruction, code })
}

/// Digits only, as `Display` prints a `u8`: no sign, no spaces.
fn parse_decimal_u8(text: &str) -> Option<u8> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Hex digits only, as `{:#x}` prints a `u32` after its `0x`.
fn parse_lower_hex_u32(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(text, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use solana_transaction::{InstructionError, TransactionError};

    #[test]
    fn decodes_what_solana_prints_for_a_custom_program_error() {
        for (index, code) in [(0u8, 0u32), (3, 6001), (2, 0x1789), (255, u32::MAX)] {
            let printed = TransactionError::InstructionError(index, InstructionError::Custom(code))
                .to_string();
            assert_eq!(
                decode(&printed),
                SimulatedFailure::ProgramError {
                    instruction: index,
                    code
                },
                "{printed}"
            );
        }
    }

    #[test]
    fn decodes_what_solana_prints_for_insufficient_funds() {
        let printed =
            TransactionError::InstructionError(4, InstructionError::InsufficientFunds).to_string();
        assert_eq!(
            decode(&printed),
            SimulatedFailure::InstructionInsufficientFunds { instruction: 4 }
        );
        let printed = TransactionError::InsufficientFundsForFee.to_string();
        assert_eq!(decode(&printed), SimulatedFailure::InsufficientFundsForFee);
    }

    #[test]
    fn the_recorded_jupiter_simulation_error_decodes() {
        // From a real /swap/v1/swap answer (0x1789 = 6025, a route AMM's error).
        assert_eq!(
            decode("Error processing Instruction 2: custom program error: 0x1789"),
            SimulatedFailure::ProgramError {
                instruction: 2,
                code: 6025
            }
        );
    }

    #[test]
    fn anything_but_the_exact_form_is_unrecognized() {
        let texts = [
            "",
            "slippage tolerance exceeded",
            "Transaction simulation failed: Error processing Instruction 3: custom program error: 0x1771",
            "Error processing Instruction 3: custom program error: 0x1771 (retry)",
            "Error processing Instruction 3: custom program error: 0x",
            "Error processing Instruction 3: custom program error: 0x+1771",
            "Error processing Instruction 3: custom program error: 0x1ffffffff",
            "Error processing Instruction -1: custom program error: 0x1771",
            "Error processing Instruction 256: custom program error: 0x1771",
            "Error processing Instruction : custom program error: 0x1771",
            "Error processing Instruction 3: invalid account data for instruction",
            "error processing instruction 3: custom program error: 0x1771",
            "Insufficient funds for fee.",
        ];
        for text in texts {
            assert_eq!(decode(text), SimulatedFailure::Unrecognized, "{text:?}");
        }
    }
}
