//! Hot certificate reload: on SIGHUP, and whenever a listener's certificate
//! or key file changes on disk, the listener's certificate set is rebuilt
//! and swapped in. New handshakes get the new certificates; open
//! connections keep the session they negotiated. A new set that fails to
//! load (a half-written file, a key that does not match) is not used: the
//! old certificates stay and the reason is logged.
//!
//! Changes are found by re-reading the files every `watch_interval` and
//! comparing contents — PEM files are small, and contents (unlike mtimes)
//! cannot miss two writes within one timestamp tick.

use std::sync::Arc;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::config::ListenerTls;
use crate::tls::load::load_certs;
use crate::tls::sni::SniResolver;

/// Starts the reload task of one TLS listener; it ends when `stop` fires.
pub fn spawn_watcher(
    tls: ListenerTls,
    at: String,
    resolver: Arc<SniResolver>,
    stop: CancellationToken,
) {
    // Registered before the task first runs, so a SIGHUP sent as soon as
    // the listener accepts is seen (tokio drops signals that arrive before
    // a receiver exists).
    let mut hangup = signal(SignalKind::hangup())
        .map_err(|e| tracing::warn!(error = %e, "cannot watch SIGHUP; reload on file change only"))
        .ok();
    let mut seen = snapshot(&tls);
    tokio::spawn(async move {
        let mut tick = (!tls.watch_interval.is_zero() && !tls.certs.is_empty())
            .then(|| tokio::time::interval(tls.watch_interval));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = next_hangup(&mut hangup) => {
                    seen = snapshot(&tls);
                    reload(&tls, &at, &resolver, "SIGHUP");
                }
                _ = next_tick(&mut tick) => {
                    let now = snapshot(&tls);
                    if now != seen {
                        seen = now;
                        reload(&tls, &at, &resolver, "certificate files changed");
                    }
                }
            }
        }
    });
}

/// The contents of every cert and key file (`None` where unreadable).
fn snapshot(tls: &ListenerTls) -> Vec<Option<Vec<u8>>> {
    tls.certs
        .iter()
        .flat_map(|pair| [&pair.cert, &pair.key])
        .map(|path| std::fs::read(path).ok())
        .collect()
}

/// Rebuilds the set and swaps it in, or keeps the old one and says why.
fn reload(tls: &ListenerTls, at: &str, resolver: &SniResolver, why: &str) {
    let loaded = load_certs(tls, at);
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    match loaded.set {
        Some(set) => {
            resolver.replace(set);
            tracing::info!(listener = at, reason = why, "certificates reloaded");
        }
        None => tracing::error!(
            listener = at,
            reason = why,
            errors = %loaded.errors.join("; "),
            "certificate reload failed; still serving the previous certificates"
        ),
    }
}

/// The next SIGHUP, or never when signals are unavailable.
async fn next_hangup(hangup: &mut Option<Signal>) {
    match hangup {
        Some(signal) => {
            if signal.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// The next poll tick, or never when polling is off.
async fn next_tick(tick: &mut Option<tokio::time::Interval>) {
    match tick {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}
