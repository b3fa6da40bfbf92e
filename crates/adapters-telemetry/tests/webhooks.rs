//! Each webhook format against a loopback receiver (wiremock), and each failure mapped to
//! its class without the secret URL in any message.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on broken fixtures by design

use std::time::Duration;

use kyzlo_adapters_telemetry::{WebhookAlerts, WebhookKind};
use kyzlo_application::ports::{Alert, AlertKind, AlertSink, Severity};
use kyzlo_domain::{ErrorClass, PositionId};
use serde_json::json;
use wiremock::matchers::{body_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET_PATH: &str = "/services/T0001/B0001/s3cr3tT0k3n";

fn halted() -> Alert {
    Alert {
        kind: AlertKind::TradingHalted,
        severity: Severity::Critical,
        message: "trading halted (exit_breaker): two failed exits".into(),
        position: Some(PositionId(7)),
    }
}

async fn receiver(body: serde_json::Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(SECRET_PATH))
        .and(body_json(body))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    server
}

fn sink(kind: WebhookKind, server: &MockServer, timeout: Duration) -> WebhookAlerts {
    WebhookAlerts::new(kind, &format!("{}{SECRET_PATH}", server.uri()), timeout).unwrap()
}

#[tokio::test]
async fn slack_receives_a_text_message() {
    let server = receiver(json!({
        "text": "*[CRITICAL]* trading_halted: trading halted (exit_breaker): two failed exits (position 7)"
    }))
    .await;
    sink(WebhookKind::Slack, &server, Duration::from_secs(2))
        .send(&halted())
        .await
        .unwrap();
    server.verify().await;
}

#[tokio::test]
async fn discord_receives_content_with_mentions_disabled() {
    let server = receiver(json!({
        "content": "**[CRITICAL]** trading_halted: trading halted (exit_breaker): two failed exits (position 7)",
        "allowed_mentions": {"parse": []}
    }))
    .await;
    sink(WebhookKind::Discord, &server, Duration::from_secs(2))
        .send(&halted())
        .await
        .unwrap();
    server.verify().await;
}

#[tokio::test]
async fn a_generic_receiver_gets_structured_fields() {
    let server = receiver(json!({
        "kind": "trading_halted",
        "severity": "critical",
        "message": "trading halted (exit_breaker): two failed exits",
        "position": 7
    }))
    .await;
    sink(WebhookKind::Generic, &server, Duration::from_secs(2))
        .send(&halted())
        .await
        .unwrap();
    server.verify().await;
}

#[tokio::test]
async fn failures_are_classified_by_status_with_a_bounded_body_and_no_url() {
    let cases = [
        (500, ErrorClass::NodeUnhealthy),
        (503, ErrorClass::NodeUnhealthy),
        (404, ErrorClass::Unknown),
        (403, ErrorClass::Unknown),
        // Redirects are not followed: the alert must not go anywhere not configured.
        (302, ErrorClass::Unknown),
    ];
    for (status, class) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_string("x".repeat(100_000)))
            .mount(&server)
            .await;
        let err = sink(WebhookKind::Slack, &server, Duration::from_secs(2))
            .send(&halted())
            .await
            .unwrap_err();
        assert_eq!(err.class, class, "HTTP {status}");
        assert_eq!(err.code, Some(i64::from(status)));
        assert_eq!(err.operation, "alerts.slack");
        assert!(
            err.detail.len() < 700,
            "detail bounded: {} bytes",
            err.detail.len()
        );
        assert!(!err.detail.contains("s3cr3t"), "{}", err.detail);
    }
}

#[tokio::test]
async fn rate_limiting_carries_the_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "7"))
        .mount(&server)
        .await;
    let err = sink(WebhookKind::Discord, &server, Duration::from_secs(2))
        .send(&halted())
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::RateLimited);
    assert_eq!(err.retry_after, Some(Duration::from_secs(7)));
    assert_eq!(err.operation, "alerts.discord");
}

#[tokio::test]
async fn a_slow_receiver_times_out_as_rpc_timeout_without_the_url() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(800)))
        .mount(&server)
        .await;
    let err = sink(WebhookKind::Generic, &server, Duration::from_millis(100))
        .send(&halted())
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::RpcTimeout);
    assert_eq!(err.code, None);
    assert!(!err.detail.contains("s3cr3t"), "{}", err.detail);
}

#[tokio::test]
async fn an_unreachable_receiver_is_a_network_error_without_the_url() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}{SECRET_PATH}");
    let err = WebhookAlerts::new(WebhookKind::Slack, &url, Duration::from_secs(2))
        .unwrap()
        .send(&halted())
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Network);
    assert!(!err.detail.contains("s3cr3t"), "{}", err.detail);
}
