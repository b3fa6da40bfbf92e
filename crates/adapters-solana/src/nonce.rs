//! Durable nonces: the wallet's nonce account as the chain holds it (authority, value,
//! lamports), the advance instruction every transaction on it starts with, and creating
//! one (`kyzlo wallet nonce create`).
//!
//! Checked against the Solana documentation for `getAccountInfo` (solana.com RPC
//! reference, Agave 2.x/4.x: `{ commitment, encoding, minContextSlot }`, an
//! `RpcResponse` whose `context.slot` is the slot the account was read at, `value: null`
//! for a missing account) and for durable nonces (`advance_nonce_account` in
//! `solana-system-interface` 3.2: the advance must be the message's first instruction and
//! the nonce's value its recent blockhash). The account's data is the System program's
//! `nonce::Versions` (`solana-nonce` 3.2.1), 80 bytes in bincode layout: a `u32` version
//! tag (legacy or current), a `u32` state tag (uninitialized or initialized), then the
//! authority, the durable nonce value and the fee calculator.

use std::time::Duration;

use kyzlo_application::ports::{
    Commitment, Observed, PortError, Signer, StatusLookup, TxStatus, UnsignedTransaction,
};
use kyzlo_domain::{ErrorClass, TxSignature};
use solana_commitment_config::CommitmentConfig;
use solana_hash::Hash;
use solana_instruction::Instruction;
use solana_keypair::Keypair;
use solana_message::{Message, VersionedMessage};
use solana_nonce::state::State;
use solana_nonce::versions::Versions;
use solana_pubkey::Pubkey;
use solana_signature::Signature;
use solana_signer::Signer as _;
use solana_transaction::versioned::VersionedTransaction;

use crate::chain::SolanaChain;
use crate::error::{SolanaError, classify};
use crate::lookup::SYSTEM_PROGRAM;

/// The size of a nonce account's data.
pub const NONCE_ACCOUNT_SIZE: usize = State::size();

/// Compute units of a System program instruction (an advance, a transfer) and of a
/// compute-budget instruction: each builtin's fixed cost.
pub const BUILTIN_COMPUTE_UNITS: u32 = 150;

/// How long the creation of a nonce account may take to be confirmed.
const CONFIRM_WITHIN: Duration = Duration::from_secs(60);

/// A nonce account as the chain holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonceInfo {
    /// Who may advance it.
    pub authority: Pubkey,
    /// The value a transaction on it carries as its blockhash.
    pub value: Hash,
    /// Its balance.
    pub lamports: u64,
}

/// The advance of `account` by `authority`: the first instruction of every transaction
/// on the nonce (the runtime recognises a nonce transaction by it).
#[must_use]
pub fn advance(account: &Pubkey, authority: &Pubkey) -> Instruction {
    solana_system_interface::instruction::advance_nonce_account(account, authority)
}

/// The port's commitment as the client's.
pub(crate) fn commitment_config(commitment: Commitment) -> CommitmentConfig {
    match commitment {
        Commitment::Processed => CommitmentConfig::processed(),
        Commitment::Confirmed => CommitmentConfig::confirmed(),
        Commitment::Finalized => CommitmentConfig::finalized(),
    }
}

/// The nonce held by `account` (owned by `owner`, holding `data`): `None` when it is not
/// initialized yet.
///
/// # Errors
/// [`SolanaError::NotANonceAccount`] for another owner than the System program or data
/// that is not a nonce's state.
pub fn decode(
    account: &Pubkey,
    owner: &Pubkey,
    data: &[u8],
    lamports: u64,
) -> Result<Option<NonceInfo>, SolanaError> {
    let refuse = |reason| SolanaError::NotANonceAccount {
        account: account.to_string(),
        reason,
    };
    if *owner != SYSTEM_PROGRAM {
        return Err(refuse("not owned by the System program"));
    }
    if data.len() != NONCE_ACCOUNT_SIZE {
        return Err(refuse("its data is not the 80 bytes of a nonce's state"));
    }
    let versions: Versions =
        wincode::deserialize(data).map_err(|_| refuse("its data is not a nonce's state"))?;
    match versions {
        // A value from before the durable nonce's own domain: no transaction can be
        // built on it until an advance upgrades the account.
        Versions::Legacy(_) => Err(refuse("a legacy nonce: advance it once to upgrade it")),
        Versions::Current(state) => match *state {
            State::Uninitialized => Ok(None),
            State::Initialized(state) => Ok(Some(NonceInfo {
                authority: state.authority,
                value: state.blockhash(),
                lamports,
            })),
        },
    }
}

