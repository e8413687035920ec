//! Where a request came from, as the listener saw it.

use std::net::{IpAddr, SocketAddr};

/// The connection a request arrived on. The server puts one in every request's extensions; a
/// request without one (an in-process caller that did not say) is treated as remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The client's address.
    pub peer: SocketAddr,
    /// The listener's address the client connected to.
    pub local: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
}

/// Headers a forwarding proxy adds: a request carrying one was relayed for someone else.
const FORWARDED: &[&str] = &["forwarded", "x-forwarded-for", "x-real-ip", "via"];

impl Origin {
    /// A loopback client on a loopback listener, as a test or a local tool connects.
    pub fn loopback() -> Self {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        Origin {
            peer: addr,
            local: addr,
            tls: false,
        }
    }

    /// Whether the request comes from this machine and not through a forwarding proxy: the
    /// peer and the listener are loopback addresses, and no proxy said it relayed the
    /// request. (A plain TCP relay on this machine, such as an SSH tunnel, cannot be told
    /// apart: do not run one in front of a server that keeps the development key.)
    pub fn is_local(&self, headers: &http::HeaderMap) -> bool {
        is_loopback(self.peer.ip())
            && is_loopback(self.local.ip())
            && !FORWARDED.iter().any(|h| headers.contains_key(*h))
    }
}

/// Loopback, including IPv4 loopback mapped into IPv6 (`::ffff:127.0.0.1`).
fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(peer: &str, local: &str) -> Origin {
        Origin {
            peer: peer.parse().unwrap(),
            local: local.parse().unwrap(),
            tls: false,
        }
    }

    #[test]
    fn local_means_loopback_at_both_ends_and_no_proxy() {
        let none = http::HeaderMap::new();
        assert!(origin("127.0.0.1:5000", "127.0.0.1:4680").is_local(&none));
        assert!(origin("[::1]:5000", "[::1]:4680").is_local(&none));
        assert!(!origin("[::ffff:127.0.0.1]:5000", "[::]:4680").is_local(&none));
        assert!(origin("[::ffff:127.0.0.1]:5000", "[::ffff:127.0.0.1]:4680").is_local(&none));
        assert!(!origin("10.0.0.7:5000", "10.0.0.2:4680").is_local(&none));
        assert!(!origin("10.0.0.7:5000", "127.0.0.1:4680").is_local(&none));
        assert!(!origin("127.0.0.1:5000", "0.0.0.0:4680").is_local(&none));
        for h in FORWARDED {
            let mut headers = http::HeaderMap::new();
            headers.insert(*h, "203.0.113.9".parse().unwrap());
            assert!(
                !origin("127.0.0.1:5000", "127.0.0.1:4680").is_local(&headers),
                "{h}"
            );
        }
    }
}
