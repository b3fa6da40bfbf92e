//! Send lanes from a configuration to the wire: a lane's header read from the environment
//! reaches that lane only; the Solana adapter built from the configuration refuses what
//! the configuration alone cannot judge (a tip to a program); `kyzlo doctor`'s lane check
//! against a wiremock lane and an unreachable one.
#![allow(
    clippy::result_large_err,
    reason = "figment's Jail closures return figment's own error type"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use figment::Jail;
use kyzlo_application::ports::{Blockhash, Chain as _, SignedTransaction, WalletAddress};
use kyzlo_config::{Config, File, SendLaneFile, TipFile, load_valid};
use kyzlo_domain::TxSignature;
use kyzlo_live::doctor::lane_checks;
use serde_json::json;
use wiremock::matchers::{header, method};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

const SIGNATURE: [u8; 64] = [7; 64];

fn signed() -> SignedTransaction {
    SignedTransaction {
        bytes: Arc::from(&b"kyzlo lane test bytes"[..]),
        signature: TxSignature(SIGNATURE),
        blockhash: Blockhash([1; 32]),
        last_valid_block_height: 100,
    }
}

fn ack() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"jsonrpc": "2.0", "id": 1,
        "result": solana_signature::Signature::from(SIGNATURE).to_string()}))
}

/// Matches a request without `name`.
struct Without(&'static str);

impl Match for Without {
    fn matches(&self, request: &Request) -> bool {
        !request.headers.contains_key(self.0)
    }
}

fn lane(url: &str) -> SendLaneFile {
    SendLaneFile {
        name: None,
        url: url.to_owned(),
        headers: Default::default(),
        skip_preflight: None,
        tip: None,
    }
}

/// A URL nothing listens on.
fn refused_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    format!(
        "http://127.0.0.1:{}/",
        listener.local_addr().expect("addr").port()
    )
}

/// Requests `server` received, once it has received `count` (a lane still answering when
/// another accepted is not waited for by the send).
async fn received(server: &MockServer, count: usize) -> Vec<Request> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = server.received_requests().await.unwrap_or_default();
        if got.len() >= count || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn a_header_read_from_the_environment_reaches_its_lane_only() {
    Jail::expect_with(|jail| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (keyed, plain) = runtime.block_on(async {
            let keyed = MockServer::start().await;
            Mock::given(method("POST"))
                .and(header("x-api-key", "env-header-secret-1"))
                .respond_with(ack())
                .mount(&keyed)
                .await;
            let plain = MockServer::start().await;
            Mock::given(method("POST"))
                .and(Without("x-api-key"))
                .respond_with(ack())
                .mount(&plain)
                .await;
            (keyed, plain)
        });
        jail.create_file(
            "kyzlo.toml",
            &format!(
                r#"
[[rpc.send_lanes]]
name = "keyed"
url = "{}"
headers = {{ "x-api-key" = "LIVE_TEST_LANE_KEY_1" }}

[[rpc.send_lanes]]
name = "plain"
url = "{}"
"#,
                keyed.uri(),
                plain.uri()
            ),
        )?;
        jail.set_env("LIVE_TEST_LANE_KEY_1", "env-header-secret-1");
        let config = load_valid(None, None).expect("valid");
        let chain = kyzlo_live::solana(&config, WalletAddress([3; 32]), true).expect("adapter");
        runtime.block_on(async {
            chain.send(&signed()).await.expect("sent");
            chain.send(&signed()).await.expect("rebroadcast");
            let keyed_got = received(&keyed, 2).await;
            assert_eq!(keyed_got.len(), 2, "every send, each with the header");
            assert!(
                keyed_got
                    .iter()
                    .all(|r| r.headers["x-api-key"] == "env-header-secret-1")
            );
            let plain_got = received(&plain, 2).await;
            assert_eq!(plain_got.len(), 2);
            assert!(
                plain_got
                    .iter()
                    .all(|r| !r.headers.contains_key("x-api-key"))
            );
        });
        assert!(!format!("{chain:?}").contains("env-header-secret-1"));
        Ok(())
    });
}

