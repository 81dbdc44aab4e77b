//! Per-host identity on the collector: enrollment tokens, issued certificates, revocation, renewal, and the
//! registry of live connections by host and by serial.
//!
//! State lives in JSON files in the collector's pki directory (`tokens.json`, `certs.json`, `revoked.json`),
//! each replaced atomically and changed under an exclusive lock, because the command-line tools and the
//! running service both write them.

pub mod admin;
pub mod enroll_server;
pub mod labels;
pub mod live;
pub mod pki_cli;
pub mod registry;
pub mod renew;
pub mod revocation;
pub mod signer;
pub mod tokens;

use headroom_common::files;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Everything that can go wrong with the identity files.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("reading {path}: {detail} (check the collector's state_dir and its permissions)")]
    Read { path: PathBuf, detail: String },
    #[error("{path}: not valid JSON: {detail} (restore the file from a backup or delete it to start empty)")]
    Corrupt { path: PathBuf, detail: String },
    #[error("writing {path}: {detail} (check that the pki directory exists and is writable)")]
    Write { path: PathBuf, detail: String },
}

/// Reads a JSON file, or the default when it does not exist yet.
pub(crate) fn read_json<T: DeserializeOwned + Default>(path: &Path) -> Result<T, StoreError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(T::default()),
        Err(error) => {
            return Err(StoreError::Read {
                path: path.to_path_buf(),
                detail: error.to_string(),
            })
        }
    };
    serde_json::from_str(&text).map_err(|error| StoreError::Corrupt {
        path: path.to_path_buf(),
        detail: error.to_string(),
    })
}

/// Writes a JSON file atomically with mode 0600 ([`files::write_atomic`]), so that a crash leaves the old file
/// or the new one and token hashes are never readable by others.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let write_error = |detail: String| StoreError::Write {
        path: path.to_path_buf(),
        detail,
    };
    let mut text = serde_json::to_vec_pretty(value).map_err(|e| write_error(e.to_string()))?;
    text.push(b'\n');
    files::write_atomic(path, &text, files::PRIVATE_FILE).map_err(|e| write_error(e.to_string()))
}

/// An exclusive advisory lock on `<file>.lock`, held until dropped, so that a read-modify-write of an
/// identity file by the CLI and by the service cannot lose either's change.
pub(crate) struct FileLock {
    _file: std::fs::File,
}

impl FileLock {
    pub(crate) fn acquire(path: &Path) -> Result<FileLock, StoreError> {
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".lock");
        let lock_path = PathBuf::from(lock_path);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|error| StoreError::Write {
                path: lock_path.clone(),
                detail: error.to_string(),
            })?;
        use std::os::fd::AsRawFd;
        // SAFETY: flock(2) on a descriptor this function owns; it touches no memory.
        let result = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if result != 0 {
            return Err(StoreError::Write {
                path: lock_path,
                detail: std::io::Error::last_os_error().to_string(),
            });
        }
        Ok(FileLock { _file: file })
    }
}

/// Unix seconds of a `SystemTime` (0 before 1970, which no valid clock shows).
pub fn unix_s(now: std::time::SystemTime) -> i64 {
    now.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
