//! The error every refusal becomes, and the checks the sections share.

use std::time::Duration;

use kyzlo_domain::{Bps, DomainError};

/// A refused configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or environment could not be read or parsed (unknown key, wrong type).
    #[error("configuration: {0}")]
    Load(String),
    /// A value outside what is allowed.
    #[error("configuration: {key} = {value}: expected {expected}")]
    Invalid {
        /// The key, as written in the file.
        key: String,
        /// The value given (`***` for a secret).
        value: String,
        /// What is allowed.
        expected: String,
    },
    /// A key names an environment variable (holding a secret) that is not set.
    #[error(
        "configuration: {key} = {variable}: the environment variable {variable} is not set (it holds the value to send)"
    )]
    MissingVariable {
        /// The key, as written in the file.
        key: String,
        /// The variable's name.
        variable: String,
    },
}

pub(crate) fn invalid(
    key: impl Into<String>,
    value: impl ToString,
    expected: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        value: value.to_string(),
        expected: expected.into(),
    }
}

/// A domain refusal of a rule built from `section` (written under `[name]`): the key as
/// written in the file and its value as given, looked up from the field the domain names
/// (`exit_ladder.rungs` is `exit.ladder`, `retry.total_budget` is `retry.total_s`).
pub(crate) fn domain(e: DomainError, name: &str, section: &impl serde::Serialize) -> ConfigError {
    let (field, expected) = match e {
        DomainError::InvalidConfig { field, expected } => (field, expected.to_owned()),
        other => ("", other.to_string()),
    };
    let table = toml::Value::try_from(section)
        .ok()
        .and_then(|v| v.as_table().cloned())
        .unwrap_or_default();
    let last = field.rsplit('.').next().unwrap_or(field);
    let key = match last {
        "rungs" => "ladder".to_owned(),
        "total_budget" => "total_s".to_owned(),
        "window" if !table.contains_key("window") => "latency_window".to_owned(),
        _ if table.contains_key(last) => last.to_owned(),
        _ => table
            .keys()
            .find(|k| k.starts_with(last))
            .cloned()
            .unwrap_or_else(|| last.to_owned()),
    };
    let value = table
        .get(&key)
        .map_or_else(|| "(as written)".to_owned(), ToString::to_string);
    invalid(format!("{name}.{key}"), value, expected)
}

/// The longest span a seconds value may give (about 115 days).
pub(crate) const MAX_SECS: f64 = 1e7;

pub(crate) fn positive_secs(key: &str, v: f64) -> Result<Duration, ConfigError> {
    if v.is_finite() && v > 0.0 && v < MAX_SECS {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(invalid(
            key,
            v,
            "a number of seconds above 0 and below 10000000 (about 115 days)",
        ))
    }
}

/// The longest a single request may be given.
pub(crate) const MAX_REQUEST_MS: u64 = 120_000;

/// A request timeout: above 0 and at most [`MAX_REQUEST_MS`].
pub(crate) fn positive_ms(key: &str, v: u64) -> Result<Duration, ConfigError> {
    if v == 0 || v > MAX_REQUEST_MS {
        Err(invalid(key, v, "milliseconds from 1 to 120000"))
    } else {
        Ok(Duration::from_millis(v))
    }
}

/// `text` with control characters escaped, so that an error message never writes raw
/// terminal control bytes.
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

pub(crate) fn bps(key: &str, v: u16) -> Result<Bps, ConfigError> {
    Bps::new(v).map_err(|_| invalid(key, v, "0 to 10000 bps"))
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Which URLs a key accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// http or https.
    Any,
    /// https, or http to a loopback address (a local test server).
    Https,
}

/// An http(s) URL; a secret one is never echoed in the error.
pub(crate) fn http_url(
    key: &str,
    text: &str,
    secret: bool,
    scheme: Scheme,
) -> Result<url::Url, ConfigError> {
    let shown = if secret {
        "***".to_owned()
    } else {
        printable(text)
    };
    let url = url::Url::parse(text).map_err(|_| invalid(key, &shown, "an http(s) URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(key, &shown, "an http(s) URL"));
    }
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    if scheme == Scheme::Https && url.scheme() == "http" && !loopback {
        return Err(invalid(
            key,
            &shown,
            "an https URL on mainnet (plain http only to a loopback address)",
        ));
    }
    Ok(url)
}
