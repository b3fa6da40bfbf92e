//! Jupiter's Swap API v2 `/build` (a wiremock stand-in answering the documented shape)
//! compiled into kyzlo's own transaction by the Solana adapter's assembler (against a
//! scripted JSON-RPC stub): the lookup tables resolved from the chain, kyzlo's blockhash,
//! compute budget, priority fee and tips, one Jupiter request per attempt, and the result
//! signed and checked.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kyzlo_adapters_jupiter::{JupiterClient, JupiterConfig};
use kyzlo_adapters_solana::lookup::transfer;
use kyzlo_adapters_solana::{
    AssembleSettings, Assembler, KeypairSigner, NATIVE_MINT, Pubkey, SolanaChain, SolanaConfig,
    TokenPair, Url,
};
use kyzlo_application::ports::{QuoteRequest, Side, Signer, SwapRequest, SwapRouter};
use kyzlo_domain::{ErrorClass, Lamports, Slippage, TokenAmount};
use kyzlo_live::router::BuildRouter;
use serde_json::{Value, json};
use solana_address_lookup_table_interface::state::{AddressLookupTable, LookupTableMeta};
use solana_keypair::Keypair;
use solana_message::VersionedMessage;
use solana_transaction::versioned::VersionedTransaction;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const BUILD_FIXTURE: &str =
    include_str!("../../adapters-jupiter/tests/fixtures/jupiter_build_sol_usdc.json");
/// The wallet the fixture was composed for ([7; 32]).
const FIXTURE_WALLET: &str = "US517G5965aydkZ46HS38QLi7UQiSojurfbQfKCELFx";
const LOOKUP_TABLE: &str = "GHFS1Nr6n6PPuH8wk6yDRrabYSjKNF2op6FjYbx578u1";
const NEWEST_SLOT: u64 = 1_000;
const OLD_BLOCK_HEIGHT: u64 = 870;
const UNITS: u64 = 120_000;

fn old_blockhash() -> String {
    bs58::encode([42u8; 32]).into_string()
}

/// A JSON-RPC node: the table as `held`, recent fees, a simulation consuming `UNITS`
/// (or failing with `simulation_error`); every call logged.
struct Node {
    held: Vec<Pubkey>,
    simulation_error: Option<Value>,
    calls: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Respond for Node {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).expect("JSON-RPC");
        let name = body["method"].as_str().unwrap_or_default().to_owned();
        self.calls
            .lock()
            .expect("the call log")
            .push((name.clone(), body["params"].clone()));
        let context = json!({"slot": NEWEST_SLOT});
        let result = match name.as_str() {
            "getMultipleAccounts" => {
                let data = AddressLookupTable {
                    meta: LookupTableMeta {
                        authority: Some(Pubkey::new_unique()),
                        ..LookupTableMeta::default()
                    },
                    addresses: Cow::Owned(self.held.clone()),
                }
                .serialize_for_tests()
                .expect("table serializes");
                json!({"context": context, "value": [{
                    "data": [STANDARD.encode(&data), "base64"],
                    "executable": false,
                    "lamports": 2_000_000,
                    "owner": "AddressLookupTab1e1111111111111111111111111",
                    "rentEpoch": 0,
                    "space": data.len(),
                }]})
            }
            "getLatestBlockhash" => json!({"context": context, "value": {
                "blockhash": bs58::encode([9u8; 32]).into_string(),
                "lastValidBlockHeight": 1_150,
            }}),
            "getSlot" => json!(NEWEST_SLOT),
            "getBlock" => json!({
                "blockhash": old_blockhash(),
                "previousBlockhash": bs58::encode([41u8; 32]).into_string(),
                "parentSlot": NEWEST_SLOT - 131,
                "blockHeight": OLD_BLOCK_HEIGHT,
                "blockTime": 1_700_000_000,
            }),
            "getRecentPrioritizationFees" => json!([
                {"slot": 996, "prioritizationFee": 1_000},
                {"slot": 997, "prioritizationFee": 2_000},
                {"slot": 998, "prioritizationFee": 3_000},
                {"slot": 999, "prioritizationFee": 4_000},
            ]),
            "simulateTransaction" => json!({"context": context, "value": {
                "err": self.simulation_error.clone(),
                "logs": [],
                "accounts": null,
                "unitsConsumed": UNITS,
                "returnData": null,
            }}),
            other => panic!("unexpected RPC method {other}"),
        };
        ResponseTemplate::new(200).set_body_json(json!({
            "jsonrpc": "2.0",
            "result": result,
            "id": body["id"].clone(),
        }))
    }
}

