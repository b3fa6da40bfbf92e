//! Every way an endpoint can fail, on every endpoint, against loopback servers: HTTP
//! statuses, rate limits and their waits, garbage, truncated, mistyped and huge bodies, a
//! slow server, a closed port, a connection cut mid-body. None panics; each is typed.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::*;
use kyzlo_adapters_jupiter::{
    JupiterClient, JupiterError, QuoteParams, SOL_MINT, SwapParams, USDC_MINT,
};
use kyzlo_application::ports::{QuoteRequest, Side, SwapRouter};
use kyzlo_domain::{ErrorClass, ErrorDecision, Lamports, Slippage, TokenAmount};
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

#[derive(Debug, Clone, Copy)]
enum Endpoint {
    Quote,
    Swap,
    SwapInstructions,
    Build,
    Price,
}

const ENDPOINTS: [Endpoint; 5] = [
    Endpoint::Quote,
    Endpoint::Swap,
    Endpoint::SwapInstructions,
    Endpoint::Build,
    Endpoint::Price,
];

async fn call(client: &JupiterClient, endpoint: Endpoint) -> JupiterError {
    let swap = SwapParams {
        quote_response: QUOTE_FIXTURE,
        priority_fee: Lamports::new(1),
        expiry_slots: None,
    };
    let outcome = match endpoint {
        Endpoint::Quote => client
            .quote(&QuoteParams {
                input_mint: SOL_MINT,
                output_mint: USDC_MINT,
                amount: TokenAmount::new(1_000_000_000),
                slippage: Slippage::from_bps(50).expect("valid slippage"),
            })
            .await
            .map(drop),
        Endpoint::Swap => client.swap(&swap).await.map(drop),
        Endpoint::SwapInstructions => client.swap_instructions(&swap).await.map(drop),
        Endpoint::Build => client
            .build(&QuoteParams {
                input_mint: SOL_MINT,
                output_mint: USDC_MINT,
                amount: TokenAmount::new(1_000_000_000),
                slippage: Slippage::from_bps(50).expect("valid slippage"),
            })
            .await
            .map(drop),
        Endpoint::Price => client
            .prices(&[SOL_MINT])
            .await
            .and_then(|prices| prices.usd_price(SOL_MINT))
            .map(drop),
    };
    outcome.expect_err("the endpoint must fail")
}

/// Serves `template` to any request and calls `endpoint` once.
async fn failure(template: ResponseTemplate, endpoint: Endpoint) -> JupiterError {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(template.clone())
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(template)
        .mount(&server)
        .await;
    call(&client(&server.uri()), endpoint).await
}

fn sell() -> QuoteRequest {
    QuoteRequest {
        side: Side::Sell,
        amount_in: TokenAmount::new(1_000_000_000),
        slippage: Slippage::from_bps(50).expect("valid slippage"),
    }
}

fn too_many_requests() -> ResponseTemplate {
    ResponseTemplate::new(429).set_body_json(json!({"error": "Too many requests"}))
}

