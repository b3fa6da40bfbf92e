//! Checking the swap transaction Jupiter builds before it reaches the signer: it must be
//! exactly one sanitary versioned transaction, every signature slot empty, and our wallet
//! its fee payer.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use solana_transaction::Signature;
use solana_transaction::versioned::VersionedTransaction;

use crate::error::TxCheckError;

/// The most bytes a Solana transaction can have (`PACKET_DATA_SIZE`).
pub const MAX_TRANSACTION_BYTES: usize = 1232;

/// Decodes a base64 `swapTransaction` and checks it for `wallet`; returns the bytes.
///
/// # Errors
/// A [`TxCheckError`] naming the first check that failed.
pub fn decode_and_check(
    swap_transaction: &str,
    wallet: &[u8; 32],
) -> Result<Vec<u8>, TxCheckError> {
    // A base64 text longer than this cannot decode to a sendable transaction: refuse it
    // before allocating for it.
    let longest_text = MAX_TRANSACTION_BYTES.div_ceil(3) * 4;
    if swap_transaction.len() > longest_text {
        return Err(TxCheckError::TooLarge {
            len: swap_transaction.len() / 4 * 3,
            limit: MAX_TRANSACTION_BYTES,
        });
    }
    let bytes = STANDARD
        .decode(swap_transaction)
        .map_err(|e| TxCheckError::Base64 {
            reason: e.to_string(),
        })?;
    check(&bytes, wallet)?;
    Ok(bytes)
}

