//! Fallback clients of the soak (the protocol of docs/fallback.md): each
//! slot keeps one session open, downstream by long-poll or by SSE,
//! upstream by `POST …/send`, and opens the next when it ends.
//!
//! Every upstream message is a text `"<tag>:<n>"`, n = 1, 2, … its seq.
//! The check, per session:
//!
//! - downstream events arrive with seq 1, 2, 3, … (an event with a seq
//!   already seen is a redelivery and dropped, as the protocol says; a gap
//!   is a failure), and the close event is the last one;
//! - the echoes are exactly messages 1, 2, 3, … in order, each once, and
//!   never one that was not sent;
//! - the session ends with a close event: either 1000 "soak done", the
//!   backend's answer to our close, and then every message sent was
//!   acknowledged and every acknowledged message was echoed; or 1011
//!   ("backend went away") within a kill window, and then the
//!   acknowledged messages after the last echo are *lost with the backend*:
//!   counted, and reported to the client by that close event. Nothing else
//!   (a 404 before the close event, another code, a 1011 outside a kill
//!   window, a silent stream) is allowed;
//! - once the close event is acknowledged, the session id answers 404.
//!
//! The clients also misbehave the way lossy networks make them: some polls
//! acknowledge less than was received or are dropped mid-request, some SSE
//! streams are dropped and reopened from an older `Last-Event-ID`, and some
//! POSTs are sent twice. The redelivered events must be exactly the ones
//! seen before (dropped by seq) and a repeated POST must change nothing.
//!
//! A few sessions are abandoned instead (the client stops polling, after a
//! POST cut off mid-body); the gateway must expire them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{sleep, sleep_until, timeout, Instant};

use super::{lock, lost_since, Ctx, Rng, Tally};

/// HTTP client shared by all fallback slots (pooled keep-alive connections).
pub type Http = Client<HttpConnector, Full<Bytes>>;

