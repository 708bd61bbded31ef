//! Route selection: which route answers a request, by Host and path.
//!
//! Like nginx's server blocks, the host decides first: an exact host beats the
//! longest matching `*.suffix`, which beats a route with no host. Among routes
//! of equally specific host, the longest path prefix wins. Prefixes match whole
//! segments only, so `/chat` answers `/chat` and `/chat/x` but never `/chatty`.
//! Routes that do not match both host and path are never candidates, so a
//! host-specific `/api` route does not hide a catch-all `/` for other paths.

use std::sync::Arc;

use crate::config::{HostPattern, Route};

/// An immutable routing table; a config reload builds a new one.
#[derive(Debug, Clone, Default)]
pub struct Router {
    /// Routes in file order.
    routes: Vec<Arc<Route>>,
}

impl Router {
    /// Builds the table from validated routes.
    pub fn new(routes: impl IntoIterator<Item = Route>) -> Self {
        Router {
            routes: routes.into_iter().map(Arc::new).collect(),
        }
    }

    /// The most specific route for `host` (a Host header value, port allowed)
    /// and `path` (without query), if any.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<&Arc<Route>> {
        let host = host.map(normalize_host);
        self.routes
            .iter()
            .filter(|r| path_matches(&r.path, path))
            .filter_map(|r| host_rank(&r.host, host.as_deref()).map(|rank| (rank, r)))
            .max_by_key(|(rank, r)| (*rank, r.path.len(), std::cmp::Reverse(r.index)))
            .map(|(_, r)| r)
    }

    /// All routes, in file order.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }
}

/// Lower-cases a Host header value and strips its port and any trailing dot.
pub fn normalize_host(host: &str) -> String {
    let without_port = if let Some(rest) = host.strip_prefix('[') {
        // IPv6 literal: keep the brackets' content.
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    without_port.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether `prefix` matches `path` on whole segments.
pub fn path_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// How specifically `pattern` matches `host`: `None` when it does not; higher
/// is more specific. Exact hosts rank above every suffix, longer suffixes
/// above shorter ones, and "any host" lowest.
fn host_rank(pattern: &HostPattern, host: Option<&str>) -> Option<usize> {
    match (pattern, host) {
        (HostPattern::Any, _) => Some(0),
        (HostPattern::Exact(want), Some(h)) if want == h => Some(usize::MAX),
        (HostPattern::Suffix(suffix), Some(h))
            if h.len() > suffix.len() && h.ends_with(suffix.as_str()) =>
        {
            Some(suffix.len())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(index: usize, host: HostPattern, path: &str) -> Route {
        Route {
            index,
            name: format!("r{index}"),
            host,
            path: path.to_string(),
            ..Route::with_defaults()
        }
    }

    #[test]
    fn path_prefix_matches_whole_segments() {
        let cases = [
            ("/", "/", true),
            ("/", "/anything/at/all", true),
            ("/chat", "/chat", true),
            ("/chat", "/chat/", true),
            ("/chat", "/chat/room/1", true),
            ("/chat", "/chatty", false),
            ("/chat", "/cha", false),
            ("/chat", "/", false),
            ("/chat/v1", "/chat/v1/x", true),
            ("/chat/v1", "/chat/v10", false),
        ];
        for (prefix, path, want) in cases {
            assert_eq!(path_matches(prefix, path), want, "{prefix} vs {path}");
        }
    }

    #[test]
    fn host_normalization() {
        let cases = [
            ("Chat.Example.COM", "chat.example.com"),
            ("chat.example.com:8443", "chat.example.com"),
            ("chat.example.com.", "chat.example.com"),
            ("[::1]:8080", "::1"),
            ("127.0.0.1:80", "127.0.0.1"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_host(raw), want, "{raw}");
        }
    }

    #[test]
    fn most_specific_route_wins() {
        let router = Router::new([
            route(0, HostPattern::Any, "/"),
            route(1, HostPattern::Any, "/chat"),
            route(2, HostPattern::Exact("chat.example.com".into()), "/"),
            route(3, HostPattern::Suffix(".example.com".into()), "/chat"),
            route(4, HostPattern::Suffix(".eu.example.com".into()), "/"),
            route(5, HostPattern::Exact("api.example.com".into()), "/v1"),
        ]);
        let cases: &[(Option<&str>, &str, Option<usize>)] = &[
            (None, "/", Some(0)),
            (None, "/chat/x", Some(1)),
            (Some("other.org"), "/chatty", Some(0)),
            (Some("chat.example.com"), "/chat", Some(2)),
            (Some("CHAT.example.com:443"), "/x", Some(2)),
            (Some("a.example.com"), "/chat/1", Some(3)),
            (Some("a.example.com"), "/other", Some(0)),
            (Some("example.com"), "/chat", Some(1)),
            (Some("x.eu.example.com"), "/chat", Some(4)),
            (Some("a.b.example.com"), "/chat", Some(3)),
            (Some("api.example.com"), "/v1/users", Some(5)),
            (Some("api.example.com"), "/v2", Some(0)),
        ];
        for (host, path, want) in cases {
            let got = router.find(*host, path).map(|r| r.index);
            assert_eq!(got, *want, "{host:?} {path}");
        }
    }

    #[test]
    fn no_route_when_nothing_matches() {
        let router = Router::new([
            route(0, HostPattern::Exact("chat.example.com".into()), "/chat"),
            route(1, HostPattern::Suffix(".example.com".into()), "/"),
        ]);
        // `/chatty` is not under `/chat`; the suffix route catches it instead.
        assert_eq!(
            router
                .find(Some("chat.example.com"), "/chatty")
                .map(|r| r.index),
            Some(1)
        );
        assert!(router.find(Some("example.com"), "/").is_none());
        assert!(router.find(None, "/chat").is_none());
    }
}
