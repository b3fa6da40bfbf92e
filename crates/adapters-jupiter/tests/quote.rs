//! `GET /swap/v1/quote` against wiremock on loopback: the request sent, field by field; the
//! recorded answer mapped; no-route answers classified and not retried.

mod common;

use std::collections::BTreeMap;

use common::*;
use kyzlo_adapters_jupiter::{
    JupiterClient, JupiterError, NoRouteCode, QuoteParams, SOL_MINT, USDC_MINT,
};
use kyzlo_application::ports::{QuoteRequest, Side, SwapRouter};
use kyzlo_domain::{ErrorClass, ErrorDecision, Slippage, TokenAmount};
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn sell(amount: u64, bps: u16) -> QuoteRequest {
    QuoteRequest {
        side: Side::Sell,
        amount_in: TokenAmount::new(amount),
        slippage: Slippage::from_bps(bps).expect("valid slippage"),
    }
}

fn fixture_answer() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(QUOTE_FIXTURE, "application/json; charset=utf-8")
}

fn query_of(request: &wiremock::Request) -> BTreeMap<String, String> {
    request.url.query_pairs().into_owned().collect()
}

#[tokio::test]
async fn quote_sends_every_query_field_and_the_api_key() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/swap/v1/quote"))
        .and(query_param("inputMint", SOL_MINT))
        .and(query_param("outputMint", USDC_MINT))
        .and(query_param("amount", "1000000000"))
        .and(query_param("slippageBps", "50"))
        .and(query_param("swapMode", "ExactIn"))
        .and(header("x-api-key", API_KEY))
        .respond_with(fixture_answer())
        .expect(1)
        .mount(&server)
        .await;
    let mut config = config(&server.uri());
    config.max_accounts = Some(40);
    config.exclude_dexes = vec!["Obric V2".to_owned(), "Scorch".to_owned()];
    config.only_direct_routes = true;
    let client = JupiterClient::new(config).unwrap();

    SwapRouter::quote(&client, &sell(1_000_000_000, 50))
        .await
        .unwrap();

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let expected: BTreeMap<String, String> = [
        ("inputMint", SOL_MINT),
        ("outputMint", USDC_MINT),
        ("amount", "1000000000"),
        ("slippageBps", "50"),
        ("swapMode", "ExactIn"),
        ("restrictIntermediateTokens", "true"),
        ("onlyDirectRoutes", "true"),
        ("maxAccounts", "40"),
        ("excludeDexes", "Obric V2,Scorch"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(query_of(&requests[0]), expected);
    assert_eq!(requests[0].url.path(), "/swap/v1/quote");
    assert_eq!(requests[0].headers["x-api-key"], API_KEY);
    assert_eq!(requests[0].headers["accept"], "application/json");
    assert!(requests[0].body.is_empty());
}

#[tokio::test]
async fn quote_leaves_out_unset_options_and_a_missing_api_key() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/swap/v1/quote"))
        .and(query_param_is_missing("maxAccounts"))
        .and(query_param_is_missing("excludeDexes"))
        .respond_with(fixture_answer())
        .expect(1)
        .mount(&server)
        .await;
    let mut config = config(&server.uri());
    config.api_key = None;
    let client = JupiterClient::new(config).unwrap();

    SwapRouter::quote(&client, &sell(1_000_000_000, 50))
        .await
        .unwrap();

    let requests = server.received_requests().await.unwrap();
    let query = query_of(&requests[0]);
    assert_eq!(query.len(), 7, "{query:?}");
    assert_eq!(query["restrictIntermediateTokens"], "true");
    assert_eq!(query["onlyDirectRoutes"], "false");
    assert!(!requests[0].headers.contains_key("x-api-key"));
}

#[tokio::test]
async fn sell_quote_maps_the_recorded_answer_and_keeps_its_bytes() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/swap/v1/quote"))
        .respond_with(fixture_answer())
        .mount(&server)
        .await;
    let client = client(&server.uri());
    let request = sell(1_000_000_000, 50);

    let quote = SwapRouter::quote(&client, &request).await.unwrap();

    assert_eq!(quote.request, request);
    assert_eq!(quote.expected_out, TokenAmount::new(91_103_528));
    assert_eq!(quote.min_out, TokenAmount::new(90_648_011));
    assert_eq!(quote.price_impact_pct, 0.0);
    assert_eq!(quote.route_label, "Scorch > Deriverse");
    assert_eq!(
        &quote.raw[..],
        QUOTE_FIXTURE,
        "raw is the answer byte for byte"
    );
}

