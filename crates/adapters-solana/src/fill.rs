//! What a landed transaction moved for the wallet, from a `getTransaction` answer: the
//! wallet's lamport balance and its token balances of the pair's mints, before and after.
//!
//! SOL as a side of the pair (the [`NATIVE_MINT`]) counts both native lamports and wrapped
//! SOL token accounts owned by the wallet; the network fee is taken out of the lamport
//! change (it is reported as the fill's fee), but rent paid for an account the
//! transaction creates and keeps (e.g. a new token account) counts as SOL spent. A
//! transaction that failed on chain moved nothing but its fee.

use kyzlo_application::ports::{Fill, Side};
use kyzlo_domain::{Lamports, TokenAmount};
use serde::Deserialize;
use solana_pubkey::Pubkey;

use crate::config::{NATIVE_MINT, TokenPair};
use crate::error::SolanaError;

/// The parts of a `getTransaction` result (encoding `jsonParsed` or `json`) a fill needs.
#[derive(Debug, Deserialize)]
pub(crate) struct LandedTransaction {
    meta: Option<Meta>,
    transaction: Envelope,
}

#[derive(Debug, Deserialize)]
struct Envelope {
    message: Message,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Message {
    account_keys: Vec<AccountKey>,
}

/// `jsonParsed` lists keys as objects; `json` as plain strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum AccountKey {
    Parsed { pubkey: String },
    Plain(String),
}

