//! Swap API v2 `GET /swap/v2/build` against wiremock on loopback: the query, the answer
//! mapped field by field from a fixture in the documented shape, every no-route code, and
//! every answer the adapter must refuse (a compute-budget instruction it would duplicate,
//! a tip nobody asked for, a foreign signer, another route than asked).

mod common;

use common::*;
use kyzlo_adapters_jupiter::{
    JupiterError, NoRouteCode, QuoteParams, SOL_MINT, TxCheckError, USDC_MINT,
};
use kyzlo_domain::{ErrorClass, Slippage, TokenAmount};
use serde_json::{Value, json};
use solana_transaction::Address;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BUILD_FIXTURE: &[u8] = include_bytes!("fixtures/jupiter_build_sol_usdc.json");
const JUPITER_PROGRAM: &str = "JUP6LkbZbjS1jKKwapdHNy74zcZ3tLUZoi5QNyVTaV4";
const LOOKUP_TABLE: &str = "GHFS1Nr6n6PPuH8wk6yDRrabYSjKNF2op6FjYbx578u1";

fn sell() -> QuoteParams<'static> {
    QuoteParams {
        input_mint: SOL_MINT,
        output_mint: USDC_MINT,
        amount: TokenAmount::new(1_000_000_000),
        slippage: Slippage::from_bps(50).expect("valid slippage"),
    }
}

fn fixture() -> Value {
    serde_json::from_slice(BUILD_FIXTURE).expect("fixture is JSON")
}

fn address(text: &str) -> Address {
    let mut bytes = [0u8; 32];
    assert_eq!(bs58::decode(text).onto(&mut bytes).expect("base58"), 32);
    Address::new_from_array(bytes)
}

async fn serve(answer: Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/swap/v2/build"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn build_sends_the_documented_query_and_maps_every_field() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/swap/v2/build"))
        .and(query_param("inputMint", SOL_MINT))
        .and(query_param("outputMint", USDC_MINT))
        .and(query_param("amount", "1000000000"))
        .and(query_param("taker", wallet_base58().as_str()))
        .and(query_param("slippageBps", "50"))
        .and(header("x-api-key", API_KEY))
        .respond_with(ResponseTemplate::new(200).set_body_raw(BUILD_FIXTURE, "application/json"))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server.uri());

    let build = client.build(&sell()).await.expect("build");

    assert_eq!(build.quote.in_amount, TokenAmount::new(1_000_000_000));
    assert_eq!(build.quote.out_amount, TokenAmount::new(91_103_528));
    assert_eq!(
        build.quote.other_amount_threshold,
        TokenAmount::new(90_648_011)
    );
    assert_eq!(build.quote.route_label(), "Scorch > Deriverse");
    assert_eq!(
        &*build.quote.raw, BUILD_FIXTURE,
        "the answer's bytes, unchanged"
    );
    assert_eq!(build.setup.len(), 4);
    assert_eq!(build.swap.program_id, address(JUPITER_PROGRAM));
    assert!(build.cleanup.is_some());
    assert!(build.other.is_empty());
    let pools = fixture()["addressesByLookupTableAddress"][LOOKUP_TABLE]
        .as_array()
        .expect("the table's addresses")
        .iter()
        .map(|a| address(a.as_str().expect("text")))
        .collect::<Vec<_>>();
    assert_eq!(build.lookup_tables, vec![(address(LOOKUP_TABLE), pools)]);
    // Setup, swap, cleanup in order; Jupiter's compute-unit price is not among them.
    let instructions = build.instructions();
    assert_eq!(instructions.len(), 6);
    assert_eq!(instructions[4], build.swap);
    assert!(
        instructions
            .iter()
            .all(|ix| ix.program_id != address("ComputeBudget111111111111111111111111111111"))
    );
    // The kept bytes decode to the same build, with no second request.
    assert_eq!(
        client.build_from_raw(&build.quote.raw).expect("again"),
        build
    );
    server.verify().await;
}

#[tokio::test]
async fn every_no_route_code_is_no_route() {
    for code in NoRouteCode::ALL {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/swap/v2/build"))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({
                "error": "no route",
                "errorCode": code.as_str()
            })))
            .mount(&server)
            .await;
        let err = client(&server.uri()).build(&sell()).await.unwrap_err();
        assert!(
            matches!(err, JupiterError::NoRoute { status: 400, code: c, .. } if c == code),
            "{err:?}"
        );
        assert_eq!(err.class(), ErrorClass::NoRoute);
    }
}

#[tokio::test]
async fn answers_kyzlo_must_not_sign_are_refused_by_name() {
    type Edit = fn(&mut Value);
    type Check = fn(&JupiterError) -> bool;
    let cases: Vec<(&str, Edit, Check)> = vec![
        (
            "a compute-budget instruction among the setup",
            |v| {
                let budget = v["computeBudgetInstructions"][0].clone();
                v["setupInstructions"].as_array_mut().unwrap().push(budget);
            },
            |e| matches!(e, JupiterError::Decode { reason, .. } if reason.contains("compute-budget")),
        ),
        (
            "a tip nobody asked for",
            |v| v["tipInstruction"] = v["setupInstructions"][2].clone(),
            |e| matches!(e, JupiterError::Decode { reason, .. } if reason.contains("tipInstruction")),
        ),
        (
            "a signer other than the wallet",
            |v| {
                v["swapInstruction"]["accounts"][5]["isSigner"] = json!(true);
            },
            |e| {
                matches!(
                    e,
                    JupiterError::Transaction(TxCheckError::ForeignSigner { .. })
                )
            },
        ),
        (
            "another amount",
            |v| v["inAmount"] = json!("999"),
            |e| {
                matches!(
                    e,
                    JupiterError::QuoteMismatch {
                        field: "inAmount",
                        ..
                    }
                )
            },
        ),
        (
            "exact output",
            |v| v["swapMode"] = json!("ExactOut"),
            |e| {
                matches!(
                    e,
                    JupiterError::QuoteMismatch {
                        field: "swapMode",
                        ..
                    }
                )
            },
        ),
        (
            "another slippage",
            |v| v["slippageBps"] = json!(300),
            |e| {
                matches!(
                    e,
                    JupiterError::QuoteMismatch {
                        field: "slippageBps",
                        ..
                    }
                )
            },
        ),
        (
            "a threshold above the output",
            |v| v["otherAmountThreshold"] = json!("91103529"),
            |e| {
                matches!(
                    e,
                    JupiterError::QuoteMismatch {
                        field: "otherAmountThreshold",
                        ..
                    }
                )
            },
        ),
        (
            "no swap instruction",
            |v| {
                v.as_object_mut().unwrap().remove("swapInstruction");
            },
            |e| matches!(e, JupiterError::Decode { reason, .. } if reason.contains("swapInstruction")),
        ),
        (
            "a lookup table that is not a key",
            |v| {
                v["addressesByLookupTableAddress"] = json!({"not-a-key": []});
            },
            |e| matches!(e, JupiterError::Decode { reason, .. } if reason.contains("addressesByLookupTableAddress")),
        ),
        (
            "instruction data that is not base64",
            |v| v["swapInstruction"]["data"] = json!("%%%"),
            |e| matches!(e, JupiterError::Decode { reason, .. } if reason.contains("instruction data")),
        ),
    ];
    for (name, edit, check) in cases {
        let mut answer = fixture();
        edit(&mut answer);
        let server = serve(answer).await;
        let err = client(&server.uri()).build(&sell()).await.unwrap_err();
        assert!(check(&err), "{name}: {err:?}");
    }
}
