//! Plain HTTP: a non-upgrade request forwarded to a route's backend.

pub mod forward;
