//! `kyzlo quote` against a local HTTP server serving a recorded Jupiter quote: it prints
//! the route, the out amount and the price impact.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic by design

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;
use std::thread;

const FIXTURE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../crates/adapters-jupiter/tests/fixtures/jupiter_quote_sol_usdc.json"
));

/// Serves `body` as JSON to every request, recording the request lines.
fn serve(body: &'static str, status: &'static str) -> (String, thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let mut seen = Vec::new();
        // One request per test run of the binary.
        if let Ok((stream, _)) = listener.accept() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            seen.push(line.trim().to_owned());
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap() == 0 || header == "\r\n" {
                    break;
                }
            }
            let mut stream = stream;
            write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
        }
        seen
    });
    (format!("http://{addr}"), handle)
}

#[test]
fn quote_prints_the_route_the_out_amount_and_the_price_impact() {
    let (url, server) = serve(FIXTURE, "200 OK");
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(kyzlo_tests::kyzlo_bin())
        .current_dir(dir.path())
        .args([
            "quote",
            "--jupiter-url",
            &url,
            "--amount",
            "1",
            "--slippage-bps",
            "50",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("route: Scorch > Deriverse"), "{stdout}");
    assert!(
        stdout.contains("out: 91103528 quote units (91.103528)"),
        "{stdout}"
    );
    assert!(stdout.contains("price impact:"), "{stdout}");
    let requests = server.join().unwrap();
    assert!(
        requests[0].starts_with("GET /swap/v1/quote?"),
        "{requests:?}"
    );
    assert!(requests[0].contains("amount=1000000000"), "{requests:?}");
}

#[test]
fn a_no_route_answer_is_reported_with_its_class_and_a_non_zero_exit() {
    let (url, server) = serve(
        r#"{"error":"No routes found","errorCode":"NO_ROUTES_FOUND"}"#,
        "400 Bad Request",
    );
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(kyzlo_tests::kyzlo_bin())
        .current_dir(dir.path())
        .args([
            "quote",
            "--jupiter-url",
            &url,
            "--amount",
            "1",
            "--slippage-bps",
            "50",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no_route"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    server.join().unwrap();
}