struct Setup {
    router: BuildRouter,
    signer: KeypairSigner,
    jupiter: MockServer,
    _rpc: MockServer,
    calls: Arc<Mutex<Vec<(String, Value)>>>,
    pools: Vec<Pubkey>,
    tip_account: Pubkey,
}

async fn setup(held_extra: bool, simulation_error: Option<Value>) -> Setup {
    let signer = KeypairSigner::new(Keypair::new());
    let wallet = signer.pubkey();
    let answer = BUILD_FIXTURE.replace(FIXTURE_WALLET, &wallet.to_string());
    let fixture: Value = serde_json::from_str(&answer).expect("fixture");
    let pools: Vec<Pubkey> = fixture["addressesByLookupTableAddress"][LOOKUP_TABLE]
        .as_array()
        .expect("pools")
        .iter()
        .map(|p| p.as_str().expect("text").parse().expect("key"))
        .collect();
    let jupiter = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/swap/v2/build"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(answer, "application/json"))
        .mount(&jupiter)
        .await;
    let calls = Arc::new(Mutex::new(Vec::new()));
    let held = if held_extra {
        pools.clone()
    } else {
        // A table that holds other addresses than Jupiter says.
        pools.iter().map(|_| Pubkey::new_unique()).collect()
    };
    let rpc = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(Node {
            held,
            simulation_error,
            calls: calls.clone(),
        })
        .mount(&rpc)
        .await;
    let mut jc = JupiterConfig::new(signer.address());
    jc.base_url = jupiter.uri();
    let client = JupiterClient::new(jc).expect("jupiter");
    let rpc_url: Url = rpc.uri().parse().expect("url");
    let chain = SolanaChain::new(
        &SolanaConfig::new(vec![rpc_url]),
        signer.address(),
        TokenPair {
            base: NATIVE_MINT,
            quote: NATIVE_MINT,
        },
    )
    .expect("chain");
    let tip_account = Pubkey::new_unique();
    let assembler = Assembler::new(
        Arc::new(chain),
        wallet,
        vec![transfer(&wallet, &tip_account, 10_000)],
        AssembleSettings::default(),
    );
    Setup {
        router: BuildRouter::new(client, assembler),
        signer,
        jupiter,
        _rpc: rpc,
        calls,
        pools,
        tip_account,
    }
}

fn sell() -> QuoteRequest {
    QuoteRequest {
        side: Side::Sell,
        amount_in: TokenAmount::new(1_000_000_000),
        slippage: Slippage::from_bps(50).expect("slippage"),
    }
}

