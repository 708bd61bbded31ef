//! Authenticating requests between instances.
//!
//! A forwarded request carries, in `x-wsgate-peer-*` headers, who sends it
//! (its advertised address), when (Unix milliseconds), for which client
//! (the real client address), the secret's key id, the SHA-256 of its body,
//! and an HMAC-SHA256 under the cluster secret over all of that plus the
//! method, the path and query, and the client headers the owner acts on
//! ([`FORWARDED_HEADERS`]). Each field goes into the MAC with its length,
//! so no two requests share an input. The owner checks the MAC (in
//! constant time) before it reads the body, and refuses a timestamp more
//! than [`CLOCK_WINDOW`] away from its own clock, so a recorded request
//! cannot be replayed later. Peer traffic is not encrypted: it belongs on
//! a private network (docs/cluster.md).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{request, Method};
use sha2::{Digest, Sha256};

use super::key::{hex, unhex, ClusterKey, HmacSha256, KEY_ID_LEN};
use hmac::Mac;

/// The sending instance's advertised address.
pub const PEER_FROM: &str = "x-wsgate-peer";
/// When the request was signed, in Unix milliseconds.
pub const PEER_TIME: &str = "x-wsgate-peer-time";
/// The address of the client whose request this is.
pub const PEER_CLIENT: &str = "x-wsgate-peer-client";
/// The key id of the secret it was signed with, in hex.
pub const PEER_KEY: &str = "x-wsgate-peer-key";
/// The SHA-256 of the body, in hex.
pub const PEER_BODY: &str = "x-wsgate-peer-body";
/// The MAC, in hex.
pub const PEER_MAC: &str = "x-wsgate-peer-mac";

/// The client headers a session request needs at its owner (the Origin
/// binding, Fetch Metadata, the event stream's position, the request id
/// for the logs, the body's type); nothing else is forwarded.
pub const FORWARDED_HEADERS: [&str; 5] = [
    "origin",
    "sec-fetch-site",
    "last-event-id",
    "x-request-id",
    "content-type",
];

/// How far a forwarded request's timestamp may be from the owner's clock,
/// either way: room for clock skew between hosts, not for a replay.
pub const CLOCK_WINDOW: Duration = Duration::from_secs(10);

/// Domain of the request MAC.
const DOMAIN: &[u8] = b"wsgate/peer-request/v1";

/// What a request that passed the check proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The sender's advertised address.
    pub from: String,
    /// The client's address.
    pub client: SocketAddr,
    /// The body's SHA-256, to check once it is read.
    body: [u8; 32],
}

/// Why a peer request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// A peer header is missing or unreadable.
    Malformed(&'static str),
    /// Signed under another secret by `from` (unverified).
    ForeignKey {
        /// Who the request says sent it.
        from: String,
    },
    /// The MAC does not match.
    BadMac {
        /// Who the request says sent it.
        from: String,
    },
    /// Authentic, but signed too long ago (or ahead): a replay or a clock
    /// off by `skew_ms`.
    Stale {
        /// The sender.
        from: String,
        /// Our clock minus the request's, in milliseconds.
        skew_ms: i128,
    },
    /// The body is not the one that was signed.
    BodyMismatch {
        /// The sender.
        from: String,
    },
}

impl AuthError {
    /// The label of this refusal in metrics.
    pub fn label(&self) -> &'static str {
        match self {
            AuthError::Malformed(_) => "peer_malformed",
            AuthError::ForeignKey { .. } => "peer_foreign_key",
            AuthError::BadMac { .. } => "peer_bad_mac",
            AuthError::Stale { .. } => "peer_stale",
            AuthError::BodyMismatch { .. } => "peer_body_mismatch",
        }
    }
}

/// The current time in Unix milliseconds.
pub fn unix_ms() -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH);
    now.map_or(0, |d| d.as_millis() as u64)
}

/// What a forwarded request is, for signing and checking.
#[derive(Debug, Clone, Copy)]
pub struct Signing<'a> {
    /// The request's method.
    pub method: &'a Method,
    /// The request's path and query.
    pub target: &'a str,
    /// The sender's advertised address.
    pub from: &'a str,
    /// When, in Unix milliseconds.
    pub time: u64,
    /// The client's address.
    pub client: SocketAddr,
    /// The body's SHA-256.
    pub body: &'a [u8; 32],
}