/// A pooled HTTP/1.1 client.
pub fn http_client() -> Http {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

/// Bound on a request other than a held poll or a stream.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Attempts of one POST before giving up on the session.
const POST_ATTEMPTS: u32 = 5;

/// Consecutive failed polls or streams before giving up on the session.
const RECEIVE_ATTEMPTS: u32 = 10;

/// The close event must follow our close (or a 410) within this.
const CLOSE_EVENT_TIMEOUT: Duration = Duration::from_secs(15);

/// An SSE stream silent for this long (heartbeats are every 15 s) is stuck.
const SSE_SILENCE: Duration = Duration::from_secs(40);

/// Percent of polls that acknowledge less than was received (as after a
/// lost answer), so the gateway must deliver those events again.
const STALE_POLL_PCT: u64 = 5;

/// Percent of polls the client drops after [`DROPPED_POLL_AFTER`] (its
/// connection closed mid-request) and repeats with the same ack.
const DROPPED_POLL_PCT: u64 = 3;

/// How long a dropped poll waits before the client gives up on it.
const DROPPED_POLL_AFTER: Duration = Duration::from_millis(50);

/// Percent of SSE event batches after which the client drops the stream and
/// reopens it from the ack of its last POST, before what it has seen.
const DROPPED_STREAM_PCT: u64 = 2;

/// Percent of POSTs sent a second time, as a client does that lost the
/// answer: the gateway must apply nothing twice.
const DUPLICATE_POST_PCT: u64 = 5;

/// The close reason the client sends and the echo backend returns.
const CLOSE_REASON: &str = "soak done";

/// How fallback slots behave.
#[derive(Debug, Clone)]
pub struct FallbackPlan {
    /// `http://ip:port` of the gateway.
    pub base: String,
    /// `ip:port` of the gateway, for the raw half-written POST.
    pub authority: String,
    /// The WebSocket path the sessions open.
    pub path: String,
    /// Time between two POSTs of one session.
    pub interval: Duration,
    /// Session lifetime range.
    pub lifetime: (Duration, Duration),
    /// Probability that a session is abandoned instead of closed.
    pub abandon: f64,
    /// The route's `fallback_poll_hold`, to bound a held poll.
    pub poll_hold: Duration,
}

/// Where one session is; shared by its sender and its receiver.
#[derive(Debug, Default)]
struct Flow {
    /// Highest upstream seq put in a POST.
    sent: u64,
    /// Highest upstream seq the gateway acknowledged.
    acked: u64,
    /// Messages echoed back, in order.
    echoed: u64,
    /// Send times of the messages not echoed yet, oldest first.
    pending: VecDeque<Instant>,
    /// Highest downstream seq received.
    last_event: u64,
    /// The downstream ack sent with the last POST (SSE sessions).
    acked_down: u64,
    /// The close event: code, reason, seq.
    close: Option<(u16, String, u64)>,
    /// The receiver recorded a failure.
    failed: bool,
}

/// Keeps one session open until `stop`; odd slots use SSE, even long-poll.
pub async fn slot(
    id: u64,
    ctx: Arc<Ctx>,
    plan: Arc<FallbackPlan>,
    http: Http,
    mut stop: watch::Receiver<bool>,
) {
    let sse = id % 2 == 1;
    let mut rng = Rng::new(id ^ 0xfa11_bac4);
    let mut generation = 0;
    let mut refused_in_a_row = 0u32;
    while !*stop.borrow() {
        generation += 1;
        let session = match open(&http, &plan, sse).await {
            Ok(session) => session,
            Err(error) => {
                match error {
                    Some(502) if ctx.chaos.recent() => Tally::bump(&ctx.tally.fb_open_refused),
                    Some(status) => ctx
                        .failures
                        .record("fb: open refused", format!("status {status}")),
                    None => ctx
                        .failures
                        .record("fb: open failed", "no answer".to_string()),
                }
                refused_in_a_row += 1;
                let cap = Duration::from_millis(50 << refused_in_a_row.min(6));
                let wait = rng.duration(cap / 2, cap.min(Duration::from_secs(2)));
                tokio::select! {
                    _ = sleep(wait) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
        };
        refused_in_a_row = 0;
        Tally::bump(match sse {
            true => &ctx.tally.fb_opened_sse,
            false => &ctx.tally.fb_opened_longpoll,
        });
        Tally::bump(&ctx.tally.fb_active);
        let run = Session {
            ctx: ctx.clone(),
            plan: plan.clone(),
            http: http.clone(),
            id: session,
            tag: format!("f{id}.{generation}"),
            sse,
            flow: Arc::new(Mutex::new(Flow::default())),
        };
        run.run(&mut rng, &mut stop).await;
        Tally::drop_one(&ctx.tally.fb_active);
    }
}

/// `POST /_wsgate/open`: the session id, or the status it was refused
/// with (`None`: no valid answer).
async fn open(http: &Http, plan: &FallbackPlan, sse: bool) -> Result<String, Option<u16>> {
    let transport = if sse { "sse" } else { "longpoll" };
    let path = plan.path.replace('/', "%2F");
    let uri = format!("/_wsgate/open?path={path}&transport={transport}");
    match call(
        http,
        plan,
        Method::POST,
        &uri,
        String::new(),
        REQUEST_TIMEOUT,
    )
    .await
    {
        Ok((StatusCode::OK, body)) => serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["session"].as_str().map(str::to_owned))
            .ok_or(None),
        Ok((status, _)) => Err(Some(status.as_u16())),
        Err(_) => Err(None),
    }
}

/// One request with a bounded wait; the body collected.
async fn call(
    http: &Http,
    plan: &FallbackPlan,
    method: Method,
    path_and_query: &str,
    body: String,
    limit: Duration,
) -> Result<(StatusCode, Bytes), String> {
    let request = Request::builder()
        .method(method)
        .uri(format!("{}{path_and_query}", plan.base))
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let response = http.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, body))
    };
    timeout(limit, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {limit:?}")))
}

/// What a POST of messages came to.
enum Posted {
    /// `{"acked": n}`.
    Acked(u64),
    /// 410: the session's backend side is closed.
    Closed,
    /// Anything else, after retries: a failure already recorded.
    Failed,
}

