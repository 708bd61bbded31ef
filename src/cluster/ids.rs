//! Session ids that name their owner.
//!
//! In a cluster an id is, base64url without padding:
//!
//! ```text
//! version (1) | random (16) | incarnation (8) | key id (4) | owner length (1) | owner | MAC (16)
//! ```
//!
//! The 16 random bytes are the session's own id (the store's key, 128 bits
//! nobody can guess). `owner` is the advertised `host:port` of the instance
//! that opened the session, `incarnation` a random number drawn when that
//! instance started (so a restarted owner knows an id of its earlier life),
//! and the MAC (HMAC-SHA256 under the cluster secret, truncated to 128
//! bits, checked in constant time) covers everything before it. Any
//! instance can therefore tell who owns a session without asking anyone,
//! and an id that was forged, altered or cut short is refused before any
//! connection is made. The key id tells an id signed under another secret
//! (a misconfigured peer, named in the log) from a forgery.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use base64::Engine;
use hmac::Mac;

use super::key::{ClusterKey, KEY_ID_LEN};
use crate::fallback::protocol::SessionId;
use crate::fallback::IdSpelling;

/// The layout's version byte.
const VERSION: u8 = 1;
/// Bytes of the session's random id.
const RANDOM_LEN: usize = 16;
/// Bytes of the owner's incarnation.
const INCARNATION_LEN: usize = 8;
/// Bytes of the MAC kept (128 bits).
const MAC_LEN: usize = 16;
/// Everything but the owner's name.
const FIXED_LEN: usize = 1 + RANDOM_LEN + INCARNATION_LEN + KEY_ID_LEN + 1 + MAC_LEN;
/// Longest id text: the fixed part and a 255-byte owner, in base64.
const MAX_TEXT_LEN: usize = (FIXED_LEN + 255).div_ceil(3) * 4;
/// Domain of the id's MAC.
const DOMAIN: &[u8] = b"wsgate/session-id/v1";

/// A random number drawn once per process start.
pub type Incarnation = [u8; INCARNATION_LEN];

/// Who serves the session an id names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Located {
    /// This instance opened it (in this run).
    Here(SessionId),
    /// Another instance, reached at `owner`.
    Owner {
        /// The owner's advertised `host:port`.
        owner: String,
        /// The session's own id.
        session: SessionId,
    },
    /// This instance opened it before it restarted: the session is gone.
    Restarted(SessionId),
    /// Not an id any instance of this cluster issued.
    Forged(Forgery),
}

/// What is wrong with a refused id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forgery {
    /// Not the layout at all (wrong length, encoding, version).
    Malformed,
    /// Signed under another secret; `owner` is who the id claims opened it.
    ForeignKey {
        /// The claimed owner (unverified).
        owner: String,
    },
    /// The MAC does not match: altered or made up.
    BadMac,
}

impl Forgery {
    /// The label of this refusal in metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Forgery::Malformed => "id_malformed",
            Forgery::ForeignKey { .. } => "id_foreign_key",
            Forgery::BadMac => "id_bad_mac",
        }
    }
}

/// Writes and reads this instance's session ids.
#[derive(Debug, Clone)]
pub struct IdCodec {
    key: ClusterKey,
    /// This instance's advertised address.
    owner: String,
    /// This run of this instance.
    incarnation: Incarnation,
}

impl IdCodec {
    /// A codec for ids owned by `owner` (at most 255 bytes) in `incarnation`.
    pub fn new(key: ClusterKey, owner: &str, incarnation: Incarnation) -> Self {
        assert!(owner.len() <= 255, "advertise is validated to fit an id");
        IdCodec {
            key,
            owner: owner.to_string(),
            incarnation,
        }
    }

    /// The id text of session `id`, owned here.
    pub fn spell_id(&self, id: &SessionId) -> String {
        let mut bytes = Vec::with_capacity(FIXED_LEN + self.owner.len());
        bytes.push(VERSION);
        bytes.extend_from_slice(id.as_bytes());
        bytes.extend_from_slice(&self.incarnation);
        bytes.extend_from_slice(&self.key.id());
        bytes.push(self.owner.len() as u8);
        bytes.extend_from_slice(self.owner.as_bytes());
        let mac = self.mac(&bytes).finalize().into_bytes();
        bytes.extend_from_slice(&mac[..MAC_LEN]);
        BASE64URL.encode(bytes)
    }

    /// Reads an id: whose session it is, or why it is refused.
    pub fn locate(&self, text: &str) -> Located {
        match self.verify(text) {
            Ok((session, owner, incarnation)) if owner == self.owner => {
                match incarnation == self.incarnation {
                    true => Located::Here(session),
                    false => Located::Restarted(session),
                }
            }
            Ok((session, owner, _)) => Located::Owner { owner, session },
            Err(forgery) => Located::Forged(forgery),
        }
    }

    /// Decodes and checks an id: its session, owner and incarnation.
    fn verify(&self, text: &str) -> Result<(SessionId, String, Incarnation), Forgery> {
        if text.len() > MAX_TEXT_LEN {
            return Err(Forgery::Malformed);
        }
        let bytes = BASE64URL.decode(text).map_err(|_| Forgery::Malformed)?;
        let fields = Fields::split(&bytes).ok_or(Forgery::Malformed)?;
        let owner = std::str::from_utf8(fields.owner).map_err(|_| Forgery::Malformed)?;
        if fields.key_id != self.key.id() {
            return Err(Forgery::ForeignKey {
                owner: owner.to_string(),
            });
        }
        let signed = &bytes[..bytes.len() - MAC_LEN];
        self.mac(signed)
            .verify_truncated_left(fields.mac)
            .map_err(|_| Forgery::BadMac)?;
        let session = SessionId::from_bytes(fields.random.try_into().expect("split by length"));
        let incarnation = fields.incarnation.try_into().expect("split by length");
        Ok((session, owner.to_string(), incarnation))
    }

    fn mac(&self, signed: &[u8]) -> super::key::HmacSha256 {
        let mut mac = self.key.mac(DOMAIN);
        mac.update(signed);
        mac
    }
}

impl IdSpelling for IdCodec {
    fn spell(&self, id: &SessionId) -> String {
        self.spell_id(id)
    }
}

/// The fields of a decoded id, split by the layout.
struct Fields<'a> {
    random: &'a [u8],
    incarnation: &'a [u8],
    key_id: &'a [u8],
    owner: &'a [u8],
    mac: &'a [u8],
}

impl<'a> Fields<'a> {
    /// Splits `bytes`; `None` unless version and lengths add up exactly.
    fn split(bytes: &'a [u8]) -> Option<Self> {
        let (&version, rest) = bytes.split_first()?;
        if version != VERSION || bytes.len() < FIXED_LEN {
            return None;
        }
        let (random, rest) = rest.split_at(RANDOM_LEN);
        let (incarnation, rest) = rest.split_at(INCARNATION_LEN);
        let (key_id, rest) = rest.split_at(KEY_ID_LEN);
        let (&owner_len, rest) = rest.split_first()?;
        if rest.len() != usize::from(owner_len) + MAC_LEN {
            return None;
        }
        let (owner, mac) = rest.split_at(usize::from(owner_len));
        Some(Fields {
            random,
            incarnation,
            key_id,
            owner,
            mac,
        })
    }
}

#[cfg(test)]
mod tests;