/// The peer headers, MAC included, for a request `signing` describes that
/// carries `client_headers` (of which [`FORWARDED_HEADERS`] are kept).
pub fn sign(key: &ClusterKey, signing: &Signing<'_>, client_headers: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for name in FORWARDED_HEADERS {
        if let Some(value) = client_headers.get(name) {
            headers.insert(HeaderName::from_static(name), value.clone());
        }
    }
    let mac = mac(key, signing, &headers).finalize().into_bytes();
    let mut put = |name: &'static str, value: String| {
        let value =
            HeaderValue::try_from(value).expect("hex, digits and host:port are header-safe");
        headers.insert(HeaderName::from_static(name), value);
    };
    put(PEER_FROM, signing.from.to_string());
    put(PEER_TIME, signing.time.to_string());
    put(PEER_CLIENT, signing.client.to_string());
    put(PEER_KEY, hex(&key.id()));
    put(PEER_BODY, hex(signing.body));
    put(PEER_MAC, hex(&mac));
    headers
}

/// The SHA-256 of a body.
pub fn body_hash(body: &[u8]) -> [u8; 32] {
    Sha256::digest(body).into()
}

/// Checks a request's peer headers and MAC (before its body is read) and
/// its timestamp against `now` (Unix milliseconds).
pub fn verify(key: &ClusterKey, parts: &request::Parts, now: u64) -> Result<Claim, AuthError> {
    let get = |name: &'static str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(AuthError::Malformed(name))
    };
    let from = get(PEER_FROM)?.to_string();
    let time: u64 = get(PEER_TIME)?
        .parse()
        .map_err(|_| AuthError::Malformed(PEER_TIME))?;
    let client = get(PEER_CLIENT)?
        .parse()
        .map_err(|_| AuthError::Malformed(PEER_CLIENT))?;
    let key_id = unhex(get(PEER_KEY)?).filter(|k| k.len() == KEY_ID_LEN);
    let body: [u8; 32] = unhex(get(PEER_BODY)?)
        .and_then(|b| b.try_into().ok())
        .ok_or(AuthError::Malformed(PEER_BODY))?;
    let sent_mac = unhex(get(PEER_MAC)?).ok_or(AuthError::Malformed(PEER_MAC))?;
    match key_id {
        None => return Err(AuthError::Malformed(PEER_KEY)),
        Some(id) if id != key.id() => return Err(AuthError::ForeignKey { from }),
        Some(_) => {}
    }
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let signing = Signing {
        method: &parts.method,
        target,
        from: &from,
        time,
        client,
        body: &body,
    };
    if mac(key, &signing, &parts.headers)
        .verify_slice(&sent_mac)
        .is_err()
    {
        return Err(AuthError::BadMac { from });
    }
    let skew_ms = i128::from(now) - i128::from(time);
    if skew_ms.unsigned_abs() > CLOCK_WINDOW.as_millis() {
        return Err(AuthError::Stale { from, skew_ms });
    }
    Ok(Claim { from, client, body })
}

impl Claim {
    /// Whether `body` is the body that was signed.
    pub fn check_body(&self, body: &[u8]) -> Result<(), AuthError> {
        match body_hash(body) == self.body {
            true => Ok(()),
            false => Err(AuthError::BodyMismatch {
                from: self.from.clone(),
            }),
        }
    }
}

/// The MAC of a request: every signed field with its length, then each
/// forwarded header's value or its absence.
fn mac(key: &ClusterKey, s: &Signing<'_>, headers: &HeaderMap) -> HmacSha256 {
    let mut mac = key.mac(DOMAIN);
    let time = s.time.to_string();
    let client = s.client.to_string();
    let fields: [&[u8]; 6] = [
        s.method.as_str().as_bytes(),
        s.target.as_bytes(),
        s.from.as_bytes(),
        time.as_bytes(),
        client.as_bytes(),
        s.body,
    ];
    for field in fields {
        field_into(&mut mac, Some(field));
    }
    for name in FORWARDED_HEADERS {
        field_into(&mut mac, headers.get(name).map(HeaderValue::as_bytes));
    }
    mac
}

/// One field: its length (u32, big-endian; all ones when absent) and bytes.
fn field_into(mac: &mut HmacSha256, field: Option<&[u8]>) {
    match field {
        Some(bytes) => {
            mac.update(&(bytes.len() as u32).to_be_bytes());
            mac.update(bytes);
        }
        None => mac.update(&u32::MAX.to_be_bytes()),
    }
}

#[cfg(test)]
mod tests;