/// One session from open to end (cheap to clone: the receiver gets a copy).
#[derive(Clone)]
struct Session {
    ctx: Arc<Ctx>,
    plan: Arc<FallbackPlan>,
    http: Http,
    id: String,
    tag: String,
    sse: bool,
    flow: Arc<Mutex<Flow>>,
}

impl Session {
    /// Sends until the lifetime ends, the phase stops or the session
    /// closes; then closes (or abandons) it and checks the accounting.
    async fn run(&self, rng: &mut Rng, stop: &mut watch::Receiver<bool>) {
        let (closed_tx, mut closed) = watch::channel(false);
        let receiver = tokio::spawn(self.clone().receive(closed_tx));
        let end_at = Instant::now() + rng.duration(self.plan.lifetime.0, self.plan.lifetime.1);
        let abandon = rng.chance(self.plan.abandon);
        let mut tick = Instant::now() + rng.duration(Duration::ZERO, self.plan.interval);
        let mut next = 1u64;
        loop {
            tokio::select! {
                _ = sleep_until(tick) => {}
                _ = closed.changed() => {}
                _ = stop.changed() => {}
            }
            if *closed.borrow() {
                break;
            }
            let stopping = *stop.borrow();
            if stopping || Instant::now() >= end_at {
                if abandon && !stopping {
                    receiver.abort();
                    self.abandon(rng).await;
                    return;
                }
                let close = json!([{ "close": { "code": 1000, "reason": CLOSE_REASON } }]);
                match self.post(next, close, 0, rng).await {
                    Posted::Acked(_) | Posted::Closed => {}
                    Posted::Failed => {
                        receiver.abort();
                        return self.give_up().await;
                    }
                }
                break;
            }
            tick += self.plan.interval;
            let count = 1 + rng.below(3);
            let messages: Vec<Value> = (next..next + count)
                .map(|n| json!({ "text": format!("{}:{n}", self.tag) }))
                .collect();
            {
                let mut flow = lock(&self.flow);
                flow.sent = next + count - 1;
                let now = Instant::now();
                flow.pending.extend((0..count).map(|_| now));
            }
            Tally::add(&self.ctx.tally.fb_sent, count);
            match self.post(next, Value::Array(messages), count, rng).await {
                Posted::Acked(acked) => next = acked + 1,
                Posted::Closed => {
                    Tally::add(&self.ctx.tally.fb_refused_closed, count);
                    break;
                }
                Posted::Failed => {
                    receiver.abort();
                    return self.give_up().await;
                }
            }
        }
        if timeout(CLOSE_EVENT_TIMEOUT, closed.wait_for(|c| *c))
            .await
            .is_err()
        {
            receiver.abort();
            self.fail(
                "fb: no close event",
                format!("within {CLOSE_EVENT_TIMEOUT:?}"),
            );
            return self.give_up().await;
        }
        let _ = receiver.await;
        self.finish().await;
    }

