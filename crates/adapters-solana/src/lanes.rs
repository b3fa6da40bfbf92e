//! Send lanes: the endpoints a signed transaction is sent to, when they are not the read
//! endpoints. Each lane is a JSON-RPC URL (an RPC provider's send endpoint, a Jito-style
//! block engine, a landing service) with its own headers, its own preflight choice and,
//! for services paid per landing, a tip.
//!
//! Every send, the first and every rebroadcast, posts the SAME signed bytes to ALL lanes
//! at once, each request with its own timeout; the send succeeds as soon as one lane
//! accepts, the other requests still run to their end (and are logged), and when none
//! accepts their errors combine into the most cautious one (a lane that timed out may have
//! forwarded the bytes, so a timeout outranks a refusal).
//!
//! Why the same bytes everywhere, and what that means for tips: one intent must never have
//! two differently-signed transactions in flight, since both could land (a double sell).
//! So a lane's tip is not added per lane: it is a System transfer to the lane's tip account
//! INSIDE the one signed transaction ([`tip_instructions`], appended by the transaction
//! assembler from [`crate::SolanaConfig::tips`]), and every lane receives that transaction
//! with every tip in it. Whichever lane lands it, every tip is paid: configuring a tip on
//! a lane costs its lamports on every landing, not only on the landings that lane made.
//! That is also why one tip account may appear on one lane only (two regional lanes of
//! one service share its tip accounts: one tip pays for both).
//!
//! A lane's header values are secrets (API keys): they are sent to that lane's URL only
//! (no redirects are followed), never to another lane or a read endpoint, and never
//! appear in a log line or a `Debug` output. Lanes are logged by label (a name, or the
//! URL's scheme, host and port), never by URL.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::StreamExt as _;
use futures::future::join_all;
use futures::stream::FuturesUnordered;
use kyzlo_application::ports::{HealthProbe, PortError};
use kyzlo_domain::ErrorClass;
use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_client::rpc_client::RpcClientConfig;
use solana_client::rpc_config::RpcSendTransactionConfig;
use solana_commitment_config::CommitmentConfig;
use solana_instruction::{AccountMeta, Instruction};
use solana_pubkey::Pubkey;
use solana_signature::Signature;
use solana_transaction_status_client_types::UiTransactionEncoding;

use crate::chain::send_once;
use crate::config::{NATIVE_MINT, SolanaConfig, endpoint_label};
use crate::endpoints::{http_client, most_cautious};
use crate::error::{SolanaError, classify};
use crate::sender::HttpRpcSender;

/// Most send lanes: each send is one concurrent request per lane.
pub const MAX_LANES: usize = 8;

/// Largest tip one lane may ask for: 0.01 SOL (10,000,000 lamports). Landing services ask
/// for thousands to a few hundred thousand lamports; more is almost surely a typo (SOL
/// written as lamports), and it is paid on every landing.
pub const MAX_TIP_LAMPORTS: u64 = 10_000_000;

/// The System program, whose instruction 2 is a lamport transfer.
pub const SYSTEM_PROGRAM: Pubkey = Pubkey::from_str_const("11111111111111111111111111111111");

/// The System program's transfer instruction: a `u32` tag, then the lamports as `u64`,
/// both little-endian; accounts: the payer (signer, writable), the recipient (writable).
const SYSTEM_TRANSFER_TAG: u32 = 2;

/// Accounts a tip may never go to: programs (a transfer into an executable account fails
/// the whole transaction) and mints (the lamports would be lost to the mint). Sysvars are
/// refused by their `Sysvar` prefix.
const REFUSED_TIP_ACCOUNTS: [Pubkey; 7] = [
    SYSTEM_PROGRAM,
    Pubkey::from_str_const("ComputeBudget111111111111111111111111111111"),
    Pubkey::from_str_const("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"),
    Pubkey::from_str_const("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb"),
    Pubkey::from_str_const("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL"),
    Pubkey::from_str_const("JUP6LkbZbjS1jKKwapdHNy74zcZ3tLUZoi5QNyVTaV4"),
    NATIVE_MINT,
];

/// Headers a lane may not set: the transport's own.
const RESERVED_HEADERS: [&str; 5] = [
    "host",
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
];

/// A lamport tip to a landing service, paid by a System transfer inside the signed
/// transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tip {
    /// The service's tip account.
    pub account: Pubkey,
    /// Lamports, from 1 to [`MAX_TIP_LAMPORTS`].
    pub lamports: u64,
}

