//! `POST /swap/v1/swap` and `/swap/v1/swap-instructions` against wiremock on loopback: the
//! body posted, field by field, with the quote as received; the transaction checked; the
//! simulation errors classified.

mod common;

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;
use kyzlo_adapters_jupiter::{
    JupiterClient, JupiterError, SimulatedFailure, SwapParams, TxCheckError,
};
use kyzlo_application::ports::{Quote, QuoteRequest, Side, SwapRequest, SwapRouter};
use kyzlo_domain::{ErrorClass, Lamports, Slippage, TokenAmount};
use serde_json::{Value, json};
use solana_transaction::Signature;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn swap_request(fee: u64, expiry: Option<u32>) -> SwapRequest {
    SwapRequest {
        quote: Quote {
            request: QuoteRequest {
                side: Side::Sell,
                amount_in: TokenAmount::new(1_000_000_000),
                slippage: Slippage::from_bps(50).expect("valid slippage"),
            },
            expected_out: TokenAmount::new(91_103_528),
            min_out: TokenAmount::new(90_648_011),
            price_impact_pct: 0.0,
            route_label: "Scorch > Deriverse".to_owned(),
            raw: Arc::from(QUOTE_FIXTURE),
        },
        priority_fee: Lamports::new(fee),
        expiry_slots: expiry,
        attempt: 1,
        nonce: None,
    }
}

async fn serve_swap(server: &MockServer, answer: Value) {
    Mock::given(method("POST"))
        .and(path("/swap/v1/swap"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .mount(server)
        .await;
}

#[tokio::test]
async fn swap_posts_every_field_and_the_quote_exactly_as_received() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/swap/v1/swap"))
        .and(header("content-type", "application/json"))
        .and(header("x-api-key", API_KEY))
        .and(body_partial_json(json!({"userPublicKey": wallet_base58()})))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(swap_answer(&unsigned_tx(WALLET), 300)),
        )
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server.uri());

    client
        .build_swap(&swap_request(500_000, Some(40)))
        .await
        .unwrap();

    let requests = server.received_requests().await.unwrap();
    let body: Value = requests[0].body_json().unwrap();
    let fixture: Value = serde_json::from_slice(QUOTE_FIXTURE).unwrap();
    let expected = json!({
        "userPublicKey": wallet_base58(),
        "quoteResponse": fixture,
        "wrapAndUnwrapSol": true,
        "dynamicComputeUnitLimit": true,
        "prioritizationFeeLamports": {
            "priorityLevelWithMaxLamports": {"priorityLevel": "veryHigh", "maxLamports": 500_000}
        },
        "blockhashSlotsToExpiry": 40
    });
    assert_eq!(body, expected);
    // Not re-serialized: the recorded bytes appear verbatim in what was posted.
    let posted = &requests[0].body;
    assert!(
        posted
            .windows(QUOTE_FIXTURE.len())
            .any(|window| window == QUOTE_FIXTURE),
        "the quote is posted byte for byte"
    );
}

#[tokio::test]
async fn swap_with_an_exact_fee_and_no_expiry_sends_a_plain_amount() {
    let server = MockServer::start().await;
    serve_swap(&server, swap_answer(&unsigned_tx(WALLET), 300)).await;
    let mut config = config(&server.uri());
    config.priority_level = None;
    config.wrap_and_unwrap_sol = false;
    config.dynamic_compute_unit_limit = false;
    let client = JupiterClient::new(config).unwrap();

    client
        .build_swap(&swap_request(50_000, None))
        .await
        .unwrap();

    let requests = server.received_requests().await.unwrap();
    let body: Value = requests[0].body_json().unwrap();
    let object = body.as_object().unwrap();
    assert_eq!(object["prioritizationFeeLamports"], json!(50_000));
    assert_eq!(object["wrapAndUnwrapSol"], json!(false));
    assert_eq!(object["dynamicComputeUnitLimit"], json!(false));
    assert!(!object.contains_key("blockhashSlotsToExpiry"));
    assert_eq!(object.len(), 5, "{body}");
}

