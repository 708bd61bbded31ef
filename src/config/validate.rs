//! File format → runtime [`Config`]: applies defaults, parses every value and
//! collects every problem with its key path, so one run of `wsgate check`
//! shows them all.

mod limits;
mod tls;
mod toml_path;
mod values;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::file::{self, defaults, SizeValue};
use super::{
    parse_duration, parse_size, Admin, Config, FallbackSettings, HostPattern, Listener, LogFormat,
    OriginPolicy, Route, ServerSettings, WsSettings,
};

/// One configuration problem and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Key path such as `routes[2].origins[0]`; empty when the problem is not
    /// tied to a key (an unreadable file).
    pub path: String,
    /// What is wrong, quoting the offending value.
    pub message: String,
}

impl ConfigError {
    /// An error at `path` (may be empty).
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a configuration; never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// Wraps a single error.
    pub fn single(error: ConfigError) -> Self {
        ConfigErrors(vec![error])
    }

    /// Converts a TOML syntax or serde error (unknown key, wrong type). The
    /// path is empty because the error alone does not name the key; the line
    /// and column are put in the message. Prefer [`ConfigErrors::from_toml_in`]
    /// when the source text is at hand.
    pub fn from_toml(error: toml::de::Error) -> Self {
        let message = match toml_line_column(&error) {
            Some(at) => format!("{} ({at})", error.message().trim_end()),
            None => error.message().trim_end().to_owned(),
        };
        ConfigErrors::single(ConfigError::new("", message))
    }

    /// Like [`ConfigErrors::from_toml`], and also recovers the key path from
    /// the error's position in `source`, the text that failed to parse.
    pub fn from_toml_in(error: toml::de::Error, source: &str) -> Self {
        let path = error
            .span()
            .map(|span| toml_path::key_path_at(source, span.start))
            .unwrap_or_default();
        let mut errors = ConfigErrors::from_toml(error);
        errors.0[0].path = path;
        errors
    }
}

/// `line N, column M` from a toml error's rendering, which is the only
/// place toml 0.8 exposes it.
fn toml_line_column(error: &toml::de::Error) -> Option<String> {
    let rendered = error.to_string();
    let first = rendered.lines().next()?;
    first
        .strip_prefix("TOML parse error at ")
        .map(str::to_owned)
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Collects errors while the whole file is walked.
#[derive(Default)]
struct Errors(Vec<ConfigError>);

impl Errors {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError::new(path, message));
    }

    /// Unwraps `result`, recording its error at `path`.
    fn check<T>(&mut self, path: impl Into<String>, result: Result<T, String>) -> Option<T> {
        result.map_err(|message| self.push(path, message)).ok()
    }

    /// A duration key: `default` when absent; zero rejected unless `allow_zero`.
    fn duration(
        &mut self,
        path: String,
        raw: Option<&str>,
        default: Duration,
        allow_zero: bool,
    ) -> Duration {
        let Some(text) = raw else { return default };
        match self.check(path.clone(), parse_duration(text)) {
            Some(d) if d.is_zero() && !allow_zero => {
                self.push(path, "must be greater than zero");
                default
            }
            Some(d) => d,
            None => default,
        }
    }

    /// A size key: `default` when absent; zero and negative values rejected.
    fn size(&mut self, path: String, raw: Option<SizeValue>, default: u64) -> u64 {
        let parsed = match raw {
            None => return default,
            Some(SizeValue::Text(text)) => parse_size(&text),
            Some(SizeValue::Bytes(n)) => {
                u64::try_from(n).map_err(|_| format!("invalid size {n}: negative"))
            }
        };
        match self.check(path.clone(), parsed) {
            Some(0) => {
                self.push(path, "must be greater than zero");
                default
            }
            Some(n) => n,
            None => default,
        }
    }

    /// A required socket address.
    fn bind(&mut self, path: String, raw: Option<&str>) -> Option<SocketAddr> {
        let Some(text) = raw else {
            self.push(path, "required (e.g. \"0.0.0.0:8443\")");
            return None;
        };
        let parsed = text.parse().map_err(|_| {
            format!("invalid socket address {text:?} (expected ip:port, e.g. \"0.0.0.0:8443\")")
        });
        self.check(path, parsed)
    }
}