#[test]
fn a_tip_to_a_program_is_refused_when_the_adapter_is_built_as_config_check_builds_it() {
    let mut file = File::default();
    file.rpc.send_lanes = vec![SendLaneFile {
        tip: Some(TipFile {
            account: "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA".to_owned(),
            lamports: 1_000,
        }),
        ..lane("https://lane.example/")
    }];
    let config = Config::try_from(file).expect("the account parses");
    let error = kyzlo_live::solana(&config, WalletAddress([3; 32]), false).expect_err("refused");
    assert!(error.contains("send_lanes.tip.account"), "{error}");
}

#[test]
fn the_assembler_appends_one_tip_per_lane_that_asks_for_one() {
    let mut file = File::default();
    let tipped = |name: &str, account: &str| SendLaneFile {
        name: Some(name.to_owned()),
        tip: Some(TipFile {
            account: account.to_owned(),
            lamports: 5_000,
        }),
        ..lane("https://lane.example/")
    };
    file.rpc.send_lanes = vec![
        tipped("a", "96gYZGLnJYVFmbjzopPSU6QiEV5fGqZNyN9nmNhvrZU5"),
        SendLaneFile {
            name: Some("untipped".to_owned()),
            ..lane("https://lane.example/")
        },
        tipped("b", "HFqU5x63VTqvQss8hp11i4wVV8bD44PvwucfZ2bU7gRe"),
    ];
    let config = Config::try_from(file).expect("valid");
    let wallet = WalletAddress([3; 32]);
    let chain = Arc::new(kyzlo_live::solana(&config, wallet, false).expect("adapter"));
    let assembler = kyzlo_live::assembler(&config, chain.clone(), wallet);
    assert!(
        format!("{assembler:?}").contains("tips: 2"),
        "{assembler:?}"
    );
    let untipped = kyzlo_live::assembler(
        &Config::try_from(File::default()).expect("valid"),
        chain,
        wallet,
    );
    assert!(format!("{untipped:?}").contains("tips: 0"), "{untipped:?}");
}

#[test]
fn the_configuration_and_the_adapter_agree_on_the_limits() {
    assert_eq!(
        kyzlo_config::MAX_TIP_LAMPORTS,
        kyzlo_adapters_solana::MAX_TIP_LAMPORTS
    );
    assert_eq!(kyzlo_config::MAX_LANES, kyzlo_adapters_solana::MAX_LANES);
}

#[tokio::test]
async fn the_doctor_reports_each_lane_by_label_ok_or_fail() {
    let healthy = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"jsonrpc": "2.0", "id": 1, "result": "ok"})),
        )
        .mount(&healthy)
        .await;
    let mut file = File::default();
    file.rpc.send_lanes = vec![
        SendLaneFile {
            name: Some("wiremock".to_owned()),
            ..lane(&format!("{}/?api-key=doctor-secret", healthy.uri()))
        },
        SendLaneFile {
            name: Some("gone".to_owned()),
            ..lane(&refused_url())
        },
    ];
    let config = Config::try_from(file).expect("valid");
    let lines = lane_checks(&config).await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].0, "{lines:?}");
    assert!(
        lines[0].1.starts_with("send lane wiremock: reachable"),
        "{lines:?}"
    );
    assert!(!lines[1].0, "{lines:?}");
    assert!(
        lines[1].1.starts_with("send lane gone: not reachable"),
        "{lines:?}"
    );
    for (_, line) in &lines {
        assert!(!line.contains("doctor-secret"), "{line}");
        assert!(!line.contains("127.0.0.1"), "label, not URL: {line}");
    }
    let bodies = healthy.received_requests().await.unwrap_or_default();
    assert_eq!(bodies.len(), 1);
    let body: serde_json::Value = serde_json::from_slice(&bodies[0].body).expect("JSON");
    assert_eq!(body["method"], "getHealth", "nothing is sent");
    assert!(
        lane_checks(&Config::try_from(File::default()).expect("valid"))
            .await
            .is_empty()
    );
}
