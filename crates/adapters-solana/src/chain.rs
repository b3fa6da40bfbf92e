//! [`SolanaChain`]: the [`Chain`] and [`HealthProbe`] ports over Solana JSON-RPC, plus
//! priority fees, blockhash validity and the latest blockhash.
//!
//! - `send` posts the signed bytes unchanged (base64) with `maxRetries: 0`: the node does
//!   not rebroadcast; the executor resends the same bytes while the attempt lives.
//!   Preflight follows the configuration, at the configured commitment (the one
//!   blockhashes are fetched and checked at). A node answering `AlreadyProcessed` saw
//!   these very bytes before: that is success. With send lanes configured, the bytes go to
//!   every lane at once (see [`crate::lanes`]); without, to the first healthy endpoint,
//!   failing over.
//! - `statuses` uses `getSignatureStatuses` in chunks of 256, with
//!   `searchTransactionHistory` only for [`StatusLookup::WithHistory`] (never
//!   `confirm_transaction`, which cannot tell "not found" from "failed").
//! - `balances` reads `getBalance` and `getTokenAccountsByOwner` per mint (wrapped SOL
//!   by the Token program), in separate calls (they may be a slot apart). With SOL as the
//!   base, the base holding is native lamports plus wrapped SOL, and `fee_lamports` is
//!   the native lamports alone: the same lamports appear in both, so a full exit must
//!   keep a fee reserve out of the base amount it sells.

use std::fmt;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use kyzlo_application::ports::{
    Balances, Blockhash, Chain, Commitment, Fill, HealthProbe, NonceAccount, Observed, PortError,
    RecentBlockhash, Side, SignedTransaction, StatusLookup, TxStatus, WalletAddress,
};
use kyzlo_domain::{Lamports, TokenAmount, TxSignature};
use serde_json::json;
use solana_account_decoder_client_types::UiAccountData;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_client::rpc_request::{RpcRequest, TokenAccountsFilter};
use solana_client::rpc_response::Response;
use solana_commitment_config::CommitmentConfig;
use solana_hash::Hash;
use solana_pubkey::Pubkey;
use solana_signature::Signature;
use solana_transaction_status_client_types::{TransactionConfirmationStatus, TransactionStatus};

use crate::config::{NATIVE_MINT, SolanaConfig, TokenPair};
use crate::endpoints::{EndpointStatus, Endpoints};
use crate::error::{SolanaError, classify, transaction_error_class};
use crate::fees::{MAX_FEE_ACCOUNTS, PriorityFee, propose};
use crate::fill::{LandedTransaction, compute_fill};
use crate::lanes::{Lanes, send_params};

/// The SPL Token program, which holds wrapped SOL accounts.
const TOKEN_PROGRAM: Pubkey = Pubkey::from_str_const("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA");

/// Most signatures one `getSignatureStatuses` call takes.
pub const STATUS_BATCH: usize = 256;

/// A recent blockhash and the last block height at which a transaction using it can land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatestBlockhash {
    /// The blockhash.
    pub blockhash: Hash,
    /// Past this block height, a transaction with this blockhash can never land.
    pub last_valid_block_height: u64,
}

/// The Solana chain adapter.
pub struct SolanaChain {
    endpoints: Endpoints,
    wallet: Pubkey,
    pair: TokenPair,
    commitment: CommitmentConfig,
    skip_preflight: bool,
    /// Where sends go; `None`: the read endpoints.
    lanes: Option<Lanes>,
}

impl fmt::Debug for SolanaChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SolanaChain")
            .field("endpoints", &self.endpoints.status())
            .field("wallet", &self.wallet.to_string())
            .field("pair", &self.pair)
            .finish_non_exhaustive()
    }
}

fn rpc<T>(result: Result<T, solana_client::client_error::ClientError>) -> Result<T, SolanaError> {
    result.map_err(|e| classify(&e))
}