/// Validates the whole file; `base` resolves relative certificate paths.
pub(super) fn validate(raw: file::ConfigFile, base: &Path) -> Result<Config, ConfigErrors> {
    let mut errors = Errors::default();
    let server = ServerSettings {
        shutdown_grace: errors.duration(
            "server.shutdown_grace".into(),
            raw.server.shutdown_grace.as_deref(),
            defaults::SHUTDOWN_GRACE,
            true,
        ),
        header_read_timeout: errors.duration(
            "server.header_read_timeout".into(),
            raw.server.header_read_timeout.as_deref(),
            defaults::HEADER_READ_TIMEOUT,
            false,
        ),
        drain_spread: errors.duration(
            "server.drain_spread".into(),
            raw.server.drain_spread.as_deref(),
            defaults::DRAIN_SPREAD,
            true,
        ),
        log_format: log_format(&mut errors, raw.server.log_format.as_deref()),
        limits: limits::limits(&mut errors, &raw.limits),
    };
    if server.drain_spread > server.shutdown_grace {
        errors.push(
            "server.drain_spread",
            format!(
                "{:?} is longer than server.shutdown_grace ({:?}): connections would be cut before their close",
                server.drain_spread, server.shutdown_grace
            ),
        );
    }
    let listeners = listeners(&mut errors, raw.listeners, base);
    let admin = raw.admin.and_then(|admin| {
        let bind = errors.bind("admin.bind".into(), admin.bind.as_deref())?;
        if listeners.iter().any(|l| l.bind == bind) {
            errors.push("admin.bind", format!("{bind} is also a public listener"));
        }
        Some(Admin { bind })
    });
    let routes = routes(&mut errors, raw.routes, base);
    if errors.0.is_empty() {
        Ok(Config {
            server,
            listeners,
            admin,
            routes,
        })
    } else {
        Err(ConfigErrors(errors.0))
    }
}

/// `server.log_format`: `"text"` or `"json"`.
fn log_format(errors: &mut Errors, raw: Option<&str>) -> LogFormat {
    match raw.unwrap_or(defaults::LOG_FORMAT) {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            errors.push(
                "server.log_format",
                format!("{other:?} is not a log format; use \"text\" or \"json\""),
            );
            LogFormat::Text
        }
    }
}

fn listeners(errors: &mut Errors, raw: Vec<file::ListenerFile>, base: &Path) -> Vec<Listener> {
    if raw.is_empty() {
        errors.push("listeners", "at least one [[listeners]] table is required");
    }
    let mut out: Vec<Listener> = Vec::new();
    for (i, listener) in raw.into_iter().enumerate() {
        let path = format!("listeners[{i}]");
        let bind = errors.bind(format!("{path}.bind"), listener.bind.as_deref());
        let tls = listener
            .tls
            .map(|raw| tls::listener_tls(errors, &format!("{path}.tls"), raw, base));
        let redirect_https = tls::redirect_https(errors, &path, listener.redirect_https, &tls);
        let Some(bind) = bind else { continue };
        if let Some(first) = out.iter().position(|l| l.bind == bind) {
            errors.push(
                format!("{path}.bind"),
                format!("{bind} is already bound by listeners[{first}]"),
            );
        }
        out.push(Listener {
            bind,
            tls,
            redirect_https,
        });
    }
    out
}

fn routes(errors: &mut Errors, raw: Vec<file::RouteFile>, base: &Path) -> Vec<Route> {
    if raw.is_empty() {
        errors.push("routes", "at least one [[routes]] table is required");
    }
    let mut out: Vec<Route> = Vec::new();
    // First route of each (host, path) and of each name, to report duplicates.
    let mut seen: Vec<(HostPattern, String, usize)> = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for (index, route) in raw.into_iter().enumerate() {
        let (route, key_valid) = self::route(errors, index, route, base);
        let first_same = seen
            .iter()
            .find(|(host, path, _)| *host == route.host && *path == route.path)
            .map(|(_, _, first)| *first);
        if let (Some(first), true) = (first_same, key_valid) {
            errors.push(
                format!("routes[{index}]"),
                format!("same host and path ({:?}) as routes[{first}]", route.name),
            );
        } else if let (Some(first), true) = (names.get(&route.name), key_valid) {
            errors.push(
                format!("routes[{index}].name"),
                format!("{:?} is already the name of routes[{first}]", route.name),
            );
        }
        if first_same.is_none() && key_valid {
            seen.push((route.host.clone(), route.path.clone(), index));
        }
        names.entry(route.name.clone()).or_insert(index);
        out.push(route);
    }
    out
}

