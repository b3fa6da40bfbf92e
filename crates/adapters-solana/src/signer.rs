//! The wallet's [`Signer`]: a keypair that signs the router's unsigned transactions.
//!
//! It signs only a transaction whose fee payer (first account) is this wallet, fills the
//! fee payer's signature slot, and leaves any other required signature as the router
//! put it, refusing a transaction whose other required signatures are still empty.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use kyzlo_application::ports::{
    Blockhash, PortError, SignedTransaction, Signer, UnsignedTransaction, WalletAddress,
};
use kyzlo_domain::TxSignature;
use solana_hash::Hash;
use solana_keypair::Keypair;
use solana_pubkey::Pubkey;
use solana_signature::Signature;
use solana_signer::Signer as _;
use solana_transaction::versioned::VersionedTransaction;

use crate::error::SolanaError;
use crate::keypair::{KeypairError, load_keypair};

/// Largest transaction accepted for signing: a Solana packet is 1,232 bytes.
const MAX_TRANSACTION_BYTES: usize = 1232;

/// The wallet: signs with a keypair. Its `Debug` shows the address only.
pub struct KeypairSigner {
    keypair: Keypair,
    address: Pubkey,
}

impl fmt::Debug for KeypairSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeypairSigner")
            .field("address", &self.address.to_string())
            .finish_non_exhaustive()
    }
}

impl KeypairSigner {
    /// A signer holding `keypair`.
    #[must_use]
    pub fn new(keypair: Keypair) -> Self {
        let address = keypair.pubkey();
        Self { keypair, address }
    }

    /// A signer from a Solana CLI keypair file.
    ///
    /// # Errors
    /// As [`load_keypair`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, KeypairError> {
        load_keypair(path).map(Self::new)
    }

    /// The wallet's public key.
    #[must_use]
    pub fn pubkey(&self) -> Pubkey {
        self.address
    }

    /// Signs serialized transaction bytes: the signed bytes, the signature, and the
    /// blockhash the message carries.
    fn sign_bytes(&self, bytes: &[u8]) -> Result<(Vec<u8>, Signature, Hash), SolanaError> {
        if bytes.len() > MAX_TRANSACTION_BYTES {
            return Err(SolanaError::Unsignable {
                reason: "larger than a transaction can be",
            });
        }
        let mut tx: VersionedTransaction =
            wincode::deserialize(bytes).map_err(|_| SolanaError::Unsignable {
                reason: "not a serialized transaction",
            })?;
        let required = usize::from(tx.message.header().num_required_signatures);
        let keys = tx.message.static_account_keys();
        if required == 0 || keys.first() != Some(&self.address) {
            return Err(SolanaError::Unsignable {
                reason: "its fee payer is not this wallet",
            });
        }
        if tx.signatures.len() != required {
            return Err(SolanaError::Unsignable {
                reason: "signature slots do not match the required signers",
            });
        }
        if tx.signatures[1..]
            .iter()
            .any(|s| *s == Signature::default())
        {
            return Err(SolanaError::Unsignable {
                reason: "it needs signers other than this wallet",
            });
        }
        let signature = self.keypair.sign_message(&tx.message.serialize());
        tx.signatures[0] = signature;
        tx.sanitize().map_err(|_| SolanaError::Unsignable {
            reason: "it fails sanitization",
        })?;
        let signed = wincode::serialize(&tx).map_err(|_| SolanaError::Unsignable {
            reason: "it cannot be serialized",
        })?;
        Ok((signed, signature, *tx.message.recent_blockhash()))
    }
}

impl Signer for KeypairSigner {
    fn address(&self) -> WalletAddress {
        WalletAddress(self.address.to_bytes())
    }

