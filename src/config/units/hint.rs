//! Hints for a size or duration the strict parsers refused, computed from
//! the value given: `"1.5MiB"` → `"1536KiB"`, `"10 minutes"` → `"10m"`,
//! `"1.5m"` → `"1m30s"`. The parsers stay strict (a value that is almost
//! right is never guessed at); the hint only says what to write instead.

use std::time::Duration;

use super::{DURATION_UNITS, SIZE_UNITS};

/// Most digits after a decimal point a hint works with (exact in `u128`).
const MAX_FRACTION_DIGITS: usize = 18;

/// Unit spellings people write, mapped to the parser's, in milliseconds.
const DURATION_ALIASES: &[(&str, u64)] = &[
    ("d", 86_400_000),
    ("day", 86_400_000),
    ("days", 86_400_000),
    ("h", 3_600_000),
    ("hr", 3_600_000),
    ("hrs", 3_600_000),
    ("hour", 3_600_000),
    ("hours", 3_600_000),
    ("m", 60_000),
    ("min", 60_000),
    ("mins", 60_000),
    ("minute", 60_000),
    ("minutes", 60_000),
    ("s", 1_000),
    ("sec", 1_000),
    ("secs", 1_000),
    ("second", 1_000),
    ("seconds", 1_000),
    ("ms", 1),
    ("msec", 1),
    ("msecs", 1),
    ("millis", 1),
    ("millisecond", 1),
    ("milliseconds", 1),
];

/// A number as written, `"1.25"`, as an exact fraction `numerator / 10^k`.
struct Decimal {
    /// The digits without the point.
    numerator: u128,
    /// `10^k` for `k` digits after the point.
    denominator: u128,
}

impl Decimal {
    /// Parses `"12"`, `"1.5"`, `".5"`; `None` for anything else.
    fn parse(text: &str) -> Option<Decimal> {
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
            return None;
        }
        if fraction.len() > MAX_FRACTION_DIGITS {
            return None;
        }
        let numerator = format!("{whole}{fraction}").parse().ok()?;
        let denominator = 10u128.checked_pow(fraction.len() as u32)?;
        Some(Decimal {
            numerator,
            denominator,
        })
    }
}

/// What to write instead of a size the parser refused, if it can be told.
pub(super) fn size(text: &str) -> Option<String> {
    let squeezed: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let split = squeezed
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(squeezed.len());
    let (digits, unit) = squeezed.split_at(split);
    let number = Decimal::parse(digits)?;
    let Some((unit, multiplier)) = size_unit(unit) else {
        return ambiguous_size(digits, unit);
    };
    let bytes_scaled = number.numerator.checked_mul(u128::from(multiplier))?;
    let binary = unit.ends_with("iB");
    let candidates = SIZE_UNITS
        .iter()
        .filter(|(name, m)| *m <= multiplier && (*name == "B" || name.ends_with("iB") == binary))
        .map(|(name, m)| (*name, u128::from(*m)));
    let mut best: Option<(u128, &str)> = None;
    for (name, m) in candidates {
        let per_unit = number.denominator * m;
        if bytes_scaled % per_unit == 0 && best.map_or(true, |(_, b)| unit_size(b) < m) {
            best = Some((bytes_scaled / per_unit, name));
        }
    }
    Some(match best {
        Some((n, "B")) => format!("write \"{n}\" (bytes)"),
        Some((n, name)) => format!("write \"{n}{name}\""),
        None => {
            let rounded = bytes_scaled.saturating_add(number.denominator / 2) / number.denominator;
            format!("that is not a whole number of bytes; write about \"{rounded}\" (bytes)")
        }
    })
}

/// `"1M"`, `"1mb"`: either power, so both spellings are offered.
fn ambiguous_size(digits: &str, unit: &str) -> Option<String> {
    let lower = unit.to_ascii_lowercase();
    let prefix = lower.strip_suffix('b').unwrap_or(&lower);
    let prefix = ["k", "m", "g", "t"].into_iter().find(|p| *p == prefix)?;
    let upper = prefix.to_ascii_uppercase();
    Some(format!(
        "write \"{digits}{upper}iB\" (powers of 1024) or \"{digits}{upper}B\" (powers of 1000)"
    ))
}

/// The size of a unit of `SIZE_UNITS` in bytes.
fn unit_size(name: &str) -> u128 {
    SIZE_UNITS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(1, |(_, m)| u128::from(*m))
}

/// A size unit as written, matched case-insensitively (`"mib"` → `MiB`);
/// `""` is bytes. A bare `"M"` or `"mb"` is refused: KB and KiB differ.
fn size_unit(unit: &str) -> Option<(&'static str, u64)> {
    if unit.is_empty() {
        return Some(("B", 1));
    }
    SIZE_UNITS
        .iter()
        .find(|(name, _)| *name == unit || name.eq_ignore_ascii_case(unit) && name.ends_with("iB"))
        .map(|(name, m)| (*name, *m))
}