/// One header a lane sends. Its value is a secret: never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct LaneHeader {
    /// The header's name (case-insensitive).
    pub name: String,
    value: String,
}

impl LaneHeader {
    /// A header `name` with the secret `value`.
    #[must_use]
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

impl fmt::Debug for LaneHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ***", self.name)
    }
}

/// One send lane.
#[derive(Clone, PartialEq, Eq)]
pub struct SendLane {
    /// How logs and `kyzlo doctor` name it; never the URL, which may hold a key.
    pub label: String,
    /// The JSON-RPC URL `sendTransaction` is posted to.
    pub url: Url,
    /// Headers sent to this lane only.
    pub headers: Vec<LaneHeader>,
    /// Whether this lane is asked to skip its preflight simulation.
    pub skip_preflight: bool,
    /// The tip this lane asks for, if any.
    pub tip: Option<Tip>,
}

impl SendLane {
    /// A lane to `url`, labelled by its scheme, host and port: no headers, preflight on,
    /// no tip.
    #[must_use]
    pub fn new(url: Url) -> Self {
        Self {
            label: endpoint_label(&url),
            url,
            headers: Vec::new(),
            skip_preflight: false,
            tip: None,
        }
    }
}

impl fmt::Debug for SendLane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendLane")
            .field("label", &self.label)
            .field("headers", &self.headers)
            .field("skip_preflight", &self.skip_preflight)
            .field("tip", &self.tip)
            .finish_non_exhaustive()
    }
}

/// One System transfer of each tip's lamports from `payer` to its account, in order: what
/// the assembler appends to every transaction it builds.
#[must_use]
pub fn tip_instructions(payer: &Pubkey, tips: &[Tip]) -> Vec<Instruction> {
    tips.iter()
        .map(|tip| {
            let mut data = Vec::with_capacity(12);
            data.extend_from_slice(&SYSTEM_TRANSFER_TAG.to_le_bytes());
            data.extend_from_slice(&tip.lamports.to_le_bytes());
            Instruction {
                program_id: SYSTEM_PROGRAM,
                accounts: vec![
                    AccountMeta::new(*payer, true),
                    AccountMeta::new(tip.account, false),
                ],
                data,
            }
        })
        .collect()
}

/// Why `account` may not receive a tip, if it may not.
#[must_use]
pub fn refused_tip_account(account: &Pubkey) -> Option<&'static str> {
    if REFUSED_TIP_ACCOUNTS.contains(account) {
        Some("a landing service's tip account, not a program or mint")
    } else if account.to_string().starts_with("Sysvar") {
        Some("a landing service's tip account, not a sysvar")
    } else {
        None
    }
}

fn config_error(field: &'static str, expected: &'static str) -> SolanaError {
    SolanaError::Config { field, expected }
}

/// Checks the lanes as a whole: how many, their URLs, labels, headers and tips.
pub(crate) fn validate(lanes: &[SendLane]) -> Result<(), SolanaError> {
    if lanes.len() > MAX_LANES {
        return Err(config_error("send_lanes", "at most 8 send lanes"));
    }
    let mut labels: Vec<&str> = Vec::with_capacity(lanes.len());
    let mut tip_accounts: Vec<Pubkey> = Vec::new();
    for lane in lanes {
        if !matches!(lane.url.scheme(), "http" | "https") || lane.url.host().is_none() {
            return Err(config_error(
                "send_lanes.url",
                "http or https URLs with a host",
            ));
        }
        if lane.label.trim().is_empty() || labels.contains(&lane.label.as_str()) {
            return Err(config_error(
                "send_lanes.label",
                "a distinct, non-empty label per lane",
            ));
        }
        labels.push(&lane.label);
        header_map(&lane.headers)?;
        if let Some(tip) = lane.tip {
            if tip.lamports == 0 || tip.lamports > MAX_TIP_LAMPORTS {
                return Err(config_error(
                    "send_lanes.tip.lamports",
                    "from 1 to 10000000 lamports (0.01 SOL)",
                ));
            }
            if let Some(expected) = refused_tip_account(&tip.account) {
                return Err(config_error("send_lanes.tip.account", expected));
            }
            if tip_accounts.contains(&tip.account) {
                return Err(config_error(
                    "send_lanes.tip.account",
                    "each tip account on one lane only: every lane sends the same transaction, so one tip pays for all",
                ));
            }
            tip_accounts.push(tip.account);
        }
    }
    Ok(())
}