    fn sign(&self, unsigned: &UnsignedTransaction) -> Result<SignedTransaction, PortError> {
        let (bytes, signature, blockhash) = self
            .sign_bytes(&unsigned.bytes)
            .map_err(|e| e.to_port_error("wallet.sign", "local"))?;
        Ok(SignedTransaction {
            bytes: Arc::from(bytes),
            signature: TxSignature(signature.into()),
            blockhash: Blockhash(blockhash.to_bytes()),
            last_valid_block_height: unsigned.last_valid_block_height,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kyzlo_domain::ErrorClass;
    use solana_hash::Hash;
    use solana_instruction::{AccountMeta, Instruction};
    use solana_message::{Message, VersionedMessage, v0};

    fn memo_like(payer: &Pubkey, extra_signer: Option<&Pubkey>) -> Instruction {
        let mut accounts = vec![AccountMeta::new(*payer, true)];
        if let Some(extra) = extra_signer {
            accounts.push(AccountMeta::new_readonly(*extra, true));
        }
        Instruction::new_with_bytes(Pubkey::new_from_array([9; 32]), b"kyzlo", accounts)
    }

    fn unsigned(message: VersionedMessage) -> UnsignedTransaction {
        let required = usize::from(message.header().num_required_signatures);
        let tx = VersionedTransaction {
            signatures: vec![Signature::default(); required],
            message,
        };
        UnsignedTransaction {
            bytes: wincode::serialize(&tx).expect("serializes"),
            last_valid_block_height: 321,
            priority_fee: None,
        }
    }

    fn legacy(payer: &Pubkey) -> VersionedMessage {
        VersionedMessage::Legacy(Message::new_with_blockhash(
            &[memo_like(payer, None)],
            Some(payer),
            &Hash::new_from_array([3; 32]),
        ))
    }

    #[test]
    fn signs_a_legacy_transaction_as_fee_payer() {
        let signer = KeypairSigner::new(Keypair::new());
        let signed = signer
            .sign(&unsigned(legacy(&signer.pubkey())))
            .expect("signs");
        let tx: VersionedTransaction = wincode::deserialize(&signed.bytes).expect("a transaction");
        assert_eq!(tx.signatures[0].as_ref(), &signed.signature.0[..]);
        assert!(tx.verify_with_results().iter().all(|ok| *ok));
        assert_eq!(signed.last_valid_block_height, 321);
    }

    #[test]
    fn signs_a_v0_transaction_as_fee_payer() {
        let signer = KeypairSigner::new(Keypair::new());
        let message = v0::Message::try_compile(
            &signer.pubkey(),
            &[memo_like(&signer.pubkey(), None)],
            &[],
            Hash::new_from_array([4; 32]),
        )
        .expect("compiles");
        let signed = signer
            .sign(&unsigned(VersionedMessage::V0(message)))
            .expect("signs");
        let tx: VersionedTransaction = wincode::deserialize(&signed.bytes).expect("a transaction");
        assert!(tx.verify_with_results().iter().all(|ok| *ok));
    }

    #[test]
    fn keeps_other_signers_signatures_and_fills_its_own() {
        let wallet = KeypairSigner::new(Keypair::new());
        let other = Keypair::new();
        let message = VersionedMessage::Legacy(Message::new_with_blockhash(
            &[memo_like(&wallet.pubkey(), Some(&other.pubkey()))],
            Some(&wallet.pubkey()),
            &Hash::new_from_array([5; 32]),
        ));
        let mut tx = VersionedTransaction {
            signatures: vec![Signature::default(); 2],
            message,
        };
        tx.signatures[1] = other.sign_message(&tx.message.serialize());
        let partially = UnsignedTransaction {
            bytes: wincode::serialize(&tx).expect("serializes"),
            last_valid_block_height: 9,
            priority_fee: None,
        };
        let signed = wallet.sign(&partially).expect("signs");
        let tx: VersionedTransaction = wincode::deserialize(&signed.bytes).expect("a transaction");
        assert!(tx.verify_with_results().iter().all(|ok| *ok));
    }

    #[test]
    fn refuses_what_it_cannot_sign_as_signature_failure() {
        let wallet = KeypairSigner::new(Keypair::new());
        let stranger = Pubkey::new_from_array([1; 32]);
        let two_signers = VersionedMessage::Legacy(Message::new_with_blockhash(
            &[memo_like(&wallet.pubkey(), Some(&stranger))],
            Some(&wallet.pubkey()),
            &Hash::new_from_array([5; 32]),
        ));
        let cases = vec![
            ("someone else's fee payer", unsigned(legacy(&stranger))),
            ("another signature still missing", unsigned(two_signers)),
            (
                "garbage",
                UnsignedTransaction {
                    bytes: vec![0xff; 40],
                    last_valid_block_height: 1,
                    priority_fee: None,
                },
            ),
            (
                "empty",
                UnsignedTransaction {
                    bytes: Vec::new(),
                    last_valid_block_height: 1,
                    priority_fee: None,
                },
            ),
            (
                "huge",
                UnsignedTransaction {
                    bytes: vec![1; 100_000],
                    last_valid_block_height: 1,
                    priority_fee: None,
                },
            ),
        ];
        for (name, tx) in cases {
            let error = wallet.sign(&tx).expect_err(name);
            assert_eq!(error.class, ErrorClass::SignatureFailure, "{name}");
        }
    }

    #[test]
    fn truncated_transactions_are_refused_at_every_cut() {
        let wallet = KeypairSigner::new(Keypair::new());
        let whole = unsigned(legacy(&wallet.pubkey()));
        for cut in 0..whole.bytes.len() {
            let tx = UnsignedTransaction {
                bytes: whole.bytes[..cut].to_vec(),
                last_valid_block_height: 1,
                priority_fee: None,
            };
            assert!(wallet.sign(&tx).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn debug_shows_the_address_not_the_key() {
        let keypair = Keypair::new();
        let secret = keypair.to_base58_string();
        let signer = KeypairSigner::new(keypair);
        let debug = format!("{signer:?}");
        assert!(debug.contains(&signer.pubkey().to_string()));
        assert!(!debug.contains(&secret));
        assert!(!debug.contains(&secret[..20]));
    }
}