/// Validates one route; the flag says whether its host and path (and so its
/// default name) are valid, which the duplicate checks need.
fn route(errors: &mut Errors, index: usize, raw: file::RouteFile, base: &Path) -> (Route, bool) {
    let at = |key: &str| format!("routes[{index}].{key}");
    let fallback_settings = fallback_settings(errors, &at, &raw);
    let before = errors.0.len();
    let host = match raw.host.as_deref() {
        None => HostPattern::Any,
        Some(text) => errors
            .check(at("host"), values::host_pattern(text))
            .unwrap_or(HostPattern::Any),
    };
    let path = errors
        .check(
            at("path"),
            values::route_path(raw.path.as_deref().unwrap_or(defaults::PATH)),
        )
        .unwrap_or_else(|| defaults::PATH.to_owned());
    let key_valid = errors.0.len() == before;
    let name = match raw.name {
        Some(name) if name.trim().is_empty() => {
            errors.push(at("name"), "must not be empty");
            name
        }
        Some(name) => name,
        None => match &host {
            HostPattern::Any => format!("*{path}"),
            HostPattern::Exact(h) => format!("{h}{path}"),
            HostPattern::Suffix(s) => format!("*{s}{path}"),
        },
    };
    let backends = match raw.backends {
        None => {
            errors.push(
                at("backends"),
                "required (e.g. [\"ws://10.0.0.5:9000\"] or [\"builtin:echo\"])",
            );
            Vec::new()
        }
        Some(list) => {
            if list.is_empty() {
                errors.push(at("backends"), "at least one backend is required");
            }
            list.iter()
                .enumerate()
                .filter_map(|(i, b)| {
                    errors.check(at(&format!("backends[{i}]")), values::backend(b))
                })
                .collect()
        }
    };
    let origins = origin_policy(errors, &at("origins"), raw.origins);
    let subprotocols = subprotocols(
        errors,
        &at("subprotocols"),
        raw.subprotocols.unwrap_or_default(),
    );
    let max_message_size = errors.size(
        at("max_message_size"),
        raw.max_message_size.clone(),
        defaults::MAX_MESSAGE_SIZE,
    );
    let mut duration = |key: &str, raw: Option<String>, default: Duration| {
        errors.duration(at(key), raw.as_deref(), default, false)
    };
    let ws = WsSettings {
        max_message_size,
        validate_utf8: raw.validate_utf8.unwrap_or(defaults::VALIDATE_UTF8),
        idle_timeout: duration("idle_timeout", raw.idle_timeout, defaults::IDLE_TIMEOUT),
        ping_interval: duration("ping_interval", raw.ping_interval, defaults::PING_INTERVAL),
        pong_timeout: duration("pong_timeout", raw.pong_timeout, defaults::PONG_TIMEOUT),
    };
    let connect_timeout = duration(
        "connect_timeout",
        raw.connect_timeout,
        defaults::CONNECT_TIMEOUT,
    );
    let response_timeout = duration(
        "response_timeout",
        raw.response_timeout,
        defaults::RESPONSE_TIMEOUT,
    );
    let backend_tls = tls::backend_tls(
        errors,
        &format!("routes[{index}]"),
        (raw.backend_ca, raw.backend_sni, raw.backend_client_cert),
        base,
    );
    let route = Route {
        index,
        name,
        host,
        path,
        backends,
        origins,
        allow_missing_origin: raw
            .allow_missing_origin
            .unwrap_or(defaults::ALLOW_MISSING_ORIGIN),
        subprotocols,
        fallback: raw.fallback.unwrap_or(defaults::FALLBACK),
        fallback_settings,
        ws,
        connect_timeout,
        response_timeout,
        backend_tls,
    };
    (route, key_valid)
}

/// The `fallback_*` tuning keys of one route.
fn fallback_settings(
    errors: &mut Errors,
    at: &dyn Fn(&str) -> String,
    raw: &file::RouteFile,
) -> FallbackSettings {
    let sessions_per_client = match raw.fallback_sessions_per_client {
        None => defaults::FALLBACK_SESSIONS_PER_CLIENT,
        Some(n) if n >= 1 => n as u64,
        Some(n) => {
            errors.push(
                at("fallback_sessions_per_client"),
                format!("must be at least 1 (got {n})"),
            );
            defaults::FALLBACK_SESSIONS_PER_CLIENT
        }
    };
    let settings = FallbackSettings {
        poll_hold: errors.duration(
            at("fallback_poll_hold"),
            raw.fallback_poll_hold.as_deref(),
            defaults::FALLBACK_POLL_HOLD,
            false,
        ),
        session_timeout: errors.duration(
            at("fallback_session_timeout"),
            raw.fallback_session_timeout.as_deref(),
            defaults::FALLBACK_SESSION_TIMEOUT,
            false,
        ),
        buffer: errors.size(
            at("fallback_buffer"),
            raw.fallback_buffer.clone(),
            defaults::FALLBACK_BUFFER,
        ),
        sessions_per_client,
    };
    if settings.poll_hold >= settings.session_timeout {
        errors.push(
            at("fallback_poll_hold"),
            format!(
                "must be shorter than fallback_session_timeout ({:?} >= {:?})",
                settings.poll_hold, settings.session_timeout
            ),
        );
    }
    settings
}

fn origin_policy(errors: &mut Errors, path: &str, raw: Option<Vec<String>>) -> OriginPolicy {
    let Some(list) = raw else {
        return OriginPolicy::SameOrigin;
    };
    if list.is_empty() {
        errors.push(path, "empty list allows no browser at all; omit `origins` for same-origin or use [\"*\"] for any");
        return OriginPolicy::List(Vec::new());
    }
    if list.len() == 1 && list[0] == "*" {
        return OriginPolicy::Any;
    }
    let mut patterns = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        if entry == "*" {
            errors.push(
                format!("{path}[{i}]"),
                "\"*\" must be the only entry when used",
            );
        } else if let Some(p) = errors.check(format!("{path}[{i}]"), values::origin_pattern(entry))
        {
            patterns.push(p);
        }
    }
    OriginPolicy::List(patterns)
}

fn subprotocols(errors: &mut Errors, path: &str, list: Vec<String>) -> Vec<String> {
    for (i, name) in list.iter().enumerate() {
        errors.check(format!("{path}[{i}]"), values::subprotocol(name));
        if let Some(first) = list[..i].iter().position(|n| n == name) {
            errors.push(
                format!("{path}[{i}]"),
                format!("duplicate {name:?} (also {path}[{first}])"),
            );
        }
    }
    list
}

#[cfg(test)]
mod tests;
