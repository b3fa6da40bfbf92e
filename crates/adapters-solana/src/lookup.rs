//! Creating an address lookup table on the chain: the devnet stand-in's route uses one,
//! so the local validator and devnet run the same v0-with-lookup-table path as a
//! Jupiter route on mainnet.
//!
//! One legacy transaction creates the table (on a recent slot), extends it with the
//! addresses, and funds any of them that is to be written (a system account needs its
//! rent-exempt minimum before a transfer into it can land); then it is confirmed. A
//! table's addresses can be looked up from the slot after the extension.

use std::time::Duration;

use kyzlo_application::ports::{PortError, Signer, UnsignedTransaction};
use kyzlo_domain::ErrorClass;
use solana_address_lookup_table_interface::instruction::{
    create_lookup_table, extend_lookup_table,
};
use solana_address_lookup_table_interface::state::AddressLookupTable;
use solana_commitment_config::CommitmentConfig;
use solana_instruction::{AccountMeta, Instruction};
use solana_message::{Message, VersionedMessage};
use solana_pubkey::Pubkey;
use solana_signature::Signature;
use solana_transaction::versioned::VersionedTransaction;

use crate::chain::SolanaChain;
use crate::error::classify;

/// The System program.
pub const SYSTEM_PROGRAM: Pubkey = Pubkey::from_str_const("11111111111111111111111111111111");

/// A System transfer of `lamports` from `from` to `to`.
#[must_use]
pub fn transfer(from: &Pubkey, to: &Pubkey, lamports: u64) -> Instruction {
    let mut data = 2_u32.to_le_bytes().to_vec();
    data.extend_from_slice(&lamports.to_le_bytes());
    Instruction::new_with_bytes(
        SYSTEM_PROGRAM,
        &data,
        vec![AccountMeta::new(*from, true), AccountMeta::new(*to, false)],
    )
}

/// Creates a lookup table owned by `signer` holding `addresses`, funding each of
/// `fund` with its rent-exempt minimum; returns the table's address once confirmed and
/// usable.
///
/// # Errors
/// Classified RPC errors; `LandedFailed` when the creation landed and failed;
/// `RpcTimeout` when it was not confirmed within a minute.
pub async fn create_table(
    chain: &SolanaChain,
    signer: &dyn Signer,
    addresses: &[Pubkey],
    fund: &[Pubkey],
) -> Result<Pubkey, PortError> {
    let payer = Pubkey::new_from_array(signer.address().0);
    let commitment = chain.commitment();
    let endpoints = chain.endpoints();
    // The table's address is derived from a slot the chain must find among its recent
    // slot hashes, which a bank holds only for its ancestors: a finalized slot is one.
    let recent_slot = endpoints
        .read("rpc.getSlot", |client| {
            Box::pin(async move {
                client
                    .get_slot_with_commitment(CommitmentConfig::finalized())
                    .await
                    .map_err(|e| classify(&e))
            })
        })
        .await?;
    let rent = endpoints
        .read("rpc.getMinimumBalanceForRentExemption", |client| {
            Box::pin(async move {
                client
                    .get_minimum_balance_for_rent_exemption(0)
                    .await
                    .map_err(|e| classify(&e))
            })
        })
        .await?;
    let (create, table) = create_lookup_table(payer, payer, recent_slot);
    let mut instructions: Vec<Instruction> =
        fund.iter().map(|to| transfer(&payer, to, rent)).collect();
    instructions.push(create);
    instructions.push(extend_lookup_table(
        table,
        payer,
        Some(payer),
        addresses.to_vec(),
    ));
    let latest = chain.newest_blockhash().await?;
    let message = VersionedMessage::Legacy(Message::new_with_blockhash(
        &instructions,
        Some(&payer),
        &latest.blockhash,
    ));
    let tx = VersionedTransaction {
        signatures: vec![
            Signature::default();
            usize::from(message.header().num_required_signatures)
        ],
        message,
    };
    let bytes = wincode::serialize(&tx).map_err(|e| {
        PortError::new(
            "lookup.create",
            ErrorClass::Unknown,
            format!("serialize: {e}"),
        )
    })?;
    let signed = signer.sign(&UnsignedTransaction {
        bytes,
        last_valid_block_height: latest.last_valid_block_height,
        priority_fee: None,
    })?;
    let status = crate::nonce::send_until_confirmed(chain, &signed, "lookup.create").await?;
    if let Some(error) = status.error {
        return Err(PortError::new(
            "lookup.create",
            ErrorClass::LandedFailed,
            format!("creating lookup table {table} landed and failed: {error}"),
        ));
    }
    // Usable from the slot after the extension.
    while endpoints
        .read("rpc.getSlot", |client| {
            Box::pin(async move {
                client
                    .get_slot_with_commitment(commitment)
                    .await
                    .map_err(|e| classify(&e))
            })
        })
        .await?
        <= status.slot
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(table)
}

/// Whether `table` is a lookup table on the chain holding every one of `addresses`.
///
/// # Errors
/// Classified RPC errors.
pub async fn holds(
    chain: &SolanaChain,
    table: &Pubkey,
    addresses: &[Pubkey],
) -> Result<bool, PortError> {
    let commitment = chain.commitment();
    let key = *table;
    let account = chain
        .endpoints()
        .read("rpc.getAccountInfo", |client| {
            Box::pin(async move {
                client
                    .get_account_with_commitment(&key, commitment)
                    .await
                    .map(|r| r.value)
                    .map_err(|e| classify(&e))
            })
        })
        .await?;
    let Some(account) = account else {
        return Ok(false);
    };
    if account.owner != solana_address_lookup_table_interface::program::id() {
        return Ok(false);
    }
    Ok(AddressLookupTable::deserialize(&account.data)
        .is_ok_and(|held| addresses.iter().all(|a| held.addresses.contains(a))))
}
