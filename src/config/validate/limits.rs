//! `[limits]`: counts must be non-negative (0 = unlimited); the header size
//! must lie where hyper accepts it.

use super::super::file::{defaults, LimitsFile, SizeValue};
use super::super::parse_size;
use super::Errors;
use crate::config::{LimitSettings, MIN_HEADER_BUF};

/// Largest `max_header_size` accepted: far above any legitimate request head.
const MAX_HEADER_SIZE_CEILING: u64 = 16 * 1024 * 1024;

/// Validates `[limits]`, applying the defaults.
pub(super) fn limits(errors: &mut Errors, raw: &LimitsFile) -> LimitSettings {
    let mut count = |key: &str, value: Option<i64>, default: usize| match value {
        None => default,
        Some(n) => match usize::try_from(n) {
            Ok(n) => n,
            Err(_) => {
                errors.push(
                    format!("limits.{key}"),
                    format!("must be 0 (unlimited) or a positive count, not {n}"),
                );
                default
            }
        },
    };
    LimitSettings {
        max_connections: count(
            "max_connections",
            raw.max_connections,
            defaults::MAX_CONNECTIONS,
        ),
        max_connections_per_ip: count(
            "max_connections_per_ip",
            raw.max_connections_per_ip,
            defaults::MAX_CONNECTIONS_PER_IP,
        ),
        max_handshakes: count(
            "max_handshakes",
            raw.max_handshakes,
            defaults::MAX_HANDSHAKES,
        ),
        max_header_size: header_size(errors, raw.max_header_size.as_ref()),
        http2_max_streams: super::http2::max_streams(errors, raw.http2_max_streams),
    }
}

fn header_size(errors: &mut Errors, raw: Option<&SizeValue>) -> usize {
    let default = defaults::MAX_HEADER_SIZE;
    let parsed = match raw {
        None => Ok(default),
        Some(SizeValue::Text(text)) => parse_size(text),
        Some(SizeValue::Bytes(n)) => {
            u64::try_from(*n).map_err(|_| format!("invalid size {n}: negative"))
        }
    };
    let path = "limits.max_header_size";
    let size = match errors.check(path, parsed) {
        Some(n) if !(MIN_HEADER_BUF as u64..=MAX_HEADER_SIZE_CEILING).contains(&n) => {
            errors.push(
                path,
                format!("must be between 8KiB and 16MiB, not {n} bytes"),
            );
            default
        }
        Some(n) => n,
        None => default,
    };
    usize::try_from(size).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    const BASE: &str =
        "[[listeners]]\nbind = \"127.0.0.1:0\"\n[[routes]]\nbackends = [\"ws://127.0.0.1:9\"]\n";

    #[test]
    fn defaults_apply() {
        let config = Config::parse(BASE, Path::new(".")).unwrap();
        let limits = config.server.limits;
        assert_eq!(limits.max_connections, 200_000);
        assert_eq!(limits.max_connections_per_ip, 1_000);
        assert_eq!(limits.max_handshakes, 1_024);
        assert_eq!(limits.max_header_size, 64 * 1024);
    }

    #[test]
    fn values_parse_and_errors_name_their_keys() {
        let ok = format!("{BASE}[limits]\nmax_connections = 0\nmax_connections_per_ip = 5\nmax_handshakes = 7\nmax_header_size = \"32KiB\"\n");
        let limits = Config::parse(&ok, Path::new(".")).unwrap().server.limits;
        assert_eq!(
            (limits.max_connections, limits.max_connections_per_ip),
            (0, 5)
        );
        assert_eq!(
            (limits.max_handshakes, limits.max_header_size),
            (7, 32 * 1024)
        );
        let bad = format!("{BASE}[limits]\nmax_connections = -1\nmax_header_size = \"1KiB\"\n");
        let errors = Config::parse(&bad, Path::new(".")).unwrap_err().to_string();
        assert!(
            errors.contains("limits.max_connections: must be 0"),
            "{errors}"
        );
        assert!(
            errors.contains("limits.max_header_size: must be between"),
            "{errors}"
        );
        let typo = format!("{BASE}[limits]\nmax_conections = 1\n");
        assert!(Config::parse(&typo, Path::new(".")).is_err());
    }
}
