//! Cross-site requests on the control routes. A browser sends `Origin` with every POST; a
//! page from another site (or a DNS name rebound to this host) that posts to the API is
//! refused before its credentials are looked at. Without a bearer token (loopback only)
//! the `Host` must also name this machine: a rebound name is another origin with the same
//! address, and nothing else stands between it and `/halt`. Clients that send no `Origin`
//! (curl, scripts) are not browsers and are let through to the token check.

use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};

/// Why a request was refused as cross-site.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CrossSite {
    /// `Origin` names another site than `Host`.
    Origin,
    /// Without a token, `Host` is not a loopback name.
    Host,
}

/// Checks a control request's `Origin` against its `Host`; `tokenless` also requires a
/// loopback `Host`.
pub(crate) fn check(headers: &HeaderMap, tokenless: bool) -> Result<(), CrossSite> {
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    if tokenless && !host.is_some_and(is_loopback_host) {
        return Err(CrossSite::Host);
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().map_err(|_| CrossSite::Origin)?;
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .ok_or(CrossSite::Origin)?;
    match host {
        Some(host) if authority.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(CrossSite::Origin),
    }
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split_once(']').map_or("", |(name, _)| name)
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(host: Option<&str>, origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(host) = host {
            h.insert(HOST, HeaderValue::from_str(host).unwrap());
        }
        if let Some(origin) = origin {
            h.insert(ORIGIN, HeaderValue::from_str(origin).unwrap());
        }
        h
    }

    #[test]
    fn a_post_from_another_site_is_refused() {
        let ok = |host, origin, tokenless| check(&headers(host, origin), tokenless);
        assert_eq!(ok(Some("127.0.0.1:9000"), None, true), Ok(()));
        assert_eq!(
            ok(Some("127.0.0.1:9000"), Some("http://127.0.0.1:9000"), true),
            Ok(())
        );
        assert_eq!(
            ok(Some("localhost:9000"), Some("http://LOCALHOST:9000"), true),
            Ok(())
        );
        assert_eq!(
            ok(Some("[::1]:9000"), Some("http://[::1]:9000"), true),
            Ok(())
        );
        assert_eq!(
            ok(Some("127.0.0.1:9000"), Some("https://evil.example"), true),
            Err(CrossSite::Origin)
        );
        assert_eq!(
            ok(Some("127.0.0.1:9000"), Some("null"), true),
            Err(CrossSite::Origin)
        );
        assert_eq!(
            ok(Some("127.0.0.1:9000"), Some("http://127.0.0.1:9001"), true),
            Err(CrossSite::Origin)
        );
        // A name rebound to this host: same origin, but not a loopback name.
        assert_eq!(
            ok(
                Some("evil.example:9000"),
                Some("http://evil.example:9000"),
                true
            ),
            Err(CrossSite::Host)
        );
        assert_eq!(ok(None, None, true), Err(CrossSite::Host));
        // With a token, any host name that matches its origin.
        assert_eq!(
            ok(
                Some("bot.example:9000"),
                Some("https://bot.example:9000"),
                false
            ),
            Ok(())
        );
        assert_eq!(
            ok(
                Some("bot.example:9000"),
                Some("https://evil.example"),
                false
            ),
            Err(CrossSite::Origin)
        );
    }
}
