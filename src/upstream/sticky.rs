//! The two ways a client keeps its backend: the sticky cookie
//! (`balance = "cookie"`) and rendezvous hashing of its address
//! (`balance = "ip_hash"`).
//!
//! The cookie's value is an HMAC-SHA256 of the backend's identity (route
//! name and URL), cut to 96 bits: opaque, never the address in clear. It is
//! keyed with a fixed key rather than a per-process random one, so that a
//! cookie stays valid across restarts and on every gateway instance behind
//! the same balancer: it names a backend, it is not a credential. A forged
//! value matches no backend and is simply replaced.

use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use http::header::{self, HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};

/// The HMAC key of sticky-cookie values; fixed, see the module docs.
const COOKIE_KEY: &[u8] = b"wsgate sticky backend cookie v1";

/// Bytes of the HMAC kept in the cookie: 96 bits, 16 base64 characters.
const TOKEN_BYTES: usize = 12;

/// The cookie value that names `backend` (its label) on `route`.
pub fn token(route: &str, backend: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(COOKIE_KEY).expect("HMAC takes keys of any length");
    mac.update(route.as_bytes());
    mac.update(b"\n");
    mac.update(backend.as_bytes());
    let tag = mac.finalize().into_bytes();
    URL_SAFE_NO_PAD.encode(&tag[..TOKEN_BYTES])
}

/// Every value the request sends for the cookie `name`, in order (a
/// browser sends the one with the longest path first).
pub fn sent<'h>(headers: &'h HeaderMap, name: &'h str) -> impl Iterator<Item = &'h str> + 'h {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(move |pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key.trim() == name).then(|| value.trim().trim_matches('"'))
        })
}

/// The `Set-Cookie` that pins a client to the backend whose token is `token`:
/// a session cookie for the route's path, `HttpOnly`, `Secure` over TLS.
pub fn set_cookie(name: &str, token: &str, path: &str, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{name}={token}; Path={path}; HttpOnly{secure}")).ok()
}

/// The rendezvous (highest random weight) score of `backend` for `client`:
/// each client ranks every backend by it, so adding a backend moves only
/// the clients that rank it first, about 1/N of them.
pub fn score(client: IpAddr, backend: &str) -> u64 {
    let mut hash = Sha256::new();
    hash.update(backend.as_bytes());
    hash.update(b"\n");
    match client {
        IpAddr::V4(v4) => hash.update(v4.octets()),
        IpAddr::V6(v6) => hash.update(v6.octets()),
    }
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    /// The backend `client` ranks first among `backends`.
    fn pick<'b>(client: IpAddr, backends: &[&'b str]) -> &'b str {
        backends
            .iter()
            .max_by_key(|b| score(client, b))
            .copied()
            .unwrap()
    }

    /// Synthetic client addresses, 10.0.0.0 upwards.
    fn clients(n: u32) -> impl Iterator<Item = IpAddr> {
        (0..n).map(|i| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)))
    }

    #[test]
    fn adding_a_backend_moves_about_one_in_n_clients_and_only_to_it() {
        let four = ["ws://a:1", "ws://b:1", "ws://c:1", "ws://d:1"];
        let five = ["ws://a:1", "ws://b:1", "ws://c:1", "ws://d:1", "ws://e:1"];
        let n = 20_000;
        let mut moved = 0;
        for client in clients(n) {
            let (before, after) = (pick(client, &four), pick(client, &five));
            if before != after {
                assert_eq!(after, "ws://e:1", "a client moved between old backends");
                moved += 1;
            }
        }
        let share = f64::from(moved) / f64::from(n);
        assert!(
            (0.18..0.22).contains(&share),
            "moved {share} (expected ~1/5)"
        );
    }

    #[test]
    fn removing_a_backend_moves_only_its_clients_and_spreads_them() {
        let four = ["ws://a:1", "ws://b:1", "ws://c:1", "ws://d:1"];
        let three = ["ws://a:1", "ws://b:1", "ws://c:1"];
        let mut landed = std::collections::HashMap::new();
        for client in clients(20_000) {
            let before = pick(client, &four);
            let after = pick(client, &three);
            if before == "ws://d:1" {
                *landed.entry(after).or_insert(0u32) += 1;
            } else {
                assert_eq!(before, after, "a client of a remaining backend moved");
            }
        }
        assert_eq!(landed.len(), 3, "{landed:?}");
        assert!(
            landed.values().all(|n| (1_300..2_000).contains(n)),
            "{landed:?}"
        );
    }

    #[test]
    fn clients_spread_evenly() {
        let backends = ["ws://a:1", "ws://b:1", "ws://c:1"];
        let mut counts = std::collections::HashMap::new();
        for client in clients(30_000) {
            *counts.entry(pick(client, &backends)).or_insert(0u32) += 1;
        }
        assert!(
            counts.values().all(|n| (9_400..10_600).contains(n)),
            "{counts:?}"
        );
    }

    #[test]
    fn tokens_are_opaque_stable_and_distinct() {
        let a = token("chat", "ws://10.0.0.5:9000");
        assert_eq!(a, token("chat", "ws://10.0.0.5:9000"), "stable");
        assert_eq!(a.len(), 16);
        assert!(!a.contains("10.0.0.5") && !a.contains("9000"));
        assert_ne!(a, token("chat", "ws://10.0.0.6:9000"));
        assert_ne!(a, token("other", "ws://10.0.0.5:9000"), "per route");
    }

    #[test]
    fn cookies_are_found_among_others_and_in_several_headers() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; srv=x1"));
        headers.append(header::COOKIE, HeaderValue::from_static("srv=\"x2\";b=2"));
        let values: Vec<_> = sent(&headers, "srv").collect();
        assert_eq!(values, ["x1", "x2"]);
        assert_eq!(sent(&headers, "sr").count(), 0);
        let cookie = set_cookie("srv", "tok", "/chat", true).unwrap();
        assert_eq!(cookie, "srv=tok; Path=/chat; HttpOnly; Secure");
    }
}
