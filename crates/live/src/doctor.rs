//! `kyzlo doctor`: what a live configuration will and will not do, checked against the
//! real endpoints without sending a transaction. Per RPC endpoint: health, version, how
//! long a read takes, how far back it keeps history (start-up reconciliation looks up old
//! signatures); per send lane: reachable with its headers ([`lane_checks`]); the
//! wallet: its keypair, its SOL against the fee reserve a full exit keeps, and the pair's
//! balances; the pair's mints: their decimals against the configuration
//! (mainnet: the devnet stand-in keeps its own balances; [`check_mints`] is the same check
//! a mainnet run makes before it starts); Jupiter: a price read with the key, and the
//! request budget configured. Every check prints one line, `ok` or `FAIL`
//! with what to do; the run fails when any check does.

use std::fmt::Write as _;
use std::time::Duration;

use kyzlo_adapters_solana::{LaneReach, Pubkey, classify, endpoint_label, probe_lanes};
use kyzlo_application::ports::{Chain as _, Signer as _};
use kyzlo_config::{Config, JupiterApi, Profile};
use solana_client::client_error::ClientError;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_client::rpc_response::RpcVersionInfo;
use tokio::time::Instant;

/// The token programs a mint may belong to (SPL Token and Token-2022); both keep the
/// decimals at byte 44 of the mint account.
const TOKEN_PROGRAMS: [&str; 2] = [
    "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA",
    "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb",
];
const DECIMALS_OFFSET: usize = 44;
/// An SPL mint account's length (Token-2022 mints with extensions are longer).
const MINT_LEN: usize = 82;
/// Slots a node should keep for start-up reconciliation to find a crash's transactions:
/// about ten minutes.
const MIN_HISTORY_SLOTS: u64 = 1_500;
/// Slower than this for one read, and exits will be slow to confirm.
const SLOW_READ: Duration = Duration::from_millis(500);

/// The doctor's findings.
#[derive(Debug, Default)]
pub struct Report {
    lines: Vec<(bool, String)>,
    notes: Vec<String>,
}

impl Report {
    fn check(&mut self, ok: bool, line: String) {
        self.lines.push((ok, line));
    }

    /// A fact about the run that is not a check (printed, never counted).
    fn note(&mut self, line: String) {
        self.notes.push(line);
    }

    /// How many checks failed.
    #[must_use]
    pub fn failures(&self) -> usize {
        self.lines.iter().filter(|(ok, _)| !ok).count()
    }

    /// The report as printed: a line per check, then the totals.
    #[must_use]
    pub fn text(&self, profile: Profile) -> String {
        let mut out = format!(
            "kyzlo doctor ({} profile): reads only, nothing is sent\n",
            profile.as_str()
        );
        for (ok, line) in &self.lines {
            let _ = writeln!(out, "{:<5} {line}", if *ok { "ok" } else { "FAIL" });
        }
        for line in &self.notes {
            let _ = writeln!(out, "note  {line}");
        }
        let _ = writeln!(
            out,
            "{} checks, {} failed",
            self.lines.len(),
            self.failures()
        );
        out
    }
}

/// Runs every check of `config` (a devnet or mainnet one).
pub async fn run(config: &Config) -> Report {
    let mut report = Report::default();
    let timeout = config.rpc.request_timeout;
    for url in &config.rpc.endpoints {
        endpoint(&mut report, &endpoint_label(url), url.as_str(), timeout).await;
    }
    for (ok, line) in lane_checks(config).await {
        report.check(ok, line);
    }
    let devnet = config.profile == Profile::Devnet;
    match crate::signer(config) {
        Err(e) => report.check(false, format!("wallet: {e}")),
        Ok(signer) => {
            let address = signer.address();
            wallet(&mut report, config, address, devnet).await;
            if !devnet {
                for (ok, line) in mint_checks(config).await {
                    report.check(ok, line);
                }
            }
            jupiter(&mut report, config, address).await;
        }
    }
    report.note(plan(config));
    report
}

