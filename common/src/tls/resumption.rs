//! TLS 1.3 session resumption between agents and the streaming listener: the server's tickets, the check a
//! resumed session's certificate needs after the handshake, and the agent's tickets, forgotten when its
//! certificate is replaced.

use super::{RevocationCheck, TlsError};
use rustls::ServerConfig;
use rustls_pki_types::ServerName;
use std::sync::Arc;

/// The streaming listener lets agents resume: after a handshake it sends a few TLS 1.3 tickets, encrypted
/// under a key derived from the listener's TLS files (`TicketKeys`), and stores nothing per session. A
/// resumed handshake (PSK with a fresh ECDHE, never 0-RTT) skips the certificates and both signatures, the
/// bulk of a full handshake's CPU on either side, which matters when a whole fleet reconnects at once: after a
/// collector restart above all, which is why the key is derived rather than drawn at random per process. The
/// ticket carries the client certificate chain of the full handshake, so a resumed connection has the same
/// identity; rustls does not verify that chain again, which is why the collector checks expiry and revocation
/// after every handshake (`check_client_cert_now`). A configuration built from other files (a new CA, server
/// certificate or key) derives other keys, and its agents do one full handshake again.
pub(super) fn with_tickets(
    config: &mut ServerConfig,
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<(), TlsError> {
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.ticketer = Arc::new(TicketKeys::derive(ca_pem, cert_pem, key_pem));
    config.send_tls13_tickets = TICKETS_PER_HANDSHAKE;
    Ok(())
}

/// Tickets sent after each handshake. A client uses up a ticket with every connection attempt, answered or not
/// (it goes out in the first packet), so after a collector restart an agent refused once or twice for load
/// would otherwise make the full handshake the ticket was meant to spare; each is single-use on the agent's
/// side, under 1 KiB on the wire, and rustls keeps at most 8 per server.
pub const TICKETS_PER_HANDSHAKE: usize = 4;

/// Session ticket encryption for the streaming listener. The secret is a SHA-256 over the server's private
/// key, its certificate and the CA (only the collector holds the key), so every process started with the
/// same files has it, and any other set of files has another. Keys rotate every 6 hours: the key of a period
/// is derived from the secret and the period's number, a ticket names its period, and it is accepted in that
/// period and the next only (12 hours at most). AES-256-GCM with a random nonce; the period is authenticated.
pub struct TicketKeys {
    secret: [u8; 32],
}

impl std::fmt::Debug for TicketKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TicketKeys")
    }
}

impl TicketKeys {
    /// Seconds one key is used for new tickets.
    pub const PERIOD_S: u64 = 6 * 3600;
    /// The longest a ticket is accepted: its period and the next.
    pub const LIFETIME_S: u32 = 12 * 3600;
    const NONCE_LEN: usize = 12;
    const PERIOD_LEN: usize = 8;

    pub fn derive(ca_pem: &str, cert_pem: &str, key_pem: &str) -> TicketKeys {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        context.update(b"headroom session tickets v1");
        for part in [key_pem, cert_pem, ca_pem] {
            context.update(&(part.len() as u64).to_be_bytes());
            context.update(part.as_bytes());
        }
        let mut secret = [0u8; 32];
        secret.copy_from_slice(context.finish().as_ref());
        TicketKeys { secret }
    }

    fn key(&self, period: u64) -> ring::aead::LessSafeKey {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        context.update(&self.secret);
        context.update(&period.to_be_bytes());
        let bytes = context.finish();
        let unbound = ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, bytes.as_ref())
            .expect("a SHA-256 digest is an AES-256 key");
        ring::aead::LessSafeKey::new(unbound)
    }

    /// `plain` sealed for the period holding `now_s`: the period, the nonce, then the ciphertext and tag.
    pub fn seal_at(&self, plain: &[u8], now_s: u64) -> Option<Vec<u8>> {
        let period = now_s / Self::PERIOD_S;
        let mut nonce = [0u8; Self::NONCE_LEN];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce).ok()?;
        let mut out = Vec::with_capacity(Self::PERIOD_LEN + Self::NONCE_LEN + plain.len() + 16);
        out.extend_from_slice(&period.to_be_bytes());
        out.extend_from_slice(&nonce);
        let mut sealed = plain.to_vec();
        self.key(period)
            .seal_in_place_append_tag(
                ring::aead::Nonce::assume_unique_for_key(nonce),
                ring::aead::Aad::from(period.to_be_bytes()),
                &mut sealed,
            )
            .ok()?;
        out.extend_from_slice(&sealed);
        Some(out)
    }

    /// The plaintext of a ticket sealed by these keys in the period holding `now_s` or the one before it.
    pub fn open_at(&self, ticket: &[u8], now_s: u64) -> Option<Vec<u8>> {
        if ticket.len() < Self::PERIOD_LEN + Self::NONCE_LEN + 16 {
            return None;
        }
        let (period, rest) = ticket.split_at(Self::PERIOD_LEN);
        let period = u64::from_be_bytes(period.try_into().ok()?);
        let current = now_s / Self::PERIOD_S;
        if period != current && period.checked_add(1) != Some(current) {
            return None;
        }
        let (nonce, sealed) = rest.split_at(Self::NONCE_LEN);
        let nonce = ring::aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buffer = sealed.to_vec();
        let plain = self
            .key(period)
            .open_in_place(nonce, ring::aead::Aad::from(period.to_be_bytes()), &mut buffer)
            .ok()?;
        Some(plain.to_vec())
    }
}

fn unix_now_s() -> u64 {
    crate::clock::now_ms() / 1000
}

impl rustls::server::ProducesTickets for TicketKeys {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        Self::LIFETIME_S
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.seal_at(plain, unix_now_s())
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.open_at(cipher, unix_now_s())
    }
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
