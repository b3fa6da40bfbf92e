//! Keeping secrets out of what the configuration prints: the masked file `config check`
//! shows, and the load errors that quote a key's value or a line of the file.

use crate::check;

/// An RPC endpoint with its path and query (where providers put API keys) masked.
pub(crate) fn mask_path(endpoint: &str) -> String {
    match url::Url::parse(endpoint) {
        Ok(url)
            if url.path() != "/"
                || url.query().is_some()
                || !url.username().is_empty()
                || url.password().is_some() =>
        {
            format!(
                "{}://{}/***",
                url.scheme(),
                url.host_str().unwrap_or_default()
            )
        }
        Ok(_) => endpoint.to_owned(),
        Err(_) => "***".to_owned(),
    }
}

/// The keys whose values are secrets: never echoed in an error.
pub(crate) const SECRET_KEYS: [&str; 9] = [
    "jupiter.api_key",
    "api.bearer_token",
    "api.approval_key",
    "alerts.slack_webhook",
    "alerts.discord_webhook",
    "alerts.generic_webhook",
    "alerts.telegram_bot_token",
    // A send lane's URL may hold an API key, and a whole list given the wrong type (one
    // environment variable) is one string holding every lane.
    "rpc.send_lanes",
    // The PostgreSQL journal's URL holds its password.
    "journal.url",
];

/// The key whose values are URLs that may carry an API key in their path or query: they
/// are shown, as in [`File::masked_toml`], with scheme and host only. Its elements
/// (`rpc.endpoints.0`) are matched too.
pub(crate) const ENDPOINTS_KEY: &str = "rpc.endpoints";

/// The mask put in place of a secret value in a shown source line.
pub(crate) const MASK: &str = "***";

/// Whether the dotted `key` is `name` or inside it, with or without figment's profile
/// prefix (`default.rpc.endpoints.0` is `rpc.endpoints`).
pub(crate) fn is_or_under(key: &str, name: &str) -> bool {
    let dotted = format!(".{name}");
    let under = |rest: &str| rest.is_empty() || rest.starts_with('.');
    key.strip_prefix(name).is_some_and(under)
        || key
            .match_indices(&dotted)
            .any(|(at, _)| under(&key[at + dotted.len()..]))
}

/// One load error as an operator reads it: the key as written in the file (without
/// figment's profile prefix), what was found and what is allowed, where it came from;
/// control characters escaped. A secret's value is never shown, an endpoint's only by
/// scheme and host, and a source line quoted from the file has its secrets masked.
pub(crate) fn describe(e: &figment::Error) -> String {
    use figment::error::{Actual, Kind};
    let key = e.path.join(".");
    // A secret given with the wrong type (a numeric approval key) is named, never echoed.
    let secret = SECRET_KEYS.iter().any(|s| is_or_under(&key, s));
    let endpoint = is_or_under(&key, ENDPOINTS_KEY);
    let found = |value: &Actual| match value {
        _ if secret => "a value (not shown: this key is a secret)".to_owned(),
        Actual::Str(url) if endpoint => format!("string {:?}", mask_path(url)),
        Actual::Bytes(_) | Actual::Other(_) if endpoint => {
            "a value (not shown: an endpoint may hold an API key)".to_owned()
        }
        value => check::printable(&value.to_string()),
    };
    let list = |names: &[&str]| {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let what = match &e.kind {
        Kind::UnknownField(found, allowed) => format!(
            "unknown key `{}`; the keys here are {}",
            check::printable(found),
            list(allowed)
        ),
        Kind::UnknownVariant(found, allowed) => format!(
            "`{}` is not allowed; expected one of {}",
            check::printable(found),
            list(allowed)
        ),
        Kind::InvalidType(value, expected) => {
            format!("found {}, expected {expected}", found(value))
        }
        Kind::InvalidValue(value, expected) => {
            format!("invalid value {}, expected {expected}", found(value))
        }
        // A parse error's own layout (the line and a caret under it) is kept; the line
        // quoted from the file has its secrets masked.
        other => other
            .to_string()
            .lines()
            .map(|line| check::printable(&mask_line(line)))
            .collect::<Vec<_>>()
            .join("\n"),
    };
    let origin = match &e.metadata {
        Some(m) => match &m.source {
            Some(source) => format!(" (in {})", check::printable(&source.to_string())),
            // The environment: the variable as it is spelled there.
            None => format!(
                " (from the environment variable KYZLO_{})",
                check::printable(
                    &e.path
                        .iter()
                        .map(|p| p.to_uppercase())
                        .collect::<Vec<_>>()
                        .join("__")
                )
            ),
        },
        None => String::new(),
    };
    let key = if key.is_empty() {
        "(file)".to_owned()
    } else {
        check::printable(&key)
    };
    format!("{key}: {what}{origin}")
}

/// A line of a parse error, which may quote the file: from a secret's `name =` on, the
/// value is masked and the key kept; any other URL on the line (an endpoint) keeps only
/// its scheme and host.
pub(crate) fn mask_line(line: &str) -> String {
    let names = SECRET_KEYS.iter().map(|key| {
        // In the file a key is written under its table (`api_key = ...` in `[jupiter]`)
        // or dotted (`jupiter.api_key = ...`): its last part is what is always there.
        key.rsplit('.').next().unwrap_or(key)
    });
    for name in names {
        for (at, _) in line.match_indices(name) {
            let rest = line[at + name.len()..].trim_start();
            let bare = !line[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            if bare && rest.starts_with('=') {
                let value_at = line.len() - rest.len() + 1;
                return format!("{} {MASK}", &line[..value_at]);
            }
        }
    }
    mask_urls(line)
}

/// `text` with each URL in it (a run of URL characters around `://`) masked as
/// [`mask_path`] masks an endpoint.
pub(crate) fn mask_urls(text: &str) -> String {
    let url_char = |c: char| !c.is_whitespace() && !matches!(c, '"' | '\'' | ',' | '[' | ']');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let start = rest[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |i| i + 1);
        let end = rest[at + 3..]
            .find(|c: char| !url_char(c))
            .map_or(rest.len(), |i| at + 3 + i);
        out.push_str(&rest[..start]);
        out.push_str(&mask_path(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}