impl SolanaChain {
    /// An adapter for `wallet` trading `pair` over the configured endpoints and send lanes.
    ///
    /// # Errors
    /// [`SolanaError::Config`] for an invalid configuration, or a lane's tip to the wallet
    /// itself or to one of the pair's mints.
    pub fn new(
        config: &SolanaConfig,
        wallet: WalletAddress,
        pair: TokenPair,
    ) -> Result<Self, SolanaError> {
        let wallet = Pubkey::new_from_array(wallet.0);
        if config
            .tips()
            .iter()
            .any(|tip| [wallet, pair.base, pair.quote].contains(&tip.account))
        {
            return Err(SolanaError::Config {
                field: "send_lanes.tip.account",
                expected: "a landing service's tip account, not the wallet or a mint of the pair",
            });
        }
        Ok(Self {
            endpoints: Endpoints::new(config)?,
            wallet,
            pair,
            commitment: config.commitment_config(),
            skip_preflight: config.skip_preflight,
            lanes: Lanes::new(config)?,
        })
    }

    /// The read endpoints, for the assembler's calls.
    pub(crate) fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The commitment reads are made at.
    pub(crate) fn commitment(&self) -> CommitmentConfig {
        self.commitment
    }

    /// Each endpoint and whether it is cooling down, primary first.
    #[must_use]
    pub fn endpoint_status(&self) -> Vec<EndpointStatus> {
        self.endpoints.status()
    }

    /// A compute-unit price for a transaction writing `writable_accounts`: the
    /// `percentile` of the recent per-slot fees (see [`crate::fees`]).
    ///
    /// # Errors
    /// Classified transport or node errors; `Unknown` for more than
    /// [`MAX_FEE_ACCOUNTS`] accounts.
    pub async fn priority_fee(
        &self,
        writable_accounts: &[Pubkey],
        percentile: u32,
    ) -> Result<PriorityFee, PortError> {
        const OP: &str = "rpc.getRecentPrioritizationFees";
        if writable_accounts.len() > MAX_FEE_ACCOUNTS {
            return Err(SolanaError::TooManyAccounts {
                count: writable_accounts.len(),
                max: MAX_FEE_ACCOUNTS,
            }
            .to_port_error(OP, "local"));
        }
        let accounts = writable_accounts.to_vec();
        let fees = self
            .endpoints
            .read(OP, |client| {
                let accounts = accounts.clone();
                Box::pin(async move { rpc(client.get_recent_prioritization_fees(&accounts).await) })
            })
            .await?;
        let values: Vec<u64> = fees.iter().map(|f| f.prioritization_fee).collect();
        Ok(propose(&values, percentile))
    }

    /// The latest blockhash at the configured commitment, with its last valid height.
    ///
    /// # Errors
    /// Classified transport or node errors.
    pub async fn newest_blockhash(&self) -> Result<LatestBlockhash, PortError> {
        let commitment = self.commitment;
        let (blockhash, last_valid_block_height) = self
            .endpoints
            .read("rpc.getLatestBlockhash", |client| {
                Box::pin(async move {
                    rpc(client
                        .get_latest_blockhash_with_commitment(commitment)
                        .await)
                })
            })
            .await?;
        Ok(LatestBlockhash {
            blockhash,
            last_valid_block_height,
        })
    }

    /// The wallet's holdings of `mint` in base units: its token accounts of that mint,
    /// plus `lamports` when the mint is wrapped SOL.
    ///
    /// Wrapped SOL accounts are listed by the Token program rather than by mint: a
    /// local cluster may lack the native mint account, and a mint filter on a missing
    /// mint is an error. Any other mint is asked for by mint, so a misconfigured mint is
    /// an error rather than a silent zero.
    async fn holdings(&self, mint: Pubkey, lamports: u64) -> Result<TokenAmount, PortError> {
        const OP: &str = "rpc.getTokenAccountsByOwner";
        let (wallet, commitment) = (self.wallet, self.commitment);
        let accounts = self
            .endpoints
            .read(OP, |client| {
                let filter = if mint == NATIVE_MINT {
                    TokenAccountsFilter::ProgramId(TOKEN_PROGRAM)
                } else {
                    TokenAccountsFilter::Mint(mint)
                };
                Box::pin(async move {
                    rpc(client
                        .get_token_accounts_by_owner_with_commitment(&wallet, filter, commitment)
                        .await)
                    .map(|response| response.value)
                })
            })
            .await?;
        let mut total = if mint == NATIVE_MINT { lamports } else { 0 };
        for keyed in &accounts {
            let (of_mint, amount) =
                token_amount(&keyed.account.data).map_err(|e| e.to_port_error(OP, "answer"))?;
            if of_mint != mint {
                continue;
            }
            total = total.checked_add(amount).ok_or_else(|| {
                SolanaError::Malformed {
                    detail: "token balances overflow".to_owned(),
                }
                .to_port_error(OP, "answer")
            })?;
        }
        Ok(TokenAmount::new(total))
    }
}