#[tokio::test]
async fn a_v2_route_becomes_kyzlos_own_signed_v0_transaction() {
    let s = setup(true, None).await;
    let quote = s.router.quote(&sell()).await.expect("quote");
    assert_eq!(quote.expected_out, TokenAmount::new(91_103_528));
    assert_eq!(quote.min_out, TokenAmount::new(90_648_011));
    let unsigned = s
        .router
        .build_swap(&SwapRequest {
            quote,
            priority_fee: Lamports::new(50_000),
            expiry_slots: Some(20),
            attempt: 2,
            nonce: None,
        })
        .await
        .expect("assembled");
    // kyzlo's blockhash: the block 130 heights back, valid 150 blocks after it.
    assert_eq!(unsigned.last_valid_block_height, OLD_BLOCK_HEIGHT + 150);
    let limit = u32::try_from(UNITS * 120 / 100).unwrap();
    // p75 of [1000, 2000, 3000, 4000] is 3000; the second attempt bids twice that.
    let price = 6_000_u64;
    assert_eq!(
        unsigned.priority_fee,
        Some(Lamports::new(
            (u64::from(limit) * price).div_ceil(1_000_000)
        ))
    );
    let signed = s.signer.sign(&unsigned).expect("signed");
    let tx: VersionedTransaction = wincode::deserialize(&signed.bytes).expect("decodes");
    assert!(
        tx.verify_with_results().iter().all(|ok| *ok),
        "signature checks"
    );
    let VersionedMessage::V0(message) = &tx.message else {
        panic!("a v0 message");
    };
    assert_eq!(
        message.account_keys[0],
        s.signer.pubkey(),
        "our wallet pays"
    );
    assert_eq!(message.recent_blockhash.to_string(), old_blockhash());
    let program =
        |i: usize| message.account_keys[usize::from(message.instructions[i].program_id_index)];
    let budget: Pubkey = "ComputeBudget111111111111111111111111111111"
        .parse()
        .unwrap();
    let mut limit_data = vec![2];
    limit_data.extend_from_slice(&limit.to_le_bytes());
    let mut price_data = vec![3];
    price_data.extend_from_slice(&price.to_le_bytes());
    assert_eq!(
        (program(0), &message.instructions[0].data),
        (budget, &limit_data)
    );
    assert_eq!(
        (program(1), &message.instructions[1].data),
        (budget, &price_data)
    );
    let budget_instructions = (0..message.instructions.len())
        .filter(|i| program(*i) == budget)
        .count();
    assert_eq!(
        budget_instructions, 2,
        "Jupiter's own price instruction dropped"
    );
    // Setup (4), swap, cleanup, then the lane's tip, last.
    assert_eq!(message.instructions.len(), 2 + 6 + 1);
    let tip = message.instructions.last().unwrap();
    assert_eq!(
        program(message.instructions.len() - 1),
        "11111111111111111111111111111111".parse().unwrap()
    );
    assert_eq!(
        message.account_keys[usize::from(tip.accounts[1])],
        s.tip_account
    );
    // The pools come from the table, not the static keys.
    assert_eq!(message.address_table_lookups.len(), 1);
    assert_eq!(
        message.address_table_lookups[0].account_key.to_string(),
        LOOKUP_TABLE
    );
    for pool in &s.pools {
        assert!(!message.account_keys.contains(pool), "{pool} looked up");
    }
    let looked_up = message.address_table_lookups[0].writable_indexes.len()
        + message.address_table_lookups[0].readonly_indexes.len();
    assert_eq!(looked_up, s.pools.len());
    // One Jupiter request for the quote and the swap; the simulation unsigned.
    assert_eq!(s.jupiter.received_requests().await.unwrap().len(), 1);
    let calls = s.calls.lock().unwrap().clone();
    let (_, params) = calls
        .iter()
        .find(|(m, _)| m == "simulateTransaction")
        .expect("simulated");
    assert_eq!(params[1]["sigVerify"], json!(false));
    assert_eq!(params[1]["replaceRecentBlockhash"], json!(true));
    let (_, block) = calls
        .iter()
        .find(|(m, _)| m == "getBlock")
        .expect("getBlock");
    assert_eq!(
        block[0],
        json!(NEWEST_SLOT - 130),
        "130 blocks back for a life of 20"
    );
    // The newest blockhash is only a fallback for a short life: not read when the older
    // block is found.
    assert!(
        !calls.iter().any(|(m, _)| m == "getLatestBlockhash"),
        "{calls:?}"
    );
    assert_eq!(
        calls.len(),
        usize::try_from(kyzlo_adapters_solana::CHAIN_REQUESTS).unwrap(),
        "{calls:?}"
    );
}

/// The program and the data of instruction `i` of `message`.
fn instruction(message: &solana_message::v0::Message, i: usize) -> (Pubkey, Vec<u8>) {
    let ix = &message.instructions[i];
    (
        message.account_keys[usize::from(ix.program_id_index)],
        ix.data.clone(),
    )
}

