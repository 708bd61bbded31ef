//! Plain HTTP: forwarding, header rewriting, and request-path errors.

pub mod body;
pub mod error;
pub mod forward;
pub mod headers;