/// What the run will do with these settings: the swap API and its transaction path, and
/// the RPC provider's request budget (a line of facts, never a failure).
fn plan(config: &Config) -> String {
    let path = match config.jupiter.api {
        JupiterApi::V2 => format!(
            "swaps: Jupiter Swap API v2 /build, compiled by kyzlo (own blockhash and life, compute units from a simulation x{}%, priority fee at the p{} of recent fees, at least {} micro-lamports a unit, capped per rung)",
            config.fees.compute_unit_margin_pct,
            config.fees.percentile,
            config.fees.floor_micro_lamports
        ),
        JupiterApi::V1 => {
            "swaps: Jupiter /swap/v1 (Jupiter builds the transaction; the rung's fee is a cap)"
                .to_owned()
        }
    };
    let rpc = config.rpc.budget.as_ref().map_or_else(
        || "no RPC request budget (rpc.budget.requests = 0)".to_owned(),
        |b| {
            format!(
                "an RPC budget of {} requests per {} s, {} kept for exits",
                b.limit(),
                b.window().as_secs(),
                b.reserve()
            )
        },
    );
    format!("{path}; {rpc}")
}

/// An RPC error as the adapter words it: named by the endpoint's label, never its URL
/// (whose path or query may hold an API key).
fn said(e: &ClientError, operation: &'static str, label: &str) -> String {
    classify(e).to_port_error(operation, label).to_string()
}

/// The node's version for the endpoint's line; a failed read is worded by [`said`], so
/// the URL (and any API key in it) is never printed.
fn version_text(read: Result<RpcVersionInfo, ClientError>, label: &str) -> String {
    match read {
        Ok(v) => format!("solana-core {}", v.solana_core),
        Err(e) => format!("version unknown ({})", said(&e, "rpc.getVersion", label)),
    }
}

async fn endpoint(report: &mut Report, label: &str, url: &str, timeout: Duration) {
    let client = RpcClient::new_with_timeout(url.to_owned(), timeout);
    if let Err(e) = client.get_health().await {
        report.check(
            false,
            format!(
                "rpc {label}: not healthy or not reachable: {}",
                said(&e, "rpc.getHealth", label)
            ),
        );
        return;
    }
    let version = version_text(client.get_version().await, label);
    let mut reads = Vec::new();
    let mut slot = 0;
    for _ in 0..3 {
        let started = Instant::now();
        match client.get_slot().await {
            Ok(s) => {
                slot = s;
                reads.push(started.elapsed());
            }
            Err(e) => {
                report.check(
                    false,
                    format!("rpc {label}: {}", said(&e, "rpc.getSlot", label)),
                );
                return;
            }
        }
    }
    reads.sort();
    let read = reads[1];
    report.check(
        read <= SLOW_READ,
        format!(
            "rpc {label}: healthy, {version}, a read in {} ms (median of 3){}",
            read.as_millis(),
            if read > SLOW_READ {
                ": too slow for exits to confirm in time; use a closer or better endpoint"
            } else {
                ""
            }
        ),
    );
    match client.minimum_ledger_slot().await {
        Ok(first) => {
            let kept = slot.saturating_sub(first);
            // A ledger from genesis (a young cluster) keeps everything there is.
            let genesis = first <= 1;
            let enough = kept >= MIN_HISTORY_SLOTS || genesis;
            report.check(
                enough,
                format!(
                    "rpc {label}: keeps {kept} slots of history ({}){}",
                    if genesis {
                        "all since genesis".to_owned()
                    } else {
                        format!("~{:.1} h", kept as f64 * 0.4 / 3_600.0)
                    },
                    if !enough {
                        ": too little for start-up reconciliation to find a crash's transactions"
                    } else {
                        ""
                    }
                ),
            );
        }
        Err(e) => report.check(
            false,
            format!(
                "rpc {label}: history unknown: {}",
                said(&e, "rpc.minimumLedgerSlot", label)
            ),
        ),
    }
}

