//! Socket helpers below every protocol: reads that spare a syscall.

pub mod short_read;
