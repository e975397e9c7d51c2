//! The client phase: who is asking, resolved once per request into one [`Client`].
//!
//! The peer is the socket's address in canonical form (an IPv4-mapped IPv6 address is
//! the IPv4 address). When the peer is a trusted proxy (`edge.trusted_proxies`), its
//! `X-Forwarded-For` is believed from the right up to the first address that is not
//! itself trusted, and its `X-Forwarded-Proto: https` says the viewer used HTTPS. This
//! module owns those rules and the `X-Forwarded-For` the origin gets; it never touches
//! tokens, routes or the response.

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

use crate::server::ConnInfo;

/// `X-Forwarded-For` entries read at most: a longer chain is cut, never walked whole.
const MAX_CHAIN: usize = 32;

/// The proxies whose forwarding headers are believed.
pub struct Clients {
    trusted: Vec<IpNet>,
}

/// One request's client, as every later phase sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The socket peer, canonical.
    pub peer: IpAddr,
    /// The peer is a trusted proxy.
    pub trusted: bool,
    /// The viewer's address: the peer, or what a trusted proxy says it is.
    pub ip: IpAddr,
    /// The connection to us is TLS (sets `X-Forwarded-Proto`).
    pub tls: bool,
    /// The viewer used HTTPS: over TLS to us, or per a trusted proxy (`Secure` cookies).
    pub https: bool,
}

fn xff() -> HeaderName {
    HeaderName::from_static("x-forwarded-for")
}

impl Clients {
    pub fn new(trusted: Vec<IpNet>) -> Self {
        Clients { trusted }
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(&ip))
    }

    /// Resolve the client of a request that came over `conn` with `headers`.
    pub fn resolve(&self, conn: ConnInfo, headers: &HeaderMap) -> Client {
        let peer = conn.peer.ip().to_canonical();
        let trusted = !self.trusted.is_empty() && self.is_trusted(peer);
        let ip = if trusted {
            self.forwarded_client(peer, headers)
        } else {
            peer
        };
        let https = conn.tls
            || trusted
                && headers
                    .get(HeaderName::from_static("x-forwarded-proto"))
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
        Client {
            peer,
            trusted,
            ip,
            tls: conn.tls,
            https,
        }
    }

    /// The right-most `X-Forwarded-For` entry that is not itself a trusted proxy; where
    /// the chain turns to garbage, the last address believed.
    fn forwarded_client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer;
        let entries = headers
            .get_all(xff())
            .iter()
            .rev()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.rsplit(','))
            .take(MAX_CHAIN);
        for entry in entries {
            let Ok(ip) = entry.trim().parse::<IpAddr>() else {
                break; // garbage: stop believing the chain here
            };
            client = ip.to_canonical();
            if !self.is_trusted(client) {
                break;
            }
        }
        client
    }
}

impl Client {
    /// Set the `X-Forwarded-For` the origin gets: behind a trusted proxy, the chain it
    /// sent plus the proxy itself; otherwise just the client, whatever it claimed.
    pub fn set_forwarded_for(&self, headers: &mut HeaderMap) {
        let value = if self.trusted {
            chain_with(headers, self.peer)
        } else {
            None
        };
        if let Some(v) = value.or_else(|| ip_value(self.ip)) {
            headers.insert(xff(), v);
        }
    }
}

/// The request's `X-Forwarded-For` lines joined, with `peer` appended; None when there
/// were none.
fn chain_with(headers: &HeaderMap, peer: IpAddr) -> Option<HeaderValue> {
    let prior: Vec<&str> = headers
        .get_all(xff())
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if prior.is_empty() {
        return None;
    }
    HeaderValue::from_str(&format!("{}, {peer}", prior.join(", "))).ok()
}

/// An address as a header value. Formatted on the stack, so the value's own copy is the
/// one allocation (a `String` would be a second).
fn ip_value(ip: IpAddr) -> Option<HeaderValue> {
    use std::io::Write;
    let mut buf = [0u8; 64];
    let mut rest = &mut buf[..];
    write!(rest, "{ip}").ok()?;
    let unused = rest.len();
    let len = buf.len() - unused;
    HeaderValue::from_bytes(&buf[..len]).ok()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn conn(peer: &str, tls: bool) -> ConnInfo {
        ConnInfo {
            peer: format!("{peer}:4000").parse().expect("addr"),
            tls,
        }
    }

    /// A header map from name/value pairs (shared by the edge's phase tests).
    pub(in crate::edge) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    fn clients() -> Clients {
        Clients::new(vec!["127.0.0.2/32".parse().expect("net")])
    }

    #[test]
    fn an_untrusted_peer_is_the_client_and_a_trusted_proxy_names_the_client_and_scheme() {
        // (peer, X-Forwarded-For, X-Forwarded-Proto) -> (client, trusted, https,
        // the X-Forwarded-For the origin gets)
        let cases = [
            (
                "127.0.0.3",
                "203.0.113.9",
                "https",
                ("127.0.0.3", false, false, "127.0.0.3"),
            ),
            (
                "127.0.0.2",
                "198.51.100.1, 203.0.113.9",
                "HTTPS",
                (
                    "203.0.113.9",
                    true,
                    true,
                    "198.51.100.1, 203.0.113.9, 127.0.0.2",
                ),
            ),
        ];
        for (peer, xff, xfp, (ip, trusted, https, forwarded)) in cases {
            let h = headers(&[("x-forwarded-for", xff), ("x-forwarded-proto", xfp)]);
            let c = clients().resolve(conn(peer, false), &h);
            assert_eq!(c.ip, ip.parse::<IpAddr>().expect("ip"), "{peer}");
            assert_eq!(
                (c.trusted, c.https, c.tls),
                (trusted, https, false),
                "{peer}"
            );
            let mut out = h.clone();
            c.set_forwarded_for(&mut out);
            assert_eq!(out["x-forwarded-for"], forwarded, "{peer}");
        }
    }

    #[test]
    fn an_ipv4_mapped_peer_is_canonical_and_garbage_stops_the_chain() {
        let c = clients().resolve(conn("[::ffff:127.0.0.2]", true), &headers(&[]));
        assert_eq!(c.peer, "127.0.0.2".parse::<IpAddr>().expect("ip"));
        assert!(c.trusted && c.https);
        let h = headers(&[("x-forwarded-for", "203.0.113.9, nonsense")]);
        let c = clients().resolve(conn("127.0.0.2", false), &h);
        assert_eq!(
            c.ip, c.peer,
            "garbage right of the client: believe no further"
        );
    }
}