/// Each send lane's check: reachable, with its own headers, by a JSON-RPC `getHealth`
/// (nothing is sent). A lane without `getHealth` (a send-only endpoint) is reachable; one
/// that refuses its headers (401, 403), fails or cannot be reached fails. Lanes are named
/// by label, never by URL; no line without lanes.
pub async fn lane_checks(config: &Config) -> Vec<(bool, String)> {
    if config.rpc.send_lanes.is_empty() {
        return Vec::new();
    }
    let probes = match probe_lanes(&crate::solana_config(config)).await {
        Ok(probes) => probes,
        Err(e) => return vec![(false, format!("send lanes: {e}"))],
    };
    probes
        .into_iter()
        .map(|probe| {
            let label = probe.label;
            match probe.reach {
                LaneReach::Healthy => (true, format!("send lane {label}: reachable, healthy")),
                LaneReach::NoHealthMethod => (
                    true,
                    format!(
                        "send lane {label}: reachable (no getHealth there: a send-only endpoint)"
                    ),
                ),
                LaneReach::Answered(e) => (
                    true,
                    format!("send lane {label}: reachable, getHealth answered {e}"),
                ),
                LaneReach::Failed(e) => {
                    let hint = if matches!(e.code(), Some(401 | 403)) {
                        "check its headers and the variables they are read from"
                    } else {
                        "check its URL, or remove it: sends still go to the other lanes"
                    };
                    (
                        false,
                        format!(
                            "send lane {label}: not reachable: {}; {hint}",
                            e.to_port_error("rpc.getHealth", &label)
                        ),
                    )
                }
            }
        })
        .collect()
}

async fn wallet(
    report: &mut Report,
    config: &Config,
    address: kyzlo_application::ports::WalletAddress,
    devnet: bool,
) {
    let shown = Pubkey::new_from_array(address.0);
    let chain = match crate::solana(config, address, devnet) {
        Ok(chain) => chain,
        Err(e) => return report.check(false, format!("wallet {shown}: {e}")),
    };
    match chain.balances().await {
        Err(e) => report.check(false, format!("wallet {shown}: balances unread: {e}")),
        Ok(b) => {
            let reserve = config.execution.exit.fee_reserve.get();
            let sol = b.fee_lamports.get();
            let pair = config.pair.pair;
            let ui = |units: u64, decimals: u8| units as f64 / 10f64.powi(i32::from(decimals));
            let holdings = if devnet {
                String::new()
            } else {
                format!(
                    ", base {:.6}, quote {:.6}",
                    ui(b.base.get(), pair.base_decimals),
                    ui(b.quote.get(), pair.quote_decimals)
                )
            };
            report.check(
                sol > reserve,
                format!(
                    "wallet {shown}: {:.6} SOL against a fee reserve of {:.6}{holdings}{}",
                    ui(sol, 9),
                    ui(reserve, 9),
                    if sol > reserve {
                        ""
                    } else {
                        ": top it up, fees and the reserve come from this SOL"
                    }
                ),
            );
        }
    }
}

/// The decimals of `mint` on chain, or why they could not be read.
async fn mint_decimals(client: &RpcClient, label: &str, mint: Pubkey) -> Result<u8, String> {
    let account = client
        .get_account(&mint)
        .await
        .map_err(|e| format!("unread: {}", said(&e, "rpc.getAccountInfo", label)))?;
    let owner = account.owner.to_string();
    decimals_of(&owner, &account.data).ok_or_else(|| format!("not a token mint (owner {owner})"))
}

/// Each mint's check: its decimals on chain against the configuration's.
async fn mint_checks(config: &Config) -> Vec<(bool, String)> {
    let Some(url) = config.rpc.endpoints.first() else {
        return Vec::new();
    };
    let client = RpcClient::new_with_timeout(url.to_string(), config.rpc.request_timeout);
    let label = endpoint_label(url);
    let pair = config.pair.pair;
    let mut checks = Vec::new();
    for (which, mint, configured) in [
        ("base", config.pair.base_mint, pair.base_decimals),
        ("quote", config.pair.quote_mint, pair.quote_decimals),
    ] {
        checks.push(match mint_decimals(&client, &label, mint).await {
            Ok(d) if d == configured => (true, format!("{which} mint {mint}: {d} decimals, as configured")),
            Ok(d) => (
                false,
                format!(
                    "{which} mint {mint}: {d} decimals on chain, {configured} in the configuration: fix pair.{which}_decimals"
                ),
            ),
            Err(why) => (false, format!("{which} mint {mint}: {why}")),
        });
    }
    checks
}

