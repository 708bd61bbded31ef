//! `[cluster]`: exactly one of `secret` / `secret_file` (read here, at least
//! [`MIN_SECRET_LEN`] bytes), the peer listener's `bind`, and `advertise`
//! (default: `bind`), which may name environment variables as `${NAME}` so
//! an orchestrator can hand each instance its own address (Kubernetes'
//! downward API gives the pod IP as an environment variable).

use std::net::SocketAddr;
use std::path::Path;

use super::Errors;
use crate::config::cluster::{ClusterSettings, Secret, MIN_SECRET_LEN};
use crate::config::file::ClusterFile;
use crate::config::{Admin, Listener};

/// Longest `advertise`, in bytes: it travels inside every session id.
const MAX_ADVERTISE_LEN: usize = 200;

/// Validates `[cluster]`; `None` when absent or invalid (errors recorded).
pub(super) fn cluster(
    errors: &mut Errors,
    raw: Option<ClusterFile>,
    base: &Path,
    listeners: &[Listener],
    admin: Option<&Admin>,
) -> Option<ClusterSettings> {
    let raw = raw?;
    let secret = secret(errors, &raw, base);
    let bind = errors.bind("cluster.bind".into(), raw.bind.as_deref());
    if let Some(bind) = bind {
        if listeners.iter().any(|l| l.bind == bind) {
            errors.push("cluster.bind", format!("{bind} is also a public listener"));
        }
        if admin.is_some_and(|a| a.bind == bind) {
            errors.push("cluster.bind", format!("{bind} is also the admin listener"));
        }
    }
    let advertise = advertise(errors, raw.advertise.as_deref(), bind)?;
    Some(ClusterSettings {
        secret: secret?,
        bind: bind?,
        advertise,
    })
}

/// The secret, inline or from its file (relative to the config's
/// directory), with surrounding whitespace (a file's final newline) trimmed.
fn secret(errors: &mut Errors, raw: &ClusterFile, base: &Path) -> Option<Secret> {
    let (key, bytes) = match (&raw.secret, &raw.secret_file) {
        (Some(_), Some(_)) => {
            errors.push("cluster", "set one of secret and secret_file, not both");
            return None;
        }
        (None, None) => {
            errors.push(
                "cluster.secret_file",
                "required: a file holding the shared secret (or cluster.secret)",
            );
            return None;
        }
        (Some(inline), None) => ("cluster.secret", inline.as_bytes().to_vec()),
        (None, Some(file)) => {
            let path = base.join(file);
            match std::fs::read(&path) {
                Ok(bytes) => ("cluster.secret_file", bytes),
                Err(e) => {
                    let message = format!("cannot read {}: {e}", path.display());
                    errors.push("cluster.secret_file", message);
                    return None;
                }
            }
        }
    };
    let trimmed = bytes.trim_ascii();
    if trimmed.len() < MIN_SECRET_LEN {
        let message = format!(
            "the secret is {} bytes; at least {MIN_SECRET_LEN} are needed (e.g. `openssl rand -hex 32`)",
            trimmed.len()
        );
        errors.push(key, message);
        return None;
    }
    Some(Secret::new(trimmed))
}

/// `advertise`, expanded and checked, or `bind` when it is reachable.
fn advertise(errors: &mut Errors, raw: Option<&str>, bind: Option<SocketAddr>) -> Option<String> {
    let key = "cluster.advertise";
    let Some(raw) = raw else {
        let bind = bind?;
        if bind.ip().is_unspecified() || bind.port() == 0 {
            let message = format!("required when cluster.bind is {bind}: peers cannot connect to it (e.g. the instance's own IP and port)");
            errors.push(key, message);
            return None;
        }
        return Some(bind.to_string());
    };
    let expanded = errors.check(key, expand_env(raw, |name| std::env::var(name).ok()))?;
    errors.check(key, check_advertise(&expanded))?;
    Some(expanded)
}

/// Replaces every `${NAME}` with the variable's value; an unset variable
/// or an unclosed `${` is an error.
fn expand_env(text: &str, var: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("{text:?}: unclosed \"${{\""))?;
        let name = &after[..end];
        let value = var(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `host:port` that a peer can connect to: a URI authority with a port,
/// no user info, not an unspecified IP, not port 0.
fn check_advertise(text: &str) -> Result<(), String> {
    let bad = |why: &str| format!("{text:?}: {why} (expected host:port, e.g. \"10.0.0.5:9443\")");
    if text.len() > MAX_ADVERTISE_LEN {
        return Err(bad("too long"));
    }
    let authority: http::uri::Authority = text.parse().map_err(|_| bad("not host:port"))?;
    if authority.as_str().contains('@') {
        return Err(bad("user info is not allowed"));
    }
    match authority.port_u16() {
        None => return Err(bad("no port")),
        Some(0) => return Err(bad("port 0 cannot be reached")),
        Some(_) => {}
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.is_empty() {
        return Err(bad("no host"));
    }
    if host
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified())
    {
        return Err(bad("an unspecified address cannot be reached"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_variables_expand() {
        let var = |name: &str| (name == "POD_IP").then(|| "10.1.2.3".to_string());
        assert_eq!(expand_env("${POD_IP}:9443", var).unwrap(), "10.1.2.3:9443");
        assert_eq!(expand_env("a:1", var).unwrap(), "a:1");
        assert!(expand_env("${NOPE}:1", var)
            .unwrap_err()
            .contains("NOPE is not set"));
        assert!(expand_env("${POD_IP:1", var)
            .unwrap_err()
            .contains("unclosed"));
    }

    #[test]
    fn advertised_addresses_must_be_reachable() {
        for good in [
            "10.0.0.5:9443",
            "wsgate-1:9443",
            "[::1]:9443",
            "peer.example:1",
        ] {
            assert_eq!(check_advertise(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("10.0.0.5", "no port"),
            ("10.0.0.5:0", "port 0"),
            ("0.0.0.0:9443", "unspecified"),
            ("[::]:9443", "unspecified"),
            ("a b:1", "not host:port"),
            ("u@h:1", "user info"),
            (":1", "no host"),
        ] {
            let err = check_advertise(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