/// A lane's headers as sent, values marked sensitive (kept out of `reqwest`'s `Debug`).
fn header_map(headers: &[LaneHeader]) -> Result<HeaderMap, SolanaError> {
    let mut map = HeaderMap::new();
    for header in headers {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .ok()
            .filter(|n| !RESERVED_HEADERS.contains(&n.as_str()))
            .ok_or_else(|| {
                config_error(
                    "send_lanes.headers",
                    "header names (letters, digits, `-`), not host, content-type, content-length, transfer-encoding or connection",
                )
            })?;
        let mut value = HeaderValue::from_str(&header.value)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                config_error(
                    "send_lanes.headers",
                    "non-empty header values of visible characters",
                )
            })?;
        value.set_sensitive(true);
        if map.insert(name, value).is_some() {
            return Err(config_error(
                "send_lanes.headers",
                "each header name once per lane",
            ));
        }
    }
    Ok(map)
}

/// One lane's client.
struct Lane {
    label: String,
    client: RpcClient,
    skip_preflight: bool,
}

/// The configured lanes, ready to send.
pub(crate) struct Lanes {
    list: Vec<Arc<Lane>>,
}

impl Lanes {
    /// One client per lane, each over the no-retry sender with that lane's headers; `None`
    /// when no lane is configured (sends then go to the read endpoints).
    pub(crate) fn new(config: &SolanaConfig) -> Result<Option<Self>, SolanaError> {
        if config.send_lanes.is_empty() {
            return Ok(None);
        }
        validate(&config.send_lanes)?;
        let http = http_client(config, "send_lanes")?;
        let list = config
            .send_lanes
            .iter()
            .map(|lane| {
                let sender =
                    HttpRpcSender::new(http.clone(), lane.url.clone(), config.request_timeout)
                        .with_headers(header_map(&lane.headers)?);
                Ok(Arc::new(Lane {
                    label: lane.label.clone(),
                    client: RpcClient::new_sender(
                        sender,
                        RpcClientConfig::with_commitment(config.commitment_config()),
                    ),
                    skip_preflight: lane.skip_preflight,
                }))
            })
            .collect::<Result<_, SolanaError>>()?;
        Ok(Some(Self { list }))
    }

    /// Posts `bytes` to every lane at once (see the module's documentation).
    pub(crate) async fn send(
        &self,
        bytes: &[u8],
        expected: Signature,
        commitment: CommitmentConfig,
    ) -> Result<(), PortError> {
        const OP: &str = "rpc.sendTransaction";
        let encoded = BASE64.encode(bytes);
        let mut pending: FuturesUnordered<_> = self
            .list
            .iter()
            .map(|lane| {
                let lane = Arc::clone(lane);
                let params = send_params(&encoded, lane.skip_preflight, commitment);
                let label = lane.label.clone();
                // Spawned, so a lane still answering when another has accepted is not cut
                // off: its request runs to its end and its outcome is logged.
                let task = tokio::spawn(async move {
                    let outcome = send_once(&lane.client, params, expected).await;
                    log_outcome(&lane.label, expected, &outcome);
                    outcome
                });
                async move { (label, task.await) }
            })
            .collect();
        let mut seen = Vec::with_capacity(self.list.len());
        while let Some((label, joined)) = pending.next().await {
            match joined {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(error)) => seen.push((label, error)),
                Err(_) => seen.push((
                    label,
                    SolanaError::Other {
                        detail: "send lane task ended abnormally",
                    },
                )),
            }
        }
        Err(most_cautious(OP, seen))
    }
}

/// `sendTransaction`'s parameters: the bytes as base64, no node retries, preflight as the
/// lane asks at `commitment`.
pub(crate) fn send_params(
    encoded: &str,
    skip_preflight: bool,
    commitment: CommitmentConfig,
) -> Value {
    let config = RpcSendTransactionConfig {
        skip_preflight,
        preflight_commitment: Some(commitment.commitment),
        encoding: Some(UiTransactionEncoding::Base64),
        max_retries: Some(0),
        min_context_slot: None,
    };
    json!([encoded, config])
}

fn log_outcome(label: &str, signature: Signature, outcome: &Result<(), SolanaError>) {
    match outcome {
        Ok(()) => tracing::debug!(lane = %label, %signature, "send lane accepted the transaction"),
        Err(error) => tracing::warn!(
            lane = %label,
            %signature,
            class = %error.class(),
            code = ?error.code(),
            error = %error,
            "send lane did not accept the transaction"
        ),
    }
}

