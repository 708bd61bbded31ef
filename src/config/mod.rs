//! Configuration: the TOML file format and the validated runtime [`Config`].
//!
//! Two layers, on purpose. [`file`] mirrors the TOML with `serde` and
//! `deny_unknown_fields`, so a typo in an origin allowlist fails loudly instead
//! of failing open. [`validate`] turns that into the runtime types below, which
//! carry no `Option` that has a default and no string that still needs parsing.
//! Every problem is collected with its key path and reported at once.

mod acme;
mod balance;
pub mod cluster;
mod edge;
mod file;
mod tls;
mod units;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use acme::{
    AcmeChallenge, AcmeSettings, ExternalAccount, LETS_ENCRYPT, LETS_ENCRYPT_STAGING,
    MIN_RETRY_BACKOFF,
};
pub use balance::{Balance, HealthCheck, Probe};
pub use edge::{EdgePolicy, ForwardAuth, MessageRate, TrustedProxies};
pub use tls::{BackendTls, ListenerTls};
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
    /// `[cluster]`: fallback sessions served by any instance; `None` keeps
    /// every session to the instance that opened it.
    pub cluster: Option<cluster::ClusterSettings>,
}

/// Process-wide settings, `[server]`.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// How long a SIGTERM drain may take before open connections are cut.
    pub shutdown_grace: Duration,
    /// How long a client may take to send a complete request head (slowloris).
    pub header_read_timeout: Duration,
    /// On shutdown, relayed WebSockets get their 1001 at random moments
    /// spread over this window, so clients do not reconnect in one burst.
    /// Never longer than `shutdown_grace`.
    pub drain_spread: Duration,
    /// How log lines are written.
    pub log_format: LogFormat,
    /// Worker threads, each a single-threaded runtime owning the
    /// connections it accepts; 0 = one per CPU. Takes effect at start.
    pub workers: usize,
    /// Connection limits, `[limits]`.
    pub limits: LimitSettings,
}

/// Configured connection limits, `[limits]`; a zero count means "no limit".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSettings {
    /// Client connections (HTTP and upgraded WebSocket) held at once.
    pub max_connections: usize,
    /// Client connections held at once per client address (IPv6 by /64).
    pub max_connections_per_ip: usize,
    /// WebSocket upgrades in progress at once (request received, 101 not yet sent).
    pub max_handshakes: usize,
    /// Largest request head (request line plus headers); larger → 431.
    /// On HTTP/2 it is the advertised `SETTINGS_MAX_HEADER_LIST_SIZE`.
    pub max_header_size: usize,
    /// Streams one HTTP/2 connection may have open at once
    /// (`SETTINGS_MAX_CONCURRENT_STREAMS`); a WebSocket over HTTP/2 holds
    /// one for its whole life.
    pub http2_max_streams: u32,
}

/// hyper's smallest allowed read buffer (it asserts at least 8 KiB): the
/// floor of `max_header_size`, and the head buffer of a refusal.
pub const MIN_HEADER_BUF: usize = 8 * 1024;

/// `server.log_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event (the default).
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// One public listener, `[[listeners]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    /// Address to bind.
    pub bind: SocketAddr,
    /// TLS settings; `None` serves plain HTTP.
    pub tls: Option<ListenerTls>,
    /// `redirect_https`: a plain listener answers every request with a
    /// redirect to `https://` on this port instead of proxying.
    pub redirect_https: Option<u16>,
    /// Peers whose forwarding and PROXY headers say who the client is.
    pub trusted_proxies: TrustedProxies,
    /// Connections from `trusted_proxies` start with a PROXY protocol
    /// (v1 or v2) header naming the client.
    pub proxy_protocol: bool,
}

/// A certificate chain file and its private key file, resolved against the
/// config file's directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertPair {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The admin listener, `[admin]`.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Backends, spread by `balance`; at least one.
    pub backends: Vec<Backend>,
    /// How new connections are spread over `backends`.
    pub balance: Balance,
    /// The cookie naming a client's backend (used with `Balance::Cookie`).
    pub sticky_cookie: String,
    /// Active health checks of the backends, `[routes.health]`.
    pub health: Option<HealthCheck>,
    /// Which `Origin` headers may open a WebSocket.
    pub origins: OriginPolicy,
    /// Whether a request without `Origin` (a non-browser client) is allowed.
    pub allow_missing_origin: bool,
    /// Allowed subprotocols in preference order; empty passes the client's
    /// offer through unchanged.
    pub subprotocols: Vec<String>,
    /// Whether the long-poll / SSE fallback is offered on this route.
    pub fallback: bool,
    /// Tuning of the long-poll / SSE fallback (used when `fallback` is on).
    pub fallback_settings: FallbackSettings,
    /// Limits and timers for relayed WebSockets.
    pub ws: WsSettings,
    /// How long dialing a backend may take before the next one is tried.
    pub connect_timeout: Duration,
    /// How long a backend may take to answer the request head (then 504).
    pub response_timeout: Duration,
    /// How `wss://` and `https://` backends are dialed.
    pub backend_tls: BackendTls,
    /// Forward auth, client rate limits and the per-client WebSocket cap.
    pub edge: EdgePolicy,
}

