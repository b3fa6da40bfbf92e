//! `[[rpc.send_lanes]]`: where signed transactions are sent, when not to the read
//! endpoints. Every send posts the same signed bytes to every lane at once; a lane's tip
//! is a transfer inside that one transaction, so it is paid whichever lane lands it.
//!
//! ```toml
//! [[rpc.send_lanes]]
//! name = "helius"                                # optional; default: the URL's host
//! url = "https://mainnet.helius-rpc.com/"
//! headers = { "x-api-key" = "HELIUS_KEY" }       # header -> NAME of an environment variable
//! skip_preflight = false                         # optional; default: rpc.skip_preflight
//!
//! [[rpc.send_lanes]]
//! url = "https://mainnet.block-engine.jito.wtf/api/v1/transactions"
//! skip_preflight = true
//! tip = { account = "<a tip account of the service>", lamports = 10000 }
//! ```
//!
//! In the environment, the whole list in one variable (figment's inline syntax: strings in
//! double quotes, tables in braces):
//! `KYZLO_RPC__SEND_LANES='[{url="https://a.example/", headers={x-api-key="A_KEY"}}]'`.
//!
//! A header's value is read from its environment variable when the configuration is
//! validated (by `config check` and every run alike): a variable that is not set is
//! refused, naming it, and so is one named `KYZLO_*` (those are configuration keys). The value is a [`Secret`]: sent to that lane's URL only, never
//! shown; what the file holds, and what `config check` prints, is the variable's name.

use std::collections::BTreeMap;
use std::env::VarError;

use serde::{Deserialize, Serialize};
use solana_pubkey::Pubkey;
use url::Url;

use crate::check::{ConfigError, Scheme, http_url, invalid, printable};
use crate::secret::Secret;

/// Most send lanes: each send is one concurrent request per lane.
pub const MAX_LANES: usize = 8;

/// Largest tip a lane may ask for: 0.01 SOL. Landing services ask for thousands to a few
/// hundred thousand lamports; more is almost surely SOL written as lamports, and a tip is
/// paid on every landing.
pub const MAX_TIP_LAMPORTS: u64 = 10_000_000;

/// Longest lane name.
const MAX_NAME: usize = 40;

/// Headers the transport sets itself.
const RESERVED_HEADERS: [&str; 5] = [
    "host",
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
];

/// One `[[rpc.send_lanes]]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendLaneFile {
    /// How logs and `kyzlo doctor` name the lane (default: the URL's scheme, host and port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The JSON-RPC URL `sendTransaction` is posted to. It may hold an API key: it is
    /// shown masked, and logged by the lane's name only.
    pub url: String,
    /// Header name -> the NAME of the environment variable holding the header's value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Ask this lane to skip its preflight simulation (default: `rpc.skip_preflight`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_preflight: Option<bool>,
    /// The tip this lane's service asks for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tip: Option<TipFile>,
}

/// A lane's `tip` as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TipFile {
    /// The service's tip account (base58).
    pub account: String,
    /// Lamports, from 1 to 10,000,000 (0.01 SOL).
    pub lamports: u64,
}

/// A send lane, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendLane {
    /// Its name in logs and `kyzlo doctor`.
    pub label: String,
    /// Where `sendTransaction` is posted. It may hold an API key: never log it whole.
    pub url: Url,
    /// The headers sent to this lane only, values read from the environment.
    pub headers: Vec<LaneHeader>,
    /// Whether the lane is asked to skip its preflight simulation.
    pub skip_preflight: bool,
    /// The tip it asks for.
    pub tip: Option<LaneTip>,
}

/// One header of a lane, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneHeader {
    /// The header's name, lower case.
    pub name: String,
    /// The environment variable its value was read from.
    pub variable: String,
    /// The value (shown as `***`).
    pub value: Secret,
}

/// A lane's tip, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneTip {
    /// The service's tip account.
    pub account: Pubkey,
    /// Lamports, from 1 to [`MAX_TIP_LAMPORTS`].
    pub lamports: u64,
}

