//! What the gateway needs to know about a certificate beyond what rustls
//! checks: the names it covers (to pick it by SNI), when it expires (to
//! refuse or warn at start-up) and its subject (to tell a backend who a
//! client-certificate holder is).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Below this much remaining validity a certificate earns a start-up warning.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

/// The parts of a leaf certificate the gateway uses.
#[derive(Debug, Clone)]
pub struct CertFacts {
    /// DNS names from the SAN extension, lower-cased (`*.example.com` kept).
    pub dns_names: Vec<String>,
    /// Start of validity (notBefore).
    pub not_before: SystemTime,
    /// End of validity (notAfter).
    pub not_after: SystemTime,
    /// The serial number in hex, for logs (`openssl x509 -serial` prints the same).
    pub serial: String,
}

/// How soon a certificate expires, judged at start-up and on reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expiry {
    /// Valid for longer than [`EXPIRY_WARNING`].
    Fine,
    /// Valid, but for less than [`EXPIRY_WARNING`]; the message says how long.
    Soon(String),
    /// Already past notAfter.
    Expired(String),
}

/// Parses the facts of a DER certificate.
pub fn facts(cert: &CertificateDer<'_>) -> Result<CertFacts, String> {
    let (_, parsed) =
        X509Certificate::from_der(cert).map_err(|e| format!("unparsable certificate: {e}"))?;
    let mut dns_names = Vec::new();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                dns_names.push(dns.to_ascii_lowercase());
            }
        }
    }
    let time = |t: x509_parser::time::ASN1Time| {
        UNIX_EPOCH + Duration::from_secs(t.timestamp().max(0) as u64)
    };
    let serial = parsed
        .tbs_certificate
        .raw_serial()
        .iter()
        .skip_while(|b| **b == 0)
        .map(|b| format!("{b:02X}"))
        .collect();
    Ok(CertFacts {
        dns_names,
        not_before: time(parsed.validity().not_before),
        not_after: time(parsed.validity().not_after),
        serial,
    })
}

/// Judges `not_after` against `now`.
pub fn expiry(not_after: SystemTime, now: SystemTime) -> Expiry {
    let date = utc_date(not_after);
    match not_after.duration_since(now) {
        Err(_) => Expiry::Expired(format!("certificate expired on {date}")),
        Ok(left) if left < EXPIRY_WARNING => Expiry::Soon(format!(
            "certificate expires in {} days ({date})",
            left.as_secs() / 86_400
        )),
        Ok(_) => Expiry::Fine,
    }
}

/// The subject of a DER certificate in RFC 4514 form (`CN=alice,O=Example`).
pub fn subject(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = X509Certificate::from_der(cert).ok()?;
    Some(parsed.subject().to_string())
}

/// A UTC date for messages (`Dec  6 00:45:41 2026 +00:00`).
pub fn utc_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    match x509_parser::time::ASN1Time::from_timestamp(secs) {
        Ok(time) => time.to_string(),
        Err(_) => format!("{secs}s after 1970"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_judged_against_now() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let day = Duration::from_secs(86_400);
        assert_eq!(expiry(now + 90 * day, now), Expiry::Fine);
        assert!(matches!(expiry(now + 3 * day, now), Expiry::Soon(m) if m.contains("3 days")));
        assert!(matches!(expiry(now - day, now), Expiry::Expired(_)));
    }
}
