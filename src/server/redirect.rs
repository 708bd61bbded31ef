//! `redirect_https`: a plain listener that sends every request to the same
//! host, path and query over `https://`. GET and HEAD get 301 (cacheable,
//! what browsers expect); other methods get 308 so a client repeats the
//! method and body instead of turning a POST into a GET.

use http::{header, HeaderValue, Method, Request, Response, StatusCode};

use crate::http::body::{full, Body};
use crate::http::client::request_host;

/// The redirect for `req` towards `https://` on `port` (omitted when 443).
pub fn redirect<B>(req: &Request<B>, port: u16) -> Response<Body> {
    let Some(host) = host_name(req) else {
        return plain(StatusCode::BAD_REQUEST, "missing Host header\n");
    };
    let path = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let location = match port {
        443 => format!("https://{host}{path}"),
        port => format!("https://{host}:{port}{path}"),
    };
    let Ok(location) = HeaderValue::from_str(&location) else {
        return plain(StatusCode::BAD_REQUEST, "invalid Host header\n");
    };
    let status = match *req.method() {
        Method::GET | Method::HEAD => StatusCode::MOVED_PERMANENTLY,
        _ => StatusCode::PERMANENT_REDIRECT,
    };
    let mut response = plain(status, "");
    response.headers_mut().insert(header::LOCATION, location);
    response
}

/// The request's host without its port (`[::1]` keeps its brackets).
fn host_name<B>(req: &Request<B>) -> Option<String> {
    let authority: http::uri::Authority = request_host(req)?.parse().ok()?;
    let host = authority.host();
    (!host.is_empty()).then(|| host.to_owned())
}

/// A short text response.
fn plain(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(method: Method, uri: &str, host: &str, port: u16) -> (u16, String) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, host)
            .body(())
            .unwrap();
        let res = redirect(&req, port);
        let location = res
            .headers()
            .get(header::LOCATION)
            .map_or("", |v| v.to_str().unwrap());
        (res.status().as_u16(), location.to_string())
    }

    #[test]
    fn redirects_keep_host_path_and_query() {
        let cases = [
            (
                Method::GET,
                "/a/b?x=1",
                "example.com:8080",
                443,
                301,
                "https://example.com/a/b?x=1",
            ),
            (
                Method::HEAD,
                "/",
                "example.com",
                8443,
                301,
                "https://example.com:8443/",
            ),
            (
                Method::POST,
                "/form",
                "example.com",
                443,
                308,
                "https://example.com/form",
            ),
            (
                Method::GET,
                "/",
                "[::1]:8080",
                8443,
                301,
                "https://[::1]:8443/",
            ),
        ];
        for (method, uri, host, port, status, expected) in cases {
            assert_eq!(
                location(method, uri, host, port),
                (status, expected.to_string()),
                "{uri} {host}"
            );
        }
    }
}