/// What to write instead of a duration the parser refused, if it can be
/// told: the same length spelled with whole numbers, units largest first,
/// no spaces.
pub(super) fn duration(text: &str) -> Option<String> {
    let total_ms = lenient_duration_ms(text)?;
    let rendered = render_duration(Duration::from_millis(u64::try_from(total_ms).ok()?));
    (rendered != text).then(|| format!("write \"{rendered}\""))
}

/// Reads `"10 minutes"`, `"1.5m"`, `"30s1m"`, `"2 days"` into milliseconds;
/// `None` unless every part is a number and a known unit and the total is
/// a whole number of milliseconds.
fn lenient_duration_ms(text: &str) -> Option<u128> {
    let lower = text.to_ascii_lowercase();
    let mut rest = lower.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let number = Decimal::parse(&rest[..number_end])?;
        rest = rest[number_end..].trim_start();
        let unit_end = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = rest[unit_end..].trim_start_matches([' ', ',']);
        let ms = DURATION_ALIASES
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, ms)| u128::from(*ms))?;
        let scaled = number.numerator.checked_mul(ms)?;
        if scaled % number.denominator != 0 {
            return None;
        }
        total = total.checked_add(scaled / number.denominator)?;
    }
    Some(total)
}

/// A duration as the parser reads it: `"1h30m"`, `"1s500ms"`, `"0s"`.
fn render_duration(duration: Duration) -> String {
    let mut left = duration.as_millis();
    let mut out = String::new();
    for (name, ms) in DURATION_UNITS {
        let ms = u128::from(*ms);
        if left >= ms {
            out.push_str(&format!("{}{name}", left / ms));
            left %= ms;
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_hints_follow_the_value() {
        let cases: &[(&str, &str)] = &[
            ("1.5MiB", "write \"1536KiB\""),
            ("2.5MiB", "write \"2560KiB\""),
            ("0.5KiB", "write \"512\" (bytes)"),
            ("1.5GiB", "write \"1536MiB\""),
            ("1.5MB", "write \"1500KB\""),
            ("1.25KB", "write \"1250\" (bytes)"),
            ("1 MiB", "write \"1MiB\""),
            ("64kib", "write \"64KiB\""),
            (
                "1.3MiB",
                "that is not a whole number of bytes; write about \"1363149\" (bytes)",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(size(text).as_deref(), Some(*want), "{text}");
        }
        assert_eq!(
            size("1M").as_deref(),
            Some("write \"1MiB\" (powers of 1024) or \"1MB\" (powers of 1000)")
        );
        assert_eq!(
            size("8kb").as_deref(),
            Some("write \"8KiB\" (powers of 1024) or \"8KB\" (powers of 1000)")
        );
        // Huge values never overflow (the fuzzer feeds anything).
        let huge = format!("{}.5", u128::MAX / 10);
        assert!(size(&huge).is_some());
        assert!(size(&format!("{huge}TiB")).is_none(), "too large to say");
        assert_eq!(duration(&format!("{}.5h", u128::MAX)), None);
        for text in ["1Q", "lots", "1.5.5MiB", "-1MiB"] {
            assert_eq!(size(text), None, "{text}");
        }
    }

    #[test]
    fn duration_hints_follow_the_value() {
        let cases: &[(&str, &str)] = &[
            ("10 minutes", "write \"10m\""),
            ("30 s", "write \"30s\""),
            ("30sec", "write \"30s\""),
            ("1.5s", "write \"1s500ms\""),
            ("1.5m", "write \"1m30s\""),
            ("0.5s", "write \"500ms\""),
            ("1d", "write \"24h\""),
            ("2 days", "write \"48h\""),
            ("30s1m", "write \"1m30s\""),
            ("1m1m", "write \"2m\""),
            ("1h, 30m", "write \"1h30m\""),
            ("90 Seconds", "write \"1m30s\""),
        ];
        for (text, want) in cases {
            assert_eq!(duration(text).as_deref(), Some(*want), "{text}");
        }
        for text in ["30", "1.0005s", "ten minutes", "", "1fortnight"] {
            assert_eq!(duration(text), None, "{text}");
        }
    }

    #[test]
    fn rendering_round_trips_through_the_parser() {
        for ms in [0, 1, 999, 1_000, 90_000, 3_723_004, 86_400_000] {
            let text = render_duration(Duration::from_millis(ms));
            assert_eq!(
                super::super::parse_duration(&text),
                Ok(Duration::from_millis(ms))
            );
        }
    }
}