impl SolanaChain {
    /// Nonce account `account` as the answering node sees it at `commitment`, with the
    /// answer's context slot: `None` when the account does not exist or holds no
    /// initialized nonce. Whose it is is the caller's to check.
    ///
    /// # Errors
    /// Classified transport or node errors; `InvalidAccount`
    /// ([`SolanaError::NotANonceAccount`]) for an account that is not a nonce account.
    pub async fn nonce_info(
        &self,
        account: Pubkey,
        commitment: Commitment,
    ) -> Result<Observed<Option<NonceInfo>>, PortError> {
        const OP: &str = "rpc.getAccountInfo";
        let commitment = commitment_config(commitment);
        let answer = self
            .endpoints()
            .read(OP, |client| {
                Box::pin(async move {
                    client
                        .get_account_with_commitment(&account, commitment)
                        .await
                        .map_err(|e| classify(&e))
                })
            })
            .await?;
        let value = match answer.value {
            None => None,
            Some(held) => decode(&account, &held.owner, &held.data, held.lamports)
                .map_err(|e| e.to_port_error(OP, "answer"))?,
        };
        Ok(Observed {
            context_slot: answer.context.slot,
            value,
        })
    }

    /// The least balance an account of `size` bytes needs to be rent exempt.
    ///
    /// # Errors
    /// Classified transport or node errors.
    pub async fn rent_exempt_minimum(&self, size: usize) -> Result<u64, PortError> {
        self.endpoints()
            .read("rpc.getMinimumBalanceForRentExemption", |client| {
                Box::pin(async move {
                    client
                        .get_minimum_balance_for_rent_exemption(size)
                        .await
                        .map_err(|e| classify(&e))
                })
            })
            .await
    }
}

/// The base fee of one signature, in lamports.
pub const LAMPORTS_PER_SIGNATURE: u64 = 5_000;

/// The fee of creating a nonce account: two signatures (the wallet's and the new
/// account's), no priority fee.
pub const CREATE_FEE_LAMPORTS: u64 = 2 * LAMPORTS_PER_SIGNATURE;

/// Creates a nonce account (a new keypair, dropped once it has signed its creation)
/// holding `lamports`, its authority the wallet that `signer` signs for and pays from:
/// one transaction signed by both, sent until confirmed. Returns the account's address
/// and the creation's signature.
///
/// # Errors
/// Classified RPC errors; `LandedFailed` when the creation landed and failed;
/// `RpcTimeout` when it was not confirmed within a minute.
pub async fn create_account(
    chain: &SolanaChain,
    signer: &dyn Signer,
    lamports: u64,
) -> Result<(Pubkey, TxSignature), PortError> {
    const OP: &str = "nonce.create";
    let nonce = Keypair::new();
    let payer = Pubkey::new_from_array(signer.address().0);
    let instructions = solana_system_interface::instruction::create_nonce_account(
        &payer,
        &nonce.pubkey(),
        &payer,
        lamports,
    );
    let latest = chain.newest_blockhash().await?;
    let message = VersionedMessage::Legacy(Message::new_with_blockhash(
        &instructions,
        Some(&payer),
        &latest.blockhash,
    ));
    let mut signatures =
        vec![Signature::default(); usize::from(message.header().num_required_signatures)];
    // The new account signs its own creation; the wallet signs last, through its port.
    let at = message
        .static_account_keys()
        .iter()
        .position(|key| *key == nonce.pubkey())
        .filter(|at| *at > 0 && *at < signatures.len())
        .ok_or_else(|| PortError::new(OP, ErrorClass::Unknown, "the new account is no signer"))?;
    signatures[at] = nonce.sign_message(&message.serialize());
    let bytes = wincode::serialize(&VersionedTransaction {
        signatures,
        message,
    })
    .map_err(|e| PortError::new(OP, ErrorClass::Unknown, format!("serialize: {e}")))?;
    let signed = signer.sign(&UnsignedTransaction {
        bytes,
        last_valid_block_height: latest.last_valid_block_height,
        priority_fee: None,
    })?;
    let status = send_until_confirmed(chain, &signed, OP).await?;
    if let Some(error) = status.error {
        return Err(PortError::new(
            OP,
            ErrorClass::LandedFailed,
            format!(
                "creating nonce account {} landed and failed: {error}",
                nonce.pubkey()
            ),
        ));
    }
    Ok((nonce.pubkey(), signed.signature))
}

