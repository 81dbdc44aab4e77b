//! TLS 1.3 session resumption between agents and the streaming listener: the server's tickets, the check a
//! resumed session's certificate needs after the handshake, and the agent's tickets, forgotten when its
//! certificate is replaced.

use super::{RevocationCheck, TlsError};
use rustls::ServerConfig;
use rustls_pki_types::ServerName;
use std::sync::Arc;

/// The streaming listener lets agents resume: after a full handshake it sends one TLS 1.3 ticket, encrypted
/// under a key only this configuration holds (rotated every 6 hours, a ticket accepted for at most 12), and
/// stores nothing per session. A resumed handshake (PSK with a fresh ECDHE, never 0-RTT) skips the
/// certificates and both signatures, the bulk of a full handshake's CPU, which matters when a whole fleet
/// reconnects at once. The ticket carries the client certificate chain of the full handshake, so a resumed
/// connection has the same identity; rustls does not verify that chain again, which is why the collector
/// checks expiry and revocation after every handshake (`check_client_cert_now`). A configuration built
/// anew (restart, reload after the CA or the server certificate changed) has a new key and its agents do
/// one full handshake again.
pub(super) fn with_tickets(config: &mut ServerConfig) -> Result<(), TlsError> {
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|error| TlsError::Config {
        what: "session ticket key",
        error: error.to_string(),
    })?;
    config.send_tls13_tickets = 1;
    Ok(())
}

/// Why a client certificate from a handshake is not acceptable now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientCertNow {
    #[error("certificate revoked (enroll this host again)")]
    Revoked,
    #[error("certificate expired (the agent renews before this; enroll the host again)")]
    Expired,
    #[error("certificate not valid yet (check the clocks)")]
    NotYetValid,
    #[error("certificate unreadable: {0}")]
    Unreadable(String),
}

/// Whether the client certificate a handshake carried (DER) is acceptable at `now_s`: inside its validity and
/// not revoked. A full handshake checked both in the verifier; a resumed TLS 1.3 session carries the
/// certificate of the session it resumes without checking it again, so the collector calls this after every
/// streaming handshake and refuses the connection when it fails.
pub fn check_client_cert_now(
    cert_der: &[u8],
    now_s: i64,
    revocations: Option<&dyn RevocationCheck>,
) -> Result<(), ClientCertNow> {
    let info =
        crate::pki::cert_info_der(cert_der).map_err(|error| ClientCertNow::Unreadable(error.to_string()))?;
    if revocations.is_some_and(|list| list.is_revoked(&info.serial_hex)) {
        return Err(ClientCertNow::Revoked);
    }
    if now_s > info.not_after_s {
        return Err(ClientCertNow::Expired);
    }
    if now_s < info.not_before_s {
        return Err(ClientCertNow::NotYetValid);
    }
    Ok(())
}

/// TLS session tickets of one client certificate (a few collectors' worth), dropped together.
#[derive(Debug)]
pub(super) struct SessionsOfOneCert {
    cache: std::sync::RwLock<Arc<rustls::client::ClientSessionMemoryCache>>,
}

impl SessionsOfOneCert {
    /// Server names remembered: an agent streams to a handful of collectors at most.
    const SERVERS: usize = 16;

    pub(super) fn new() -> SessionsOfOneCert {
        SessionsOfOneCert {
            cache: std::sync::RwLock::new(Arc::new(rustls::client::ClientSessionMemoryCache::new(
                Self::SERVERS,
            ))),
        }
    }

    fn cache(&self) -> Arc<rustls::client::ClientSessionMemoryCache> {
        self.cache
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub(super) fn forget(&self) {
        *self
            .cache
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) =
            Arc::new(rustls::client::ClientSessionMemoryCache::new(Self::SERVERS));
    }
}

impl rustls::client::ClientSessionStore for SessionsOfOneCert {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: rustls::NamedGroup) {
        self.cache().set_kx_hint(server_name, group)
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<rustls::NamedGroup> {
        self.cache().kx_hint(server_name)
    }

    fn set_tls12_session(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.cache().set_tls12_session(server_name, value)
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.cache().tls12_session(server_name)
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.cache().remove_tls12_session(server_name)
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        self.cache().insert_tls13_ticket(server_name, value)
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.cache().take_tls13_ticket(server_name)
    }
}