    /// `POST …/send` of `messages` starting at `seq` (SSE sessions also
    /// acknowledge what they received); retried on transport errors, which
    /// the protocol makes safe. `count` messages must all be acknowledged.
    async fn post(&self, seq: u64, messages: Value, count: u64, rng: &mut Rng) -> Posted {
        let mut attempt = 0;
        let mut repeat = rng.below(100) < DUPLICATE_POST_PCT;
        let mut first_acked: Option<u64> = None;
        loop {
            attempt += 1;
            let mut body = json!({ "seq": seq, "messages": messages });
            if self.sse {
                let mut flow = lock(&self.flow);
                flow.acked_down = flow.last_event;
                body["ack"] = json!(flow.acked_down);
            }
            let uri = format!("/_wsgate/s/{}/send", self.id);
            let answer = call(
                &self.http,
                &self.plan,
                Method::POST,
                &uri,
                body.to_string(),
                REQUEST_TIMEOUT,
            )
            .await;
            match answer {
                Ok((StatusCode::OK, body)) => {
                    let acked = serde_json::from_slice::<Value>(&body)
                        .ok()
                        .and_then(|v| v["acked"].as_u64());
                    let Some(acked) = acked else {
                        self.fail("fb: bad send answer", String::from_utf8_lossy(&body).into());
                        return Posted::Failed;
                    };
                    let last = seq + count.max(1) - 1;
                    if acked != last {
                        self.fail(
                            "fb: partial ack",
                            format!("acked {acked}, sent up to {last}"),
                        );
                        return Posted::Failed;
                    }
                    if repeat {
                        // The same batch again, as after a lost answer.
                        repeat = false;
                        first_acked = Some(acked);
                        Tally::bump(&self.ctx.tally.fb_duplicate_posts);
                        continue;
                    }
                    if first_acked.is_some_and(|a| a != acked) {
                        let detail = format!("{first_acked:?} then {acked}");
                        self.fail("fb: repeated POST acknowledged differently", detail);
                        return Posted::Failed;
                    }
                    if count > 0 {
                        let mut flow = lock(&self.flow);
                        let new = acked.saturating_sub(flow.acked);
                        flow.acked = flow.acked.max(acked);
                        Tally::add(&self.ctx.tally.fb_acked, new);
                    }
                    return Posted::Acked(acked);
                }
                Ok((StatusCode::GONE, _)) => return Posted::Closed,
                Ok((StatusCode::NOT_FOUND, _)) if lock(&self.flow).close.is_some() => {
                    return Posted::Closed
                }
                Ok((status, body)) => {
                    let body = String::from_utf8_lossy(&body).into_owned();
                    self.fail("fb: send refused", format!("{status}: {body}"));
                    return Posted::Failed;
                }
                Err(e) if attempt < POST_ATTEMPTS => {
                    Tally::bump(&self.ctx.tally.fb_post_retries);
                    let _ = e;
                    sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                }
                Err(e) => {
                    self.fail("fb: send failed", format!("{POST_ATTEMPTS} attempts: {e}"));
                    return Posted::Failed;
                }
            }
        }
    }

    /// The close event came: check the accounting, acknowledge the close,
    /// and check that the session is then forgotten.
    async fn finish(&self) {
        let (flow_failed, close, sent, acked, echoed) = {
            let f = lock(&self.flow);
            (f.failed, f.close.clone(), f.sent, f.acked, f.echoed)
        };
        if flow_failed {
            return self.give_up().await;
        }
        let Some((code, reason, close_seq)) = close else {
            return self.give_up().await;
        };
        let t = &self.ctx.tally;
        let acked_echoed = echoed.min(acked);
        Tally::add(&t.fb_acked_echoed, acked_echoed);
        match code {
            1000 if reason == CLOSE_REASON => {
                if acked != sent || echoed != acked {
                    self.fail(
                        "fb: message lost before a clean close",
                        format!("sent {sent}, acked {acked}, echoed {echoed}"),
                    );
                } else {
                    Tally::bump(&t.fb_closed_clean);
                }
            }
            1011 if self.ctx.chaos.recent() => {
                Tally::bump(&t.fb_backend_lost);
                Tally::add(&t.fb_lost_with_backend, acked - acked_echoed);
                let oldest = lock(&self.flow).pending.front().copied();
                if let (true, Some(oldest)) = (acked > acked_echoed, oldest) {
                    lost_since(&self.ctx.fb_lost_age_ms, &self.ctx.chaos, oldest);
                }
            }
            _ => {
                self.fail(
                    "fb: unexpected close event",
                    format!(
                        "{code} {reason:?} (kill window: {})",
                        self.ctx.chaos.recent()
                    ),
                );
                if code == 1011 {
                    // Still acknowledged messages lost, with a close event.
                    Tally::add(&t.fb_lost_with_backend, acked - acked_echoed);
                }
            }
        }
        // Acknowledge the close event; then the id must be forgotten.
        let ack = json!({ "ack": close_seq }).to_string();
        let uri = format!("/_wsgate/s/{}/send", self.id);
        let answer = call(
            &self.http,
            &self.plan,
            Method::POST,
            &uri,
            ack,
            REQUEST_TIMEOUT,
        )
        .await;
        if !matches!(&answer, Ok((s, _)) if *s == StatusCode::OK || *s == StatusCode::NOT_FOUND) {
            self.fail("fb: close ack refused", format!("{answer:?}"));
            return;
        }
        let uri = format!("/_wsgate/s/{}/poll?ack={close_seq}", self.id);
        let limit = self.plan.poll_hold + REQUEST_TIMEOUT;
        match call(
            &self.http,
            &self.plan,
            Method::GET,
            &uri,
            String::new(),
            limit,
        )
        .await
        {
            Ok((StatusCode::NOT_FOUND, _)) => Tally::bump(&t.fb_forgotten),
            other => self.fail(
                "fb: session kept after its close was acknowledged",
                format!("{other:?}"),
            ),
        }
    }

