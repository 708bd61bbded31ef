//! The cluster secret as MAC keys: HMAC-SHA256 under the secret, one
//! domain string per use (session ids, peer requests), and a short public
//! fingerprint, the key id, that tells "signed under another secret" apart
//! from "forged" so a misconfigured peer can be named in the log.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::cluster::Secret;

/// HMAC-SHA256.
pub type HmacSha256 = Hmac<Sha256>;

/// Bytes of the key id: enough to tell secrets apart, far too few to say
/// anything about a secret of 32 random bytes or more.
pub const KEY_ID_LEN: usize = 4;

/// Domain of the key id's MAC.
const KEY_ID_DOMAIN: &[u8] = b"wsgate/key-id/v1";

/// The cluster secret, ready to sign with.
#[derive(Clone)]
pub struct ClusterKey {
    /// The secret itself.
    secret: Secret,
    /// The first bytes of the secret's MAC of [`KEY_ID_DOMAIN`].
    id: [u8; KEY_ID_LEN],
}

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClusterKey(id {})", hex(&self.id))
    }
}

impl ClusterKey {
    /// The key of `secret`.
    pub fn new(secret: &Secret) -> Self {
        let mut key = ClusterKey {
            secret: secret.clone(),
            id: [0; KEY_ID_LEN],
        };
        let digest = key.mac(KEY_ID_DOMAIN).finalize().into_bytes();
        key.id.copy_from_slice(&digest[..KEY_ID_LEN]);
        key
    }

    /// The key's public fingerprint.
    pub fn id(&self) -> [u8; KEY_ID_LEN] {
        self.id
    }

    /// A MAC under the secret, already fed with `domain` (which keeps a MAC
    /// made for one use from being valid for another).
    pub fn mac(&self, domain: &[u8]) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(self.secret.bytes()).expect("HMAC takes keys of any length");
        mac.update(domain);
        mac
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses lowercase or uppercase hex; `None` for anything else.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_tell_secrets_apart() {
        let a = ClusterKey::new(&Secret::new(&[1; 32]));
        let b = ClusterKey::new(&Secret::new(&[2; 32]));
        assert_eq!(a.id(), ClusterKey::new(&Secret::new(&[1; 32])).id());
        assert_ne!(a.id(), b.id());
        assert!(!format!("{a:?}").contains("0101"), "{a:?}");
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(unhex("00abFF"), Some(vec![0, 0xab, 0xff]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("+f"), None);
    }
}