/// What a lane said to `getHealth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaneReach {
    /// It answered healthy.
    Healthy,
    /// It answered that it has no `getHealth` (-32601): reachable, a send-only endpoint.
    NoHealthMethod,
    /// It answered with another JSON-RPC error: reachable, with this error.
    Answered(SolanaError),
    /// Not reachable, or failing: transport, timeout, an HTTP error status (401 or 403:
    /// its headers were refused), node unhealthy, or an answer that is not JSON-RPC.
    Failed(SolanaError),
}

/// One lane's reachability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneProbe {
    /// The lane's label.
    pub label: String,
    /// What it said.
    pub reach: LaneReach,
}

/// JSON-RPC code: the method does not exist.
const RPC_METHOD_NOT_FOUND: i64 = -32601;

/// Asks every lane `getHealth`, with its headers, at once: reachability without sending a
/// transaction (`kyzlo doctor`).
///
/// # Errors
/// [`SolanaError::Config`] when the lanes are not valid.
pub async fn probe_lanes(config: &SolanaConfig) -> Result<Vec<LaneProbe>, SolanaError> {
    let Some(lanes) = Lanes::new(config)? else {
        return Ok(Vec::new());
    };
    let answers = join_all(lanes.list.iter().map(|lane| lane.client.get_health())).await;
    Ok(lanes
        .list
        .iter()
        .zip(answers)
        .map(|(lane, answer)| LaneProbe {
            label: lane.label.clone(),
            reach: match answer.map_err(|e| classify(&e)) {
                Ok(()) => LaneReach::Healthy,
                Err(SolanaError::Rpc {
                    code: RPC_METHOD_NOT_FOUND,
                    ..
                }) => LaneReach::NoHealthMethod,
                Err(error @ SolanaError::Rpc { .. }) if !error.is_endpoint_failure() => {
                    LaneReach::Answered(error)
                }
                Err(error) => LaneReach::Failed(error),
            },
        })
        .collect())
}

/// The send path's health probe when send lanes are configured: the send breaker's
/// recovery probe, which sends no transaction. It passes when any lane is reachable
/// (healthy, send-only, or answering), since one accepting lane is enough for a send.
#[derive(Debug, Clone)]
pub struct LanesProbe {
    config: SolanaConfig,
}

impl LanesProbe {
    /// A probe of `config`'s send lanes.
    #[must_use]
    pub fn new(config: SolanaConfig) -> Self {
        Self { config }
    }
}