/// The mint and base-unit amount of a `jsonParsed` token account.
fn token_amount(data: &UiAccountData) -> Result<(Pubkey, u64), SolanaError> {
    let malformed = || SolanaError::Malformed {
        detail: "token account without a parsed mint and base-unit amount".to_owned(),
    };
    let UiAccountData::Json(parsed) = data else {
        return Err(malformed());
    };
    let info = &parsed.parsed["info"];
    let mint = info["mint"]
        .as_str()
        .and_then(|text| text.parse::<Pubkey>().ok())
        .ok_or_else(malformed)?;
    let amount = info["tokenAmount"]["amount"]
        .as_str()
        .and_then(|text| text.parse::<u64>().ok())
        .ok_or_else(malformed)?;
    Ok((mint, amount))
}

/// A status as the port reports it.
fn tx_status(status: &TransactionStatus) -> TxStatus {
    let commitment = match status.confirmation_status {
        Some(TransactionConfirmationStatus::Finalized) => Commitment::Finalized,
        Some(TransactionConfirmationStatus::Confirmed) => Commitment::Confirmed,
        Some(TransactionConfirmationStatus::Processed) => Commitment::Processed,
        // Old nodes: no confirmations means rooted; otherwise claim no more than seen.
        None if status.confirmations.is_none() => Commitment::Finalized,
        None => Commitment::Processed,
    };
    TxStatus {
        slot: status.slot,
        commitment,
        error: status.err.as_ref().map(transaction_error_class),
    }
}

/// One `sendTransaction` of `params` to `client`: acknowledged with the expected signature,
/// or `AlreadyProcessed` (these very bytes seen before), is success.
pub(crate) async fn send_once(
    client: &RpcClient,
    params: serde_json::Value,
    expected: Signature,
) -> Result<(), SolanaError> {
    match client
        .send::<String>(RpcRequest::SendTransaction, params)
        .await
    {
        Ok(acknowledged) => match acknowledged.parse::<Signature>() {
            Ok(signature) if signature == expected => Ok(()),
            _ => Err(SolanaError::SignatureMismatch),
        },
        Err(error) => {
            let error = classify(&error);
            if error.is_already_processed() {
                Ok(())
            } else {
                Err(error)
            }
        }
    }
}

#[async_trait]
impl Chain for SolanaChain {
    async fn send(&self, tx: &SignedTransaction) -> Result<(), PortError> {
        let expected = Signature::from(tx.signature.0);
        if let Some(lanes) = &self.lanes {
            return lanes.send(&tx.bytes, expected, self.commitment).await;
        }
        let params = send_params(
            &BASE64.encode(&tx.bytes),
            self.skip_preflight,
            self.commitment,
        );
        self.endpoints
            .send("rpc.sendTransaction", |client| {
                let params = params.clone();
                Box::pin(send_once(client, params, expected))
            })
            .await
    }

    async fn statuses(
        &self,
        signatures: &[TxSignature],
        lookup: StatusLookup,
    ) -> Result<Observed<Vec<Option<TxStatus>>>, PortError> {
        const OP: &str = "rpc.getSignatureStatuses";
        let mut statuses = Vec::with_capacity(signatures.len());
        // Chunks may come from different nodes: the answer is as old as the oldest.
        let mut context_slot = u64::MAX;
        for chunk in signatures.chunks(STATUS_BATCH) {
            let batch: Vec<Signature> = chunk.iter().map(|s| Signature::from(s.0)).collect();
            let answer = self
                .endpoints
                .read(OP, |client| {
                    let batch = batch.clone();
                    Box::pin(async move {
                        let response = match lookup {
                            StatusLookup::Recent => client.get_signature_statuses(&batch).await,
                            StatusLookup::WithHistory => {
                                client.get_signature_statuses_with_history(&batch).await
                            }
                        };
                        rpc(response).map(|r| (r.context.slot, r.value))
                    })
                })
                .await?;
            let (slot, answer) = answer;
            context_slot = context_slot.min(slot);
            if answer.len() != batch.len() {
                return Err(SolanaError::Malformed {
                    detail: format!("{} statuses for {} signatures", answer.len(), batch.len()),
                }
                .to_port_error(OP, "answer"));
            }
            statuses.extend(answer.iter().map(|s| s.as_ref().map(tx_status)));
        }
        Ok(Observed {
            context_slot: if signatures.is_empty() {
                0
            } else {
                context_slot
            },
            value: statuses,
        })
    }

