//! `wsgate proxy --from ADDR --to URL`: a gateway without a config file,
//! like Caddy's `reverse-proxy`. The flags become config TOML, and that
//! text goes through the same parse and validation as a file: there is no
//! second way to a `Config`, so `--print-config` prints exactly what runs,
//! ready to be saved as a file and grown.

/// The route name of the one route a quick start has.
const ROUTE_NAME: &str = "proxy";

/// What `wsgate proxy`'s flags ask for.
#[derive(Debug, Clone, Default)]
pub struct QuickStart {
    /// `--from`: `:PORT`, `PORT`, `IP:PORT` or `localhost:PORT`.
    pub from: String,
    /// `--to`, repeatable: backend URLs (`ws://`, `wss://`, `http://`,
    /// `https://`, `builtin:echo`), or `HOST:PORT` / `:PORT` for `ws://`.
    pub to: Vec<String>,
    /// `--fallback`: long-poll / SSE for clients without WebSocket.
    pub fallback: bool,
    /// `--origin`, repeatable: the Origin allowlist (default same-origin).
    pub origins: Vec<String>,
    /// `--tls`: `self-signed`, or `acme:DOMAIN[,DOMAIN...]`.
    pub tls: Option<String>,
    /// The command as typed, for the generated file's first comment.
    pub command_line: String,
}

/// The config TOML for `quick`, or what is wrong with a flag that the
/// config's own validation cannot name (the values themselves are checked
/// by the same validation as a file's).
pub fn config_text(quick: &QuickStart) -> Result<String, String> {
    if quick.to.is_empty() {
        return Err("--to is required (e.g. --to ws://127.0.0.1:9000)".into());
    }
    let tls = tls_table(quick.tls.as_deref())?;
    let backends = quick
        .to
        .iter()
        .map(|to| backend_url(to))
        .collect::<Vec<_>>();
    let mut text = format!(
        "# Built by: {}\n# Save as wsgate.toml and run `wsgate --config wsgate.toml`; \
         every key is in docs/configuration.md.\n\n\
         [[listeners]]\nbind = {}\n{tls}\n\
         [[routes]]\nname = {}\npath = \"/\"\nbackends = {}\n",
        quick.command_line,
        quoted(&bind_address(&quick.from)),
        quoted(ROUTE_NAME),
        array(&backends),
    );
    if !quick.origins.is_empty() {
        text.push_str(&format!("origins = {}\n", array(&quick.origins)));
    }
    if quick.fallback {
        text.push_str("fallback = true\n");
    }
    Ok(text)
}

/// The `[listeners.tls]` table `--tls` asks for: a self-signed certificate,
/// or certificates from Let's Encrypt for the listed domains, cached where
/// the user running the command can write ([`acme_cache`]).
fn tls_table(tls: Option<&str>) -> Result<String, String> {
    match tls {
        None => Ok(String::new()),
        Some("self-signed") => Ok("[listeners.tls]\nself_signed = true\n".into()),
        Some(acme) if acme.starts_with("acme:") => {
            let domains: Vec<String> = acme["acme:".len()..]
                .split(',')
                .map(|d| d.trim().to_string())
                .filter(|d| !d.is_empty())
                .collect();
            if domains.is_empty() {
                return Err("--tls acme: needs a domain, e.g. --tls acme:chat.example.com".into());
            }
            Ok(format!(
                "[listeners.tls.acme]\ndomains = {}\ncache = {}\n",
                array(&domains),
                quoted(&acme_cache())
            ))
        }
        Some(other) => Err(format!(
            "--tls {other:?}: expected \"self-signed\" or \"acme:DOMAIN\""
        )),
    }
}

