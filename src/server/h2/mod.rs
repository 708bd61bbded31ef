//! HTTP/2 on one TLS connection: hyper's server with extended CONNECT
//! (RFC 8441), every limit set on purpose, a watch on the frames, and an
//! idle close.
//!
//! Per connection, the gateway holds at most: [`max_streams`] streams
//! (`limits.http2_max_streams`), each with up to [`STREAM_WINDOW`] of
//! request data it has not passed on yet and [`MAX_SEND_BUF`] of response
//! data the client has not taken; a request head up to
//! `limits.max_header_size` decoded (`SETTINGS_MAX_HEADER_LIST_SIZE`) from
//! an HPACK table of [`HEADER_TABLE_SIZE`]. The connection window is the
//! sum of the stream windows, so a stalled stream never holds up another.
//! Floods of control frames are bounded by the [`watch`].
//!
//! [`max_streams`]: crate::config::LimitSettings::http2_max_streams

mod budget;
mod frame;
mod refusal;
mod watch;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::{service_fn, Service};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::config::LimitSettings;
use crate::gateway::Gateway;
use crate::http::body::Body;
use crate::http::h2::{SettingsAcked, StreamHold, Streams};
use crate::limits::{Answer, Limit};
use watch::{code_label, GoAway, Seen, Watched};

mod body;

/// Request bytes one stream may have in flight to the gateway
/// (`SETTINGS_INITIAL_WINDOW_SIZE`): four times HAProxy's 64 KiB, enough
/// for an upload at tens of MB/s over a 10 ms path, and what a stalled
/// stream can make the gateway hold.
pub const STREAM_WINDOW: u32 = 256 * 1024;

/// Largest frame payload accepted (`SETTINGS_MAX_FRAME_SIZE`): the RFC's
/// minimum, as nginx and HAProxy keep it; larger frames only batch more.
const MAX_FRAME_SIZE: u32 = 16 * 1024;

/// HPACK dynamic table the client may use (`SETTINGS_HEADER_TABLE_SIZE`):
/// the RFC default, which bounds what the decoder holds per connection.
const HEADER_TABLE_SIZE: u32 = 4096;

/// Response bytes h2 buffers per stream beyond what the socket took.
const MAX_SEND_BUF: usize = 128 * 1024;

/// Streams the client may reset before the gateway accepted them, before
/// h2 ends the connection with `ENHANCE_YOUR_CALM` (the CVE-2023-44487
/// rapid-reset defence; h2's own default, set here on purpose).
const MAX_PENDING_ACCEPT_RESETS: usize = 20;

/// Streams the gateway may reset for the client's errors (malformed
/// requests, streams over the limit) before it ends the connection.
const MAX_LOCAL_ERROR_RESETS: usize = 256;

/// How often the gateway pings a connection to see it is alive...
const PING_INTERVAL: Duration = Duration::from_secs(30);

/// ...and how long the client has to answer before the connection is cut.
const PING_TIMEOUT: Duration = Duration::from_secs(20);

/// Once the gateway sent GOAWAY, how long a connection with no stream
/// left may take to close (a client that stopped reading never would).
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Why the gateway itself ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closer {
    /// No stream open for `header_read_timeout`, after some were.
    Idle,
    /// No request at all within `header_read_timeout`.
    Unused,
    /// The drain.
    Drain,
}

/// Serves HTTP/2 on `io` until the client leaves, the connection idles,
/// or the drain ends it; then counts and logs how it ended.
pub(super) async fn serve<IO, S>(io: IO, service: S, peer: SocketAddr, gateway: &Gateway)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let started = Instant::now();
    let (seen, streams) = (Arc::new(Seen::default()), Arc::new(Streams::default()));
    let io = Watched::new(io, peer, seen.clone(), gateway.metrics.clone());
    let service = with_streams(service, seen.clone(), streams.clone());
    let connection = builder(&gateway.settings.limits).serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let (result, closer) = drive(connection, &streams, gateway).await;
    let end = end_label(&result, &seen, closer);
    gateway.metrics.http2_connection_ended(end);
    if closer == Some(Closer::Unused) {
        let limit = Limit::HeaderReadTimeout.label();
        gateway.metrics.limit_refused(limit, Answer::Closed.label());
    }
    log_end(peer, end, &seen, started, result.as_ref().err());
}