#[tokio::test]
async fn inherent_quote_exposes_every_checked_field() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(fixture_answer())
        .mount(&server)
        .await;
    let client = client(&server.uri());

    let quote = client
        .quote(&QuoteParams {
            input_mint: SOL_MINT,
            output_mint: USDC_MINT,
            amount: TokenAmount::new(1_000_000_000),
            slippage: Slippage::from_bps(50).unwrap(),
        })
        .await
        .unwrap();

    assert_eq!(quote.input_mint, SOL_MINT);
    assert_eq!(quote.output_mint, USDC_MINT);
    assert_eq!(quote.in_amount, TokenAmount::new(1_000_000_000));
    assert_eq!(quote.out_amount, TokenAmount::new(91_103_528));
    assert_eq!(quote.other_amount_threshold, TokenAmount::new(90_648_011));
    assert_eq!(quote.slippage_bps, 50);
    assert_eq!(quote.route_labels, ["Scorch", "Deriverse"]);
    assert_eq!(quote.context_slot, Some(440_657_285));
}

#[tokio::test]
async fn buy_quote_spends_the_quote_mint_for_the_base_mint() {
    let server = MockServer::start().await;
    let mut answer: serde_json::Value =
        serde_json::from_slice(&buy_quote_fixture(1_000_000)).unwrap();
    answer["slippageBps"] = 100.into();
    Mock::given(method("GET"))
        .and(path("/swap/v1/quote"))
        .and(query_param("inputMint", USDC_MINT))
        .and(query_param("outputMint", SOL_MINT))
        .and(query_param("amount", "1000000"))
        .and(query_param("slippageBps", "100"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&answer))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server.uri());
    let request = QuoteRequest {
        side: Side::Buy,
        amount_in: TokenAmount::new(1_000_000),
        slippage: Slippage::from_bps(100).unwrap(),
    };

    let quote = SwapRouter::quote(&client, &request).await.unwrap();

    assert_eq!(quote.expected_out, TokenAmount::new(10_976_300));
    assert_eq!(quote.min_out, TokenAmount::new(10_921_419));
}

#[tokio::test]
async fn a_quote_for_something_else_is_refused_field_by_field() {
    let cases: [(&str, serde_json::Value, &str); 5] = [
        ("inAmount", "999".into(), "inAmount"),
        ("outputMint", SOL_MINT.into(), "outputMint"),
        ("swapMode", "ExactOut".into(), "swapMode"),
        ("slippageBps", 300.into(), "slippageBps"),
        (
            "otherAmountThreshold",
            "91103529".into(),
            "otherAmountThreshold",
        ),
    ];
    for (field, value, expected_field) in cases {
        let server = MockServer::start().await;
        let mut answer: serde_json::Value = serde_json::from_slice(QUOTE_FIXTURE).unwrap();
        answer[field] = value;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(&answer))
            .mount(&server)
            .await;
        let client = client(&server.uri());

        let err = SwapRouter::quote(&client, &sell(1_000_000_000, 50))
            .await
            .unwrap_err();

        assert_eq!(err.class, ErrorClass::Unknown, "{field}");
        assert!(
            err.detail.contains(expected_field),
            "{field}: {}",
            err.detail
        );
        let typed = client
            .quote(&QuoteParams {
                input_mint: SOL_MINT,
                output_mint: USDC_MINT,
                amount: TokenAmount::new(1_000_000_000),
                slippage: Slippage::from_bps(50).unwrap(),
            })
            .await
            .unwrap_err();
        assert!(
            matches!(typed, JupiterError::QuoteMismatch { field: f, .. } if f == expected_field),
            "{typed:?}"
        );
    }
}

#[tokio::test]
async fn no_routes_found_is_no_route_gives_up_and_is_sent_once() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/swap/v1/quote"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "error": "No routes found",
            "errorCode": "NO_ROUTES_FOUND"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server.uri());

    let err = SwapRouter::quote(&client, &sell(1_000_000_000, 50))
        .await
        .unwrap_err();

    assert_eq!(err.operation, "jupiter.quote");
    assert_eq!(err.class, ErrorClass::NoRoute);
    assert_eq!(err.class.decision(), ErrorDecision::GiveUp);
    assert!(!err.class.is_retryable());
    assert_eq!(err.code, Some(400));
    assert_eq!(err.retry_after, None);
    // `expect(1)` is verified when the server drops: exactly one request went out.
    server.verify().await;
}

#[tokio::test]
async fn every_no_route_code_is_no_route_and_other_codes_are_bad_requests() {
    for code in NoRouteCode::ALL {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
                "error": "whatever the text says",
                "errorCode": code.as_str()
            })))
            .mount(&server)
            .await;
        let err = client(&server.uri())
            .quote(&QuoteParams {
                input_mint: SOL_MINT,
                output_mint: USDC_MINT,
                amount: TokenAmount::new(1),
                slippage: Slippage::from_bps(50).unwrap(),
            })
            .await
            .unwrap_err();
        assert!(
            matches!(err, JupiterError::NoRoute { status: 400, code: c, .. } if c == code),
            "{err:?}"
        );
        assert_eq!(err.class(), ErrorClass::NoRoute);
    }

    // A text that talks of routes is not a code.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "error": "NO_ROUTES_FOUND: could not find any route",
            "errorCode": "INVALID_SLIPPAGE"
        })))
        .mount(&server)
        .await;
    let err = SwapRouter::quote(&client(&server.uri()), &sell(1, 50))
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Unknown);
    assert_eq!(err.code, Some(400));
}