    /// Leaves without a close: a POST cut off mid-body on a fresh
    /// connection (FIN or RST), then silence; the gateway must expire it.
    async fn abandon(&self, rng: &mut Rng) {
        let acked_echoed = {
            let f = lock(&self.flow);
            f.echoed.min(f.acked)
        };
        let acked = lock(&self.flow).acked;
        Tally::add(&self.ctx.tally.fb_acked_echoed, acked_echoed);
        Tally::add(&self.ctx.tally.fb_abandoned_acked, acked - acked_echoed);
        Tally::bump(&self.ctx.tally.fb_abandoned);
        let head = format!(
            "POST /_wsgate/s/{}/send HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain\r\n\
             Content-Length: 200\r\n\r\n{{\"seq\":",
            self.id, self.plan.authority
        );
        if let Ok(Ok(mut tcp)) = timeout(
            REQUEST_TIMEOUT,
            TcpStream::connect(self.plan.authority.as_str()),
        )
        .await
        {
            if tcp.write_all(head.as_bytes()).await.is_ok() {
                Tally::bump(&self.ctx.tally.fb_half_posts);
            }
            if rng.chance(0.5) {
                let _ = tcp.set_zero_linger();
            }
        }
    }

    /// After a failure: abandon the session politely (`POST …/close`) so it
    /// does not linger, counting what was acknowledged as unaccounted.
    async fn give_up(&self) {
        let uri = format!("/_wsgate/s/{}/close", self.id);
        let body = json!({ "code": 1000, "reason": "soak gave up" }).to_string();
        let _ = call(
            &self.http,
            &self.plan,
            Method::POST,
            &uri,
            body,
            REQUEST_TIMEOUT,
        )
        .await;
    }

    /// Downstream until the close event or a failure; then tells the sender.
    async fn receive(self, closed: watch::Sender<bool>) {
        let result = match self.sse {
            true => self.receive_streams().await,
            false => self.receive_polls().await,
        };
        if let Err((kind, detail)) = result {
            lock(&self.flow).failed = true;
            self.fail(kind, detail);
        }
        let _ = closed.send(true);
    }

