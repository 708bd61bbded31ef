//! The binary's log lines (issue 2, point 9), read from its stderr: one
//! line per WebSocket session end with route, client address, duration,
//! messages and bytes each way and the close codes; one line per rejected
//! handshake with its reason; and with `log_format = "json"` every line is
//! a JSON object carrying the same fields.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;

use crate::support::backend::{Answer, Behaviour, WsBackend};
use crate::support::client::{connect, raw_request, upgrade_request, ws_request, Ws, WAIT};
use crate::support::ops::{eventually, Binary};

/// The message of the session-end line.
const SESSION_ENDED: &str = "websocket session ended";

/// The message of a rejected handshake's line.
const REJECTED: &str = "websocket handshake rejected";

/// A binary config: route `chat` on `/chat` to `backend`, which only
/// `https://good.example` pages may use and which speaks `chat.v2`.
fn config(format: &'static str, backend: String) -> impl Fn(u16, u16) -> String {
    move |port, admin| {
        format!(
            "[server]\nlog_format = {format:?}\n[[listeners]]\nbind = \"127.0.0.1:{port}\"\n\
             [admin]\nbind = \"127.0.0.1:{admin}\"\n\
             [[routes]]\nname = \"chat\"\npath = \"/chat\"\nbackends = [{backend:?}]\n\
             origins = [\"https://good.example\"]\nsubprotocols = [\"chat.v2\"]\n"
        )
    }
}

/// What the client saw of the known exchange.
struct Exchange {
    /// The client's own address, as the gateway sees it.
    client: SocketAddr,
    /// An upper bound on the session's duration.
    lasted: Duration,
}

/// Opens `/chat`, relays "hello" (5 bytes) and a 3-byte binary message
/// both ways, closes with 1000 and waits for the connection to end.
async fn known_exchange(gw: &Binary) -> Exchange {
    let started = Instant::now();
    let url = format!("ws://{}/chat", gw.addr);
    let headers = [("sec-websocket-protocol", "chat.v2")];
    let (mut ws, _) = connect(ws_request(&url, &headers)).await.unwrap();
    let client = match ws.get_ref() {
        MaybeTlsStream::Plain(tcp) => tcp.local_addr().unwrap(),
        _ => unreachable!("plain ws://"),
    };
    for message in [
        Message::Text("hello".into()),
        Message::Binary(vec![1, 2, 3]),
    ] {
        ws.send(message.clone()).await.unwrap();
        assert_eq!(next_data(&mut ws).await, message);
    }
    let bye = CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    };
    ws.send(Message::Close(Some(bye))).await.unwrap();
    while tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .is_some()
    {}
    Exchange {
        client,
        lasted: started.elapsed(),
    }
}

/// The next data message, skipping pings.
async fn next_data(ws: &mut Ws) -> Message {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(message)) => return message,
            other => panic!("no message: {other:?}"),
        }
    }
}

/// Waits until the log holds `n` lines containing `message`.
async fn lines_with(gw: &Binary, message: &str, n: usize) -> Vec<String> {
    let mut found = Vec::new();
    eventually(&format!("{n} log lines {message:?}"), || {
        found = gw
            .log()
            .lines()
            .filter(|line| line.contains(message))
            .map(str::to_owned)
            .collect();
        std::future::ready(found.len() >= n)
    })
    .await;
    assert_eq!(found.len(), n, "{}", gw.log());
    found
}

/// A `key=value` field of a text log line, quotes removed.
fn text_field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[start..];
    let value = match rest.strip_prefix('"') {
        Some(quoted) => &quoted[..quoted.find('"')?],
        None => rest.split(' ').next()?,
    };
    Some(value.to_owned())
}

#[tokio::test]
async fn text_session_end_line_carries_the_exchange() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let gw = Binary::start(config("text", backend.url())).await;
    let exchange = known_exchange(&gw).await;
    let line = lines_with(&gw, SESSION_ENDED, 1).await.remove(0);
    let field = |key| text_field(&line, key).unwrap_or_else(|| panic!("no {key} in {line}"));
    assert_eq!(field("route"), "chat");
    assert_eq!(field("client"), exchange.client.to_string());
    assert_eq!(field("backend"), backend.url());
    assert_eq!(field("msgs_in"), "2");
    assert_eq!(field("bytes_in"), "8");
    assert_eq!(field("msgs_out"), "2");
    assert_eq!(field("bytes_out"), "8");
    assert_eq!(field("client_close"), "1000");
    assert_eq!(field("backend_close"), "1000");
    // The gateway sent no close of its own: those fields are left out.
    assert_eq!(text_field(&line, "sent_to_client"), None, "{line}");
    assert_eq!(text_field(&line, "sent_to_backend"), None, "{line}");
    assert_eq!(field("end"), "close handshake started by client");
    let duration: u128 = field("duration_ms").parse().unwrap();
    assert!(duration <= exchange.lasted.as_millis(), "{line}");
}

