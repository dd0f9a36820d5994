//! Who is asking, and how long they will wait: the client address (behind a trusted proxy or
//! not) and the client's own deadline header.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http::HeaderMap;

use crate::proxy::TrustedProxies;

/// The header a client may send to say how long it will wait, in whole milliseconds from when
/// the request is received (a relative budget, not a wall-clock instant, so client clock skew
/// does not matter): `X-Request-Deadline-Ms: 1500`.
pub const DEADLINE_HEADER: &str = "x-request-deadline-ms";

/// Client deadlines above this are treated as this (a bound on any wait; admission waits are far
/// shorter anyway).
pub const CLIENT_DEADLINE_MS_MAX: u64 = 3_600_000;

/// The client's remaining budget from [`DEADLINE_HEADER`], if present and a plain non-negative
/// integer (anything else is ignored, not refused). Pass it to [`crate::Admission::admit`]: a
/// request never waits in a lane queue longer than its client will wait for the answer.
pub fn client_deadline(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(DEADLINE_HEADER)?.to_str().ok()?.trim();
    if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ms: u64 = value.parse().ok()?;
    Some(Duration::from_millis(ms.min(CLIENT_DEADLINE_MS_MAX)))
}

/// The address admission keys a client by.
///
/// The TCP peer's address, unless the peer is a trusted proxy (`trusted_proxy_cidrs`) and a
/// `trusted_proxy_header` is configured: then the header's **rightmost** address is used — the
/// one the trusted proxy appended; addresses to its left were written by the client and prove
/// nothing. A connection from any other peer cannot change its address by sending the header.
/// Understands `X-Forwarded-For: a, b, c`, `X-Real-IP: a`, and `Forwarded: for=a;proto=…,
/// for="[v6]:port"` (RFC 7239); with several header lines, the last line counts. An absent,
/// unparsable or unspecified (`0.0.0.0`, `::`) value falls back to the peer. IPv4-mapped IPv6 is
/// folded to IPv4.
pub fn client_addr(peer: SocketAddr, headers: &HeaderMap, proxies: &TrustedProxies) -> IpAddr {
    let peer_ip = peer.ip().to_canonical();
    let Some(name) = proxies.header_for(peer_ip) else {
        return peer_ip;
    };
    let Some(line) = headers.get_all(name).iter().next_back() else {
        return peer_ip;
    };
    let Ok(line) = line.to_str() else {
        return peer_ip;
    };
    let Some(last) = line.rsplit(',').next() else {
        return peer_ip;
    };
    match parse_forwarded_element(last) {
        Some(ip) if !ip.is_unspecified() => ip.to_canonical(),
        _ => peer_ip,
    }
}

/// One list element: a bare address (`1.2.3.4`, `1.2.3.4:5`, `2001:db8::1`, `[2001:db8::1]:5`)
/// or an RFC 7239 element (`for=1.2.3.4;proto=https`, `for="[2001:db8::1]:5"`).
fn parse_forwarded_element(element: &str) -> Option<IpAddr> {
    let element = element.trim();
    let value = if element.contains('=') {
        element.split(';').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            key.trim()
                .eq_ignore_ascii_case("for")
                .then_some(value.trim())
        })?
    } else {
        element
    };
    let value = value.trim_matches('"');
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sock) = value.parse::<SocketAddr>() {
        return Some(sock.ip());
    }
    // `[v6]` without a port.
    value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .and_then(|v| v.parse::<IpAddr>().ok())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use http::{HeaderName, HeaderValue};

    /// Trusts the test peer's network for `name`.
    fn trusting(name: &HeaderName) -> TrustedProxies {
        TrustedProxies {
            header: Some(name.clone()),
            cidrs: vec!["192.0.2.0/24".parse().unwrap()],
        }
    }

    fn peer() -> SocketAddr {
        "192.0.2.7:5555".parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn without_a_configured_header_the_peer_wins() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(client_addr(peer(), &h, &TrustedProxies::NONE), peer().ip());
    }

    #[test]
    fn the_header_of_an_untrusted_peer_is_ignored() {
        let xff = HeaderName::from_static("x-forwarded-for");
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        let elsewhere = TrustedProxies {
            header: Some(xff.clone()),
            cidrs: vec!["10.0.0.0/8".parse().unwrap()],
        };
        assert_eq!(client_addr(peer(), &h, &elsewhere), peer().ip());
        let no_cidrs = TrustedProxies {
            header: Some(xff.clone()),
            cidrs: Vec::new(),
        };
        assert_eq!(client_addr(peer(), &h, &no_cidrs), peer().ip());
        assert_eq!(
            client_addr(peer(), &h, &trusting(&xff)),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn rightmost_forwarded_address_is_used() {
        let xff = HeaderName::from_static("x-forwarded-for");
        let h = headers(&[("x-forwarded-for", "10.9.9.9, 203.0.113.9")]);
        assert_eq!(
            client_addr(peer(), &h, &trusting(&xff)),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "[2001:db8::5]:443"),
        ]);
        assert_eq!(
            client_addr(peer(), &h, &trusting(&xff)),
            "2001:db8::5".parse::<IpAddr>().unwrap()
        );
        let h = headers(&[("x-forwarded-for", "::ffff:198.51.100.1")]);
        assert_eq!(
            client_addr(peer(), &h, &trusting(&xff)),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn rfc7239_forwarded_is_understood() {
        let fwd = HeaderName::from_static("forwarded");
        let h = headers(&[(
            "forwarded",
            "for=192.0.2.60;proto=http, for=\"[2001:db8:cafe::17]:4711\";by=203.0.113.43",
        )]);
        assert_eq!(
            client_addr(peer(), &h, &trusting(&fwd)),
            "2001:db8:cafe::17".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn insane_values_fall_back_to_the_peer() {
        let xff = HeaderName::from_static("x-forwarded-for");
        for bad in [
            "",
            "unknown",
            "0.0.0.0",
            "1.2.3.4, ",
            "not an ip",
            "for=_hidden",
        ] {
            let mut h = HeaderMap::new();
            h.insert(&xff, HeaderValue::from_str(bad).unwrap());
            assert_eq!(
                client_addr(peer(), &h, &trusting(&xff)),
                peer().ip(),
                "{bad:?}"
            );
        }
        assert_eq!(
            client_addr(peer(), &HeaderMap::new(), &trusting(&xff)),
            peer().ip()
        );
    }

    #[test]
    fn deadline_header_is_parsed_strictly() {
        let h = headers(&[("x-request-deadline-ms", "1500")]);
        assert_eq!(client_deadline(&h), Some(Duration::from_millis(1500)));
        let h = headers(&[("x-request-deadline-ms", "99999999999")]);
        assert_eq!(
            client_deadline(&h),
            Some(Duration::from_millis(CLIENT_DEADLINE_MS_MAX))
        );
        for bad in ["-1", "1.5", "soon", ""] {
            let mut h = HeaderMap::new();
            h.insert(DEADLINE_HEADER, HeaderValue::from_str(bad).unwrap());
            assert_eq!(client_deadline(&h), None, "{bad:?}");
        }
        assert_eq!(client_deadline(&HeaderMap::new()), None);
    }
}