    /// Long-polls, acknowledging what arrived, until the close event.
    async fn receive_polls(&self) -> Result<(), Broken> {
        let mut rng = Rng::new(self.tag.len() as u64 ^ 0x9011);
        let mut errors = 0;
        let mut previous = 0;
        loop {
            let last = lock(&self.flow).last_event;
            let roll = rng.below(100);
            let ack = match roll < STALE_POLL_PCT {
                true => {
                    Tally::bump(&self.ctx.tally.fb_stale_acks);
                    previous
                }
                false => last,
            };
            previous = last;
            let uri = format!("/_wsgate/s/{}/poll?ack={ack}", self.id);
            let mut limit = self.plan.poll_hold + REQUEST_TIMEOUT;
            let drop_it = (STALE_POLL_PCT..STALE_POLL_PCT + DROPPED_POLL_PCT).contains(&roll);
            if drop_it {
                limit = DROPPED_POLL_AFTER;
            }
            let answer = call(
                &self.http,
                &self.plan,
                Method::GET,
                &uri,
                String::new(),
                limit,
            )
            .await;
            if drop_it && answer.is_err() {
                // Dropped on purpose: whatever the gateway had started to
                // answer is lost, and the next poll asks again.
                Tally::bump(&self.ctx.tally.fb_dropped_polls);
                continue;
            }
            match answer {
                Ok((StatusCode::OK, body)) => {
                    errors = 0;
                    Tally::bump(&self.ctx.tally.fb_polls);
                    let answer: Value = serde_json::from_slice(&body)
                        .map_err(|e| ("fb: bad poll answer", e.to_string()))?;
                    if answer["superseded"] == json!(true) {
                        return Err(("fb: poll superseded", "with one poll open".into()));
                    }
                    let events = answer["events"]
                        .as_array()
                        .ok_or_else(|| ("fb: bad poll answer", answer.to_string()))?;
                    for event in events {
                        if self.event(event)? {
                            return Ok(());
                        }
                    }
                }
                Ok((StatusCode::NOT_FOUND, _)) => {
                    return Err((
                        "fb: session unknown before its close event",
                        format!("poll after event {ack}"),
                    ))
                }
                Ok((status, body)) => {
                    let body = String::from_utf8_lossy(&body).into_owned();
                    return Err(("fb: poll refused", format!("{status}: {body}")));
                }
                Err(e) => {
                    errors += 1;
                    if errors >= RECEIVE_ATTEMPTS {
                        return Err(("fb: polls failing", e));
                    }
                    sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// SSE streams (reopened with `Last-Event-ID` if one ends early) until
    /// the close event.
    async fn receive_streams(&self) -> Result<(), Broken> {
        let mut rng = Rng::new(self.tag.len() as u64 ^ 0x55e);
        let mut errors = 0;
        let mut resume_early = false;
        loop {
            let last = {
                let flow = lock(&self.flow);
                match resume_early {
                    true => flow.acked_down,
                    false => flow.last_event,
                }
            };
            resume_early = false;
            let uri = format!("{}/_wsgate/s/{}/sse", self.plan.base, self.id);
            let mut request = Request::get(uri);
            if last > 0 {
                request = request.header("last-event-id", last.to_string());
            }
            let request = request
                .body(Full::new(Bytes::new()))
                .map_err(|e| ("fb: request", e.to_string()))?;
            let error = match timeout(REQUEST_TIMEOUT, self.http.request(request)).await {
                Ok(Ok(response)) => match response.status() {
                    StatusCode::OK => {
                        Tally::bump(&self.ctx.tally.fb_streams);
                        match self.read_stream(response, &mut rng).await? {
                            Stream::Closed => return Ok(()),
                            Stream::Dropped => {
                                Tally::bump(&self.ctx.tally.fb_dropped_streams);
                                resume_early = true;
                                continue;
                            }
                            Stream::Ended => "stream ended without the close event".to_string(),
                        }
                    }
                    StatusCode::NOT_FOUND => {
                        return Err((
                            "fb: session unknown before its close event",
                            format!("stream after event {last}"),
                        ))
                    }
                    status => return Err(("fb: stream refused", status.to_string())),
                },
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {REQUEST_TIMEOUT:?}"),
            };
            errors += 1;
            if errors >= RECEIVE_ATTEMPTS {
                return Err(("fb: streams failing", error));
            }
            sleep(Duration::from_millis(200)).await;
        }
    }

    /// Reads one event stream until the close event, its end, or the
    /// client dropping it on purpose.
    async fn read_stream(
        &self,
        response: Response<Incoming>,
        rng: &mut Rng,
    ) -> Result<Stream, Broken> {
        let mut body = response.into_body();
        let mut parser = SseParser::default();
        loop {
            let frame = match timeout(SSE_SILENCE, body.frame()).await {
                Err(_) => return Err(("fb: stream silent", format!("{SSE_SILENCE:?}"))),
                Ok(None) | Ok(Some(Err(_))) => return Ok(Stream::Ended),
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let events = parser.feed(&data);
            let had_events = !events.is_empty();
            for (id, data) in events {
                let event: Value = serde_json::from_str(&data)
                    .map_err(|e| ("fb: bad SSE data", format!("{e}: {data}")))?;
                if id != event["seq"].as_u64() {
                    return Err(("fb: SSE id is not the seq", format!("id {id:?}: {data}")));
                }
                if self.event(&event)? {
                    return Ok(Stream::Closed);
                }
            }
            if had_events && rng.below(100) < DROPPED_STREAM_PCT {
                return Ok(Stream::Dropped);
            }
        }
    }

    /// Applies one downstream event; `Ok(true)` for the close event.
    fn event(&self, event: &Value) -> Result<bool, Broken> {
        let seq = event["seq"]
            .as_u64()
            .ok_or_else(|| ("fb: event without seq", event.to_string()))?;
        let mut f = lock(&self.flow);
        if f.close.is_some() {
            return Err(("fb: event after the close event", event.to_string()));
        }
        if seq <= f.last_event {
            Tally::bump(&self.ctx.tally.fb_redelivered);
            return Ok(false);
        }
        if seq != f.last_event + 1 {
            return Err((
                "fb: gap in event seqs",
                format!("{seq} after {}", f.last_event),
            ));
        }
        f.last_event = seq;
        if let Some(text) = event["text"].as_str() {
            let n = f.echoed + 1;
            if n > f.sent {
                let detail = format!("{text} with {} sent", f.sent);
                return Err(("fb: echo of a message never sent", detail));
            }
            let expected = format!("{}:{n}", self.tag);
            if text != expected {
                return Err(("fb: wrong echo", format!("{text}, expected {expected}")));
            }
            f.echoed = n;
            if let Some(sent) = f.pending.pop_front() {
                self.ctx.fb_rtt.record(sent.elapsed());
            }
            return Ok(false);
        }
        if let Some(close) = event.get("close") {
            let code = close["code"].as_u64().unwrap_or(0) as u16;
            let reason = close["reason"].as_str().unwrap_or_default().to_owned();
            f.close = Some((code, reason, seq));
            return Ok(true);
        }
        Err(("fb: unexpected event", event.to_string()))
    }

    fn fail(&self, kind: &'static str, detail: String) {
        self.ctx.failures.record(
            kind,
            format!("session {} ({}): {detail}", self.tag, self.id),
        );
    }
}

/// How an event stream ended.
enum Stream {
    /// The close event arrived.
    Closed,
    /// The gateway ended it before the close event.
    Ended,
    /// The client dropped it on purpose, to reopen it from an older id.
    Dropped,
}

/// A failure found while receiving: (kind, detail).
type Broken = (&'static str, String);

/// Splits a `text/event-stream` into events: `(id, data)` of each
/// dispatched default-type event (the `ready` event and comments skipped).
#[derive(Debug, Default)]
struct SseParser {
    pending: Vec<u8>,
    data: String,
    has_data: bool,
    id: Option<u64>,
    event: String,
}

impl SseParser {
    /// Feeds a chunk; returns the events it completed.
    fn feed(&mut self, chunk: &[u8]) -> Vec<(Option<u64>, String)> {
        self.pending.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(i) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let raw = &self.pending[start..start + i];
            start += i + 1;
            let line = String::from_utf8_lossy(raw);
            let line = line.strip_suffix('\r').unwrap_or(&line);
            if line.is_empty() {
                if self.has_data && (self.event.is_empty() || self.event == "message") {
                    out.push((self.id.take(), std::mem::take(&mut self.data)));
                }
                self.data.clear();
                self.has_data = false;
                self.id = None;
                self.event.clear();
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "data" => {
                    if self.has_data {
                        self.data.push('\n');
                    }
                    self.data.push_str(value);
                    self.has_data = true;
                }
                "id" => self.id = value.parse().ok(),
                "event" => self.event = value.to_owned(),
                _ => {}
            }
        }
        self.pending.drain(..start);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::SseParser;

    #[test]
    fn sse_events_split_across_chunks() {
        let stream = ":    \n\nretry: 1000\nevent: ready\ndata: {}\n\nid: 1\ndata: {\"seq\":1}\n\n: keepalive\n\nid: 2\r\ndata: {\"seq\":2}\r\n\r\n";
        let mut parser = SseParser::default();
        let mut events = Vec::new();
        for chunk in stream.as_bytes().chunks(7) {
            events.extend(parser.feed(chunk));
        }
        assert_eq!(
            events,
            vec![
                (Some(1), "{\"seq\":1}".to_string()),
                (Some(2), "{\"seq\":2}".to_string())
            ]
        );
    }
}