/// Where a quick start keeps its ACME account and certificates: the
/// system's state directory for root (as the packaged service does), else
/// the user's own data directory, so that `wsgate proxy` works unprivileged.
fn acme_cache() -> String {
    const SYSTEM: &str = "/var/lib/wsgate/acme";
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty());
    let data = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty());
    match (data, home) {
        _ if is_root() => SYSTEM.to_string(),
        (Some(data), _) => format!("{}/wsgate/acme", data.to_string_lossy()),
        (None, Some(home)) => format!("{}/.local/share/wsgate/acme", home.to_string_lossy()),
        (None, None) => SYSTEM.to_string(),
    }
}

/// Whether the process runs as root (its real user id, from procfs).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().next())
            == Some("0")
    })
}

/// A config error about the generated text, told in the flag's words:
/// `listeners[0].bind: …` becomes `--from: …`.
pub fn in_flag_terms(error: &str) -> String {
    const FLAGS: [(&str, &str); 4] = [
        ("listeners[0].bind", "--from"),
        ("listeners[0].tls", "--tls"),
        ("routes[0].backends", "--to"),
        ("routes[0].origins", "--origin"),
    ];
    for (key, flag) in FLAGS {
        if let Some(rest) = error.strip_prefix(key) {
            // `routes[0].backends[1]: …` → `--to #2: …`
            return match rest.strip_prefix('[').and_then(|r| r.split_once(']')) {
                Some((i, rest)) => {
                    let n = i.parse::<usize>().map_or(0, |i| i + 1);
                    format!("{flag} #{n}{rest}")
                }
                None => format!("{flag}{rest}"),
            };
        }
    }
    error.to_string()
}

/// `--from` as a socket address: `:8080` and `8080` listen on every
/// interface, `localhost:8080` on 127.0.0.1; anything else is kept for
/// the validation to judge.
fn bind_address(from: &str) -> String {
    if let Some(port) = from.strip_prefix(':') {
        return format!("0.0.0.0:{port}");
    }
    if !from.is_empty() && from.bytes().all(|b| b.is_ascii_digit()) {
        return format!("0.0.0.0:{from}");
    }
    if let Some(port) = from.strip_prefix("localhost:") {
        return format!("127.0.0.1:{port}");
    }
    from.to_string()
}

/// `--to` as a backend URL: a scheme-less `HOST:PORT` (or `:PORT`, on
/// 127.0.0.1) becomes `ws://`; a URL is kept for the validation to judge.
fn backend_url(to: &str) -> String {
    if to.contains("://") || to.starts_with("builtin:") {
        return to.to_string();
    }
    match to.strip_prefix(':') {
        Some(port) => format!("ws://127.0.0.1:{port}"),
        None => format!("ws://{to}"),
    }
}

/// A TOML basic string.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// A TOML array of strings.
fn array(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|i| quoted(i)).collect();
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_completed() {
        assert_eq!(bind_address(":8080"), "0.0.0.0:8080");
        assert_eq!(bind_address("8080"), "0.0.0.0:8080");
        assert_eq!(bind_address("localhost:8080"), "127.0.0.1:8080");
        assert_eq!(bind_address("[::1]:8080"), "[::1]:8080");
        assert_eq!(backend_url(":9000"), "ws://127.0.0.1:9000");
        assert_eq!(backend_url("10.0.0.5:9000"), "ws://10.0.0.5:9000");
        assert_eq!(backend_url("https://x:1"), "https://x:1");
        assert_eq!(backend_url("builtin:echo"), "builtin:echo");
    }

    #[test]
    fn errors_speak_of_flags() {
        assert_eq!(
            in_flag_terms("routes[0].backends[1]: unsupported scheme"),
            "--to #2: unsupported scheme"
        );
        assert_eq!(in_flag_terms("listeners[0].bind: bad"), "--from: bad");
        assert_eq!(in_flag_terms("other: x"), "other: x");
    }

    #[test]
    fn strings_survive_quoting() {
        for text in ["plain", "a\"b\\c", "it's", "new\nline", "'\"both\"'"] {
            let parsed: toml::Table = toml::from_str(&format!("x = {}", quoted(text))).unwrap();
            assert_eq!(parsed["x"].as_str(), Some(text));
        }
    }
}
