//! The TOML file format, mirrored one to one with `serde`.
//!
//! Every table denies unknown keys. Keys that have a default, and keys that
//! are required, are `Option`s here: `validate` applies the defaults from
//! [`defaults`] and reports a missing required key together with every other
//! problem, instead of serde stopping at the first one.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// Defaults for every optional key; the only place they are defined.
pub(crate) mod defaults {
    use std::time::Duration;

    /// `server.shutdown_grace`: how long a drain may take before connections are cut.
    pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
    /// `server.header_read_timeout`: time to receive a full request head.
    pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    /// `server.drain_spread`: 0 s, every relay gets its 1001 at once on
    /// SIGTERM; raise it so clients do not all reconnect in the same instant.
    pub(crate) const DRAIN_SPREAD: Duration = Duration::ZERO;
    /// `server.log_format`: human-readable lines.
    pub(crate) const LOG_FORMAT: &str = "text";
    /// `server.workers`: 0, one worker thread per CPU.
    pub(crate) const WORKERS: usize = 0;
    /// `routes.path`: the whole URL space.
    pub(crate) const PATH: &str = "/";
    /// `routes.allow_missing_origin`: non-browser clients send no `Origin`.
    pub(crate) const ALLOW_MISSING_ORIGIN: bool = true;
    /// `routes.fallback`: long-poll / SSE is opt-in per route.
    pub(crate) const FALLBACK: bool = false;
    /// `routes.fallback_poll_hold`: below the 30 s idle cut of common proxies.
    pub(crate) const FALLBACK_POLL_HOLD: Duration = Duration::from_secs(25);
    /// `routes.fallback_session_timeout`: a session nobody polls for this long ends.
    pub(crate) const FALLBACK_SESSION_TIMEOUT: Duration = Duration::from_secs(60);
    /// `routes.fallback_buffer`: unacknowledged bytes held per session and direction.
    pub(crate) const FALLBACK_BUFFER: u64 = 1 << 20;
    /// `routes.fallback_sessions_per_client`: open sessions per client IP.
    pub(crate) const FALLBACK_SESSIONS_PER_CLIENT: u64 = 64;
    /// `routes.validate_utf8`: text that is not UTF-8 fails the connection
    /// (RFC 6455 §8.1) before it reaches the other side.
    pub(crate) const VALIDATE_UTF8: bool = true;
    /// `routes.max_message_size`: 1 MiB.
    pub(crate) const MAX_MESSAGE_SIZE: u64 = 1 << 20;
    /// `routes.idle_timeout`: a relay with no frame either way for this long is closed.
    pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
    /// `routes.ping_interval`: below common proxy and NAT idle cuts (60 s).
    pub(crate) const PING_INTERVAL: Duration = Duration::from_secs(30);
    /// `routes.pong_timeout`: how long a client has to answer a ping.
    pub(crate) const PONG_TIMEOUT: Duration = Duration::from_secs(20);
    /// `routes.connect_timeout`: dialing one backend.
    pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// `routes.response_timeout`: waiting for a backend's response head.
    pub(crate) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
    /// `listeners.tls.handshake_timeout`: a client that opens TCP and stalls
    /// the TLS handshake is cut after this.
    pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
    /// `listeners.tls.watch_interval`: how often cert and key files are
    /// re-read to pick up a renewal without a SIGHUP.
    pub(crate) const WATCH_INTERVAL: Duration = Duration::from_secs(5);
    /// `listeners.tls.self_signed`: off; certificates come from files.
    pub(crate) const SELF_SIGNED: bool = false;
    /// `listeners.redirect_https = true`: the standard HTTPS port.
    pub(crate) const REDIRECT_HTTPS_PORT: u16 = 443;
    /// `limits.max_connections`: client connections held at once.
    pub(crate) const MAX_CONNECTIONS: usize = 200_000;
    /// `limits.max_connections_per_ip`: enough for a large office behind one NAT.
    pub(crate) const MAX_CONNECTIONS_PER_IP: usize = 1_000;
    /// `limits.max_handshakes`: WebSocket upgrades in progress at once.
    pub(crate) const MAX_HANDSHAKES: usize = 1_024;
    /// `limits.max_header_size`: a request head above this is refused (431/400).
    pub(crate) const MAX_HEADER_SIZE: u64 = 64 * 1024;
    /// `routes.balance`: a WebSocket lives for hours, so the backend with
    /// the fewest open connections gets the next one.
    pub(crate) const BALANCE: &str = "least_conn";
    /// `routes.sticky_cookie`: the cookie that names a client's backend.
    pub(crate) const STICKY_COOKIE: &str = "wsgate_backend";
    /// `routes.health.path`: what a check asks for.
    pub(crate) const HEALTH_PATH: &str = "/";
    /// `routes.health.interval`: time between two checks of one backend.
    pub(crate) const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
    /// `routes.health.timeout`: a check that takes longer has failed.
    pub(crate) const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
    /// `routes.health.unhealthy_after`: failed checks in a row.
    pub(crate) const UNHEALTHY_AFTER: i64 = 2;
    /// `routes.health.healthy_after`: passed checks in a row.
    pub(crate) const HEALTHY_AFTER: i64 = 2;
    /// `listeners.tls.acme.directory`: Let's Encrypt production.
    pub(crate) const ACME_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";
    /// `listeners.tls.acme.challenge`: answered on the TLS listener itself,
    /// so no plain listener is needed.
    pub(crate) const ACME_CHALLENGE: &str = "tls-alpn-01";
    /// `listeners.tls.acme.cache`: account key and certificates.
    pub(crate) const ACME_CACHE: &str = "/var/lib/wsgate/acme";
    /// `listeners.tls.acme.retry_backoff`: the first wait after a failed
    /// order; it doubles with each further failure, up to an hour.
    pub(crate) const ACME_RETRY_BACKOFF: Duration = Duration::from_secs(60);
    /// `listeners.proxy_protocol`: off; the socket peer is the client.
    pub(crate) const PROXY_PROTOCOL: bool = false;
    /// `routes.auth.timeout`: the whole auth subrequest, connect included.
    pub(crate) const AUTH_TIMEOUT: Duration = Duration::from_secs(2);
    /// `listeners.tls.http2`: TLS listeners offer h2 beside http/1.1.
    pub(crate) const HTTP2: bool = true;
    /// `limits.http2_max_streams`: streams one HTTP/2 connection may have
    /// open at once (nginx's default is 128, HAProxy's 100).
    pub(crate) const HTTP2_MAX_STREAMS: u32 = 128;
}

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    #[serde(default)]
    pub(crate) server: ServerFile,
    /// Required, at least one.
    #[serde(default)]
    pub(crate) listeners: Vec<ListenerFile>,
    pub(crate) admin: Option<AdminFile>,
    /// Required, at least one.
    #[serde(default)]
    pub(crate) routes: Vec<RouteFile>,
    #[serde(default)]
    pub(crate) limits: LimitsFile,
    pub(crate) cluster: Option<ClusterFile>,
}