/// hyper's HTTP/2 server with every limit of this module.
fn builder(limits: &LimitSettings) -> hyper::server::conn::http2::Builder<TokioExecutor> {
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .enable_connect_protocol()
        .max_concurrent_streams(limits.http2_max_streams)
        .max_header_list_size(u32::try_from(limits.max_header_size).unwrap_or(u32::MAX))
        .header_table_size(HEADER_TABLE_SIZE)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(MAX_LOCAL_ERROR_RESETS)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(connection_window(limits.http2_max_streams))
        .adaptive_window(false)
        .max_frame_size(MAX_FRAME_SIZE)
        .max_send_buf_size(MAX_SEND_BUF)
        .keep_alive_interval(PING_INTERVAL)
        .keep_alive_timeout(PING_TIMEOUT);
    builder
}

/// The connection's receive window: room for every stream's full window,
/// so streams stalled behind slow backends never starve the others.
fn connection_window(max_streams: u32) -> u32 {
    max_streams
        .saturating_mul(STREAM_WINDOW)
        .min(i32::MAX as u32)
}

/// Gives every request what the lower layers learn about HTTP/2 (whether
/// the client had acknowledged our SETTINGS, a hold on the connection) and
/// keeps the hold in the response body until it is sent.
fn with_streams<S>(
    service: S,
    seen: Arc<Seen>,
    streams: Arc<Streams>,
) -> impl Service<Request<Incoming>, Response = Response<Body>, Error = Infallible, Future: Send> + Clone
where
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    let service = Arc::new(service);
    // Requests arrive here in the order their streams opened.
    let requests = Arc::new(AtomicU64::new(0));
    service_fn(move |mut req: Request<Incoming>| {
        let hold: StreamHold = streams.hold();
        let nth = requests.fetch_add(1, Ordering::Relaxed) + 1;
        req.extensions_mut()
            .insert(SettingsAcked(seen.settings_acked_before(nth)));
        req.extensions_mut().insert(hold.clone());
        let response = service.call(req);
        async move {
            let response = response.await?;
            Ok(response.map(|b| body::held(b, hold)))
        }
    })
}

/// Runs the connection until it ends; the gateway closes it when it idles
/// or drains. Returns hyper's result and who closed it.
async fn drive<C>(
    mut connection: Pin<&mut C>,
    streams: &Streams,
    gateway: &Gateway,
) -> (Result<(), hyper::Error>, Option<Closer>)
where
    C: GracefulConnection,
{
    let closer = tokio::select! {
        result = connection.as_mut() => return (result, None),
        closer = idle(streams, gateway.settings.header_read_timeout) => closer,
        _ = gateway.shutdown.closing().cancelled() => Closer::Drain,
    };
    connection.as_mut().shut_down();
    // Open streams finish (the drain's grace bounds them); a connection
    // with none left has nothing to wait for beyond its GOAWAY going out.
    let result = tokio::select! {
        result = connection => result,
        _ = idle(streams, CLOSE_WAIT) => Ok(()),
    };
    (result, Some(closer))
}

/// Resolves once no stream has been open for `timeout`.
async fn idle(streams: &Streams, timeout: Duration) -> Closer {
    loop {
        streams.until(true).await;
        tokio::select! {
            () = tokio::time::sleep(timeout) => {
                return if streams.used() { Closer::Idle } else { Closer::Unused };
            }
            () = streams.until(false) => {}
        }
    }
}

/// A connection future that can be asked to finish gracefully.
trait GracefulConnection: std::future::Future<Output = Result<(), hyper::Error>> {
    /// GOAWAY: no new streams; open ones finish.
    fn shut_down(self: Pin<&mut Self>);
}

