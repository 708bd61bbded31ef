//! Socket helpers below every protocol: reads that spare a syscall, and
//! the PROXY protocol header a balancer puts before the client's bytes.

pub mod proxy_header;
pub mod short_read;
