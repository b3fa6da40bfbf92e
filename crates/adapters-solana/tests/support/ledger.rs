//! Real transactions for the validator suite: hand-built System and SPL Token
//! instructions, airdrops from the local faucet, unsigned transactions for the wallet to
//! sign, and waiting for confirmation through the adapter's own status look-ups.

use std::time::{Duration, Instant};

use kyzlo_adapters_solana::{KeypairSigner, Pubkey, SolanaChain};
use kyzlo_application::ports::{Chain, Commitment, StatusLookup, TxStatus, UnsignedTransaction};
use kyzlo_domain::TxSignature;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_commitment_config::CommitmentConfig;
use solana_hash::Hash;
use solana_instruction::{AccountMeta, Instruction};
use solana_keypair::Keypair;
use solana_message::{Message, VersionedMessage};
use solana_signature::Signature;
use solana_signer::Signer as _;
use solana_transaction::versioned::VersionedTransaction;

/// The System program.
pub const SYSTEM: Pubkey = Pubkey::from_str_const("11111111111111111111111111111111");
/// The SPL Token program.
pub const TOKEN: Pubkey = Pubkey::from_str_const("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA");
/// Size of an SPL mint.
pub const MINT_SIZE: u64 = 82;
/// Size of an SPL token account.
pub const ACCOUNT_SIZE: u64 = 165;

/// System: move lamports.
pub fn transfer(from: &Pubkey, to: &Pubkey, lamports: u64) -> Instruction {
    let mut data = 2_u32.to_le_bytes().to_vec();
    data.extend_from_slice(&lamports.to_le_bytes());
    Instruction::new_with_bytes(
        SYSTEM,
        &data,
        vec![AccountMeta::new(*from, true), AccountMeta::new(*to, false)],
    )
}

/// System: create an account owned by `owner`.
pub fn create_account(
    from: &Pubkey,
    new: &Pubkey,
    lamports: u64,
    space: u64,
    owner: &Pubkey,
) -> Instruction {
    let mut data = 0_u32.to_le_bytes().to_vec();
    data.extend_from_slice(&lamports.to_le_bytes());
    data.extend_from_slice(&space.to_le_bytes());
    data.extend_from_slice(owner.as_ref());
    Instruction::new_with_bytes(
        SYSTEM,
        &data,
        vec![AccountMeta::new(*from, true), AccountMeta::new(*new, true)],
    )
}

/// Token: InitializeMint2 with no freeze authority.
pub fn initialize_mint2(mint: &Pubkey, decimals: u8, authority: &Pubkey) -> Instruction {
    let mut data = vec![20, decimals];
    data.extend_from_slice(authority.as_ref());
    data.push(0);
    Instruction::new_with_bytes(TOKEN, &data, vec![AccountMeta::new(*mint, false)])
}

/// Token: InitializeAccount3.
pub fn initialize_account3(account: &Pubkey, mint: &Pubkey, owner: &Pubkey) -> Instruction {
    let mut data = vec![18];
    data.extend_from_slice(owner.as_ref());
    Instruction::new_with_bytes(
        TOKEN,
        &data,
        vec![
            AccountMeta::new(*account, false),
            AccountMeta::new_readonly(*mint, false),
        ],
    )
}

/// Token: MintTo.
pub fn mint_to(mint: &Pubkey, account: &Pubkey, authority: &Pubkey, amount: u64) -> Instruction {
    let mut data = vec![7];
    data.extend_from_slice(&amount.to_le_bytes());
    Instruction::new_with_bytes(
        TOKEN,
        &data,
        vec![
            AccountMeta::new(*mint, false),
            AccountMeta::new(*account, false),
            AccountMeta::new_readonly(*authority, true),
        ],
    )
}

/// Token: Transfer.
pub fn token_transfer(from: &Pubkey, to: &Pubkey, authority: &Pubkey, amount: u64) -> Instruction {
    let mut data = vec![3];
    data.extend_from_slice(&amount.to_le_bytes());
    Instruction::new_with_bytes(
        TOKEN,
        &data,
        vec![
            AccountMeta::new(*from, false),
            AccountMeta::new(*to, false),
            AccountMeta::new_readonly(*authority, true),
        ],
    )
}

/// A stock client for what the adapter does not do (airdrops, rent, checks).
pub fn plain_client(url: &reqwest::Url) -> RpcClient {
    RpcClient::new_with_commitment(url.to_string(), CommitmentConfig::confirmed())
}

/// A new wallet holding `lamports` from the faucet, confirmed.
pub async fn funded_wallet(url: &reqwest::Url, lamports: u64) -> KeypairSigner {
    let keypair = Keypair::new();
    let client = plain_client(url);
    let signature = client
        .request_airdrop(&keypair.pubkey(), lamports)
        .await
        .expect("airdrop accepted");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let statuses = client
            .get_signature_statuses(&[signature])
            .await
            .expect("statuses");
        if let Some(Some(status)) = statuses.value.first()
            && status.satisfies_commitment(CommitmentConfig::confirmed())
        {
            assert!(status.err.is_none(), "airdrop failed: {:?}", status.err);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "airdrop not confirmed within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    KeypairSigner::new(keypair)
}

/// `instructions` paid by `payer` with `blockhash`, signed by `co_signers` in their slots
/// and leaving the payer's slot for the wallet's signer.
pub fn unsigned(
    payer: &Pubkey,
    instructions: &[Instruction],
    co_signers: &[&Keypair],
    blockhash: Hash,
    last_valid_block_height: u64,
) -> UnsignedTransaction {
    let message = VersionedMessage::Legacy(Message::new_with_blockhash(
        instructions,
        Some(payer),
        &blockhash,
    ));
    let required = usize::from(message.header().num_required_signatures);
    let bytes = message.serialize();
    let mut signatures = vec![Signature::default(); required];
    for co_signer in co_signers {
        let slot = message.static_account_keys()[..required]
            .iter()
            .position(|k| *k == co_signer.pubkey())
            .expect("co-signer is a required signer");
        signatures[slot] = co_signer.sign_message(&bytes);
    }
    let tx = VersionedTransaction {
        signatures,
        message,
    };
    UnsignedTransaction {
        bytes: wincode::serialize(&tx).expect("serializes"),
        last_valid_block_height,
        priority_fee: None,
    }
}

/// Waits (up to 30 s) until `signature` is confirmed, through the adapter.
pub async fn confirmed(chain: &SolanaChain, signature: TxSignature) -> TxStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let statuses = chain
            .statuses(&[signature], StatusLookup::Recent)
            .await
            .expect("statuses");
        if let Some(status) = statuses.value[0]
            && status.commitment >= Commitment::Confirmed
        {
            return status;
        }
        assert!(Instant::now() < deadline, "not confirmed within 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
