//! Shared test parts: the recorded quote, a wallet, real unsigned transactions, a client
//! pointed at a loopback server, and a bare TCP server for answers wiremock cannot give.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kyzlo_adapters_jupiter::{JupiterClient, JupiterConfig, SOL_MINT, USDC_MINT};
use kyzlo_application::ports::WalletAddress;
use serde_json::{Value, json};
use solana_transaction::versioned::VersionedTransaction;
use solana_transaction::{Address, CompiledInstruction, Hash, Signature, VersionedMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The recorded real quote: 1 SOL to USDC, ExactIn, 50 bps.
pub const QUOTE_FIXTURE: &[u8] = include_bytes!("../fixtures/jupiter_quote_sol_usdc.json");

/// Our wallet in the tests.
pub const WALLET: [u8; 32] = [7; 32];
/// Somebody else's wallet.
pub const OTHER_WALLET: [u8; 32] = [8; 32];
/// A test API key.
pub const API_KEY: &str = "test-key-0123456789";

pub fn wallet() -> WalletAddress {
    WalletAddress(WALLET)
}

pub fn wallet_base58() -> String {
    bs58::encode(WALLET).into_string()
}

/// A config for a server at `base_url`: short timeouts, an API key, the default pair.
pub fn config(base_url: &str) -> JupiterConfig {
    let mut config = JupiterConfig::new(wallet());
    config.base_url = base_url.to_owned();
    config.api_key = Some(API_KEY.to_owned());
    config.connect_timeout = Duration::from_secs(1);
    config.request_timeout = Duration::from_secs(2);
    config
}

pub fn client(base_url: &str) -> JupiterClient {
    JupiterClient::new(config(base_url)).expect("test config is valid")
}

/// A real unsigned v0 transaction: one empty signature slot, `fee_payer` first, one
/// instruction of a made-up program.
pub fn unsigned_tx(fee_payer: [u8; 32]) -> Vec<u8> {
    tx_with_signatures(fee_payer, vec![Signature::default()])
}

pub fn tx_with_signatures(fee_payer: [u8; 32], signatures: Vec<Signature>) -> Vec<u8> {
    let message = solana_message::v0::Message {
        header: solana_message::MessageHeader {
            num_required_signatures: 1,
            num_readonly_signed_accounts: 0,
            num_readonly_unsigned_accounts: 1,
        },
        account_keys: vec![
            Address::new_from_array(fee_payer),
            Address::new_from_array([42; 32]),
        ],
        recent_blockhash: Hash::new_from_array([9; 32]),
        instructions: vec![CompiledInstruction {
            program_id_index: 1,
            accounts: vec![0],
            data: vec![1, 2, 3],
        }],
        address_table_lookups: Vec::new(),
    };
    wincode::serialize(&VersionedTransaction {
        signatures,
        message: VersionedMessage::V0(message),
    })
    .expect("a v0 transaction serializes")
}

/// A `/swap/v1/swap` answer carrying `tx`.
pub fn swap_answer(tx: &[u8], last_valid_block_height: u64) -> Value {
    json!({
        "swapTransaction": STANDARD.encode(tx),
        "lastValidBlockHeight": last_valid_block_height,
        "prioritizationFeeLamports": 41_000,
        "computeUnitLimit": 210_000,
        "prioritizationType": {"computeBudget": {"microLamports": 195_238, "estimatedMicroLamports": 195_238}},
        "dynamicSlippageReport": null,
        "simulationError": null
    })
}

/// The recorded quote turned into a buy: USDC in, SOL out, for `amount` USDC base units.
pub fn buy_quote_fixture(amount: u64) -> Vec<u8> {
    let mut quote: Value = serde_json::from_slice(QUOTE_FIXTURE).expect("fixture is JSON");
    quote["inputMint"] = json!(USDC_MINT);
    quote["outputMint"] = json!(SOL_MINT);
    quote["inAmount"] = json!(amount.to_string());
    quote["outAmount"] = json!("10976300");
    quote["otherAmountThreshold"] = json!("10921419");
    serde_json::to_vec(&quote).expect("serializes")
}

/// A loopback server that answers each connection with `answer` (raw HTTP bytes, written
/// in `chunks` writes), then closes it. For answers wiremock cannot give: a body cut
/// short, a chunked body with no length.
pub async fn raw_server(answer: Vec<Vec<u8>>) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        // Bounded: serve at most a few connections, then stop.
        for _ in 0..4 {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            for part in &answer {
                if socket.write_all(part).await.is_err() {
                    break;
                }
            }
            let _ = socket.shutdown().await;
        }
    });
    (addr, task)
}

/// An address on loopback with nothing listening.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    drop(listener);
    addr
}
