//! The text form of what a durable journal stores as names and base58: one codec for
//! every journal (the SQLite and the PostgreSQL one), so that a value one writes the
//! other reads. Every parser refuses (`None`) what it does not know, never guesses.

use kyzlo_domain::trading_state::ReduceOnlyCause;
use kyzlo_domain::{ErrorClass, ExitKind, HaltCause, TxSignature};

use crate::ports::{Blockhash, NonceAccount, Side};

/// The longest base58 text a 64-byte signature encodes to (a blockhash's is shorter).
const BASE58_MAX: usize = 88;

/// A signature as the base58 text explorers and wallets show.
#[must_use]
pub fn signature_text(signature: &TxSignature) -> String {
    bs58::encode(signature.0).into_string()
}

/// A signature back from its base58 text; `None` unless it is exactly 64 bytes.
#[must_use]
pub fn parse_signature(text: &str) -> Option<TxSignature> {
    <[u8; 64]>::try_from(base58(text)?).ok().map(TxSignature)
}

/// A blockhash as its base58 text.
#[must_use]
pub fn blockhash_text(blockhash: &Blockhash) -> String {
    bs58::encode(blockhash.0).into_string()
}

/// A blockhash from its base58 text; `None` unless it is exactly 32 bytes.
#[must_use]
pub fn parse_blockhash(text: &str) -> Option<Blockhash> {
    Some(Blockhash(base58(text)?.try_into().ok()?))
}

/// A nonce account's address as its base58 text.
#[must_use]
pub fn nonce_account_text(account: &NonceAccount) -> String {
    bs58::encode(account.0).into_string()
}

/// A nonce account from its base58 text; `None` unless it is exactly 32 bytes.
#[must_use]
pub fn parse_nonce_account(text: &str) -> Option<NonceAccount> {
    Some(NonceAccount(base58(text)?.try_into().ok()?))
}

/// Base58 bytes, bounded before decoding (decoding is quadratic in the input's length).
fn base58(text: &str) -> Option<Vec<u8>> {
    if text.len() > BASE58_MAX {
        return None;
    }
    bs58::decode(text).into_vec().ok()
}

/// [`ExitKind`] from its [`ExitKind::as_str`] name.
#[must_use]
pub fn parse_exit_kind(name: &str) -> Option<ExitKind> {
    ExitKind::ALL.into_iter().find(|k| k.as_str() == name)
}

/// [`ErrorClass`] from its [`ErrorClass::as_str`] name.
#[must_use]
pub fn parse_error_class(name: &str) -> Option<ErrorClass> {
    ErrorClass::ALL.into_iter().find(|c| c.as_str() == name)
}

/// [`HaltCause`] from its [`HaltCause::as_str`] name.
#[must_use]
pub fn parse_halt_cause(name: &str) -> Option<HaltCause> {
    HaltCause::ALL.into_iter().find(|c| c.as_str() == name)
}

/// [`ReduceOnlyCause`] from its [`ReduceOnlyCause::as_str`] name.
#[must_use]
pub fn parse_reduce_only_cause(name: &str) -> Option<ReduceOnlyCause> {
    ReduceOnlyCause::ALL
        .into_iter()
        .find(|c| c.as_str() == name)
}

/// [`Side`] from its [`Side::as_str`] name.
#[must_use]
pub fn parse_side(name: &str) -> Option<Side> {
    [Side::Buy, Side::Sell]
        .into_iter()
        .find(|s| s.as_str() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_base58_round_trip_and_strangers_are_refused() {
        for kind in ExitKind::ALL {
            assert_eq!(parse_exit_kind(kind.as_str()), Some(kind));
        }
        for class in ErrorClass::ALL {
            assert_eq!(parse_error_class(class.as_str()), Some(class));
        }
        for cause in HaltCause::ALL {
            assert_eq!(parse_halt_cause(cause.as_str()), Some(cause));
        }
        for cause in ReduceOnlyCause::ALL {
            assert_eq!(parse_reduce_only_cause(cause.as_str()), Some(cause));
        }
        let signature = TxSignature([7; 64]);
        assert_eq!(
            parse_signature(&signature_text(&signature)),
            Some(signature)
        );
        let blockhash = Blockhash([9; 32]);
        assert_eq!(
            parse_blockhash(&blockhash_text(&blockhash)),
            Some(blockhash)
        );
        let account = NonceAccount([0xA5; 32]);
        assert_eq!(
            parse_nonce_account(&nonce_account_text(&account)),
            Some(account)
        );
        // Leading zero bytes are base58 '1's: the all-zero address is 32 of them.
        let zero = NonceAccount([0; 32]);
        assert_eq!(nonce_account_text(&zero), "1".repeat(32));
        assert_eq!(parse_nonce_account(&"1".repeat(32)), Some(zero));
        // A signature is no blockhash, and the other way round.
        assert_eq!(parse_blockhash(&signature_text(&signature)), None);
        assert_eq!(parse_signature(&blockhash_text(&blockhash)), None);
        let (short, long) = (
            bs58::encode([1u8; 63]).into_string(),
            bs58::encode([1u8; 65]).into_string(),
        );
        assert_eq!(parse_signature(&short), None);
        assert_eq!(parse_signature(&long), None);
        for len in [31, 33, 64] {
            let text = bs58::encode(vec![1u8; len]).into_string();
            assert_eq!(parse_nonce_account(&text), None, "{len} bytes");
        }
        for text in [
            "",
            "0OIl",
            "1".repeat(1_000_000).as_str(),
            "StopLoss",
            "buy ",
        ] {
            assert_eq!(parse_signature(text), None, "{text:?}");
            assert_eq!(parse_blockhash(text), None, "{text:?}");
            assert_eq!(parse_nonce_account(text), None, "{text:?}");
            assert_eq!(parse_exit_kind(text), None, "{text:?}");
            assert_eq!(parse_side(text), None, "{text:?}");
        }
    }
}
