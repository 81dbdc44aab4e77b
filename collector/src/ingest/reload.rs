//! Picks up a replaced server certificate without dropping agent connections: on SIGHUP, or when the CA,
//! certificate or key file changes on disk, the TLS configuration is rebuilt and handed to the QUIC endpoint.
//!
//! `Endpoint::set_server_config` only affects handshakes that start afterwards, so connections already
//! open keep streaming on the keys they negotiated. A pair that does not load (a key replaced before its
//! certificate, a typo) is logged and the running configuration stays.

use crate::identity::enroll_server::Listener;
use crate::identity::revocation::Revocations;
use crate::ingest;
use crate::quic::{Endpoint, ServerConfig};
use headroom_common::config::TlsPaths;
use headroom_common::pki::read_pem;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How often the certificate files are looked at.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// What identifies one version of a file without reading it: modification time, size and inode (an atomic
/// rename changes the inode even when time and size happen to match). `None` when the file is missing.
pub type FileStamp = Option<(SystemTime, u64, u64)>;

/// The stamps of the files, in order.
pub fn stamps(paths: &[&Path]) -> Vec<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    paths
        .iter()
        .map(|path| {
            let meta = std::fs::metadata(path).ok()?;
            Some((meta.modified().ok()?, meta.len(), meta.ino()))
        })
        .collect()
}

/// Decides when files that changed are worth loading: once their stamps stayed the same for one whole poll,
/// so that a certificate and key replaced one after the other are loaded as a pair, not half-way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeWatch {
    /// The stamps last loaded (or found at start).
    loaded: Vec<FileStamp>,
    /// Stamps seen that differ from `loaded`, waiting one poll to settle.
    pending: Option<Vec<FileStamp>>,
}

impl ChangeWatch {
    pub fn new(initial: Vec<FileStamp>) -> ChangeWatch {
        ChangeWatch {
            loaded: initial,
            pending: None,
        }
    }

    /// Pure: given the stamps seen now, says whether to reload. After a `true`, the stamps count as loaded
    /// whether or not loading succeeded: a broken file is reported once, not at every poll.
    pub fn observe(&mut self, now: Vec<FileStamp>) -> bool {
        if now == self.loaded {
            self.pending = None;
            return false;
        }
        if self.pending.as_ref() == Some(&now) {
            self.loaded = now;
            self.pending = None;
            return true;
        }
        self.pending = Some(now);
        false
    }

    /// Records stamps loaded outside the watch (a reload on SIGHUP).
    pub fn loaded(&mut self, now: Vec<FileStamp>) {
        self.loaded = now;
        self.pending = None;
    }
}

/// The QUIC server configuration of `listener` from the TLS files in `paths`, refusing revoked
/// certificates during the handshake (also used to reload them while running).
pub fn load_server_config(
    paths: &TlsPaths,
    revocations: &Revocations,
    listener: Listener,
) -> anyhow::Result<ServerConfig> {
    let fix = "run \"headroom-collector ca init\" or set tls.* in the collector config";
    let ca = read_pem(&paths.ca, "CA certificate", fix)?;
    let cert = read_pem(&paths.cert, "server certificate", fix)?;
    let key = read_pem(&paths.key, "server key", fix)?;
    let revocations: Arc<dyn headroom_common::tls::RevocationCheck> = Arc::new(revocations.clone());
    let tls = match listener {
        Listener::Streaming => {
            headroom_common::tls::server_config_streaming(&ca, &cert, &key, Some(revocations))
        }
        Listener::Enrollment => {
            headroom_common::tls::server_config_enrollment(&ca, &cert, &key, Some(revocations))
        }
    }
    .map_err(|e| anyhow::anyhow!("tls files in the collector config: {e}"))?;
    match listener {
        Listener::Streaming => ingest::server_config(tls),
        Listener::Enrollment => ingest::enroll::enroll_server_config(tls),
    }
}

