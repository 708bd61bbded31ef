//! The checks of a WebSocket over HTTP/2: an extended CONNECT (RFC 8441 §4)
//! with `:protocol = websocket`.
//!
//! Its shape differs from the HTTP/1.1 upgrade (CONNECT, `:protocol`,
//! `:scheme` and `:path`, no `Sec-WebSocket-Key`: the stream itself is the
//! connection), and it is valid only once the client had the server's
//! `SETTINGS_ENABLE_CONNECT_PROTOCOL`. Version, Origin and subprotocol are
//! checked exactly as for HTTP/1.1, by the same functions.

use http::header;
use http::{request, Method};

use super::{check_policy, check_version, deflate_offers, offered_protocols, CheckedUpgrade};
use crate::config::Route;
use crate::http::client::ClientInfo;
use crate::http::error::ProxyError;
use crate::http::h2::{ConnectFault, SettingsAcked};

/// The one `:protocol` the gateway opens (RFC 8441 §4, the registered
/// WebSocket token).
const WEBSOCKET: &str = "websocket";

/// Runs the extended CONNECT's own checks, then version and policy, in the
/// order of the HTTP/1.1 upgrade: shape (400, or 501 for another
/// protocol), version (426/400), Origin (403), subprotocol (400). The key
/// is empty: the backend's handshake gets the gateway's own.
pub fn check_extended(
    req: &request::Parts,
    route: &Route,
    client: &ClientInfo,
) -> Result<CheckedUpgrade, ProxyError> {
    check_shape(req).map_err(ProxyError::ExtendedConnect)?;
    check_version(&req.headers)?;
    let offered = offered_protocols(&req.headers);
    let protocols = check_policy(&req.headers, &offered, route, client)?;
    Ok(CheckedUpgrade {
        key: String::new(),
        protocols,
        extensions: deflate_offers(&req.headers),
        vouched: None,
    })
}

/// `:protocol`, the SETTINGS it depends on, no body. A missing `:scheme`
/// or `:path` never gets here: h2 resets such a stream as malformed
/// (RFC 9113 §8.1.1) before hyper hands it over.
fn check_shape(req: &request::Parts) -> Result<(), ConnectFault> {
    debug_assert_eq!(req.method, Method::CONNECT);
    let protocol = req
        .extensions
        .get::<hyper::ext::Protocol>()
        .map(|p| p.as_str())
        .unwrap_or_default();
    if !protocol.eq_ignore_ascii_case(WEBSOCKET) {
        return Err(ConnectFault::UnknownProtocol(protocol.to_string()));
    }
    if req.extensions.get::<SettingsAcked>() == Some(&SettingsAcked(false)) {
        return Err(ConnectFault::SettingNotReceived);
    }
    let declares_body = req
        .headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0");
    if declares_body || req.headers.contains_key(header::TRANSFER_ENCODING) {
        return Err(ConnectFault::Body);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use http::{HeaderValue, Request, Version};

    use super::*;
    use crate::config::OriginPolicy;
    use crate::http::client::HttpVersion;

    fn client() -> ClientInfo {
        ClientInfo {
            http: HttpVersion::Http2,
            ..ClientInfo::direct("127.0.0.1:1000".parse().unwrap(), true)
        }
    }

    fn route(subprotocols: &[&str]) -> Route {
        Route {
            origins: OriginPolicy::SameOrigin,
            subprotocols: subprotocols.iter().map(|s| s.to_string()).collect(),
            ..Route::with_defaults()
        }
    }

    /// An extended CONNECT as hyper hands it over, after `normalize`.
    fn connect(protocol: &str, extra: &[(&str, &str)]) -> request::Parts {
        let mut builder = Request::builder()
            .method(Method::CONNECT)
            .version(Version::HTTP_2)
            .uri("https://chat.example.com/chat?room=1")
            .header("host", "chat.example.com")
            .header("sec-websocket-version", "13")
            .extension(hyper::ext::Protocol::from_static(Box::leak(
                protocol.to_string().into_boxed_str(),
            )))
            .extension(SettingsAcked(true));
        for (name, value) in extra {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn fault(parts: &request::Parts) -> (u16, &'static str) {
        let err = check_extended(parts, &route(&[]), &client()).unwrap_err();
        (err.status().as_u16(), err.reason())
    }

    #[test]
    fn a_websocket_connect_passes_without_a_key() {
        let parts = connect("websocket", &[("sec-websocket-protocol", "b, a")]);
        let checked = check_extended(&parts, &route(&["a"]), &client()).unwrap();
        assert_eq!(checked.key, "");
        assert_eq!(checked.protocols, ["a"]);
        let deflate = connect(
            "websocket",
            &[("sec-websocket-extensions", "permessage-deflate, x-other")],
        );
        let checked = check_extended(&deflate, &route(&[]), &client()).unwrap();
        assert_eq!(checked.extensions.as_deref(), Some("permessage-deflate"));
    }

    #[test]
    fn each_bad_shape_has_its_status_and_reason() {
        assert_eq!(fault(&connect("h3-tunnel", &[])), (501, "connect_protocol"));
        let mut early = connect("websocket", &[]);
        early.extensions.insert(SettingsAcked(false));
        assert_eq!(fault(&early), (400, "connect_early"));
        let body = connect("websocket", &[("content-length", "5")]);
        assert_eq!(fault(&body), (400, "connect_body"));
        let empty = connect("websocket", &[("content-length", "0")]);
        assert!(check_extended(&empty, &route(&[]), &client()).is_ok());
        let mut unknown_ack = connect("websocket", &[]);
        unknown_ack.extensions.remove::<SettingsAcked>();
        assert!(check_extended(&unknown_ack, &route(&[]), &client()).is_ok());
    }

    #[test]
    fn version_and_policy_are_the_http1_checks() {
        let mut v8 = connect("websocket", &[]);
        v8.headers
            .insert("sec-websocket-version", HeaderValue::from_static("8"));
        assert_eq!(fault(&v8), (426, "version"));
        let mut garbage = connect("websocket", &[]);
        garbage
            .headers
            .insert("sec-websocket-version", HeaderValue::from_static("13abc"));
        assert_eq!(fault(&garbage), (400, "version_malformed"));
        let foreign = connect("websocket", &[("origin", "https://evil.example")]);
        assert_eq!(fault(&foreign), (403, "origin"));
        let same = connect("websocket", &[("origin", "https://chat.example.com")]);
        assert!(check_extended(&same, &route(&[]), &client()).is_ok());
        let parts = connect("websocket", &[("sec-websocket-protocol", "c")]);
        let err = check_extended(&parts, &route(&["a"]), &client()).unwrap_err();
        assert_eq!(err.reason(), "subprotocol");
    }
}