/// Validates the lanes; `skip_preflight` is `rpc.skip_preflight`, `env` reads a variable.
pub(crate) fn validate(
    lanes: &[SendLaneFile],
    skip_preflight: bool,
    scheme: Scheme,
    env: &dyn Fn(&str) -> Result<String, VarError>,
) -> Result<Vec<SendLane>, ConfigError> {
    if lanes.len() > MAX_LANES {
        return Err(invalid(
            "rpc.send_lanes",
            format!("{} lanes", lanes.len()),
            format!("at most {MAX_LANES} send lanes"),
        ));
    }
    let mut valid: Vec<SendLane> = Vec::with_capacity(lanes.len());
    for (i, lane) in lanes.iter().enumerate() {
        let key = |field: &str| format!("rpc.send_lanes[{i}].{field}");
        let url = http_url(&key("url"), &lane.url, true, scheme)?;
        let label = match &lane.name {
            Some(name) => lane_name(&key("name"), name)?,
            None => host_label(&url),
        };
        if valid.iter().any(|other| other.label == label) {
            return Err(invalid(
                key("name"),
                printable(&label),
                "a name no other lane has (two lanes on one host need a name each)",
            ));
        }
        let headers = lane
            .headers
            .iter()
            .map(|(name, variable)| header(&key(&format!("headers.{name}")), name, variable, env))
            .collect::<Result<Vec<_>, _>>()?;
        let tip = lane.tip.as_ref().map(|t| tip(&key("tip"), t)).transpose()?;
        if let Some(tip) = tip
            && valid
                .iter()
                .any(|other| other.tip.is_some_and(|t| t.account == tip.account))
        {
            return Err(invalid(
                key("tip.account"),
                tip.account,
                "an account no other lane tips: every lane sends the same transaction, so one tip pays for all of them",
            ));
        }
        valid.push(SendLane {
            label,
            url,
            headers,
            skip_preflight: lane.skip_preflight.unwrap_or(skip_preflight),
            tip,
        });
    }
    Ok(valid)
}

/// The URL's scheme, host and port: never its path, query or user, where keys go.
fn host_label(url: &Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

fn lane_name(key: &str, name: &str) -> Result<String, ConfigError> {
    let fits = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if fits {
        Ok(name.to_owned())
    } else {
        Err(invalid(
            key,
            printable(name),
            format!("1 to {MAX_NAME} letters, digits, `-`, `_` or `.`"),
        ))
    }
}

/// A header name: an HTTP token (RFC 9110), not one the transport sets.
fn header_name(name: &str) -> Option<String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    let lower = name.to_ascii_lowercase();
    (!name.is_empty() && name.chars().all(token) && !RESERVED_HEADERS.contains(&lower.as_str()))
        .then_some(lower)
}

/// An environment variable's name as conventionally spelled: upper-case letters, digits
/// and `_`, not starting with a digit. Anything else may be the value itself pasted in
/// by mistake, so it is never echoed.
fn variable_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 128
        && !text.starts_with(|c: char| c.is_ascii_digit())
        && text
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn header(
    key: &str,
    name: &str,
    variable: &str,
    env: &dyn Fn(&str) -> Result<String, VarError>,
) -> Result<LaneHeader, ConfigError> {
    let lower = header_name(name).ok_or_else(|| {
        invalid(
            key,
            printable(name),
            "a header name (letters, digits, `-`), not host, content-type, content-length, transfer-encoding or connection",
        )
    })?;
    if !variable_name(variable) {
        return Err(invalid(
            key,
            "(not shown: it may be the secret itself)",
            "the NAME of the environment variable holding the header's value (A-Z, 0-9, _), not the value",
        ));
    }
    if variable.starts_with("KYZLO_") {
        return Err(invalid(
            key,
            variable,
            "a variable whose name does not start with KYZLO_ (those are read as configuration keys)",
        ));
    }
    let value = match env(variable) {
        Ok(value) => value,
        Err(VarError::NotPresent) => {
            return Err(ConfigError::MissingVariable {
                key: key.to_owned(),
                variable: variable.to_owned(),
            });
        }
        Err(VarError::NotUnicode(_)) => {
            return Err(invalid(
                key,
                variable,
                format!("{variable} to hold text (its value is not shown)"),
            ));
        }
    };
    // What an HTTP header value may hold: visible ASCII and inner spaces.
    let sendable = !value.is_empty()
        && value.trim() == value
        && value.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
    if !sendable {
        return Err(invalid(
            key,
            variable,
            format!(
                "{variable} to hold a header value: not empty, visible characters only (its value is not shown)"
            ),
        ));
    }
    Ok(LaneHeader {
        name: lower,
        variable: variable.to_owned(),
        value: Secret::new(value),
    })
}