/// Refuses to trade on mints whose decimals on chain are not the configured ones (every
/// amount would be off by powers of ten), or that cannot be read. Mainnet only: the devnet
/// stand-in keeps its own balances.
///
/// # Errors
/// The first failed mint check, as text naming the key to fix.
pub async fn check_mints(config: &Config) -> Result<(), String> {
    match mint_checks(config).await.into_iter().find(|(ok, _)| !ok) {
        Some((_, why)) => Err(why),
        None => Ok(()),
    }
}

/// A mint account's decimals: `None` unless a token program owns it and it is as long as
/// a mint.
fn decimals_of(owner: &str, data: &[u8]) -> Option<u8> {
    (TOKEN_PROGRAMS.contains(&owner) && data.len() >= MINT_LEN)
        .then(|| data.get(DECIMALS_OFFSET).copied())
        .flatten()
}

async fn jupiter(
    report: &mut Report,
    config: &Config,
    address: kyzlo_application::ports::WalletAddress,
) {
    let label = config.jupiter.base_url.origin().ascii_serialization();
    let client = match crate::jupiter(config, address, None) {
        Ok((client, _)) => client,
        Err(e) => return report.check(false, format!("jupiter {label}: {e}")),
    };
    let started = Instant::now();
    let mint = config.pair.base_mint.to_string();
    let price = client.prices(&[mint.as_str()]).await;
    let took = started.elapsed().as_millis();
    let budget = config.jupiter.budget.as_ref().map_or_else(
        || "no request budget (jupiter.requests_per_minute = 0)".to_owned(),
        |b| format!("a budget of {} requests a minute", b.limit()),
    );
    match price.and_then(|p| p.usd_price(&mint)) {
        Ok(p) => report.check(
            true,
            format!(
                "jupiter {label}: price {:.4} in {took} ms{}; {budget}",
                p.get(),
                if config.jupiter.api_key.is_some() {
                    " with the API key"
                } else {
                    " without a key"
                }
            ),
        ),
        Err(e) => report.check(false, format!("jupiter {label}: price read failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_read_from_a_token_programs_mint_only() {
        let mut mint = vec![0u8; MINT_LEN];
        mint[DECIMALS_OFFSET] = 6;
        assert_eq!(decimals_of(TOKEN_PROGRAMS[0], &mint), Some(6));
        assert_eq!(decimals_of(TOKEN_PROGRAMS[1], &mint), Some(6));
        let system = "11111111111111111111111111111111";
        assert_eq!(decimals_of(system, &mint), None, "not a token program's");
        assert_eq!(
            decimals_of(TOKEN_PROGRAMS[0], &mint[..45]),
            None,
            "too short"
        );
        // A Token-2022 mint with extensions is longer and keeps the same layout.
        mint.resize(300, 0);
        assert_eq!(decimals_of(TOKEN_PROGRAMS[1], &mint), Some(6));
    }

    #[tokio::test]
    async fn a_failed_version_read_names_the_endpoint_by_its_label_not_its_url() {
        // Nothing listens on port 1: the read fails at once, and the transport's error
        // carries the URL it was sent to, API key and all.
        let url = "http://127.0.0.1:1/?api-key=SEKRET";
        let client = RpcClient::new(url.to_owned());
        let read = client.get_version().await;
        let Err(e) = &read else {
            panic!("nothing should answer on port 1");
        };
        assert!(
            e.to_string().contains("SEKRET"),
            "the raw error shows the key: {e}"
        );
        let label = endpoint_label(&url::Url::parse(url).expect("test URL"));
        let text = version_text(read, &label);
        assert!(text.starts_with("version unknown ("), "{text}");
        assert!(text.contains("http://127.0.0.1:1"), "{text}");
        assert!(!text.contains("SEKRET"), "{text}");
        assert!(!text.contains("api-key"), "{text}");
    }

    #[test]
    fn the_report_counts_its_failures() {
        let mut report = Report::default();
        report.check(true, "rpc a: healthy".into());
        report.check(false, "jupiter b: refused".into());
        assert_eq!(report.failures(), 1);
        let text = report.text(Profile::Mainnet);
        assert!(text.starts_with("kyzlo doctor (mainnet profile)"), "{text}");
        assert!(
            text.contains("ok    rpc a: healthy\nFAIL  jupiter b: refused\n2 checks, 1 failed"),
            "{text}"
        );
    }
}
