//! Which peers may name the client address: [`Cidr`] and [`TrustedProxies`].
//!
//! A forwarding header (`trusted_proxy_header`) is believed only on connections whose TCP peer
//! lies in one of the configured networks (`trusted_proxy_cidrs`); from any other peer the
//! header is ignored and the peer's own address is the client. With no networks configured the
//! header is never believed.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use http::HeaderName;

/// An IP network: an address and a prefix length (`10.0.0.0/8`, `2001:db8::/32`; a bare
/// address is a /32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix_bits: u8,
}

/// A CIDR that does not parse, with the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a CIDR ({reason}); write it as ADDRESS/BITS, e.g. 10.0.0.0/8")]
pub struct CidrError {
    /// The text given.
    pub text: String,
    /// What is wrong.
    pub reason: &'static str,
}

impl Cidr {
    /// The network of `addr` with `prefix_bits` leading bits (host bits are cleared).
    pub fn new(addr: IpAddr, prefix_bits: u8) -> Result<Self, &'static str> {
        let addr = addr.to_canonical();
        let width = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        if prefix_bits > width {
            return Err("the prefix is longer than the address");
        }
        Ok(Self {
            network: mask(addr, prefix_bits),
            prefix_bits,
        })
    }

    /// Whether `ip` (IPv4-mapped IPv6 folded to IPv4) lies in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (ip, self.network) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                mask(ip, self.prefix_bits) == self.network
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, CidrError> {
        let error = |reason| CidrError {
            text: text.to_owned(),
            reason,
        };
        let trimmed = text.trim();
        let (addr, bits) = match trimmed.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (trimmed, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| error("not an IP address"))?;
        let addr = addr.to_canonical();
        let bits = match bits {
            Some(b) if !b.is_empty() && b.len() <= 3 && b.bytes().all(|c| c.is_ascii_digit()) => {
                b.parse::<u8>().map_err(|_| error("bad prefix length"))?
            }
            Some(_) => return Err(error("bad prefix length")),
            None => match addr {
                IpAddr::V4(_) => 32,
                IpAddr::V6(_) => 128,
            },
        };
        Cidr::new(addr, bits).map_err(error)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_bits)
    }
}

fn mask(ip: IpAddr, bits: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let m = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits))
            };
            IpAddr::from((u32::from(v4) & m).to_be_bytes())
        }
        IpAddr::V6(v6) => {
            let m = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits))
            };
            IpAddr::from((u128::from(v6) & m).to_be_bytes())
        }
    }
}

/// The forwarding header and the peers allowed to set it (`trusted_proxy_header`,
/// `trusted_proxy_cidrs`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    /// The header naming the client (absent: never read).
    pub header: Option<HeaderName>,
    /// Peers whose header is believed (empty: none is).
    pub cidrs: Vec<Cidr>,
}

impl TrustedProxies {
    /// No proxy is trusted: the peer address is always the client.
    pub const NONE: TrustedProxies = TrustedProxies {
        header: None,
        cidrs: Vec::new(),
    };

    /// Whether `peer` is one of the trusted proxies.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        self.cidrs.iter().any(|c| c.contains(peer))
    }

    /// The header to read for a connection from `peer`: `Some` only when a header is
    /// configured and `peer` is a trusted proxy.
    pub fn header_for(&self, peer: IpAddr) -> Option<&HeaderName> {
        self.header.as_ref().filter(|_| self.trusts(peer))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_and_match() {
        let c: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(c.contains(ip("10.1.255.3")));
        assert!(!c.contains(ip("10.2.0.1")));
        assert!(c.contains(ip("::ffff:10.1.0.9")));
        assert!(!c.contains(ip("2001:db8::1")));
        let host: Cidr = "192.0.2.7".parse().unwrap();
        assert_eq!(host.to_string(), "192.0.2.7/32");
        assert!(host.contains(ip("192.0.2.7")) && !host.contains(ip("192.0.2.8")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")) && !v6.contains(ip("2001:db9::1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.1")));
        let cleared: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(cleared.to_string(), "10.0.0.0/8");
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "10.0.0.0/",
            "10.0.0.0/x",
            "a/1",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_header_is_read_only_from_trusted_peers() {
        let xff = HeaderName::from_static("x-forwarded-for");
        let none = TrustedProxies {
            header: Some(xff.clone()),
            cidrs: Vec::new(),
        };
        assert_eq!(none.header_for(ip("127.0.0.1")), None);
        let some = TrustedProxies {
            header: Some(xff.clone()),
            cidrs: vec!["10.0.0.0/8".parse().unwrap()],
        };
        assert_eq!(some.header_for(ip("10.3.4.5")), Some(&xff));
        assert_eq!(some.header_for(ip("192.0.2.1")), None);
        assert_eq!(TrustedProxies::NONE.header_for(ip("10.3.4.5")), None);
    }
}