/// Checks serialized transaction bytes for `wallet`.
///
/// # Errors
/// A [`TxCheckError`] naming the first check that failed.
pub fn check(bytes: &[u8], wallet: &[u8; 32]) -> Result<(), TxCheckError> {
    if bytes.len() > MAX_TRANSACTION_BYTES {
        return Err(TxCheckError::TooLarge {
            len: bytes.len(),
            limit: MAX_TRANSACTION_BYTES,
        });
    }
    let tx: VersionedTransaction =
        wincode::deserialize_exact(bytes).map_err(|e| TxCheckError::Malformed {
            reason: e.to_string(),
        })?;
    tx.sanitize().map_err(|e| TxCheckError::Unsanitary {
        reason: e.to_string(),
    })?;
    if tx.signatures.is_empty() {
        return Err(TxCheckError::NoSignatureSlot);
    }
    if let Some(index) = tx
        .signatures
        .iter()
        .position(|signature| *signature != Signature::default())
    {
        return Err(TxCheckError::SignatureSlotFilled { index });
    }
    // Sanitization guarantees a static key per signature, so the fee payer exists.
    let fee_payer = tx
        .message
        .static_account_keys()
        .first()
        .ok_or(TxCheckError::NoSignatureSlot)?;
    if fee_payer.as_array() != wallet {
        return Err(TxCheckError::FeePayerMismatch {
            expected: bs58::encode(wallet).into_string(),
            found: bs58::encode(fee_payer.as_array()).into_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use solana_transaction::{Address, CompiledInstruction, Hash, VersionedMessage};

    const WALLET: [u8; 32] = [7; 32];
    const PROGRAM: [u8; 32] = [42; 32];

    fn message(fee_payer: [u8; 32], signers: u8) -> VersionedMessage {
        let mut account_keys: Vec<Address> = (0..signers)
            .map(|i| Address::new_from_array(if i == 0 { fee_payer } else { [i; 32] }))
            .collect();
        account_keys.push(Address::new_from_array(PROGRAM));
        VersionedMessage::V0(solana_message::v0::Message {
            header: solana_message::MessageHeader {
                num_required_signatures: signers,
                num_readonly_signed_accounts: 0,
                num_readonly_unsigned_accounts: 1,
            },
            account_keys,
            recent_blockhash: Hash::new_from_array([9; 32]),
            instructions: vec![CompiledInstruction {
                program_id_index: signers,
                accounts: vec![0],
                data: vec![1, 2, 3],
            }],
            address_table_lookups: Vec::new(),
        })
    }

    fn serialize(signatures: Vec<Signature>, message: VersionedMessage) -> Vec<u8> {
        wincode::serialize(&VersionedTransaction {
            signatures,
            message,
        })
        .unwrap()
    }

    fn unsigned(fee_payer: [u8; 32]) -> Vec<u8> {
        serialize(vec![Signature::default()], message(fee_payer, 1))
    }

    #[test]
    fn unsigned_transaction_paid_by_our_wallet_passes() {
        let bytes = unsigned(WALLET);
        assert_eq!(bytes[0], 1, "one signature slot");
        assert_eq!(bytes[65], 0x80, "a v0 message follows the slot");
        assert_eq!(check(&bytes, &WALLET), Ok(()));
        let text = STANDARD.encode(&bytes);
        assert_eq!(decode_and_check(&text, &WALLET), Ok(bytes));
    }

    #[test]
    fn legacy_transaction_paid_by_our_wallet_passes() {
        let VersionedMessage::V0(v0) = message(WALLET, 1) else {
            unreachable!()
        };
        let legacy = solana_transaction::Message {
            header: v0.header,
            account_keys: v0.account_keys,
            recent_blockhash: v0.recent_blockhash,
            instructions: v0.instructions,
        };
        let bytes = serialize(vec![Signature::default()], VersionedMessage::Legacy(legacy));
        assert_eq!(check(&bytes, &WALLET), Ok(()));
    }

    #[test]
    fn another_fee_payer_is_refused() {
        let err = check(&unsigned([8; 32]), &WALLET).unwrap_err();
        assert!(
            matches!(err, TxCheckError::FeePayerMismatch { .. }),
            "{err}"
        );
    }

    #[test]
    fn a_filled_signature_slot_is_refused() {
        let bytes = serialize(vec![Signature::from([5; 64])], message(WALLET, 1));
        assert_eq!(
            check(&bytes, &WALLET),
            Err(TxCheckError::SignatureSlotFilled { index: 0 })
        );
    }

    #[test]
    fn no_signature_slot_is_refused() {
        let bytes = serialize(Vec::new(), message(WALLET, 0));
        let err = check(&bytes, &WALLET).unwrap_err();
        assert!(
            matches!(
                err,
                TxCheckError::NoSignatureSlot | TxCheckError::Unsanitary { .. }
            ),
            "{err}"
        );
    }

    #[test]
    fn fewer_slots_than_required_signatures_is_unsanitary() {
        let bytes = serialize(vec![Signature::default()], message(WALLET, 2));
        let err = check(&bytes, &WALLET).unwrap_err();
        assert!(matches!(err, TxCheckError::Unsanitary { .. }), "{err}");
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = unsigned(WALLET);
        bytes.push(0);
        let err = check(&bytes, &WALLET).unwrap_err();
        assert!(matches!(err, TxCheckError::Malformed { .. }), "{err}");
    }

    #[test]
    fn every_truncation_is_refused_without_panic() {
        let bytes = unsigned(WALLET);
        for len in 0..bytes.len() {
            let err = check(&bytes[..len], &WALLET).unwrap_err();
            assert!(
                matches!(err, TxCheckError::Malformed { .. }),
                "{len}: {err}"
            );
        }
    }

    #[test]
    fn garbage_is_refused_without_panic() {
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        for len in [1usize, 2, 64, 65, 66, 200, 1232] {
            let garbage: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state.to_le_bytes()[0]
                })
                .collect();
            assert!(check(&garbage, &WALLET).is_err(), "{len}");
        }
        let all_ones = vec![0xFF; 300];
        assert!(check(&all_ones, &WALLET).is_err());
    }

    #[test]
    fn oversized_input_is_refused_before_decoding() {
        let huge = "A".repeat(10 * 1024 * 1024);
        let err = decode_and_check(&huge, &WALLET).unwrap_err();
        assert!(matches!(err, TxCheckError::TooLarge { .. }), "{err}");
        let err = check(&vec![0; MAX_TRANSACTION_BYTES + 1], &WALLET).unwrap_err();
        assert!(matches!(err, TxCheckError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn invalid_base64_is_refused() {
        let err = decode_and_check("not base64!!", &WALLET).unwrap_err();
        assert!(matches!(err, TxCheckError::Base64 { .. }), "{err}");
    }
}
