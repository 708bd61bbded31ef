//! Configuration: the TOML file format and the validated runtime [`Config`].
//!
//! Two layers, on purpose. [`file`] mirrors the TOML with `serde` and
//! `deny_unknown_fields`, so a typo in an origin allowlist fails loudly instead
//! of failing open. [`validate`] turns that into the runtime types below, which
//! carry no `Option` that has a default and no string that still needs parsing.
//! Every problem is collected with its key path and reported at once.

mod file;
mod units;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use units::{parse_duration, parse_size};
pub use validate::{ConfigError, ConfigErrors};

/// The validated configuration the gateway runs on.
#[derive(Debug, Clone)]
pub struct Config {
    /// Process-wide settings.
    pub server: ServerSettings,
    /// Public listeners; at least one.
    pub listeners: Vec<Listener>,
    /// The admin listener (metrics, health), if configured.
    pub admin: Option<Admin>,
    /// Routes in file order; matching picks the most specific one.
    pub routes: Vec<Route>,
}

/// Process-wide settings, `[server]`.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// How long a SIGTERM drain may take before open connections are cut.
    pub shutdown_grace: Duration,
    /// How long a client may take to send a complete request head (slowloris).
    pub header_read_timeout: Duration,
    /// Connection limits, `[limits]`.
    pub limits: crate::limits::LimitSettings,
}

/// One public listener, `[[listeners]]`.
#[derive(Debug, Clone)]
pub struct Listener {
    /// Address to bind.
    pub bind: SocketAddr,
    /// TLS settings; `None` serves plain HTTP.
    pub tls: Option<ListenerTls>,
}

/// TLS settings of a listener, `[listeners.tls]`.
#[derive(Debug, Clone)]
pub struct ListenerTls {
    /// Certificate chains with their keys; the first is the default for SNI.
    pub certs: Vec<CertPair>,
}

/// A certificate chain file and its private key file, resolved against the
/// config file's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPair {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The admin listener, `[admin]`.
#[derive(Debug, Clone)]
pub struct Admin {
    /// Address to bind; keep it off the public interfaces.
    pub bind: SocketAddr,
}

/// One route, `[[routes]]`.
#[derive(Debug, Clone)]
pub struct Route {
    /// Position in the file, for logs and metric labels (`routes[3]`).
    pub index: usize,
    /// A short name for logs and metrics: the `name` key, else `host+path`.
    pub name: String,
    /// Which Host headers the route answers.
    pub host: HostPattern,
    /// Path prefix, matched on whole segments; always starts with `/` and
    /// has no trailing `/` unless it is exactly `/`.
    pub path: String,
    /// Backends, balanced round-robin; at least one.
    pub backends: Vec<Backend>,
    /// Which `Origin` headers may open a WebSocket.
    pub origins: OriginPolicy,
    /// Whether a request without `Origin` (a non-browser client) is allowed.
    pub allow_missing_origin: bool,
    /// Allowed subprotocols in preference order; empty passes the client's
    /// offer through unchanged.
    pub subprotocols: Vec<String>,
    /// Whether the long-poll / SSE fallback is offered on this route.
    pub fallback: bool,
    /// Limits and timers for relayed WebSockets.
    pub ws: WsSettings,
    /// How long dialing a backend may take before the next one is tried.
    pub connect_timeout: Duration,
    /// How long a backend may take to answer the request head (then 504).
    pub response_timeout: Duration,
}

/// Limits and timers applied by the relay to every WebSocket on a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsSettings {
    /// Largest message (summed over continuation frames) in bytes; close 1009.
    pub max_message_size: u64,
    /// No frame relayed end to end for this long closes both sides (1001).
    pub idle_timeout: Duration,
    /// Interval between the gateway's own pings to the client.
    pub ping_interval: Duration,
    /// How long the client has to answer a gateway ping.
    pub pong_timeout: Duration,
}

/// Which Host headers a route answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// The `host` key was omitted.
    Any,
    /// An exact host name, lower-cased, without port.
    Exact(String),
    /// `*.example.com`: stored as `.example.com`; matches one or more labels.
    Suffix(String),
}

/// Which origins may open WebSockets on a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPolicy {
    /// `origins` unset: only an origin whose host:port equals the Host header.
    SameOrigin,
    /// `origins = ["*"]`.
    Any,
    /// An explicit allowlist.
    List(Vec<OriginPattern>),
}

/// One entry of an origin allowlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPattern {
    /// `http` or `https`, lower-cased.
    pub scheme: String,
    /// The host, lower-cased; with `wildcard` it is the parent domain.
    pub host: String,
    /// `https://*.example.com`: matches one or more labels below `host`,
    /// never `host` itself.
    pub wildcard: bool,
    /// The explicit or default port for the scheme.
    pub port: u16,
}

/// One backend of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A network backend given as `ws://`, `wss://`, `http://` or `https://`.
    Remote(RemoteBackend),
    /// `builtin:echo`: the gateway's in-process echo server and demo page.
    BuiltinEcho,
}

/// A backend reached over the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteBackend {
    /// Whether the backend is dialed with TLS (`wss://`, `https://`).
    pub tls: bool,
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// Port, explicit or the scheme's default.
    pub port: u16,
    /// The URL as written, for logs and metric labels.
    pub url: String,
}

impl Config {
    /// Reads and validates a config file; relative paths in it are resolved
    /// against the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors::single(ConfigError::new(
                "",
                format!("cannot read {}: {e}", path.display()),
            ))
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        Config::parse(&text, base)
    }

    /// Parses and validates config text; `base` resolves relative paths.
    pub fn parse(text: &str, base: &Path) -> Result<Config, ConfigErrors> {
        let raw: file::ConfigFile =
            toml::from_str(text).map_err(|e| ConfigErrors::from_toml_in(e, text))?;
        validate::validate(raw, base)
    }
}