/// Limits and timers applied by the relay to every WebSocket on a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsSettings {
    /// Largest message (summed over continuation frames) in bytes; close 1009.
    pub max_message_size: u64,
    /// Uncompressed text messages must be UTF-8; close 1007 otherwise.
    pub validate_utf8: bool,
    /// No frame relayed end to end for this long closes both sides (1001).
    pub idle_timeout: Duration,
    /// Interval between the gateway's own pings to the client.
    pub ping_interval: Duration,
    /// How long the client has to answer a gateway ping.
    pub pong_timeout: Duration,
}

/// Tuning of a route's long-poll / SSE fallback sessions (docs/fallback.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackSettings {
    /// How long a long-poll is held open when there is nothing to deliver;
    /// below the idle cuts of common proxies.
    pub poll_hold: Duration,
    /// A session with no poll, stream or send for this long is closed
    /// (the backend gets 1001) and forgotten.
    pub session_timeout: Duration,
    /// Unacknowledged bytes held per session for the client; when full the
    /// gateway stops reading the backend. Also bounds one upstream POST.
    pub buffer: u64,
    /// Open sessions one client IP may hold on the route (then 429).
    pub sessions_per_client: u64,
}

impl Default for FallbackSettings {
    /// The documented defaults, as a route without `fallback_*` keys gets.
    fn default() -> Self {
        use file::defaults;
        FallbackSettings {
            poll_hold: defaults::FALLBACK_POLL_HOLD,
            session_timeout: defaults::FALLBACK_SESSION_TIMEOUT,
            buffer: defaults::FALLBACK_BUFFER,
            sessions_per_client: defaults::FALLBACK_SESSIONS_PER_CLIENT,
        }
    }
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

/// The certificate, key and CA files a config names, from every part that
/// validated even when other parts did not: `wsgate check` loads them all
/// and reports their errors beside the others, in one run.
#[derive(Debug, Clone, Default)]
pub struct FileRefs {
    /// `[[listeners]]` with TLS: the position in the file and the settings.
    pub listeners: Vec<(usize, ListenerTls)>,
    /// The routes, each with its `index` and `backend_tls`.
    pub routes: Vec<Route>,
}

impl Config {
    /// Reads and validates a config file; relative paths in it are resolved
    /// against the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Config::load_all(path).0
    }

    /// [`Config::load`], and the files the valid parts name even when the
    /// config has errors (none when the file cannot be read or parsed).
    pub fn load_all(path: &Path) -> (Result<Config, ConfigErrors>, FileRefs) {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let base = path.parent().unwrap_or_else(|| Path::new("."));
                Config::parse_all(&text, base)
            }
            Err(e) => {
                let error = ConfigError::new("", format!("cannot read {}: {e}", path.display()));
                (Err(ConfigErrors::single(error)), FileRefs::default())
            }
        }
    }

    /// Parses and validates config text; `base` resolves relative paths.
    pub fn parse(text: &str, base: &Path) -> Result<Config, ConfigErrors> {
        Config::parse_all(text, base).0
    }

    /// [`Config::parse`], and the files the valid parts name.
    pub fn parse_all(text: &str, base: &Path) -> (Result<Config, ConfigErrors>, FileRefs) {
        match toml::from_str::<file::ConfigFile>(text) {
            Ok(raw) => validate::validate(raw, base),
            Err(e) => (
                Err(ConfigErrors::from_toml_in(e, text)),
                FileRefs::default(),
            ),
        }
    }

    /// The files this (valid) config names.
    pub fn files(&self) -> FileRefs {
        let listeners = self.listeners.iter().enumerate();
        FileRefs {
            listeners: listeners
                .filter_map(|(i, l)| l.tls.clone().map(|tls| (i, tls)))
                .collect(),
            routes: self.routes.clone(),
        }
    }
}

#[cfg(test)]
impl Route {
    /// A route with every default exactly as the file format gives it, for
    /// unit tests that override a few fields with struct-update syntax.
    pub(crate) fn with_defaults() -> Route {
        let text =
            "[[listeners]]\nbind = \"127.0.0.1:0\"\n[[routes]]\nbackends = [\"builtin:echo\"]\n";
        let mut config = Config::parse(text, Path::new(".")).expect("the minimal config is valid");
        config.routes.remove(0)
    }
}
