//! wsgate: a TLS-terminating reverse proxy built for WebSocket.
//!
//! Architecture map (one job per module):
//!
//! ```text
//! main.rs        CLI, tracing, exit codes — a thin shell over this library
//! config/        TOML file format → validated runtime Config
//! routing        host + whole-segment path prefix matching
//! server/        accept loops and the per-connection hyper service
//! ws/            handshake checks, backend dial, frame codec, relay
//! proxy/         plain HTTP forwarding; the one place errors become responses
//! builtin        the in-process echo backend and demo page of the default config
//! ```
//!
//! A request flows: `server` accepts → `routing` picks a route → either
//! `ws::handshake` checks the upgrade, `ws::dial` opens the backend and
//! `ws::relay` pumps frames, or `proxy` forwards plain HTTP. Every
//! request-path failure is a `proxy::error::ProxyError`, turned into a response
//! by one function.

pub mod ws;