#[async_trait::async_trait]
impl HealthProbe for LanesProbe {
    async fn probe(&self) -> Result<(), PortError> {
        const OP: &str = "lanes.getHealth";
        let probes = probe_lanes(&self.config)
            .await
            .map_err(|e| e.to_port_error(OP, "config"))?;
        let mut first_failure = None;
        for probe in probes {
            match probe.reach {
                LaneReach::Failed(error) => {
                    first_failure.get_or_insert((probe.label, error));
                }
                LaneReach::Healthy | LaneReach::NoHealthMethod | LaneReach::Answered(_) => {
                    return Ok(());
                }
            }
        }
        Err(match first_failure {
            Some((label, error)) => error.to_port_error(OP, &label),
            None => PortError::new(OP, ErrorClass::Unknown, "no send lane configured"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("test URL")
    }

    fn tip(account: Pubkey, lamports: u64) -> Option<Tip> {
        Some(Tip { account, lamports })
    }

    #[test]
    fn a_tip_is_a_system_transfer_from_the_payer_to_the_tip_account() {
        let payer = Pubkey::new_unique();
        let account = Pubkey::new_unique();
        let tips = [Tip {
            account,
            lamports: 0x0102_0304_0506_0708,
        }];
        let instructions = tip_instructions(&payer, &tips);
        assert_eq!(instructions.len(), 1);
        let ix = &instructions[0];
        assert_eq!(
            ix.program_id.to_string(),
            "11111111111111111111111111111111"
        );
        // Tag 2 (transfer) as u32 little-endian, then the lamports as u64 little-endian.
        assert_eq!(
            ix.data,
            vec![2, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1],
            "System transfer layout"
        );
        assert_eq!(
            ix.accounts,
            vec![
                AccountMeta::new(payer, true),
                AccountMeta::new(account, false)
            ]
        );
        // The System program's own builder makes the very same instruction.
        assert_eq!(
            *ix,
            solana_system_interface::instruction::transfer(&payer, &account, tips[0].lamports)
        );
    }

    #[test]
    fn tips_become_one_transfer_each_in_order_and_none_without_tips() {
        let payer = Pubkey::new_unique();
        assert!(tip_instructions(&payer, &[]).is_empty());
        let tips: Vec<Tip> = (1..=3)
            .map(|i| Tip {
                account: Pubkey::new_unique(),
                lamports: i * 1_000,
            })
            .collect();
        let instructions = tip_instructions(&payer, &tips);
        for (ix, tip) in instructions.iter().zip(&tips) {
            assert_eq!(
                *ix,
                solana_system_interface::instruction::transfer(&payer, &tip.account, tip.lamports)
            );
        }
        assert_eq!(instructions.len(), 3);
    }

    #[test]
    fn lanes_are_refused_by_field() {
        let lane = SendLane::new(url("https://lane.example/"));
        let jito = Pubkey::new_unique();
        let named = |label: &str| SendLane {
            label: label.to_owned(),
            ..SendLane::new(url("https://other.example/"))
        };
        let cases: Vec<(Vec<SendLane>, &str)> = vec![
            (
                (0..9).map(|i| named(&format!("lane{i}"))).collect(),
                "send_lanes",
            ),
            (
                vec![SendLane::new(url("ftp://lane.example/"))],
                "send_lanes.url",
            ),
            (vec![lane.clone(), lane.clone()], "send_lanes.label"),
            (vec![named(" ")], "send_lanes.label"),
            (
                vec![SendLane {
                    headers: vec![LaneHeader::new("bad header", "v")],
                    ..lane.clone()
                }],
                "send_lanes.headers",
            ),
            (
                vec![SendLane {
                    headers: vec![LaneHeader::new("content-type", "text/plain")],
                    ..lane.clone()
                }],
                "send_lanes.headers",
            ),
            (
                vec![SendLane {
                    headers: vec![LaneHeader::new("x-api-key", "line\nbreak")],
                    ..lane.clone()
                }],
                "send_lanes.headers",
            ),
            (
                vec![SendLane {
                    headers: vec![
                        LaneHeader::new("x-api-key", "a"),
                        LaneHeader::new("X-Api-Key", "b"),
                    ],
                    ..lane.clone()
                }],
                "send_lanes.headers",
            ),
            (
                vec![SendLane {
                    tip: tip(jito, 0),
                    ..lane.clone()
                }],
                "send_lanes.tip.lamports",
            ),
            (
                vec![SendLane {
                    tip: tip(jito, MAX_TIP_LAMPORTS + 1),
                    ..lane.clone()
                }],
                "send_lanes.tip.lamports",
            ),
            (
                vec![SendLane {
                    tip: tip(SYSTEM_PROGRAM, 1_000),
                    ..lane.clone()
                }],
                "send_lanes.tip.account",
            ),
            (
                vec![SendLane {
                    tip: tip(
                        Pubkey::from_str_const("SysvarRent111111111111111111111111111111111"),
                        1_000,
                    ),
                    ..lane.clone()
                }],
                "send_lanes.tip.account",
            ),
            (
                vec![
                    SendLane {
                        tip: tip(jito, 1_000),
                        ..lane.clone()
                    },
                    SendLane {
                        tip: tip(jito, 2_000),
                        ..named("second")
                    },
                ],
                "send_lanes.tip.account",
            ),
        ];
        for (lanes, field) in cases {
            match validate(&lanes) {
                Err(SolanaError::Config { field: got, .. }) => assert_eq!(got, field, "{lanes:?}"),
                other => panic!("{field}: expected a config error, got {other:?}"),
            }
        }
        let good = vec![
            SendLane {
                headers: vec![LaneHeader::new("x-api-key", "k")],
                skip_preflight: true,
                tip: tip(jito, MAX_TIP_LAMPORTS),
                ..lane
            },
            named("second"),
        ];
        assert_eq!(validate(&good), Ok(()));
    }

    #[test]
    fn a_lane_never_shows_its_header_values_or_url() {
        let lane = SendLane {
            headers: vec![LaneHeader::new("x-api-key", "hunter2-secret")],
            ..SendLane::new(url("https://lane.example/?api-key=url-secret"))
        };
        let shown = format!("{lane:?}");
        assert!(!shown.contains("hunter2-secret"), "{shown}");
        assert!(!shown.contains("url-secret"), "{shown}");
        assert!(shown.contains("x-api-key: ***"), "{shown}");
        assert_eq!(lane.label, "https://lane.example");
        let map = header_map(&lane.headers).expect("valid");
        assert!(!format!("{map:?}").contains("hunter2-secret"));
    }
}
