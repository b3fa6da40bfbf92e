//! The operator API end to end over loopback: the application's services wired over the
//! fake venue (as the harness wires them, but with this crate's Prometheus sink and alert
//! router in place of the in-memory ones), the real orchestrator loop in a task, and
//! requests through reqwest.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on broken fixtures by design

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::parse_openmetrics;
use kyzlo_adapters_telemetry::{
    AlertRouter, AlertRouterConfig, ApiConfig, LogAlerts, OPENMETRICS_CONTENT_TYPE,
    PrometheusMetrics, TelemetryError, WebhookAlerts, WebhookKind, serve,
};
use kyzlo_application::bot::{BotPorts, BotSettings};
use kyzlo_application::clock::Clock;
use kyzlo_application::control::ApprovalKey;
use kyzlo_application::execute::ExecutionSettings;
use kyzlo_application::gateway::GatewayMode;
use kyzlo_application::guard::GuardLimits;
use kyzlo_application::journal::{IntentOutcome, Journal, MemoryJournal, PositionRecord};
use kyzlo_application::operator::Operator;
use kyzlo_application::ports::{AlertSink, Balances, Fill};
use kyzlo_application::testing::{
    FAKE_PAIR, FakeFeed, FakeVenue, HARNESS_APPROVAL_KEY, Harness, SendScript,
};
use kyzlo_domain::exit_plan::ExitPlanConfig;
use kyzlo_domain::strategy::MeanReversionConfig;
use kyzlo_domain::{
    ExitBreaker, IntentId, Lamports, LatencyBreakerConfig, PositionId, Price, Size, TokenAmount,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "operator-token-0123456789abcdef";
const SOL: u64 = 1_000_000_000;

struct Bot {
    base: String,
    http: reqwest::Client,
    webhook: MockServer,
    venue: Arc<FakeVenue>,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<Result<(), TelemetryError>>,
}

impl Bot {
    fn url(&self, route: &str) -> String {
        format!("{}{route}", self.base)
    }

    async fn get(&self, route: &str) -> (StatusCode, Value) {
        let r = self.http.get(self.url(route)).send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn post(
        &self,
        route: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.post(self.url(route));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let r = request.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn metrics(&self) -> common::Exposition {
        let r = self.http.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()["content-type"].to_str().unwrap(),
            OPENMETRICS_CONTENT_TYPE
        );
        let text = r.text().await.unwrap();
        parse_openmetrics(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// Polls `check` until it holds, for at most 2 s.
    async fn eventually<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while !check().await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting: {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The services as `Harness::with_settings` wires them, with this crate's metrics and
/// alert router, one adopted 10 SOL position (id 1) at 100, and the loop running.
async fn start_bot() -> Bot {
    let webhook = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&webhook)
        .await;
    let prom = Arc::new(PrometheusMetrics::new());
    let (alerts, worker) = AlertRouter::new(
        vec![
            Arc::new(
                WebhookAlerts::new(
                    WebhookKind::Generic,
                    &format!("{}/hook", webhook.uri()),
                    Duration::from_secs(2),
                )
                .unwrap(),
            ),
            Arc::new(LogAlerts),
        ],
        AlertRouterConfig::default(),
        prom.alert_counters(),
    );
    tokio::spawn(worker.run());
    let alerts: Arc<dyn AlertSink> = Arc::new(alerts);
    let clock = Clock::new();
    let feed = Arc::new(FakeFeed::new(Price::new(100.0).unwrap()));
    let venue = Arc::new(FakeVenue::new(
        feed.clone(),
        Balances {
            base: TokenAmount::new(10 * SOL),
            quote: TokenAmount::new(1_000_000_000),
            fee_lamports: Lamports::new(SOL),
        },
        clock,
    ));
    // Lands quickly, but not at once: long enough to see a second force-exit refused.
    venue.set_default(SendScript::Land {
        after: Duration::from_millis(300),
    });
    // One open position in the journal: the bot adopts it at start.
    let journal = Arc::new(MemoryJournal::new());
    let size = Size::new(TokenAmount::new(10 * SOL)).unwrap();
    journal
        .settle_intent(
            IntentId(1),
            &IntentOutcome::Filled(Fill {
                amount_in: TokenAmount::new(1_000_000_000),
                amount_out: size.amount(),
                fee: Lamports::new(5_000),
            }),
            Some(&PositionRecord {
                position: PositionId(1),
                entry_price: Price::new(100.0).unwrap(),
                size,
                remaining: size.amount(),
            }),
        )
        .await
        .unwrap();
    let exit = ExecutionSettings {
        poll_interval: Duration::from_millis(50),
        ..ExecutionSettings::exit_defaults()
    };
    let bot = kyzlo_application::bot::Bot::start(
        BotPorts {
            feed,
            router: venue.clone(),
            chain: venue.clone(),
            signer: venue.clone(),
            probe: venue.clone(),
            send_probe: venue.clone(),
            journal,
            alerts,
            metrics: vec![prom.clone()],
            clock,
        },
        BotSettings {
            pair: FAKE_PAIR,
            // A window the test never fills: the strategy stays silent.
            strategy: MeanReversionConfig {
                window: 10_000,
                ..MeanReversionConfig::default()
            },
            exit_plan: ExitPlanConfig::default(),
            entry: ExecutionSettings::entry_defaults(exit.ladder.clone()),
            exit,
            guard: GuardLimits::new(
                LatencyBreakerConfig::default(),
                Duration::from_secs(2),
                Duration::from_millis(200),
            ),
            exit_breaker_threshold: ExitBreaker::DEFAULT_THRESHOLD,
            entry_quote_amount: TokenAmount::new(100_000_000),
            entry_fraction: None,
            max_positions: 1,
            strategy_exits: true,
            protective_exits: kyzlo_application::orchestrator::ProtectiveExits::OnRecovery,
            router_budget: None,
            rpc_budget: None,
            tick_interval: Duration::from_millis(50),
            approval_key: ApprovalKey::new(HARNESS_APPROVAL_KEY).ok(),
            gateway_mode: GatewayMode::Enforce,
            jitter_seed: 7,
        },
    )
    .await
    .unwrap();
    prom.observe(&bot.guard(), &bot.exits());
    let operator = bot.operator();
    let (shutdown, shutdown_rx) = watch::channel(false);
    tokio::spawn(bot.run(shutdown_rx.clone(), Duration::from_secs(1)));
    let config = ApiConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        bearer_token: Some(TOKEN.to_owned()),
        ..ApiConfig::default()
    };
    let (server, addr) = serve(config, operator, prom, shutdown_rx).await.unwrap();
    Bot {
        base: format!("http://{addr}"),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap(),
        webhook,
        venue,
        shutdown,
        server,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_make_the_client_wait_and_page_the_operator_once() {
    let bot = start_bot().await;
    for _ in 0..5 {
        let (code, _) = bot
            .post("/halt", Some("wrong-token-wrong-token"), None)
            .await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
    }
    // The sixth: 429, and a wait the client is told.
    let r = bot
        .http
        .post(bot.url("/halt"))
        .bearer_auth("wrong-token-wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"].to_str().unwrap(), "1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "too_many_wrong_credentials");
    // While it waits, even the right token is not looked at.
    let (code, _) = bot.post("/halt", Some(TOKEN), None).await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS);
    // Hammering on pages the operator once.
    for _ in 0..30 {
        let (code, _) = bot
            .post("/halt", Some("wrong-token-wrong-token"), None)
            .await;
        assert!(
            code == StatusCode::TOO_MANY_REQUESTS || code == StatusCode::UNAUTHORIZED,
            "{code}"
        );
    }
    bot.eventually("the wrong-credentials page", || async {
        !bot.webhook.received_requests().await.unwrap().is_empty()
    })
    .await;
    let hooks = bot.webhook.received_requests().await.unwrap();
    assert_eq!(hooks.len(), 1, "paged once");
    let text = String::from_utf8_lossy(&hooks[0].body).to_string();
    assert!(text.contains("wrong credentials"), "{text}");
    assert!(!text.contains("wrong-token-wrong-token"), "{text}");
    let (_, status) = bot.get("/status").await;
    assert_eq!(status["trading"]["state"], "active", "no halt went through");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_site_post_is_refused_a_right_token_buys_no_more_key_guesses_and_a_hold_is_taken() {
    let bot = start_bot().await;
    // A page on another site posting with the right token (had it stolen it): refused
    // before anything is done.
    let r = bot
        .http
        .post(bot.url("/halt"))
        .bearer_auth(TOKEN)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "cross_site");
    let (_, status) = bot.get("/status").await;
    assert_eq!(status["trading"]["state"], "active");
    // The same origin (the status page's own buttons) goes through.
    let r = bot
        .http
        .post(bot.url("/halt"))
        .bearer_auth(TOKEN)
        .header("origin", bot.base.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Wrong approval keys, each followed by a right-token halt: the halts go through, and
    // the key's back-off is not cleared by them.
    let wrong_key = || Some(json!({"approval_key": "not-the-approval-key-at-all"}));
    for _ in 0..5 {
        let (code, body) = bot.post("/resume", Some(TOKEN), wrong_key()).await;
        assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["error"], "wrong_approval_key");
        let (code, _) = bot.post("/halt", Some(TOKEN), None).await;
        assert_eq!(code, StatusCode::OK);
    }
    let (code, _) = bot.post("/resume", Some(TOKEN), wrong_key()).await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS);
    // Locked out of the key, even the right one is not compared...
    let right_key = Some(json!({"approval_key": HARNESS_APPROVAL_KEY}));
    let (code, _) = bot.post("/resume", Some(TOKEN), right_key).await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS);
    // ... but a halt still goes through with the token.
    let (code, _) = bot.post("/halt", Some(TOKEN), None).await;
    assert_eq!(code, StatusCode::OK);
    let (_, status) = bot.get("/status").await;
    assert_eq!(status["trading"]["state"], "halted");
    // Holding a position (no protective exit while halted) needs the token, and an open
    // position.
    let (code, _) = bot.post("/positions/1/hold", None, None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let (code, body) = bot.post("/positions/1/hold", Some(TOKEN), None).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"position": 1, "held": true}));
    let (code, body) = bot.post("/positions/99/hold", Some(TOKEN), None).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_session_halts_force_exits_and_resumes_over_http() {
    let bot = start_bot().await;

    // Metrics: valid OpenMetrics, ticks counting, trading active.
    bot.eventually("a tick", || async {
        bot.metrics().await.value("kyzlo_ticks_total", &[]) > 0.0
    })
    .await;
    let m = bot.metrics().await;
    assert_eq!(m.value("kyzlo_trading_state", &[("state", "active")]), 1.0);
    assert!(
        m.value(
            "kyzlo_dependency_calls_total",
            &[("dependency", "price_feed"), ("outcome", "ok")]
        ) > 0.0
    );

    // Status: active, one position, no exit running.
    let (code, status) = bot.get("/status").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(status["trading"]["state"], "active");
    for dependency in ["price_feed", "router", "rpc_reads", "rpc_sends"] {
        assert_eq!(
            status["latency_breakers"][dependency]["state"], "closed",
            "{dependency}"
        );
    }
    assert_eq!(status["positions"][0]["id"], 1);
    assert_eq!(status["positions"][0]["remaining_base_units"], 10 * SOL);
    assert_eq!(status["open_exits"], 0);

    // Halt: 401 without or with a wrong token, then 200, then idempotent.
    let (code, body) = bot.post("/halt", None, Some(json!({"reason": "x"}))).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let (code, _) = bot
        .post("/halt", Some("wrong-token-wrong-token"), None)
        .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert!(bot.webhook.received_requests().await.unwrap().is_empty());
    let (code, body) = bot
        .post(
            "/halt",
            Some(TOKEN),
            Some(json!({"reason": "maintenance window"})),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body["outcome"], "halted");
    assert_eq!(
        body["trading"]["halt_reason"],
        json!({"cause": "operator", "detail": "maintenance window"})
    );
    let (code, body) = bot
        .post("/halt", Some(TOKEN), Some(json!({"reason": "again"})))
        .await;
    assert_eq!(
        (code, body["outcome"].as_str()),
        (StatusCode::OK, Some("already_halted"))
    );

    // Exactly one webhook alert, in the generic format.
    bot.eventually("the halt webhook", || async {
        !bot.webhook.received_requests().await.unwrap().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let hooks = bot.webhook.received_requests().await.unwrap();
    assert_eq!(hooks.len(), 1, "exactly one alert");
    let alert: Value = serde_json::from_slice(&hooks[0].body).unwrap();
    assert_eq!(
        alert,
        json!({"kind": "trading_halted", "severity": "critical",
               "message": "trading halted (operator): maintenance window", "position": null})
    );
    let (_, status) = bot.get("/status").await;
    assert_eq!(status["trading"]["state"], "halted");
    assert_eq!(
        status["trading"]["halt_reason"]["detail"],
        "maintenance window"
    );

    // Force-exit while halted: bad ids, unknown position, then accepted, then a conflict.
    let (code, body) = bot.post("/positions/abc/exit", Some(TOKEN), None).await;
    assert_eq!(
        (code, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("id"))
    );
    let (code, _) = bot.post("/positions/1/exit", None, None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let (code, body) = bot.post("/positions/99/exit", Some(TOKEN), None).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_position"))
    );
    let (code, body) = bot.post("/positions/1/exit", Some(TOKEN), None).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["position"], 1);
    let intent = body["intent"].as_u64().unwrap();
    let (code, body) = bot.post("/positions/1/exit", Some(TOKEN), None).await;
    assert_eq!(
        (code, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("exit_running"))
    );
    bot.eventually("the position to close", || async {
        bot.get("/status").await.1["positions"] == json!([])
    })
    .await;
    assert_eq!(bot.venue.landed().len(), 1, "one transaction landed");

    // History: bad limits refused, then the operator's exit, filled.
    for bad in ["abc", "0", "-1", "100000"] {
        let (code, body) = bot.get(&format!("/exits/history?limit={bad}")).await;
        assert_eq!(
            (code, body["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("limit")),
            "{bad}"
        );
    }
    let (code, history) = bot.get("/exits/history?limit=5").await;
    assert_eq!(code, StatusCode::OK);
    let exits = history["exits"].as_array().unwrap();
    assert_eq!(exits.len(), 1);
    assert_eq!(exits[0]["intent"], intent);
    assert_eq!(exits[0]["kind"], "operator");
    assert_eq!(exits[0]["outcome"]["result"], "filled");
    assert_eq!(exits[0]["attempts"][0]["outcome"], "landed");
    // On a recent blockhash: no nonce account, and no cancel.
    assert_eq!(exits[0]["attempts"][0]["nonce_account"], json!(null));
    assert_eq!(exits[0]["attempts"][0]["cancel"], json!(false));

    // Exit metrics, JSON and Prometheus.
    let (_, em) = bot.get("/metrics/exits").await;
    assert_eq!(
        (
            em["exits_attempted"].as_u64(),
            em["exits_first_attempt"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(em["gateway"]["orders_by_module"]["operator"], 1);
    assert_eq!(em["gateway"]["ownership_conflicts"], 1);
    let m = bot.metrics().await;
    assert_eq!(
        m.value("kyzlo_exits_attempted_total", &[("kind", "operator")]),
        1.0
    );
    assert_eq!(
        m.value("kyzlo_exits_first_attempt_total", &[("kind", "operator")]),
        1.0
    );
    assert_eq!(
        m.value(
            "kyzlo_gateway_ownership_conflicts_total",
            &[("module", "operator"), ("kind", "operator")]
        ),
        1.0
    );
    assert_eq!(m.value("kyzlo_trading_state", &[("state", "halted")]), 1.0);
    assert_eq!(
        m.value(
            "kyzlo_alerts_total",
            &[("kind", "trading_halted"), ("outcome", "delivered")]
        ),
        2.0,
        "webhook and log"
    );

    // Resume: field checks, a wrong key refused, the right key resumes.
    let (code, body) = bot.post("/resume", Some(TOKEN), Some(json!({}))).await;
    assert_eq!(
        (code, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("approval_key"))
    );
    let (code, body) = bot
        .post("/resume", Some(TOKEN), Some(json!({"approval_key": 42})))
        .await;
    assert_eq!(
        (code, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("approval_key"))
    );
    let (code, _) = bot
        .post(
            "/resume",
            None,
            Some(json!({"approval_key": HARNESS_APPROVAL_KEY})),
        )
        .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let (code, body) = bot
        .post(
            "/resume",
            Some(TOKEN),
            Some(json!({"approval_key": "not the approval key!"})),
        )
        .await;
    assert_eq!(
        (code, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("wrong_approval_key"))
    );
    assert_eq!(bot.get("/status").await.1["trading"]["state"], "halted");
    let (code, body) = bot
        .post(
            "/resume",
            Some(TOKEN),
            Some(json!({"approval_key": HARNESS_APPROVAL_KEY})),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["trading"]["state"], "active");
    let (code, body) = bot
        .post(
            "/resume",
            Some(TOKEN),
            Some(json!({"approval_key": HARNESS_APPROVAL_KEY})),
        )
        .await;
    assert_eq!(
        (code, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("not_halted"))
    );
    assert_eq!(
        bot.metrics()
            .await
            .value("kyzlo_trading_state", &[("state", "active")]),
        1.0
    );

    // Shutdown stops the server.
    bot.shutdown.send(true).unwrap();
    let stopped = tokio::time::timeout(Duration::from_secs(2), bot.server).await;
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
}

fn operator_without_loop(h: &Harness) -> Operator {
    let (tx, rx) = mpsc::channel(1);
    drop(rx);
    Operator::new(
        h.control.clone(),
        tx,
        h.journal.clone(),
        h.guard.clone(),
        h.exits.clone(),
        h.metrics.clone(),
    )
}

#[tokio::test]
async fn without_the_loop_reads_answer_503_and_a_halt_still_holds() {
    let h = Harness::new(100.0, Balances::default());
    let (_stop, shutdown) = watch::channel(false);
    // No token, on loopback: the control routes are open to local processes.
    let config = ApiConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        bearer_token: None,
        ..ApiConfig::default()
    };
    let (_server, addr) = serve(
        config,
        operator_without_loop(&h),
        Arc::new(PrometheusMetrics::new()),
        shutdown,
    )
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let status = http
        .get(format!("http://{addr}/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = status.json().await.unwrap();
    assert_eq!(body["error"], "not_running");
    let exit = http
        .post(format!("http://{addr}/positions/1/exit"))
        .send()
        .await
        .unwrap();
    assert_eq!(exit.status(), StatusCode::SERVICE_UNAVAILABLE);

    let halt = http
        .post(format!("http://{addr}/halt"))
        .send()
        .await
        .unwrap();
    assert_eq!(halt.status(), StatusCode::OK);
    let body: Value = halt.json().await.unwrap();
    assert_eq!(body, json!({"outcome": "halted"}));
    assert!(h.control.state().is_halted());

    let bad = http
        .post(format!("http://{addr}/halt"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(bad.json::<Value>().await.unwrap()["field"], "body");
    let huge = http
        .post(format!("http://{addr}/halt"))
        .body(vec![b' '; 100_000])
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let metrics = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    let unknown = http
        .get(format!("http://{addr}/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn serve_refuses_a_non_loopback_address_without_a_token() {
    let h = Harness::new(100.0, Balances::default());
    let (_stop, shutdown) = watch::channel(false);
    let config = ApiConfig {
        listen: "0.0.0.0:0".parse().unwrap(),
        bearer_token: None,
        ..ApiConfig::default()
    };
    let refused = serve(
        config,
        operator_without_loop(&h),
        Arc::new(PrometheusMetrics::new()),
        shutdown,
    )
    .await;
    assert!(
        matches!(refused, Err(TelemetryError::InsecureListen { .. })),
        "{:?}",
        refused.err()
    );
}