#[tokio::test]
async fn build_swap_returns_the_checked_transaction_and_its_last_valid_height() {
    let server = MockServer::start().await;
    let tx = unsigned_tx(WALLET);
    serve_swap(&server, swap_answer(&tx, 287_824_272)).await;
    let client = client(&server.uri());

    let unsigned = client
        .build_swap(&swap_request(500_000, Some(40)))
        .await
        .unwrap();

    assert_eq!(unsigned.bytes, tx);
    assert_eq!(unsigned.last_valid_block_height, 287_824_272);

    let full = client
        .swap(&SwapParams {
            quote_response: QUOTE_FIXTURE,
            priority_fee: Lamports::new(500_000),
            expiry_slots: Some(40),
        })
        .await
        .unwrap();
    assert_eq!(full.transaction, unsigned);
    assert_eq!(full.prioritization_fee_lamports, Some(41_000));
    assert_eq!(full.compute_unit_limit, Some(210_000));
}

#[tokio::test]
async fn a_swap_on_a_durable_nonce_is_refused_before_any_request() {
    use kyzlo_application::ports::{Blockhash, DurableNonce, NonceAccount};
    let server = MockServer::start().await;
    serve_swap(&server, swap_answer(&unsigned_tx(WALLET), 300)).await;
    let client = client(&server.uri());
    let request = SwapRequest {
        nonce: Some(DurableNonce {
            account: NonceAccount([7; 32]),
            value: Blockhash([8; 32]),
        }),
        ..swap_request(500_000, Some(40))
    };

    let error = client.build_swap(&request).await.unwrap_err();

    assert_eq!(error.class, ErrorClass::Unknown);
    assert!(error.detail.contains("durable nonce"), "{error}");
    assert!(server.received_requests().await.unwrap().is_empty());
    let cancel = client
        .build_cancel(request.nonce.unwrap(), Lamports::new(1))
        .await
        .unwrap_err();
    assert_eq!(cancel.class, ErrorClass::Unknown);
}

#[tokio::test]
async fn a_transaction_paid_by_another_wallet_is_a_signature_failure() {
    let server = MockServer::start().await;
    serve_swap(&server, swap_answer(&unsigned_tx(OTHER_WALLET), 300)).await;
    let client = client(&server.uri());

    let err = client
        .build_swap(&swap_request(500_000, None))
        .await
        .unwrap_err();

    assert_eq!(err.operation, "jupiter.swap");
    assert_eq!(err.class, ErrorClass::SignatureFailure);
    let typed = client
        .swap(&SwapParams {
            quote_response: QUOTE_FIXTURE,
            priority_fee: Lamports::new(1),
            expiry_slots: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            typed,
            JupiterError::Transaction(TxCheckError::FeePayerMismatch { .. })
        ),
        "{typed:?}"
    );
}

#[tokio::test]
async fn a_transaction_already_signed_is_a_signature_failure() {
    let server = MockServer::start().await;
    let signed = tx_with_signatures(WALLET, vec![Signature::from([3; 64])]);
    serve_swap(&server, swap_answer(&signed, 300)).await;

    let err = client(&server.uri())
        .build_swap(&swap_request(500_000, None))
        .await
        .unwrap_err();

    assert_eq!(err.class, ErrorClass::SignatureFailure);
}

#[tokio::test]
async fn undecodable_transactions_are_unknown() {
    let mut trailing = unsigned_tx(WALLET);
    trailing.push(0);
    let cases = [
        json!("not base64 at all!"),
        json!(STANDARD.encode([1, 2, 3, 4, 5])),
        json!(STANDARD.encode(&trailing)),
        json!(STANDARD.encode(&unsigned_tx(WALLET)[..100])),
        json!(STANDARD.encode(vec![0u8; 5000])),
    ];
    for case in cases {
        let server = MockServer::start().await;
        let mut answer = swap_answer(&unsigned_tx(WALLET), 300);
        answer["swapTransaction"] = case.clone();
        serve_swap(&server, answer).await;

        let err = client(&server.uri())
            .build_swap(&swap_request(500_000, None))
            .await
            .unwrap_err();

        assert_eq!(err.class, ErrorClass::Unknown, "{case}: {}", err.detail);
    }
}