/// Sends `signed` (the same bytes again every 400 ms) until a status at least confirmed
/// is seen, within a minute.
///
/// # Errors
/// The send's or the status look-up's classified error; `RpcTimeout` after a minute.
pub(crate) async fn send_until_confirmed(
    chain: &SolanaChain,
    signed: &kyzlo_application::ports::SignedTransaction,
    operation: &'static str,
) -> Result<TxStatus, PortError> {
    use kyzlo_application::ports::Chain as _;
    let started = tokio::time::Instant::now();
    loop {
        chain.send(signed).await?;
        tokio::time::sleep(Duration::from_millis(400)).await;
        let statuses = chain
            .statuses(&[signed.signature], StatusLookup::Recent)
            .await?;
        if let Some(Some(status)) = statuses.value.first()
            && (status.error.is_some() || status.commitment >= Commitment::Confirmed)
        {
            return Ok(*status);
        }
        if started.elapsed() > CONFIRM_WITHIN {
            return Err(PortError::new(
                operation,
                ErrorClass::RpcTimeout,
                format!("not confirmed within {CONFIRM_WITHIN:?}"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A nonce account's data in bincode layout: version tag, state tag, then the state.
    fn data(version: u32, state: u32, authority: &Pubkey, value: &Hash) -> Vec<u8> {
        let mut bytes = version.to_le_bytes().to_vec();
        bytes.extend_from_slice(&state.to_le_bytes());
        bytes.extend_from_slice(authority.as_ref());
        bytes.extend_from_slice(value.as_ref());
        bytes.extend_from_slice(&5_000_u64.to_le_bytes());
        bytes
    }

    #[test]
    fn nonce_state_decodes_by_owner_and_layout() {
        let account = Pubkey::new_unique();
        let authority = Pubkey::new_unique();
        let value = Hash::new_unique();
        let initialized = data(1, 1, &authority, &value);
        assert_eq!(initialized.len(), NONCE_ACCOUNT_SIZE);
        assert_eq!(
            decode(&account, &SYSTEM_PROGRAM, &initialized, 1_447_680),
            Ok(Some(NonceInfo {
                authority,
                value,
                lamports: 1_447_680
            }))
        );
        let mut uninitialized = 1_u32.to_le_bytes().to_vec();
        uninitialized.resize(NONCE_ACCOUNT_SIZE, 0);
        assert_eq!(
            decode(&account, &SYSTEM_PROGRAM, &uninitialized, 1),
            Ok(None)
        );

        let refused = [
            (Pubkey::new_unique(), initialized.clone()),
            (SYSTEM_PROGRAM, Vec::new()),
            (SYSTEM_PROGRAM, initialized[..79].to_vec()),
            (SYSTEM_PROGRAM, data(0, 1, &authority, &value)),
            (SYSTEM_PROGRAM, data(2, 1, &authority, &value)),
            (SYSTEM_PROGRAM, data(1, 7, &authority, &value)),
        ];
        for (owner, bytes) in refused {
            match decode(&account, &owner, &bytes, 1) {
                Err(e @ SolanaError::NotANonceAccount { .. }) => {
                    assert_eq!(e.class(), ErrorClass::InvalidAccount);
                    assert!(e.to_string().contains(&account.to_string()), "{e}");
                }
                other => panic!("{owner} {} bytes: {other:?}", bytes.len()),
            }
        }
    }

    #[test]
    fn the_advance_names_the_account_writable_and_the_authority_as_signer() {
        let (account, authority) = (Pubkey::new_unique(), Pubkey::new_unique());
        let ix = advance(&account, &authority);
        assert_eq!(ix.program_id, SYSTEM_PROGRAM);
        assert_eq!(ix.data, 4_u32.to_le_bytes(), "AdvanceNonceAccount");
        assert_eq!(ix.accounts[0].pubkey, account);
        assert!(ix.accounts[0].is_writable && !ix.accounts[0].is_signer);
        assert_eq!(ix.accounts[2].pubkey, authority);
        assert!(ix.accounts[2].is_signer);
    }
}
