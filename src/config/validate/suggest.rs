//! "Did you mean `fallback`?": an unknown key close to a valid one is
//! named, instead of a list of every valid key. serde's unknown-field
//! error carries the expected names; this reads them back from it.

/// Largest edit distance at which a valid key is suggested.
const MAX_DISTANCE: usize = 2;

/// serde's unknown-field message with the closest valid key named instead
/// of the whole list, or `None` when the message is another error or no
/// valid key is close.
pub(super) fn unknown_key(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, expected) = rest.split_once('`')?;
    let best = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|name| (distance(&normalize(unknown), name), name))
        .filter(|(d, _)| *d <= MAX_DISTANCE && *d < unknown.len())
        .min_by_key(|(d, _)| *d)?;
    Some(format!(
        "unknown field `{unknown}`; did you mean `{}`?",
        best.1
    ))
}

/// The key as it was probably meant: lower case, `_` for `-`.
fn normalize(key: &str) -> String {
    key.to_ascii_lowercase().replace('-', "_")
}

/// Levenshtein distance between `a` and `b`.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE_KEYS: &str = "expected one of `name`, `host`, `path`, `backends`, \
        `origins`, `fallback`, `fallback_poll_hold`, `max_message_size`";

    #[test]
    fn close_keys_are_named() {
        let cases = [
            ("fallbak", "fallback"),
            ("origin", "origins"),
            ("backend", "backends"),
            ("max-message-size", "max_message_size"),
            ("Fallback", "fallback"),
        ];
        for (typo, want) in cases {
            let message = format!("unknown field `{typo}`, {ROUTE_KEYS}");
            assert_eq!(
                unknown_key(&message),
                Some(format!("unknown field `{typo}`; did you mean `{want}`?"))
            );
        }
    }

    #[test]
    fn far_keys_and_other_errors_are_left_alone() {
        for message in [
            format!("unknown field `metrics`, {ROUTE_KEYS}"),
            format!("unknown field `x`, {ROUTE_KEYS}"),
            "unknown field `x`, there are no fields".to_string(),
            "invalid type: string \"yes\", expected a boolean".to_string(),
        ] {
            assert_eq!(unknown_key(&message), None, "{message}");
        }
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
