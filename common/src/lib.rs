//! Shared core of headroom: wire types, the sans-IO protocol session, backoff, and TLS/PKI helpers.
//!
//! Nothing here opens a socket, spawns a task or reads the clock: time comes in as an argument.

pub mod backoff;
pub mod derive;
pub mod enroll;
pub mod pki;
pub mod session;
pub mod tls;
pub mod wire;
