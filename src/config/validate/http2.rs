//! The HTTP/2 keys: `listeners.tls.http2` and `limits.http2_max_streams`.

use super::super::file::defaults;
use super::Errors;

/// Largest `http2_max_streams` accepted. Each stream may buffer one stream
/// window of request data, and the connection window is sized to hold
/// every stream's, so this also bounds what one connection can make the
/// gateway hold (4096 × 256 KiB = 1 GiB, far past any sane setting).
pub(crate) const MAX_STREAMS_CEILING: u32 = 4096;

/// `listeners.tls.http2`, default on.
pub(super) fn enabled(raw: Option<bool>) -> bool {
    raw.unwrap_or(defaults::HTTP2)
}

/// `limits.http2_max_streams`: at least 1 (HTTP/2 has no "unlimited" that
/// is safe to offer) and at most [`MAX_STREAMS_CEILING`].
pub(super) fn max_streams(errors: &mut Errors, raw: Option<i64>) -> u32 {
    let Some(n) = raw else {
        return defaults::HTTP2_MAX_STREAMS;
    };
    match u32::try_from(n) {
        Ok(n) if (1..=MAX_STREAMS_CEILING).contains(&n) => n,
        _ => {
            errors.push(
                "limits.http2_max_streams",
                format!("must be between 1 and {MAX_STREAMS_CEILING}, not {n}"),
            );
            defaults::HTTP2_MAX_STREAMS
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    const TLS: &str =
        "[[listeners]]\nbind = \"127.0.0.1:0\"\n[listeners.tls]\nself_signed = true\n";
    const ROUTE: &str = "[[routes]]\nbackends = [\"ws://127.0.0.1:9\"]\n";

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new(".")).map_err(|e| e.to_string())
    }

    #[test]
    fn http2_is_on_by_default_and_can_be_turned_off() {
        let on = parse(&format!("{TLS}{ROUTE}")).unwrap();
        assert!(on.listeners[0].tls.as_ref().unwrap().http2);
        assert_eq!(on.server.limits.http2_max_streams, 128);
        let off = parse(&format!("{TLS}http2 = false\n{ROUTE}")).unwrap();
        assert!(!off.listeners[0].tls.as_ref().unwrap().http2);
    }

    #[test]
    fn max_streams_is_bounded_and_errors_name_the_key() {
        let ok = parse(&format!("{TLS}{ROUTE}[limits]\nhttp2_max_streams = 16\n")).unwrap();
        assert_eq!(ok.server.limits.http2_max_streams, 16);
        for bad in ["0", "-1", "4097"] {
            let text = format!("{TLS}{ROUTE}[limits]\nhttp2_max_streams = {bad}\n");
            let errors = parse(&text).unwrap_err();
            assert!(
                errors.contains("limits.http2_max_streams: must be between 1 and 4096"),
                "{errors}"
            );
        }
        let typo = parse(&format!("{TLS}htp2 = true\n{ROUTE}")).unwrap_err();
        assert!(typo.contains("htp2"), "{typo}");
    }
}