    /// `isBlockhashValid` at the configured commitment (at least confirmed) with
    /// `minContextSlot`, keeping the answer's context slot (checked against the Solana
    /// JSON-RPC reference for `isBlockhashValid`, Agave 2.x/4.x: `{ commitment,
    /// minContextSlot }`; a node behind the slot answers -32016).
    async fn blockhash_valid(
        &self,
        blockhash: Blockhash,
        min_context_slot: u64,
    ) -> Result<Observed<bool>, PortError> {
        const OP: &str = "rpc.isBlockhashValid";
        let commitment = if self.commitment.is_at_least_confirmed() {
            self.commitment
        } else {
            CommitmentConfig::confirmed()
        };
        let params = json!([
            Hash::new_from_array(blockhash.0).to_string(),
            { "commitment": commitment.commitment, "minContextSlot": min_context_slot }
        ]);
        let answer = self
            .endpoints
            .read(OP, |client| {
                let params = params.clone();
                Box::pin(async move {
                    rpc(client
                        .send::<Response<bool>>(RpcRequest::IsBlockhashValid, params)
                        .await)
                })
            })
            .await?;
        Ok(Observed {
            context_slot: answer.context.slot,
            value: answer.value,
        })
    }

    async fn latest_blockhash(&self) -> Result<RecentBlockhash, PortError> {
        let latest = self.newest_blockhash().await?;
        Ok(RecentBlockhash {
            blockhash: Blockhash(latest.blockhash.to_bytes()),
            last_valid_block_height: latest.last_valid_block_height,
        })
    }

    async fn block_height(&self) -> Result<u64, PortError> {
        let commitment = self.commitment;
        self.endpoints
            .read("rpc.getBlockHeight", |client| {
                Box::pin(
                    async move { rpc(client.get_block_height_with_commitment(commitment).await) },
                )
            })
            .await
    }

    async fn fill(&self, signature: TxSignature, side: Side) -> Result<Option<Fill>, PortError> {
        const OP: &str = "rpc.getTransaction";
        // getTransaction does not serve "processed".
        let commitment = if self.commitment.is_at_least_confirmed() {
            self.commitment
        } else {
            CommitmentConfig::confirmed()
        };
        let params = json!([
            Signature::from(signature.0).to_string(),
            {
                "encoding": "jsonParsed",
                "commitment": commitment.commitment,
                "maxSupportedTransactionVersion": 0,
            }
        ]);
        let landed = self
            .endpoints
            .read(OP, |client| {
                let params = params.clone();
                Box::pin(async move {
                    rpc(client
                        .send::<Option<LandedTransaction>>(RpcRequest::GetTransaction, params)
                        .await)
                })
            })
            .await?;
        landed
            .map(|tx| compute_fill(&tx, &self.wallet, &self.pair, side))
            .transpose()
            .map_err(|e| e.to_port_error(OP, "answer"))
    }

    async fn balances(&self) -> Result<Balances, PortError> {
        let (wallet, commitment) = (self.wallet, self.commitment);
        let lamports = self
            .endpoints
            .read("rpc.getBalance", |client| {
                Box::pin(async move {
                    rpc(client
                        .get_balance_with_commitment(&wallet, commitment)
                        .await)
                    .map(|r| r.value)
                })
            })
            .await?;
        let base = self.holdings(self.pair.base, lamports).await?;
        let quote = self.holdings(self.pair.quote, lamports).await?;
        Ok(Balances {
            base,
            quote,
            fee_lamports: Lamports::new(lamports),
        })
    }

