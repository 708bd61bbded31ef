//! File format → runtime [`Config`]: applies defaults, parses every value and
//! collects every problem with its key path, so one run of `wsgate check`
//! shows them all.

mod acme;
mod balance;
mod cluster;
mod edge;
mod http2;
mod limits;
mod route;
mod suggest;
mod tls;
mod toml_path;
mod values;
mod workers;

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::file::{self, defaults, SizeValue};
use super::{
    parse_duration, parse_size, Admin, Config, FileRefs, Listener, LogFormat, ServerSettings,
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
        let raw = error.message().trim_end();
        let said = suggest::unknown_key(raw).unwrap_or_else(|| raw.to_owned());
        let message = match toml_line_column(&error) {
            Some(at) => format!("{said} ({at})"),
            None => said,
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
/// Beside the verdict, the files that every part which validated names, so
/// they are checked even when other parts have errors.
pub(super) fn validate(
    raw: file::ConfigFile,
    base: &Path,
) -> (Result<Config, ConfigErrors>, FileRefs) {
    let mut errors = Errors::default();
    let server = server_settings(&mut errors, &raw.server, &raw.limits);
    let mut files = FileRefs::default();
    let listeners = listeners(&mut errors, raw.listeners, base, &mut files);
    let admin = raw
        .admin
        .and_then(|raw| admin(&mut errors, raw, &listeners));
    let routes = route::routes(&mut errors, raw.routes, base);
    let cluster = cluster::cluster(&mut errors, raw.cluster, base, &listeners, admin.as_ref());
    if errors.0.is_empty() {
        let config = Config {
            server,
            listeners,
            admin,
            routes,
            cluster,
        };
        let files = config.files();
        (Ok(config), files)
    } else {
        files.routes = routes;
        (Err(ConfigErrors(errors.0)), files)
    }
}

/// `[server]` and `[limits]`.
fn server_settings(
    errors: &mut Errors,
    raw: &file::ServerFile,
    raw_limits: &file::LimitsFile,
) -> ServerSettings {
    let server = ServerSettings {
        shutdown_grace: errors.duration(
            "server.shutdown_grace".into(),
            raw.shutdown_grace.as_deref(),
            defaults::SHUTDOWN_GRACE,
            true,
        ),
        header_read_timeout: errors.duration(
            "server.header_read_timeout".into(),
            raw.header_read_timeout.as_deref(),
            defaults::HEADER_READ_TIMEOUT,
            false,
        ),
        drain_spread: errors.duration(
            "server.drain_spread".into(),
            raw.drain_spread.as_deref(),
            defaults::DRAIN_SPREAD,
            true,
        ),
        log_format: log_format(errors, raw.log_format.as_deref()),
        workers: workers::workers(errors, raw.workers),
        limits: limits::limits(errors, raw_limits),
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
    server
}

/// `[admin]`: its address, which no public listener may take too.
fn admin(errors: &mut Errors, raw: file::AdminFile, listeners: &[Listener]) -> Option<Admin> {
    let bind = errors.bind("admin.bind".into(), raw.bind.as_deref())?;
    if listeners.iter().any(|l| l.bind == bind) {
        errors.push("admin.bind", format!("{bind} is also a public listener"));
    }
    Some(Admin { bind })
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

fn listeners(
    errors: &mut Errors,
    raw: Vec<file::ListenerFile>,
    base: &Path,
    files: &mut FileRefs,
) -> Vec<Listener> {
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
        if let Some(tls) = &tls {
            files.listeners.push((i, tls.clone()));
        }
        let (trusted_proxies, proxy_protocol) = edge::listener(
            errors,
            &path,
            listener.trusted_proxies,
            listener.proxy_protocol,
        );
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
            trusted_proxies,
            proxy_protocol,
        });
    }
    acme::across_listeners(errors, &out);
    out
}

#[cfg(test)]
mod tests;