#[tokio::test]
async fn on_a_durable_nonce_the_advance_comes_first_and_the_nonce_is_the_blockhash() {
    use kyzlo_application::ports::{Blockhash, DurableNonce, NonceAccount};
    let s = setup(true, None).await;
    let quote = s.router.quote(&sell()).await.expect("quote");
    let account = Pubkey::new_unique();
    let nonce = DurableNonce {
        account: NonceAccount(account.to_bytes()),
        value: Blockhash([77; 32]),
    };
    let unsigned = s
        .router
        .build_swap(&SwapRequest {
            quote,
            priority_fee: Lamports::new(50_000),
            expiry_slots: Some(20),
            attempt: 1,
            nonce: Some(nonce),
        })
        .await
        .expect("assembled");
    assert_eq!(
        unsigned.last_valid_block_height,
        kyzlo_application::ports::NO_LAST_VALID_HEIGHT,
        "never expires"
    );
    let signed = s.signer.sign(&unsigned).expect("signed");
    assert_eq!(signed.blockhash, nonce.value, "the signer reads the nonce");
    assert_eq!(
        signed.last_valid_block_height,
        kyzlo_application::ports::NO_LAST_VALID_HEIGHT
    );
    let tx: VersionedTransaction = wincode::deserialize(&signed.bytes).expect("decodes");
    assert!(tx.verify_with_results().iter().all(|ok| *ok));
    let VersionedMessage::V0(message) = &tx.message else {
        panic!("a v0 message");
    };
    assert_eq!(message.recent_blockhash.to_bytes(), [77; 32]);
    let system: Pubkey = "11111111111111111111111111111111".parse().unwrap();
    let budget: Pubkey = "ComputeBudget111111111111111111111111111111"
        .parse()
        .unwrap();
    assert_eq!(
        instruction(message, 0),
        (system, vec![4, 0, 0, 0]),
        "advance"
    );
    let advance = &message.instructions[0];
    assert_eq!(
        message.account_keys[usize::from(advance.accounts[0])],
        account
    );
    assert_eq!(
        message.account_keys[usize::from(advance.accounts[2])],
        s.signer.pubkey(),
        "the wallet is the authority"
    );
    assert_eq!(instruction(message, 1).0, budget);
    assert_eq!(instruction(message, 2).0, budget);
    // Advance, budget (2), setup (4), swap, cleanup, the lane's tip.
    assert_eq!(message.instructions.len(), 1 + 2 + 6 + 1);
    // No blockhash was picked: no slot, block or latest blockhash read.
    let calls = s.calls.lock().unwrap().clone();
    assert!(
        !calls
            .iter()
            .any(|(m, _)| ["getSlot", "getBlock", "getLatestBlockhash"].contains(&m.as_str())),
        "{calls:?}"
    );

    // The cancel: the advance alone (and the tip), bidding the fee given, read from nowhere.
    let before = s.calls.lock().unwrap().len();
    let cancel = s
        .router
        .build_cancel(nonce, Lamports::new(100_000))
        .await
        .expect("cancel");
    assert_eq!(s.calls.lock().unwrap().len(), before, "no RPC call");
    assert_eq!(
        cancel.last_valid_block_height,
        kyzlo_application::ports::NO_LAST_VALID_HEIGHT
    );
    let fee = cancel.priority_fee.expect("exact").get();
    assert!((99_000..=100_000).contains(&fee), "{fee}");
    let signed = s.signer.sign(&cancel).expect("signed");
    assert_eq!(signed.blockhash, nonce.value);
    let tx: VersionedTransaction = wincode::deserialize(&signed.bytes).expect("decodes");
    let VersionedMessage::V0(message) = &tx.message else {
        panic!("a v0 message");
    };
    assert_eq!(instruction(message, 0), (system, vec![4, 0, 0, 0]));
    assert_eq!(instruction(message, 1).0, budget);
    assert_eq!(instruction(message, 2).0, budget);
    assert_eq!(instruction(message, 3).0, system, "the lane's tip");
    assert_eq!(message.instructions.len(), 4);
}

#[tokio::test]
async fn a_cap_below_the_market_bids_the_cap() {
    let s = setup(true, None).await;
    let quote = s.router.quote(&sell()).await.expect("quote");
    let unsigned = s
        .router
        .build_swap(&SwapRequest {
            quote,
            priority_fee: Lamports::new(10),
            expiry_slots: Some(20),
            attempt: 3,
            nonce: None,
        })
        .await
        .expect("assembled");
    assert!(unsigned.priority_fee.expect("exact") <= Lamports::new(10));
}

#[tokio::test]
async fn a_swap_that_fails_in_simulation_is_its_class_and_nothing_is_built() {
    let s = setup(
        true,
        Some(json!({"InstructionError": [6, {"Custom": 6001}]})),
    )
    .await;
    let quote = s.router.quote(&sell()).await.expect("quote");
    let err = s
        .router
        .build_swap(&SwapRequest {
            quote,
            priority_fee: Lamports::new(50_000),
            expiry_slots: Some(20),
            attempt: 1,
            nonce: None,
        })
        .await
        .expect_err("simulation failed");
    assert_eq!(err.operation, "rpc.simulateTransaction");
    assert_eq!(err.class, ErrorClass::SlippageExceeded, "{err}");
}

#[tokio::test]
async fn a_table_holding_other_addresses_than_jupiter_says_is_refused() {
    let s = setup(false, None).await;
    let quote = s.router.quote(&sell()).await.expect("quote");
    let err = s
        .router
        .build_swap(&SwapRequest {
            quote,
            priority_fee: Lamports::new(50_000),
            expiry_slots: Some(20),
            attempt: 1,
            nonce: None,
        })
        .await
        .expect_err("refused");
    assert_eq!(err.class, ErrorClass::InvalidAccount, "{err}");
    assert!(err.detail.contains(LOOKUP_TABLE), "{err}");
    let simulated = s
        .calls
        .lock()
        .unwrap()
        .iter()
        .any(|(m, _)| m == "simulateTransaction");
    assert!(!simulated, "nothing compiled from a wrong table");
}
