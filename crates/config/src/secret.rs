//! A secret from the configuration: never printed, never in a `Debug` output.

use serde::{Deserialize, Serialize};

/// A secret string (an API key, a bearer token, a webhook URL). Its `Debug` is `***`;
/// [`Secret::expose`] is the one way to read it, at the place it is sent.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one host it belongs to.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The masked stand-in shown by `config check`.
    #[must_use]
    pub fn masked() -> Self {
        Self("***".to_owned())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_shows_in_debug() {
        let s = Secret::new("hunter2-hunter2");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(***)");
        assert_eq!(s.expose(), "hunter2-hunter2");
    }
}