#[tokio::test]
async fn text_rejected_handshake_is_one_line_with_its_reason() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let gw = Binary::start(config("text", backend.url())).await;
    let evil = upgrade_request("/chat", &["Origin: https://evil.example"]);
    assert_eq!(raw_request(gw.addr, &evil).await.status, 403);
    let line = lines_with(&gw, REJECTED, 1).await.remove(0);
    assert_eq!(
        text_field(&line, "reason").as_deref(),
        Some("origin"),
        "{line}"
    );
    assert_eq!(
        text_field(&line, "status").as_deref(),
        Some("403"),
        "{line}"
    );
    assert_eq!(
        text_field(&line, "path").as_deref(),
        Some("/chat"),
        "{line}"
    );
    assert_eq!(
        text_field(&line, "route").as_deref(),
        Some("chat"),
        "{line}"
    );
    assert_eq!(backend.connection_count(), 0);
}

/// The JSON lines logged within the request whose `X-Request-Id` is `id`.
fn request_lines(gw: &Binary, id: &str) -> Vec<Value> {
    gw.json_log()
        .into_iter()
        .filter(|line| line["span"]["request_id"] == id)
        .collect()
}

#[tokio::test]
async fn json_lines_parse_and_carry_the_same_fields() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let gw = Binary::start(config("json", backend.url())).await;
    let exchange = known_exchange(&gw).await;
    lines_with(&gw, SESSION_ENDED, 1).await;
    // Every line, start-up included, is one JSON object.
    let all = gw.json_log();
    assert!(all.iter().all(Value::is_object));
    let ended = gw.json_events(SESSION_ENDED).remove(0);
    assert_eq!(ended["route"], "chat");
    assert_eq!(ended["client"], exchange.client.to_string());
    assert_eq!(ended["backend"], backend.url());
    let counts = ["msgs_in", "bytes_in", "msgs_out", "bytes_out"].map(|k| ended[k].clone());
    assert_eq!(counts, [2, 8, 2, 8].map(Value::from));
    assert_eq!(ended["client_close"], 1000);
    assert_eq!(ended["backend_close"], 1000);
    assert!(ended.get("sent_to_client").is_none(), "{ended}");
    assert_eq!(ended["end"], "close handshake started by client");
    let duration = ended["duration_ms"].as_u64().expect("a number");
    assert!(u128::from(duration) <= exchange.lasted.as_millis());
    assert!(ended["request_id"]
        .as_str()
        .is_some_and(|id| id.len() == 32));
}

#[tokio::test]
async fn json_one_line_per_rejected_handshake() {
    let backend = WsBackend::start(Answer::AcceptFirst, Behaviour::Echo).await;
    let gw = Binary::start(config("json", backend.url())).await;
    let cases = [
        ("origin", 403, "Origin: https://evil.example", "/chat"),
        (
            "subprotocol",
            400,
            "Sec-WebSocket-Protocol: chat.v0",
            "/chat",
        ),
        ("no_route", 404, "X-Nothing: here", "/elsewhere"),
    ];
    for (reason, status, header, path) in cases {
        let id = format!("X-Request-Id: reject-{reason}");
        let request = upgrade_request(path, &[header, &id]);
        assert_eq!(raw_request(gw.addr, &request).await.status, status);
    }
    let version = upgrade_request("/chat", &["X-Request-Id: reject-version"])
        .replace("Version: 13", "Version: 8");
    assert_eq!(raw_request(gw.addr, &version).await.status, 426);
    lines_with(&gw, REJECTED, 4).await;
    for (reason, status, path) in [
        ("origin", 403, "/chat"),
        ("subprotocol", 400, "/chat"),
        ("no_route", 404, "/elsewhere"),
        ("version", 426, "/chat"),
    ] {
        let lines = request_lines(&gw, &format!("reject-{reason}"));
        assert_eq!(lines.len(), 1, "{reason}: {lines:?}");
        let fields = &lines[0]["fields"];
        assert_eq!(fields["message"], REJECTED, "{reason}");
        assert_eq!(fields["reason"], reason);
        assert_eq!(fields["status"], status);
        assert_eq!(fields["path"], path);
        assert_eq!(lines[0]["level"], "WARN");
    }
    assert_eq!(backend.connection_count(), 0);
}
