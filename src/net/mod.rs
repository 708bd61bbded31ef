//! Socket helpers below every protocol: reads that spare a syscall, which
//! streams are plain TCP (for splice(2)), and
//! the PROXY protocol header a balancer puts before the client's bytes.

pub mod proxy_header;
pub mod short_read;
pub mod splice_tcp;
