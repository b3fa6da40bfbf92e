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

/// A domain refusal, named by the field the domain names.
pub(crate) fn domain(e: DomainError, value: impl ToString) -> ConfigError {
    match e {
        DomainError::InvalidConfig { field, expected } => invalid(field, value, expected),
        other => invalid("value", value, other.to_string()),
    }
}

pub(crate) fn positive_secs(key: &str, v: f64) -> Result<Duration, ConfigError> {
    if v.is_finite() && v > 0.0 && v < 1e7 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(invalid(key, v, "a number of seconds above 0"))
    }
}

pub(crate) fn positive_ms(key: &str, v: u64) -> Result<Duration, ConfigError> {
    if v == 0 {
        Err(invalid(key, v, "milliseconds above 0"))
    } else {
        Ok(Duration::from_millis(v))
    }
}

pub(crate) fn bps(key: &str, v: u16) -> Result<Bps, ConfigError> {
    Bps::new(v).map_err(|_| invalid(key, v, "0 to 10000 bps"))
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// An http(s) URL; a secret one is never echoed in the error.
pub(crate) fn http_url(key: &str, text: &str, secret: bool) -> Result<url::Url, ConfigError> {
    let shown = if secret { "***" } else { text };
    let url = url::Url::parse(text).map_err(|_| invalid(key, shown, "an http(s) URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(key, shown, "an http(s) URL"));
    }
    Ok(url)
}