/// `[cluster]`: fallback sessions served by any instance (docs/cluster.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClusterFile {
    /// The shared secret, inline; exactly one of `secret`, `secret_file`.
    pub(crate) secret: Option<String>,
    /// A file holding the shared secret.
    pub(crate) secret_file: Option<String>,
    /// Required: the peer listener.
    pub(crate) bind: Option<String>,
    /// How peers reach this instance; defaults to `bind`.
    pub(crate) advertise: Option<String>,
}

/// `[limits]`: connection limits; a count of 0 means unlimited.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsFile {
    pub(crate) max_connections: Option<i64>,
    pub(crate) max_connections_per_ip: Option<i64>,
    pub(crate) max_handshakes: Option<i64>,
    pub(crate) max_header_size: Option<SizeValue>,
    pub(crate) http2_max_streams: Option<i64>,
}

/// `[server]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerFile {
    pub(crate) shutdown_grace: Option<String>,
    pub(crate) header_read_timeout: Option<String>,
    pub(crate) drain_spread: Option<String>,
    pub(crate) log_format: Option<String>,
    pub(crate) workers: Option<i64>,
}

/// `[[listeners]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListenerFile {
    /// Required.
    pub(crate) bind: Option<String>,
    pub(crate) tls: Option<TlsFile>,
    pub(crate) redirect_https: Option<RedirectValue>,
    pub(crate) trusted_proxies: Option<Vec<String>>,
    pub(crate) proxy_protocol: Option<bool>,
}

/// `redirect_https`: `true` (port 443) or a port number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub(crate) enum RedirectValue {
    /// `true` redirects to 443; `false` is the same as omitting the key.
    Enabled(bool),
    /// A port; out-of-range values are kept to be reported later.
    Port(i64),
}

