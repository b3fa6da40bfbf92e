//! `GET /price/v3` and the price-feed port against wiremock on loopback.

mod common;

use common::*;
use kyzlo_adapters_jupiter::{JupiterError, SOL_MINT, USDC_MINT};
use kyzlo_application::ports::PriceFeed;
use kyzlo_domain::ErrorClass;
use serde_json::json;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn serve_raw(server: &MockServer, body: &str) {
    Mock::given(method("GET"))
        .and(path("/price/v3"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body.to_owned(), "application/json"))
        .mount(server)
        .await;
}

#[tokio::test]
async fn price_feed_returns_the_base_mints_usd_price() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/price/v3"))
        .and(query_param("ids", SOL_MINT))
        .and(header("x-api-key", API_KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            SOL_MINT: {
                "usdPrice": 147.4839,
                "blockId": 348_004_023,
                "decimals": 9,
                "priceChange24h": 1.29
            }
        })))
        .expect(1)
        .mount(&server)
        .await;

    let tick = client(&server.uri()).price().await.unwrap();

    assert_eq!(tick.price.get(), 147.4839);
    let requests = server.received_requests().await.unwrap();
    let query: Vec<_> = requests[0].url.query_pairs().into_owned().collect();
    assert_eq!(query, [("ids".to_owned(), SOL_MINT.to_owned())]);
}

#[tokio::test]
async fn prices_asks_for_every_id_at_once() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/price/v3"))
        .and(query_param("ids", format!("{SOL_MINT},{USDC_MINT}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            SOL_MINT: {"usdPrice": 150.0},
            USDC_MINT: {"usdPrice": 0.9998}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server.uri());

    let prices = client.prices(&[SOL_MINT, USDC_MINT]).await.unwrap();

    assert_eq!(prices.len(), 2);
    assert_eq!(prices.usd_price(SOL_MINT).unwrap().get(), 150.0);
    assert_eq!(prices.usd_price(USDC_MINT).unwrap().get(), 0.9998);
    assert!(client.prices(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn unusable_prices_are_typed_errors_of_class_unknown() {
    let cases = [
        ("{}".to_owned(), "missing"),
        (
            format!(r#"{{"{USDC_MINT}": {{"usdPrice": 1.0}}}}"#),
            "missing",
        ),
        (format!(r#"{{"{SOL_MINT}": null}}"#), "missing"),
        (
            format!(r#"{{"{SOL_MINT}": {{"usdPrice": null}}}}"#),
            "missing",
        ),
        (format!(r#"{{"{SOL_MINT}": {{}}}}"#), "missing"),
        (format!(r#"{{"{SOL_MINT}": {{"usdPrice": 0}}}}"#), "invalid"),
        (
            format!(r#"{{"{SOL_MINT}": {{"usdPrice": -3.5}}}}"#),
            "invalid",
        ),
        (
            format!(r#"{{"{SOL_MINT}": {{"usdPrice": NaN}}}}"#),
            "decode",
        ),
        (
            format!(r#"{{"{SOL_MINT}": {{"usdPrice": 1e999}}}}"#),
            "decode",
        ),
        (
            format!(r#"{{"{SOL_MINT}": {{"usdPrice": "147.2"}}}}"#),
            "decode",
        ),
        (format!(r#"{{"{SOL_MINT}": 147.2}}"#), "decode"),
        ("[]".to_owned(), "decode"),
        ("null".to_owned(), "decode"),
        (format!(r#"{{"{SOL_MINT}": {{"usdPrice": 1"#), "decode"),
    ];
    for (body, kind) in cases {
        let server = MockServer::start().await;
        serve_raw(&server, &body).await;
        let client = client(&server.uri());

        let port = client.price().await.unwrap_err();
        assert_eq!(port.operation, "jupiter.price");
        assert_eq!(port.class, ErrorClass::Unknown, "{body}");

        let typed = match client.prices(&[SOL_MINT]).await {
            Ok(prices) => prices.usd_price(SOL_MINT).unwrap_err(),
            Err(err) => err,
        };
        let matches_kind = match kind {
            "missing" => matches!(typed, JupiterError::PriceMissing { .. }),
            "invalid" => matches!(typed, JupiterError::InvalidPrice { .. }),
            _ => matches!(typed, JupiterError::Decode { status: 200, .. }),
        };
        assert!(matches_kind, "{body}: {typed:?}");
    }
}