#[tokio::test]
async fn swap_answers_missing_fields_or_of_wrong_types_are_decode_errors() {
    let tx = unsigned_tx(WALLET);
    let mut no_height = swap_answer(&tx, 300);
    no_height
        .as_object_mut()
        .unwrap()
        .remove("lastValidBlockHeight");
    let mut no_tx = swap_answer(&tx, 300);
    no_tx.as_object_mut().unwrap().remove("swapTransaction");
    let mut negative_height = swap_answer(&tx, 300);
    negative_height["lastValidBlockHeight"] = json!(-1);
    let mut string_height = swap_answer(&tx, 300);
    string_height["lastValidBlockHeight"] = json!("300");
    for answer in [
        no_height,
        no_tx,
        negative_height,
        string_height,
        json!([]),
        json!(null),
        json!(42),
    ] {
        let server = MockServer::start().await;
        serve_swap(&server, answer.clone()).await;
        let err = client(&server.uri())
            .swap(&SwapParams {
                quote_response: QUOTE_FIXTURE,
                priority_fee: Lamports::new(1),
                expiry_slots: None,
            })
            .await
            .unwrap_err();
        assert!(
            matches!(err, JupiterError::Decode { status: 200, .. }),
            "{answer}: {err:?}"
        );
        assert_eq!(err.class(), ErrorClass::Unknown);
    }
}

#[tokio::test]
async fn simulation_errors_map_to_the_class_they_mean_and_keep_the_code() {
    let cases = [
        (
            "Error processing Instruction 3: custom program error: 0x1771",
            ErrorClass::SlippageExceeded,
            Some(6001),
        ),
        (
            "Error processing Instruction 3: custom program error: 0x1781",
            ErrorClass::SlippageExceeded,
            Some(6017),
        ),
        (
            "Error processing Instruction 2: custom program error: 0x1788",
            ErrorClass::InsufficientFunds,
            Some(6024),
        ),
        (
            "Insufficient funds for fee",
            ErrorClass::InsufficientFunds,
            None,
        ),
        (
            "Error processing Instruction 2: custom program error: 0x1789",
            ErrorClass::Unknown,
            Some(6025),
        ),
        ("slippage tolerance exceeded", ErrorClass::Unknown, None),
    ];
    for (message, class, code) in cases {
        let server = MockServer::start().await;
        let mut answer = swap_answer(&unsigned_tx(WALLET), 300);
        answer["simulationError"] = json!({"errorCode": "TRANSACTION_ERROR", "error": message});
        serve_swap(&server, answer).await;

        let err = client(&server.uri())
            .build_swap(&swap_request(500_000, None))
            .await
            .unwrap_err();

        assert_eq!(err.class, class, "{message}");
        assert_eq!(err.code, code, "{message}");
        assert!(err.detail.contains("TRANSACTION_ERROR"), "{}", err.detail);
    }
}

#[tokio::test]
async fn a_simulation_error_of_wrong_shape_is_a_decode_error() {
    let server = MockServer::start().await;
    let mut answer = swap_answer(&unsigned_tx(WALLET), 300);
    answer["simulationError"] = json!({"errorCode": 17, "error": ["x"]});
    serve_swap(&server, answer).await;

    let err = client(&server.uri())
        .build_swap(&swap_request(500_000, None))
        .await
        .unwrap_err();

    assert_eq!(err.class, ErrorClass::Unknown);
    assert_eq!(err.code, Some(200));
}

#[tokio::test]
async fn a_quote_that_is_not_json_is_refused_before_sending() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let client = client(&server.uri());
    let mut request = swap_request(500_000, None);
    request.quote.raw = Arc::from(&QUOTE_FIXTURE[..QUOTE_FIXTURE.len() - 1]);

    let err = client.build_swap(&request).await.unwrap_err();

    assert_eq!(err.class, ErrorClass::Unknown);
    let typed = client
        .swap(&SwapParams {
            quote_response: b"\xff\xfe not json",
            priority_fee: Lamports::new(1),
            expiry_slots: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(typed, JupiterError::InvalidQuote { .. }),
        "{typed:?}"
    );
}

fn instruction(program: &str, signer: &str, data: &[u8]) -> Value {
    json!({
        "programId": program,
        "accounts": [
            {"pubkey": signer, "isSigner": true, "isWritable": true},
            {"pubkey": bs58::encode([5u8; 32]).into_string(), "isSigner": false, "isWritable": false}
        ],
        "data": STANDARD.encode(data)
    })
}