/// `[listeners.tls]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsFile {
    /// Required, non-empty, unless `self_signed = true`.
    #[serde(default)]
    pub(crate) certs: Vec<CertFile>,
    pub(crate) self_signed: Option<bool>,
    pub(crate) handshake_timeout: Option<String>,
    pub(crate) watch_interval: Option<String>,
    pub(crate) client_ca: Option<String>,
    pub(crate) client_subject_header: Option<String>,
    pub(crate) http2: Option<bool>,
    pub(crate) acme: Option<AcmeFile>,
}

/// `[listeners.tls.acme]`: automatic certificates.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AcmeFile {
    /// Required, non-empty.
    pub(crate) domains: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) contact: Vec<String>,
    pub(crate) directory: Option<String>,
    pub(crate) directory_ca: Option<String>,
    pub(crate) challenge: Option<String>,
    pub(crate) cache: Option<String>,
    pub(crate) external_account: Option<ExternalAccountFile>,
    pub(crate) retry_backoff: Option<String>,
    /// Test only: see `docs/configuration.md`.
    pub(crate) test_renew_after: Option<String>,
}

/// `external_account = { key_id, hmac_key }` of `[listeners.tls.acme]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExternalAccountFile {
    pub(crate) key_id: String,
    pub(crate) hmac_key: String,
}

/// One entry of `certs`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CertFile {
    pub(crate) cert: String,
    pub(crate) key: String,
}

/// `[admin]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdminFile {
    /// Required.
    pub(crate) bind: Option<String>,
}

/// `[[routes]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteFile {
    pub(crate) name: Option<String>,
    pub(crate) host: Option<String>,
    pub(crate) path: Option<String>,
    /// Required, non-empty.
    pub(crate) backends: Option<Vec<String>>,
    pub(crate) origins: Option<Vec<String>>,
    pub(crate) allow_missing_origin: Option<bool>,
    pub(crate) subprotocols: Option<Vec<String>>,
    pub(crate) fallback: Option<bool>,
    pub(crate) fallback_poll_hold: Option<String>,
    pub(crate) fallback_session_timeout: Option<String>,
    pub(crate) fallback_buffer: Option<SizeValue>,
    pub(crate) fallback_sessions_per_client: Option<i64>,
    pub(crate) max_message_size: Option<SizeValue>,
    pub(crate) validate_utf8: Option<bool>,
    pub(crate) idle_timeout: Option<String>,
    pub(crate) ping_interval: Option<String>,
    pub(crate) pong_timeout: Option<String>,
    pub(crate) connect_timeout: Option<String>,
    pub(crate) response_timeout: Option<String>,
    pub(crate) backend_ca: Option<String>,
    pub(crate) backend_sni: Option<String>,
    pub(crate) backend_client_cert: Option<CertFile>,
    pub(crate) balance: Option<String>,
    pub(crate) sticky_cookie: Option<String>,
    pub(crate) health: Option<HealthFile>,
    pub(crate) auth: Option<AuthFile>,
    pub(crate) client_messages_per_second: Option<i64>,
    pub(crate) client_bytes_per_second: Option<SizeValue>,
    pub(crate) websockets_per_client: Option<i64>,
}

/// `[routes.health]`: active health checks of the route's backends.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HealthFile {
    pub(crate) path: Option<String>,
    pub(crate) interval: Option<String>,
    pub(crate) timeout: Option<String>,
    pub(crate) unhealthy_after: Option<i64>,
    pub(crate) healthy_after: Option<i64>,
    pub(crate) expect_status: Option<i64>,
    pub(crate) websocket: Option<bool>,
}

/// A route's `auth = { forward = URL, copy_headers = [...], timeout = "2s" }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthFile {
    /// Required.
    pub(crate) forward: Option<String>,
    pub(crate) copy_headers: Option<Vec<String>>,
    pub(crate) timeout: Option<String>,
}

/// A size as written: `"1MiB"`, or a bare integer meaning bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SizeValue {
    /// A string, parsed later by `parse_size` so its error carries the key path.
    Text(String),
    /// A TOML integer: bytes. Negative values are kept to be reported later.
    Bytes(i64),
}

impl<'de> Deserialize<'de> for SizeValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;

        impl Visitor<'_> for SizeVisitor {
            type Value = SizeValue;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"1MiB\" or a number of bytes")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<SizeValue, E> {
                Ok(SizeValue::Bytes(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<SizeValue, E> {
                i64::try_from(v)
                    .map(SizeValue::Bytes)
                    .map_err(|_| E::custom("size too large"))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<SizeValue, E> {
                Ok(SizeValue::Text(v.to_owned()))
            }
        }

        deserializer.deserialize_any(SizeVisitor)
    }
}