/// Builds fresh QUIC server configurations from the files and installs them on `endpoints` (the streaming
/// listener and, when on, the enrollment listener). Returns a line describing the certificate now served.
pub fn reload_server_config(
    endpoints: &[(Endpoint, Listener)],
    paths: &TlsPaths,
    revocations: &Revocations,
) -> anyhow::Result<String> {
    // Both are built before either is installed, so the listeners never serve different certificates.
    let mut built = Vec::with_capacity(endpoints.len());
    for (endpoint, listener) in endpoints {
        built.push((endpoint, load_server_config(paths, revocations, *listener)?));
    }
    for (endpoint, server) in built {
        endpoint.set_server_config(server);
    }
    let cert_pem = std::fs::read_to_string(&paths.cert).unwrap_or_default();
    Ok(match headroom_common::pki::cert_info(&cert_pem) {
        Ok(info) => format!("serial {} valid until unix {}", info.serial_hex, info.not_after_s),
        Err(_) => "serial unknown".to_string(),
    })
}

/// Runs until `cancel`: reloads the server certificate on SIGHUP and when its files change.
pub async fn run_server_cert_reloader(
    endpoints: Vec<(Endpoint, Listener)>,
    paths: TlsPaths,
    revocations: Revocations,
    cancel: CancellationToken,
) {
    let files = [paths.ca.as_path(), paths.cert.as_path(), paths.key.as_path()];
    let mut watch = ChangeWatch::new(stamps(&files));
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(error) => {
            warn!(%error, "cannot listen for SIGHUP; the server certificate is still reloaded when its files change");
            None
        }
    };
    let mut ticker = tokio::time::interval(POLL_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let trigger = tokio::select! {
            _ = cancel.cancelled() => return,
            Some(()) = async {
                match hangup.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                watch.loaded(stamps(&files));
                "SIGHUP"
            }
            _ = ticker.tick() => {
                if !watch.observe(stamps(&files)) {
                    continue;
                }
                "file change"
            }
        };
        match reload_server_config(&endpoints, &paths, &revocations) {
            Ok(served) => info!(
                %trigger, cert = %paths.cert.display(), %served,
                "server certificate reloaded; new connections use it, open ones continue"
            ),
            Err(error) => warn!(
                %trigger, %error,
                "server certificate not reloaded; still serving the previous one (fix the files, then send SIGHUP)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(seconds: u64, inode: u64) -> FileStamp {
        Some((SystemTime::UNIX_EPOCH + Duration::from_secs(seconds), 100, inode))
    }

    #[test]
    fn a_change_is_loaded_once_after_it_settles() {
        let initial = vec![stamp(1, 1), stamp(1, 2)];
        let mut watch = ChangeWatch::new(initial.clone());
        assert!(!watch.observe(initial.clone()));
        // The key was replaced; the certificate not yet.
        let half = vec![stamp(1, 1), stamp(5, 3)];
        assert!(!watch.observe(half));
        let both = vec![stamp(6, 4), stamp(5, 3)];
        assert!(
            !watch.observe(both.clone()),
            "changed again: wait for it to settle"
        );
        assert!(watch.observe(both.clone()));
        assert!(!watch.observe(both.clone()), "loaded once, not at every poll");
        assert!(!watch.observe(both));
    }

    #[test]
    fn a_file_that_disappears_and_returns_unchanged_is_not_reloaded() {
        let initial = vec![stamp(1, 1)];
        let mut watch = ChangeWatch::new(initial.clone());
        assert!(!watch.observe(vec![None]));
        assert!(!watch.observe(initial.clone()));
        assert!(!watch.observe(initial));
    }

    #[test]
    fn a_reload_on_signal_counts_as_loaded() {
        let mut watch = ChangeWatch::new(vec![stamp(1, 1)]);
        assert!(!watch.observe(vec![stamp(2, 2)]));
        watch.loaded(vec![stamp(2, 2)]);
        assert!(!watch.observe(vec![stamp(2, 2)]));
    }

    #[test]
    fn stamps_follow_an_atomic_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.pem");
        std::fs::write(&path, "one").unwrap();
        let first = stamps(&[&path, &dir.path().join("missing")]);
        assert!(first[0].is_some());
        assert_eq!(first[1], None);
        let temp = dir.path().join(".server.pem.new");
        std::fs::write(&temp, "two").unwrap();
        std::fs::rename(&temp, &path).unwrap();
        assert_ne!(stamps(&[&path])[0], first[0]);
    }
}