fn instructions_answer(signer: &str) -> Value {
    let program = bs58::encode([42u8; 32]).into_string();
    json!({
        "tokenLedgerInstruction": null,
        "computeBudgetInstructions": [instruction(&program, &wallet_base58(), &[2, 0, 0, 1])],
        "setupInstructions": [],
        "swapInstruction": instruction(&program, signer, &[229, 23, 203]),
        "cleanupInstruction": instruction(&program, &wallet_base58(), &[9]),
        "otherInstructions": [],
        "addressLookupTableAddresses": [bs58::encode([6u8; 32]).into_string()],
        "prioritizationFeeLamports": 41_000,
        "computeUnitLimit": 210_000,
        "simulationError": null
    })
}

#[tokio::test]
async fn swap_instructions_posts_the_same_body_and_decodes_the_instructions() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/swap/v1/swap-instructions"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(instructions_answer(&wallet_base58())),
        )
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server.uri());

    let instructions = client
        .swap_instructions(&SwapParams {
            quote_response: QUOTE_FIXTURE,
            priority_fee: Lamports::new(77),
            expiry_slots: Some(20),
        })
        .await
        .unwrap();

    assert_eq!(instructions.compute_budget.len(), 1);
    assert_eq!(instructions.compute_budget[0].data, [2, 0, 0, 1]);
    assert!(instructions.setup.is_empty());
    assert_eq!(instructions.token_ledger, None);
    assert_eq!(instructions.swap.program_id.to_bytes(), [42; 32]);
    assert_eq!(instructions.swap.data, [229, 23, 203]);
    assert_eq!(instructions.swap.accounts[0].pubkey.to_bytes(), WALLET);
    assert!(instructions.swap.accounts[0].is_signer);
    assert!(!instructions.swap.accounts[1].is_writable);
    assert_eq!(instructions.cleanup.as_ref().unwrap().data, [9]);
    assert_eq!(instructions.address_lookup_tables[0].to_bytes(), [6; 32]);
    assert_eq!(instructions.prioritization_fee_lamports, Some(41_000));
    assert_eq!(instructions.compute_unit_limit, Some(210_000));

    let requests = server.received_requests().await.unwrap();
    let body: Value = requests[0].body_json().unwrap();
    assert_eq!(body["userPublicKey"], json!(wallet_base58()));
    assert_eq!(
        body["quoteResponse"],
        serde_json::from_slice::<Value>(QUOTE_FIXTURE).unwrap()
    );
    assert_eq!(
        body["prioritizationFeeLamports"]["priorityLevelWithMaxLamports"]["maxLamports"],
        json!(77)
    );
    assert_eq!(body["blockhashSlotsToExpiry"], json!(20));
}

#[tokio::test]
async fn swap_instructions_refuse_a_foreign_signer_bad_keys_and_simulation_errors() {
    let foreign = bs58::encode(OTHER_WALLET).into_string();
    let mut bad_key = instructions_answer(&wallet_base58());
    bad_key["swapInstruction"]["programId"] = json!("not-a-key");
    let mut bad_data = instructions_answer(&wallet_base58());
    bad_data["swapInstruction"]["data"] = json!("%%%");
    let mut no_swap = instructions_answer(&wallet_base58());
    no_swap.as_object_mut().unwrap().remove("swapInstruction");
    let mut simulated = instructions_answer(&wallet_base58());
    simulated["simulationError"] = json!({
        "errorCode": "TRANSACTION_ERROR",
        "error": "Error processing Instruction 3: custom program error: 0x1771"
    });
    let cases = [
        (instructions_answer(&foreign), ErrorClass::SignatureFailure),
        (bad_key, ErrorClass::Unknown),
        (bad_data, ErrorClass::Unknown),
        (no_swap, ErrorClass::Unknown),
        (simulated, ErrorClass::SlippageExceeded),
    ];
    for (answer, class) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/swap/v1/swap-instructions"))
            .respond_with(ResponseTemplate::new(200).set_body_json(&answer))
            .mount(&server)
            .await;
        let err = client(&server.uri())
            .swap_instructions(&SwapParams {
                quote_response: QUOTE_FIXTURE,
                priority_fee: Lamports::new(1),
                expiry_slots: None,
            })
            .await
            .unwrap_err();
        assert_eq!(err.class(), class, "{err}");
        if class == ErrorClass::SlippageExceeded {
            assert!(matches!(
                err,
                JupiterError::Simulation {
                    failure: SimulatedFailure::ProgramError { code: 6001, .. },
                    ..
                }
            ));
        }
    }
}