impl AccountKey {
    fn as_str(&self) -> &str {
        match self {
            AccountKey::Parsed { pubkey } | AccountKey::Plain(pubkey) => pubkey,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    err: Option<serde_json::Value>,
    fee: u64,
    pre_balances: Vec<u64>,
    post_balances: Vec<u64>,
    #[serde(default)]
    pre_token_balances: Option<Vec<TokenBalance>>,
    #[serde(default)]
    post_token_balances: Option<Vec<TokenBalance>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenBalance {
    mint: String,
    #[serde(default)]
    owner: Option<String>,
    ui_token_amount: UiAmount,
}

#[derive(Debug, Deserialize)]
struct UiAmount {
    amount: String,
}

fn malformed(detail: &str) -> SolanaError {
    SolanaError::Malformed {
        detail: detail.to_owned(),
    }
}

/// The signed change of `wallet`'s holdings of `mint` in base units; for the native mint,
/// lamports (fee added back) plus wrapped SOL.
fn holding_change(
    meta: &Meta,
    keys: &[AccountKey],
    wallet: &Pubkey,
    mint: &Pubkey,
) -> Result<i128, SolanaError> {
    let wallet_text = wallet.to_string();
    let mint_text = mint.to_string();
    let sum = |balances: &Option<Vec<TokenBalance>>| -> Result<i128, SolanaError> {
        let mut total: i128 = 0;
        for balance in balances.iter().flatten() {
            if balance.mint == mint_text && balance.owner.as_deref() == Some(wallet_text.as_str()) {
                let amount: u64 = balance
                    .ui_token_amount
                    .amount
                    .parse()
                    .map_err(|_| malformed("token amount is not a base-unit integer"))?;
                total += i128::from(amount);
            }
        }
        Ok(total)
    };
    let mut change = sum(&meta.post_token_balances)? - sum(&meta.pre_token_balances)?;
    if *mint == NATIVE_MINT {
        let index = keys
            .iter()
            .position(|k| k.as_str() == wallet_text)
            .ok_or_else(|| malformed("the wallet is not an account of the transaction"))?;
        let pre = meta
            .pre_balances
            .get(index)
            .ok_or_else(|| malformed("preBalances shorter than the account keys"))?;
        let post = meta
            .post_balances
            .get(index)
            .ok_or_else(|| malformed("postBalances shorter than the account keys"))?;
        change += i128::from(*post) - i128::from(*pre);
        if index == 0 {
            // The fee payer paid the fee: it is the fill's fee, not part of the swap.
            change += i128::from(meta.fee);
        }
    }
    Ok(change)
}

fn amount(value: i128, what: &str) -> Result<TokenAmount, SolanaError> {
    u64::try_from(value)
        .map(TokenAmount::new)
        .map_err(|_| malformed(what))
}

/// What `tx` moved for `wallet` trading `pair` on `side`.
///
/// # Errors
/// [`SolanaError::Malformed`] when the answer lacks the balances, or when the balances
/// moved against the side (the transaction is not the swap it is said to be).
pub(crate) fn compute_fill(
    tx: &LandedTransaction,
    wallet: &Pubkey,
    pair: &TokenPair,
    side: Side,
) -> Result<Fill, SolanaError> {
    let meta = tx
        .meta
        .as_ref()
        .ok_or_else(|| malformed("transaction has no status meta"))?;
    let fee = Lamports::new(meta.fee);
    if meta.err.is_some() {
        return Ok(Fill {
            amount_in: TokenAmount::ZERO,
            amount_out: TokenAmount::ZERO,
            fee,
        });
    }
    let keys = &tx.transaction.message.account_keys;
    let base = holding_change(meta, keys, wallet, &pair.base)?;
    let quote = holding_change(meta, keys, wallet, &pair.quote)?;
    let (spent, received) = match side {
        Side::Sell => (-base, quote),
        Side::Buy => (-quote, base),
    };
    Ok(Fill {
        amount_in: amount(spent, "the input token was not spent")?,
        amount_out: amount(received, "the output token was not received")?,
        fee,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORDED: &str =
        include_str!("../tests/fixtures/rpc_getTransaction_jupiter_swap_sol_usdc.json");
    const WALLET: Pubkey = Pubkey::from_str_const("3qAnC3L6xDoTbaL74jLKzQNyhRJc2YJGL7Uu5fxiu9W6");
    const USDC: Pubkey = Pubkey::from_str_const("EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v");
    const PAIR: TokenPair = TokenPair {
        base: NATIVE_MINT,
        quote: USDC,
    };

    fn recorded() -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(RECORDED).expect("fixture is JSON")["result"]
            .clone()
    }

    fn parse(value: serde_json::Value) -> LandedTransaction {
        serde_json::from_value(value).expect("parses")
    }

    #[test]
    fn recorded_jupiter_swap_sold_0_0396_sol_for_5_30065_usdc() {
        let fill = compute_fill(&parse(recorded()), &WALLET, &PAIR, Side::Sell).expect("fill");
        assert_eq!(fill.amount_in, TokenAmount::new(39_600_000));
        assert_eq!(fill.amount_out, TokenAmount::new(5_300_650));
        assert_eq!(fill.fee, Lamports::new(8_214));
    }

    #[test]
    fn recorded_swap_read_as_a_buy_is_refused_not_negated() {
        let error = compute_fill(&parse(recorded()), &WALLET, &PAIR, Side::Buy)
            .expect_err("a sell is not a buy");
        assert!(matches!(error, SolanaError::Malformed { .. }));
    }

    #[test]
    fn failed_transaction_moved_only_its_fee() {
        let mut value = recorded();
        value["meta"]["err"] = serde_json::json!({"InstructionError": [3, {"Custom": 6001}]});
        let fill = compute_fill(&parse(value), &WALLET, &PAIR, Side::Sell).expect("fill");
        assert_eq!(fill.amount_in, TokenAmount::ZERO);
        assert_eq!(fill.amount_out, TokenAmount::ZERO);
        assert_eq!(fill.fee, Lamports::new(8_214));
    }

    #[test]
    fn a_wallet_absent_from_the_transaction_is_an_error() {
        let stranger = Pubkey::new_from_array([7; 32]);
        let error = compute_fill(&parse(recorded()), &stranger, &PAIR, Side::Sell);
        assert!(matches!(error, Err(SolanaError::Malformed { .. })));
    }

    #[test]
    fn short_balance_arrays_are_an_error_not_a_panic() {
        let mut value = recorded();
        value["meta"]["preBalances"] = serde_json::json!([]);
        let error = compute_fill(&parse(value), &WALLET, &PAIR, Side::Sell);
        assert!(matches!(error, Err(SolanaError::Malformed { .. })));
    }

    #[test]
    fn a_non_integer_token_amount_is_an_error() {
        let mut value = recorded();
        value["meta"]["postTokenBalances"][0]["uiTokenAmount"]["amount"] = serde_json::json!("1.5");
        let error = compute_fill(&parse(value), &WALLET, &PAIR, Side::Sell);
        assert!(matches!(error, Err(SolanaError::Malformed { .. })));
    }

    #[test]
    fn missing_meta_is_an_error() {
        let mut value = recorded();
        value["meta"] = serde_json::Value::Null;
        let error = compute_fill(&parse(value), &WALLET, &PAIR, Side::Sell);
        assert!(matches!(error, Err(SolanaError::Malformed { .. })));
    }

    #[test]
    fn plain_json_account_keys_work_like_parsed_ones() {
        let mut value = recorded();
        let keys: Vec<serde_json::Value> = value["transaction"]["message"]["accountKeys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["pubkey"].clone())
            .collect();
        value["transaction"]["message"]["accountKeys"] = serde_json::Value::Array(keys);
        let fill = compute_fill(&parse(value), &WALLET, &PAIR, Side::Sell).expect("fill");
        assert_eq!(fill.amount_in, TokenAmount::new(39_600_000));
    }
}
