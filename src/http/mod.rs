//! HTTP building blocks every path shares: the one response body type,
//! hop-by-hop and forwarding headers, who the client is, and the
//! request-path error with the one function that turns it into a response,
//! and what an HTTP/2 request needs to travel the same paths.

pub mod body;
pub mod client;
pub mod cors;
pub mod error;
pub mod h2;
pub mod headers;
