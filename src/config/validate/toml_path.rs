//! Best-effort key path for a TOML syntax or serde error, from its byte
//! offset in the source: `routes[1].origin` reads better than a line number.
//!
//! toml 0.8 tracks the keys it unwinds through but does not expose them, so
//! this scans the text: the last table header before the error, with
//! `[[array]]` occurrences counted, plus the key of the line. It does not
//! understand multi-line strings; a wrong guess costs little because the
//! line and column are always reported as well.

use std::collections::HashMap;

/// The key path at `offset` in `text`, or `""` when nothing sensible is found.
pub(super) fn key_path_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    // Occurrences of each `[[name]]` seen so far.
    let mut array_counts: HashMap<String, usize> = HashMap::new();
    let mut table = String::new();
    let mut line_key: Option<String> = None;
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        if line_start > offset {
            break;
        }
        let trimmed = line.trim_start();
        if let Some(name) = header_name(trimmed) {
            let name = name.to_owned();
            if trimmed.starts_with("[[") {
                *array_counts.entry(name.clone()).or_default() += 1;
            }
            table = resolve(&name, &array_counts);
            line_key = None;
        } else if let Some((key, _)) = trimmed.split_once('=') {
            let key = key.trim();
            if is_bare_key(key) {
                line_key = Some(key.to_owned());
            }
        }
        line_start += line.len();
    }
    match (table.is_empty(), line_key) {
        (_, None) => table,
        (true, Some(key)) => key,
        (false, Some(key)) => format!("{table}.{key}"),
    }
}

/// `name` from `[name]` or `[[name]]`, ignoring a trailing comment.
fn header_name(line: &str) -> Option<&str> {
    let line = line.split('#').next().unwrap_or("").trim_end();
    let inner = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]"));
    let inner = inner.or_else(|| line.strip_prefix('[').and_then(|l| l.strip_suffix(']')))?;
    Some(inner.trim())
}

/// Dotted key segments that are bare TOML keys (no quotes, no spaces).
fn is_bare_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// `listeners.tls` → `listeners[1].tls`, using the latest `[[listeners]]`.
fn resolve(name: &str, array_counts: &HashMap<String, usize>) -> String {
    let mut path = String::new();
    let mut prefix = String::new();
    for (i, part) in name.split('.').map(str::trim).enumerate() {
        if i > 0 {
            path.push('.');
            prefix.push('.');
        }
        path.push_str(part);
        prefix.push_str(part);
        if let Some(count) = array_counts.get(&prefix) {
            path.push_str(&format!("[{}]", count - 1));
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
[server]
shutdown_grace = \"30s\"

[[listeners]]
bind = \"0.0.0.0:80\"

[[listeners]]
bind = \"0.0.0.0:443\"
[listeners.tls]  # comment
certs = [{ cert = \"a\", key = \"b\" }]

[[routes]]
backends = [
  \"ws://a\",
]
";

    #[test]
    fn paths_by_offset() {
        let at = |needle: &str| key_path_at(TEXT, TEXT.find(needle).unwrap());
        assert_eq!(at("[server]"), "server");
        assert_eq!(at("shutdown_grace"), "server.shutdown_grace");
        assert_eq!(at("\"0.0.0.0:80\""), "listeners[0].bind");
        assert_eq!(at("\"0.0.0.0:443\""), "listeners[1].bind");
        assert_eq!(at("key = \"b\""), "listeners[1].tls.certs");
        assert_eq!(at("\"ws://a\""), "routes[0].backends");
        assert_eq!(key_path_at("x = 1", 0), "x");
        assert_eq!(key_path_at("", 10), "");
    }
}
