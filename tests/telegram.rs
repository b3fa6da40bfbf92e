//! Telegram end to end: a paper bot configured with a Telegram bot talks to a local
//! stand-in of the Bot API (wiremock): a halt sends one message to the allowed chat;
//! `/halt` from a chat not allowed is refused and logged, as are a `/halt` typed before the
//! bot started and one with an oversized reason; `/status` and `/exit ID` from the allowed
//! chat are answered and the position is force-exited; the next poll asks past the batch.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use kyzlo_tests::common::{
    ChildGuard, flat_then_dip, http, kyzlo, price_csv, wait_until, write_file,
};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const WAIT: Duration = Duration::from_secs(60);
const BOT_TOKEN: &str = "123456:ABCdefGHIjklMNOpqrSTUvwxYZ012345";
const API_TOKEN: &str = "telegram-test-token-0123456789";
const ALLOWED: i64 = 42;
const STRANGER: i64 = 999;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The messages the stand-in was asked to send, as (chat, text).
async fn sent(server: &MockServer) -> Vec<(i64, String)> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path().ends_with("/sendMessage"))
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            (
                body["chat_id"].as_i64().unwrap(),
                body["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_pages_once_refuses_strangers_and_force_exits_for_the_allowed_chat() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{BOT_TOKEN}/sendMessage")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": true, "result": {"message_id": 1}})),
        )
        .mount(&server)
        .await;
    // No update: answered after a short wait, as a long poll would be.
    Mock::given(method("POST"))
        .and(path(format!("/bot{BOT_TOKEN}/getUpdates")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": true, "result": []}))
                .set_delay(Duration::from_millis(100)),
        )
        .with_priority(10)
        .mount(&server)
        .await;

    let dir = tempfile::tempdir().unwrap();
    let prices = write_file(dir.path(), "prices.csv", &price_csv(0, &flat_then_dip()));
    let config = write_file(
        dir.path(),
        "bot.toml",
        &format!(
            "[trading]\nentry_fraction = 1.0\n\
             [strategy]\nwindow_s = 10.0\ncost_aware = false\nentry_z = 2.5\nexit_z = 50.0\n\
             [api]\nlisten = \"127.0.0.1:0\"\nbearer_token = \"{API_TOKEN}\"\n\
             [alerts]\ntelegram_bot_token = \"{BOT_TOKEN}\"\ntelegram_chat_ids = [{ALLOWED}]\ntelegram_api_url = \"{}\"\n\
             [paper]\nfaults = \"none\"\n",
            server.uri()
        ),
    );
    let stderr = dir.path().join("stderr.txt");
    let mut command = kyzlo(dir.path());
    command
        .args(["paper", "--speed", "10", "--config"])
        .arg(&config)
        .arg("--prices")
        .arg(&prices)
        .stdout(Stdio::null())
        .stderr(Stdio::from(File::create(&stderr).unwrap()));
    let mut bot = ChildGuard::spawn(&mut command);
    let addr: SocketAddr = wait_until(WAIT, "the operator API's address", || {
        if let Some(status) = bot.wait_for(Duration::ZERO) {
            panic!("kyzlo paper ended early ({status}):\n{}", read(&stderr));
        }
        read(&stderr)
            .lines()
            .find_map(|l| l.strip_prefix("operator API listening on http://"))
            .map(|a| a.trim().parse().unwrap())
    });
    let status = move || http(addr, "GET", "/status", None, None).json();
    let position = wait_until(WAIT, "a position", || {
        status()["positions"][0]["id"].as_u64()
    });
    assert!(
        !read(&stderr).contains(BOT_TOKEN),
        "the bot token is never logged"
    );

    // A stranger's /halt, then the allowed chat's /status and /exit.
    // Telegram's dates are wall-clock Unix seconds.
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let sent_at = |id: i64, chat: i64, text: String, date: i64| json!({"update_id": id, "message": {"message_id": id, "date": date, "chat": {"id": chat, "type": "private"}, "text": text}});
    let update = |id: i64, chat: i64, text: String| sent_at(id, chat, text, now);
    Mock::given(method("POST"))
        .and(path(format!("/bot{BOT_TOKEN}/getUpdates")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ok": true,
            "result": [
                update(10, STRANGER, "/halt evil".to_owned()),
                // Typed an hour before the bot started: never obeyed.
                sent_at(11, ALLOWED, "/halt stale".to_owned(), now - 3_600),
                update(12, ALLOWED, format!("/halt {}", "x".repeat(2_000))),
                update(13, ALLOWED, "/status".to_owned()),
                update(14, ALLOWED, format!("/exit {position}")),
            ]
        })))
        .with_priority(1)
        .up_to_n_times(1)
        .mount(&server)
        .await;
    eventually("the answers", async || sent(&server).await.len() >= 5).await;
    // The next poll asks only for what came after the batch.
    eventually("a poll past the batch", async || {
        server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path().ends_with("/getUpdates"))
            .any(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["offset"] == 15)
    })
    .await;
    let messages = sent(&server).await;
    let to = |chat: i64| -> Vec<String> {
        messages
            .iter()
            .filter(|(c, _)| *c == chat)
            .map(|(_, t)| t.clone())
            .collect()
    };
    let stranger = to(STRANGER);
    assert_eq!(stranger.len(), 1, "{messages:?}");
    assert!(stranger[0].contains("refused"), "{stranger:?}");
    let allowed = to(ALLOWED);
    assert!(
        allowed
            .iter()
            .any(|t| t.starts_with("ignored: sent before")),
        "{allowed:?}"
    );
    assert!(
        allowed
            .iter()
            .any(|t| t.contains("refused: the reason is longer than 1024 bytes")),
        "{allowed:?}"
    );
    assert!(
        allowed
            .iter()
            .any(|t| t.contains("trading: active") && t.contains(&format!("pos-{position}"))),
        "{allowed:?}"
    );
    assert!(
        allowed
            .iter()
            .any(|t| t.contains(&format!("force-exit of pos-{position} started"))),
        "{allowed:?}"
    );
    assert!(
        read(&stderr).contains("command from a chat not allowed"),
        "the refusal is logged"
    );
    assert_eq!(
        status()["trading"]["state"],
        "active",
        "neither the stranger's halt, nor the stale one, nor the oversized one was obeyed"
    );
    wait_until(WAIT, "the force-exit to close the position", || {
        status()["positions"]
            .as_array()
            .is_some_and(Vec::is_empty)
            .then_some(())
    });

    // A halt sends one message to the allowed chat, and none to anyone else.
    let before = sent(&server).await.len();
    let halted = http(
        addr,
        "POST",
        "/halt",
        Some(API_TOKEN),
        Some("{\"reason\": \"telegram test\"}"),
    );
    assert_eq!(halted.status, 200, "{}", halted.body);
    eventually("the halt message", async || {
        sent(&server).await.len() > before
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after: Vec<(i64, String)> = sent(&server).await.split_off(before);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0].0, ALLOWED);
    assert!(
        after[0].1.contains("trading_halted") && after[0].1.contains("telegram test"),
        "{after:?}"
    );
    bot.interrupt();
    let _ = bot.wait_for(WAIT);
}