fn tip(key: &str, tip: &TipFile) -> Result<LaneTip, ConfigError> {
    let account = tip.account.parse::<Pubkey>().map_err(|_| {
        invalid(
            format!("{key}.account"),
            printable(&tip.account),
            "a base58 account address (the landing service's tip account)",
        )
    })?;
    if tip.lamports == 0 || tip.lamports > MAX_TIP_LAMPORTS {
        return Err(invalid(
            format!("{key}.lamports"),
            tip.lamports,
            format!("1 to {MAX_TIP_LAMPORTS} lamports (0.01 SOL): a tip is paid on every landing"),
        ));
    }
    Ok(LaneTip {
        account,
        lamports: tip.lamports,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIP_ACCOUNT: &str = "96gYZGLnJYVFmbjzopPSU6QiEV5fGqZNyN9nmNhvrZU5";

    fn lane(url: &str) -> SendLaneFile {
        SendLaneFile {
            name: None,
            url: url.to_owned(),
            headers: BTreeMap::new(),
            skip_preflight: None,
            tip: None,
        }
    }

    fn env_of(
        vars: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&str) -> Result<String, VarError> {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
                .ok_or(VarError::NotPresent)
        }
    }

    fn check(
        lanes: &[SendLaneFile],
        vars: &'static [(&'static str, &'static str)],
    ) -> Result<Vec<SendLane>, ConfigError> {
        validate(lanes, false, Scheme::Https, &env_of(vars))
    }

    /// The refused key and the whole message.
    fn refused(
        lanes: &[SendLaneFile],
        vars: &'static [(&'static str, &'static str)],
    ) -> (String, String) {
        let error = check(lanes, vars).expect_err("refused");
        let message = error.to_string();
        match error {
            ConfigError::Invalid { key, .. } | ConfigError::MissingVariable { key, .. } => {
                (key, message)
            }
            other => panic!("expected a refusal naming a key, got {other:?}"),
        }
    }

    #[test]
    fn a_lane_reads_its_header_from_the_environment_and_keeps_it_secret() {
        let lanes = [SendLaneFile {
            headers: BTreeMap::from([("X-Api-Key".to_owned(), "LANE_KEY".to_owned())]),
            skip_preflight: Some(true),
            tip: Some(TipFile {
                account: TIP_ACCOUNT.to_owned(),
                lamports: 10_000,
            }),
            ..lane("https://lane.example/?api-key=url-secret")
        }];
        let valid = check(&lanes, &[("LANE_KEY", "hunter2-header")]).expect("valid");
        assert_eq!(valid[0].label, "https://lane.example");
        assert_eq!(valid[0].headers[0].name, "x-api-key");
        assert_eq!(valid[0].headers[0].variable, "LANE_KEY");
        assert_eq!(valid[0].headers[0].value.expose(), "hunter2-header");
        assert!(valid[0].skip_preflight);
        assert_eq!(valid[0].tip.map(|t| t.lamports), Some(10_000));
        let shown = format!("{valid:?}");
        assert!(!shown.contains("hunter2-header"), "{shown}");
    }

    #[test]
    fn a_missing_variable_is_refused_by_name() {
        let lanes = [SendLaneFile {
            headers: BTreeMap::from([("x-api-key".to_owned(), "NOT_SET_ANYWHERE".to_owned())]),
            ..lane("https://lane.example/")
        }];
        match check(&lanes, &[]) {
            Err(ConfigError::MissingVariable { key, variable }) => {
                assert_eq!(key, "rpc.send_lanes[0].headers.x-api-key");
                assert_eq!(variable, "NOT_SET_ANYWHERE");
            }
            other => panic!("expected a missing variable, got {other:?}"),
        }
    }

    #[test]
    fn bad_lanes_are_refused_by_key_without_echoing_secrets() {
        let with_header = |name: &str, variable: &str| SendLaneFile {
            headers: BTreeMap::from([(name.to_owned(), variable.to_owned())]),
            ..lane("https://lane.example/")
        };
        let with_tip = |account: &str, lamports: u64| SendLaneFile {
            tip: Some(TipFile {
                account: account.to_owned(),
                lamports,
            }),
            ..lane("https://lane.example/")
        };
        let named = |name: &str, url: &str| SendLaneFile {
            name: Some(name.to_owned()),
            ..lane(url)
        };
        let vars: &'static [(&str, &str)] = &[("K", "v"), ("BAD_VALUE", "line\nbreak-secret")];
        let cases: Vec<(Vec<SendLaneFile>, &str)> = vec![
            (
                vec![with_tip("not-a-key", 1_000)],
                "rpc.send_lanes[0].tip.account",
            ),
            (
                vec![with_tip(TIP_ACCOUNT, 0)],
                "rpc.send_lanes[0].tip.lamports",
            ),
            (
                vec![with_tip(TIP_ACCOUNT, MAX_TIP_LAMPORTS + 1)],
                "rpc.send_lanes[0].tip.lamports",
            ),
            (
                vec![
                    with_tip(TIP_ACCOUNT, 1_000),
                    SendLaneFile {
                        name: Some("second".to_owned()),
                        ..with_tip(TIP_ACCOUNT, 2_000)
                    },
                ],
                "rpc.send_lanes[1].tip.account",
            ),
            (vec![lane("ftp://lane.example/")], "rpc.send_lanes[0].url"),
            (vec![lane("http://lane.example/")], "rpc.send_lanes[0].url"),
            (
                vec![
                    lane("https://lane.example/a"),
                    lane("https://lane.example/b"),
                ],
                "rpc.send_lanes[1].name",
            ),
            (
                vec![named("has space", "https://a.example/")],
                "rpc.send_lanes[0].name",
            ),
            (
                vec![with_header("bad header", "K")],
                "rpc.send_lanes[0].headers.bad header",
            ),
            (
                vec![with_header("Content-Type", "K")],
                "rpc.send_lanes[0].headers.Content-Type",
            ),
            (
                vec![with_header("x-api-key", "sk-live-pasted-secret")],
                "rpc.send_lanes[0].headers.x-api-key",
            ),
            (
                vec![with_header("x-api-key", "BAD_VALUE")],
                "rpc.send_lanes[0].headers.x-api-key",
            ),
            (
                vec![with_header("x-api-key", "KYZLO_LANE_KEY")],
                "rpc.send_lanes[0].headers.x-api-key",
            ),
            (
                (0..=MAX_LANES)
                    .map(|i| named(&format!("lane{i}"), "https://lane.example/"))
                    .collect(),
                "rpc.send_lanes",
            ),
        ];
        for (lanes, key) in cases {
            let (got, message) = refused(&lanes, vars);
            assert_eq!(got, key, "{message}");
            assert!(!message.contains("sk-live-pasted-secret"), "{message}");
            assert!(!message.contains("break-secret"), "{message}");
        }
        // Plain http is fine off mainnet, and to a loopback address on it.
        assert!(
            validate(
                &[lane("http://lane.example/")],
                false,
                Scheme::Any,
                &env_of(&[])
            )
            .is_ok()
        );
        assert!(check(&[lane("http://127.0.0.1:8899/")], &[]).is_ok());
    }

    #[test]
    fn a_lanes_preflight_defaults_to_the_rpc_sections() {
        let lanes = [lane("https://a.example/")];
        let on = validate(&lanes, true, Scheme::Https, &env_of(&[])).expect("valid");
        assert!(on[0].skip_preflight);
        let off = validate(&lanes, false, Scheme::Https, &env_of(&[])).expect("valid");
        assert!(!off[0].skip_preflight);
    }
}