    /// `getAccountInfo` at `commitment` (see [`SolanaChain::nonce_info`]); a nonce whose
    /// authority is not the wallet is refused, since the wallet could not advance it.
    async fn nonce(
        &self,
        account: NonceAccount,
        commitment: Commitment,
    ) -> Result<Observed<Option<Blockhash>>, PortError> {
        let address = Pubkey::new_from_array(account.0);
        let read = self.nonce_info(address, commitment).await?;
        if let Some(info) = read.value
            && info.authority != self.wallet
        {
            return Err(SolanaError::NonceAuthority {
                account: address.to_string(),
                authority: info.authority.to_string(),
            }
            .to_port_error("rpc.getAccountInfo", "answer"));
        }
        Ok(Observed {
            context_slot: read.context_slot,
            value: read.value.map(|info| Blockhash(info.value.to_bytes())),
        })
    }
}

#[async_trait]
impl HealthProbe for SolanaChain {
    async fn probe(&self) -> Result<(), PortError> {
        let commitment = self.commitment;
        self.endpoints
            .read("rpc.getSlot", |client| {
                Box::pin(async move { rpc(client.get_slot_with_commitment(commitment).await) })
            })
            .await
            .map(|_slot| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use solana_transaction_error::TransactionError;

    fn status(
        confirmations: Option<usize>,
        level: Option<TransactionConfirmationStatus>,
        err: Option<TransactionError>,
    ) -> TransactionStatus {
        TransactionStatus {
            slot: 7,
            confirmations,
            status: match &err {
                Some(e) => Err(e.clone()),
                None => Ok(()),
            },
            err,
            confirmation_status: level,
        }
    }

    #[test]
    fn statuses_keep_slot_commitment_and_error_class() {
        use kyzlo_domain::ErrorClass;
        use solana_instruction_error::InstructionError;
        let cases = [
            (
                status(
                    Some(1),
                    Some(TransactionConfirmationStatus::Confirmed),
                    None,
                ),
                Commitment::Confirmed,
                None,
            ),
            (
                status(None, Some(TransactionConfirmationStatus::Finalized), None),
                Commitment::Finalized,
                None,
            ),
            (
                status(
                    Some(0),
                    Some(TransactionConfirmationStatus::Processed),
                    None,
                ),
                Commitment::Processed,
                None,
            ),
            (status(None, None, None), Commitment::Finalized, None),
            (status(Some(3), None, None), Commitment::Processed, None),
            (
                status(
                    Some(1),
                    Some(TransactionConfirmationStatus::Confirmed),
                    Some(TransactionError::InstructionError(
                        2,
                        InstructionError::Custom(6001),
                    )),
                ),
                Commitment::Confirmed,
                Some(ErrorClass::SlippageExceeded),
            ),
            (
                status(
                    Some(1),
                    Some(TransactionConfirmationStatus::Confirmed),
                    Some(TransactionError::InstructionError(
                        0,
                        InstructionError::Custom(1),
                    )),
                ),
                Commitment::Confirmed,
                Some(ErrorClass::LandedFailed),
            ),
        ];
        for (input, commitment, error) in cases {
            let got = tx_status(&input);
            assert_eq!(got.slot, 7);
            assert_eq!(got.commitment, commitment, "{input:?}");
            assert_eq!(got.error, error, "{input:?}");
        }
    }

    #[test]
    fn token_amount_reads_only_parsed_mints_and_integer_amounts() {
        use solana_account_decoder_client_types::{ParsedAccount, UiAccountEncoding};
        let mint = NATIVE_MINT.to_string();
        let parsed = |mint: &str, amount: serde_json::Value| {
            UiAccountData::Json(ParsedAccount {
                program: "spl-token".to_owned(),
                parsed: json!({"info": {"mint": mint, "tokenAmount": {"amount": amount}}}),
                space: 165,
            })
        };
        assert_eq!(
            token_amount(&parsed(&mint, json!("1234"))).ok(),
            Some((NATIVE_MINT, 1234))
        );
        assert!(token_amount(&parsed(&mint, json!(1234))).is_err());
        assert!(token_amount(&parsed(&mint, json!("-1"))).is_err());
        assert!(token_amount(&parsed(&mint, json!("99999999999999999999999"))).is_err());
        assert!(token_amount(&parsed("not a key", json!("1"))).is_err());
        let binary = UiAccountData::Binary(String::new(), UiAccountEncoding::Base64);
        assert!(token_amount(&binary).is_err());
    }
}