impl<I, S, E, B> GracefulConnection for hyper::server::conn::http2::Connection<I, S, E>
where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn shut_down(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// The `end` label: a flood the watch cut, else the GOAWAY h2 sent, else
/// the gateway's own reason to close, else hyper's error.
fn end_label(
    result: &Result<(), hyper::Error>,
    seen: &Seen,
    closer: Option<Closer>,
) -> &'static str {
    if let Some(flood) = seen.flood() {
        return flood.label();
    }
    if let Some(goaway) = seen.goaway() {
        return goaway_label(&goaway);
    }
    // Once the gateway closed it, how the client hung up says nothing.
    match (closer, result) {
        (Some(Closer::Idle), _) => "idle",
        (Some(Closer::Unused), _) => "unused",
        (Some(Closer::Drain), _) => "drain",
        (None, Err(e)) => error_label(e),
        (None, Ok(())) => "closed",
    }
}

/// What a GOAWAY with an error that h2 sent says about the client: its
/// debug text names h2's abuse checks; otherwise the error code does.
fn goaway_label(goaway: &GoAway) -> &'static str {
    match goaway.debug.as_slice() {
        b"too_many_resets" => "rapid_reset",
        b"too_many_continuations" => "continuation_flood",
        b"header_list_way_too_large" => "header_list_abuse",
        b"too_many_internal_resets" => "stream_errors",
        b"too_many_data_frames" => "small_frame_flood",
        _ => code_label(goaway.code),
    }
}

/// What hyper's error says, short of a GOAWAY from the gateway.
fn error_label(error: &hyper::Error) -> &'static str {
    use std::error::Error as _;
    if error.is_timeout() {
        return "keepalive_timeout";
    }
    let mut cause = error.source();
    while let Some(current) = cause {
        if let Some(h2) = current.downcast_ref::<::h2::Error>() {
            return match (h2.is_go_away() && h2.is_remote(), h2.is_io()) {
                (true, _) => "peer_error",
                (_, true) => "io_error",
                _ => "protocol_error",
            };
        }
        if current.downcast_ref::<std::io::Error>().is_some() {
            return "io_error";
        }
        cause = current.source();
    }
    "error"
}

/// One line per connection: at debug level when it ended normally.
fn log_end(
    peer: SocketAddr,
    end: &'static str,
    seen: &Seen,
    started: Instant,
    error: Option<&hyper::Error>,
) {
    let streams = seen.streams();
    let duration_ms = started.elapsed().as_millis() as u64;
    let error = error.map(|e| e.to_string());
    match end {
        "closed" | "idle" | "unused" | "drain" => {
            tracing::debug!(client = %peer, end, streams, duration_ms, "HTTP/2 connection ended")
        }
        _ => {
            tracing::info!(client = %peer, end, streams, duration_ms, error, "HTTP/2 connection ended by an error")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_window_holds_every_stream_window() {
        assert_eq!(connection_window(128), 128 * 256 * 1024);
        assert_eq!(connection_window(4096), 1 << 30);
        assert_eq!(connection_window(u32::MAX), i32::MAX as u32);
    }

    #[test]
    fn goaway_debug_texts_name_the_abuse() {
        let goaway = |code, debug: &[u8]| GoAway {
            code,
            debug: debug.to_vec(),
        };
        assert_eq!(goaway_label(&goaway(11, b"too_many_resets")), "rapid_reset");
        assert_eq!(
            goaway_label(&goaway(11, b"too_many_continuations")),
            "continuation_flood"
        );
        assert_eq!(
            goaway_label(&goaway(11, b"header_list_way_too_large")),
            "header_list_abuse"
        );
        assert_eq!(goaway_label(&goaway(9, b"")), "compression_error");
        assert_eq!(goaway_label(&goaway(1, b"")), "protocol_error");
    }
}