#[tokio::test]
async fn a_429_with_retry_after_seven_asks_for_a_seven_second_wait() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(too_many_requests().insert_header("retry-after", "7"))
        .expect(1)
        .mount(&server)
        .await;

    let err = SwapRouter::quote(&client(&server.uri()), &sell())
        .await
        .unwrap_err();

    assert_eq!(err.class, ErrorClass::RateLimited);
    assert_eq!(err.retry_after, Some(Duration::from_secs(7)));
    assert_eq!(err.code, Some(429));
    assert_eq!(err.class.decision(), ErrorDecision::Retry);
    assert_eq!(err.classified().retry_after, Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn a_429_with_a_reset_header_asks_for_a_wait_of_that_length() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(too_many_requests().insert_header("x-ratelimit-reset", "7"))
        .mount(&server)
        .await;

    let err = SwapRouter::quote(&client(&server.uri()), &sell())
        .await
        .unwrap_err();

    assert_eq!(err.class, ErrorClass::RateLimited);
    assert_eq!(err.retry_after, Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn a_429_with_an_absolute_reset_time_asks_to_wait_until_then() {
    let in_seven = SystemTime::now() + Duration::from_secs(7);
    let epoch = in_seven
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let cases = [
        ("x-ratelimit-reset", epoch.to_string()),
        ("retry-after", httpdate::fmt_http_date(in_seven)),
    ];
    for (name, value) in cases {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(too_many_requests().insert_header(name, value.as_str()))
            .mount(&server)
            .await;

        let err = SwapRouter::quote(&client(&server.uri()), &sell())
            .await
            .unwrap_err();

        // Whole seconds on the wire, and a moment spent in between.
        let wait = err.retry_after.expect("a wait");
        assert!(
            wait > Duration::from_secs(5) && wait <= Duration::from_secs(7),
            "{name}: {value} gave {wait:?}"
        );
    }
}

#[tokio::test]
async fn a_429_without_a_usable_header_is_rate_limited_with_no_wait() {
    for template in [
        too_many_requests(),
        too_many_requests().insert_header("retry-after", "later"),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(template)
            .mount(&server)
            .await;
        let err = SwapRouter::quote(&client(&server.uri()), &sell())
            .await
            .unwrap_err();
        assert_eq!(err.class, ErrorClass::RateLimited);
        assert_eq!(err.retry_after, None);
    }
}

type Check = fn(&JupiterError) -> bool;

#[tokio::test]
async fn every_endpoint_types_every_http_failure() {
    let truncated = QUOTE_FIXTURE[..QUOTE_FIXTURE.len() / 2].to_vec();
    let ten_mib = vec![b' '; 10 * 1024 * 1024];
    let cases: Vec<(&str, ResponseTemplate, ErrorClass, Check)> = vec![
        (
            "429",
            too_many_requests().insert_header("retry-after", "7"),
            ErrorClass::RateLimited,
            |e| matches!(e, JupiterError::RateLimited { retry_after: Some(d), .. } if *d == Duration::from_secs(7)),
        ),
        (
            "401",
            ResponseTemplate::new(401).set_body_json(json!({"message": "Unauthorized"})),
            ErrorClass::Unknown,
            |e| matches!(e, JupiterError::Unauthorized { status: 401, .. }),
        ),
        (
            "403",
            ResponseTemplate::new(403),
            ErrorClass::Unknown,
            |e| matches!(e, JupiterError::Unauthorized { status: 403, .. }),
        ),
        (
            "400 other code",
            ResponseTemplate::new(400)
                .set_body_json(json!({"error": "Invalid amount", "errorCode": "INVALID_AMOUNT"})),
            ErrorClass::Unknown,
            |e| matches!(e, JupiterError::BadRequest { status: 400, code: Some(c), .. } if c == "INVALID_AMOUNT"),
        ),
        (
            "404 html",
            ResponseTemplate::new(404).set_body_raw("<html>nope</html>", "text/html"),
            ErrorClass::Unknown,
            |e| {
                matches!(
                    e,
                    JupiterError::BadRequest {
                        status: 404,
                        code: None,
                        ..
                    }
                )
            },
        ),
        (
            "500",
            ResponseTemplate::new(500).set_body_string("internal"),
            ErrorClass::NodeUnhealthy,
            |e| matches!(e, JupiterError::Server { status: 500, .. }),
        ),
        (
            "502",
            ResponseTemplate::new(502),
            ErrorClass::NodeUnhealthy,
            |e| matches!(e, JupiterError::Server { status: 502, .. }),
        ),
        (
            "503",
            ResponseTemplate::new(503).set_body_json(json!({"error": "maintenance"})),
            ErrorClass::NodeUnhealthy,
            |e| matches!(e, JupiterError::Server { status: 503, .. }),
        ),
        (
            "504",
            ResponseTemplate::new(504),
            ErrorClass::NodeUnhealthy,
            |e| matches!(e, JupiterError::Server { status: 504, .. }),
        ),
        (
            "500 with a 10 MiB body",
            ResponseTemplate::new(500).set_body_raw(ten_mib.clone(), "text/plain"),
            ErrorClass::NodeUnhealthy,
            |e| matches!(e, JupiterError::Server { status: 500, body, .. } if body.as_str().len() <= 512),
        ),
        (
            "302 redirect",
            ResponseTemplate::new(302).insert_header("location", "http://127.0.0.1:9/elsewhere"),
            ErrorClass::Unknown,
            |e| matches!(e, JupiterError::UnexpectedStatus { status: 302, .. }),
        ),
        (
            "truncated JSON",
            ResponseTemplate::new(200).set_body_raw(truncated, "application/json"),
            ErrorClass::Unknown,
            |e| matches!(e, JupiterError::Decode { status: 200, .. }),
        ),
        (
            "empty body",
            ResponseTemplate::new(200).set_body_raw(Vec::new(), "application/json"),
            ErrorClass::Unknown,
            |e| matches!(e, JupiterError::Decode { status: 200, .. }),
        ),
        (
            "wrong types",
            ResponseTemplate::new(200).set_body_json(json!({
                "inAmount": 5, "swapTransaction": 5, "lastValidBlockHeight": "x",
                "swapInstruction": 5, SOL_MINT: {"usdPrice": "x"}
            })),
            ErrorClass::Unknown,
            |e| matches!(e, JupiterError::Decode { status: 200, .. }),
        ),
        (
            "wrong content type",
            ResponseTemplate::new(200).set_body_raw("<html><body>Hello</body></html>", "text/html"),
            ErrorClass::Unknown,
            |e| matches!(e, JupiterError::WrongContentType { status: 200, content_type: Some(t), .. } if t == "text/html"),
        ),
        (
            "10 MiB body",
            ResponseTemplate::new(200).set_body_raw(ten_mib, "application/json"),
            ErrorClass::Unknown,
            |e| {
                matches!(
                    e,
                    JupiterError::BodyTooLarge {
                        status: 200,
                        limit: 1_048_576,
                        declared: Some(10_485_760)
                    }
                )
            },
        ),
    ];
    for (name, template, class, check) in cases {
        for endpoint in ENDPOINTS {
            let err = failure(template.clone(), endpoint).await;
            assert!(check(&err), "{name} on {endpoint:?}: {err:?}");
            assert_eq!(err.class(), class, "{name} on {endpoint:?}");
            let port = err.to_port_error("jupiter.test");
            assert_eq!(port.class, class);
            assert!(port.detail.len() < 2048, "{name}: detail stays bounded");
        }
    }
}

#[tokio::test]
async fn garbage_bodies_are_decode_errors_with_a_bounded_excerpt() {
    let mut state = 0x2545_F491_4F6C_DD1D_u64;
    let garbage: Vec<u8> = (0..100_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect();
    for endpoint in ENDPOINTS {
        let err = failure(
            ResponseTemplate::new(200).set_body_raw(garbage.clone(), "application/json"),
            endpoint,
        )
        .await;
        let JupiterError::Decode { body, .. } = &err else {
            panic!("{endpoint:?}: {err:?}");
        };
        assert!(body.as_str().len() <= 512);
        assert_eq!(body.total_bytes(), 100_000);
        assert_eq!(err.class(), ErrorClass::Unknown);
    }
}

#[tokio::test]
async fn a_server_slower_than_the_request_timeout_is_an_rpc_timeout() {
    let server = MockServer::start().await;
    let slow = ResponseTemplate::new(200)
        .set_body_raw(QUOTE_FIXTURE, "application/json")
        .set_delay(Duration::from_secs(1));
    Mock::given(method("GET"))
        .respond_with(slow.clone())
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(slow)
        .mount(&server)
        .await;
    let mut config = config(&server.uri());
    config.request_timeout = Duration::from_millis(200);
    let client = JupiterClient::new(config).unwrap();

    for endpoint in ENDPOINTS {
        let started = std::time::Instant::now();
        let err = call(&client, endpoint).await;
        assert!(
            matches!(err, JupiterError::Timeout { timeout } if timeout == Duration::from_millis(200)),
            "{endpoint:?}: {err:?}"
        );
        assert_eq!(err.class(), ErrorClass::RpcTimeout);
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "gave up at the timeout"
        );
    }
    let port = SwapRouter::quote(&client, &sell()).await.unwrap_err();
    assert_eq!(port.class, ErrorClass::RpcTimeout);
}

#[tokio::test]
async fn a_closed_port_is_a_network_error() {
    let addr = closed_port().await;
    let client = client(&format!("http://{addr}"));
    for endpoint in ENDPOINTS {
        let err = call(&client, endpoint).await;
        assert!(
            matches!(err, JupiterError::Connect { .. }),
            "{endpoint:?}: {err:?}"
        );
        assert_eq!(err.class(), ErrorClass::Network);
    }
    let port = SwapRouter::quote(&client, &sell()).await.unwrap_err();
    assert_eq!(port.class, ErrorClass::Network);
    assert_eq!(port.code, None);
}

#[tokio::test]
async fn a_connection_cut_before_the_promised_length_is_a_network_error() {
    let head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1376\r\n\r\n";
    let (addr, server) = raw_server(vec![head.to_vec(), QUOTE_FIXTURE[..100].to_vec()]).await;
    let client = client(&format!("http://{addr}"));

    let err = call(&client, Endpoint::Quote).await;

    assert!(matches!(err, JupiterError::Transport { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Network);
    server.abort();
}

#[tokio::test]
async fn a_chunked_body_past_the_limit_is_refused_while_streaming() {
    let head =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
    let chunk_body = vec![b' '; 16 * 1024];
    let mut chunk = format!("{:x}\r\n", chunk_body.len()).into_bytes();
    chunk.extend_from_slice(&chunk_body);
    chunk.extend_from_slice(b"\r\n");
    let mut answer = vec![head.to_vec()];
    answer.extend(std::iter::repeat_n(chunk, 16)); // 256 KiB in all
    answer.push(b"0\r\n\r\n".to_vec());
    let (addr, server) = raw_server(answer).await;
    let mut config = config(&format!("http://{addr}"));
    config.max_body_bytes = 64 * 1024;
    let client = JupiterClient::new(config).unwrap();

    let err = call(&client, Endpoint::Price).await;

    assert!(
        matches!(
            err,
            JupiterError::BodyTooLarge {
                status: 200,
                limit: 65_536,
                declared: None
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Unknown);
    server.abort();
}

#[tokio::test]
async fn the_api_key_never_shows_in_errors_or_debug_output() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": "bad key"})))
        .mount(&server)
        .await;
    let client = client(&server.uri());

    let err = call(&client, Endpoint::Quote).await;
    let port = SwapRouter::quote(&client, &sell()).await.unwrap_err();

    for printed in [
        err.to_string(),
        format!("{err:?}"),
        port.to_string(),
        format!("{port:?}"),
        format!("{client:?}"),
        format!("{:?}", client.config()),
    ] {
        assert!(!printed.contains(API_KEY), "{printed}");
    }
    let sent = server.received_requests().await.unwrap();
    assert_eq!(sent[0].headers["x-api-key"], API_KEY, "but it is sent");
}

#[tokio::test]
async fn a_shared_client_serves_concurrent_calls() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(QUOTE_FIXTURE, "application/json"))
        .expect(8)
        .mount(&server)
        .await;
    let client = Arc::new(client(&server.uri()));

    let calls: Vec<_> = (0..8)
        .map(|_| {
            let client = Arc::clone(&client);
            tokio::spawn(async move { SwapRouter::quote(client.as_ref(), &sell()).await })
        })
        .collect();
    for call in calls {
        assert!(call.await.unwrap().is_ok());
    }
}
