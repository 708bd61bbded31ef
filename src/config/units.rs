//! Sizes (`"1MiB"`) and durations (`"1m30s"`) as written in the config file.
//!
//! Both parsers are strict on purpose: whole numbers only, exact unit
//! spellings, no whitespace. A config value that is almost right is reported,
//! never guessed at.

mod hint;

use std::time::Duration;

/// Size units, longest spelling first so that `KiB` is not read as `K` + `iB`.
const SIZE_UNITS: &[(&str, u64)] = &[
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("B", 1),
];

/// Duration units with their length in milliseconds, largest first: the order
/// components must appear in (`"1h30m"`, not `"30m1h"`).
const DURATION_UNITS: &[(&str, u64)] = &[("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

/// Parses a byte size: a whole number with an optional unit.
///
/// Units: `B`, decimal `KB` `MB` `GB` `TB` (powers of 1000) and binary `KiB`
/// `MiB` `GiB` `TiB` (powers of 1024). A bare number is bytes. Fractions,
/// signs, whitespace and other spellings (`"1mb"`, `"1M"`) are rejected.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    if number.is_empty() {
        return Err(format!(
            "invalid size {text:?}: expected a whole number with an optional unit, e.g. \"1MiB\""
        ));
    }
    let hint = || {
        hint::size(text)
            .map(|h| format!("; {h}"))
            .unwrap_or_default()
    };
    if unit.starts_with('.') {
        return Err(format!(
            "invalid size {text:?}: fractions are not supported{}",
            hint()
        ));
    }
    let multiplier = if unit.is_empty() {
        1
    } else {
        SIZE_UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, m)| *m)
            .ok_or_else(|| {
                format!(
                    "invalid size {text:?}: unknown unit {unit:?} \
                     (expected B, KB, MB, GB, TB, KiB, MiB, GiB or TiB){}",
                    hint()
                )
            })?
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| format!("invalid size {text:?}: too large"))
}

/// Parses a duration: one or more `<whole number><unit>` components.
///
/// Units: `h`, `m`, `s`, `ms`, each at most once and largest first, so
/// `"1m30s"` and `"2s500ms"` are valid while `"30s1m"`, `"1.5s"` and a bare
/// `"30"` are not.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if text.is_empty() {
        return Err("invalid duration \"\": expected e.g. \"30s\", \"10m\" or \"1m30s\"".into());
    }
    let refuse = |why: String| {
        let hint = hint::duration(text).map(|h| format!("; {h}"));
        format!(
            "invalid duration {text:?}: {why}{}",
            hint.unwrap_or_default()
        )
    };
    if text.contains(char::is_whitespace) {
        return Err(refuse("no spaces, units h, m, s or ms".into()));
    }
    let mut rest = text;
    let mut total_ms: u64 = 0;
    // Index into DURATION_UNITS of the next unit allowed; enforces order.
    let mut next_unit = 0;
    while !rest.is_empty() {
        let (number, pos, after) = duration_part(rest).map_err(refuse)?;
        if pos < next_unit {
            return Err(refuse("units must appear once each, largest first".into()));
        }
        next_unit = pos + 1;
        total_ms = number
            .checked_mul(DURATION_UNITS[pos].1)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| format!("invalid duration {text:?}: too large"))?;
        rest = after;
    }
    Ok(Duration::from_millis(total_ms))
}

/// The first `<whole number><unit>` of `rest`: the number, the unit's
/// index in `DURATION_UNITS` and what follows; or why it is not one.
fn duration_part(rest: &str) -> Result<(u64, usize, &str), String> {
    let digits_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    if digits_end == 0 {
        return Err(format!(
            "expected a whole number at {rest:?}, e.g. \"30s\", \"10m\" or \"1m30s\""
        ));
    }
    let (digits, after) = rest.split_at(digits_end);
    let unit_end = after
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(after.len());
    let (unit, after) = after.split_at(unit_end);
    if unit.is_empty() && after.starts_with('.') {
        return Err("fractions are not supported".into());
    }
    if unit.is_empty() {
        return Err(format!(
            "missing unit (h, m, s or ms): \"{digits}s\" for seconds, \"{digits}ms\" for milliseconds"
        ));
    }
    let Some(pos) = DURATION_UNITS.iter().position(|(name, _)| *name == unit) else {
        return Err(format!("unknown unit {unit:?} (expected h, m, s or ms)"));
    };
    let number = digits.parse::<u64>().map_err(|_| "too large".to_string())?;
    Ok((number, pos, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let ok: &[(&str, u64)] = &[
            ("0", 0),
            ("512", 512),
            ("512B", 512),
            ("64KiB", 64 * 1024),
            ("1MiB", 1 << 20),
            ("1GiB", 1 << 30),
            ("2TiB", 2 << 40),
            ("10KB", 10_000),
            ("3MB", 3_000_000),
            ("1GB", 1_000_000_000),
        ];
        for (text, want) in ok {
            assert_eq!(parse_size(text), Ok(*want), "{text}");
        }
    }

    #[test]
    fn bad_sizes() {
        let bad: &[(&str, &str)] = &[
            ("", "whole number"),
            ("MiB", "whole number"),
            ("-1", "whole number"),
            (" 1MiB", "whole number"),
            ("1.5MiB", "fractions are not supported; write \"1536KiB\""),
            ("2.5MiB", "fractions are not supported; write \"2560KiB\""),
            ("1M", "write \"1MiB\" (powers of 1024) or \"1MB\""),
            ("1 MiB", "unknown unit \" MiB\""),
            ("1mib", "unknown unit"),
            ("1M", "unknown unit"),
            ("1MiBs", "unknown unit"),
            ("99999999999999999999", "too large"),
            ("20000000TiB", "too large"),
        ];
        for (text, want) in bad {
            let err = parse_size(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn durations() {
        let ok: &[(&str, u64)] = &[
            ("0s", 0),
            ("250ms", 250),
            ("30s", 30_000),
            ("10m", 600_000),
            ("1h", 3_600_000),
            ("1m30s", 90_000),
            ("2s500ms", 2_500),
            ("1h2m3s4ms", 3_723_004),
        ];
        for (text, want) in ok {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(*want)),
                "{text}"
            );
        }
    }

    #[test]
    fn bad_durations() {
        let bad: &[(&str, &str)] = &[
            ("", "expected"),
            ("30", "missing unit"),
            ("1.5s", "fractions"),
            ("s", "whole number"),
            ("-1s", "whole number"),
            ("30 s", "no spaces, units h, m, s or ms; write \"30s\""),
            (
                "10 minutes",
                "no spaces, units h, m, s or ms; write \"10m\"",
            ),
            ("30", "missing unit (h, m, s or ms): \"30s\" for seconds"),
            ("1.5s", "fractions are not supported; write \"1s500ms\""),
            ("30sec", "write \"30s\""),
            ("30s1m", "largest first; write \"1m30s\""),
            ("30sec", "unknown unit"),
            ("1d", "unknown unit"),
            ("30s1m", "largest first"),
            ("1m1m", "largest first"),
            ("99999999999999999999s", "too large"),
        ];
        for (text, want) in bad {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
}
