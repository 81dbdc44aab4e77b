//! Files and directories with explicit modes: the one atomic write both daemons use, and directory creation
//! that does not depend on the umask.
//!
//! Every caller states the mode: 0600 for keys, tokens and agent state, 0644 for certificates and reports that
//! others may read, 0700 or 0750 for directories.

use std::ffi::OsString;
use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes the temporary files of concurrent writes from one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Mode for private keys, token hashes and the agent's state.
pub const PRIVATE_FILE: u32 = 0o600;
/// Mode for certificates, reports and other files anyone on the host may read.
pub const PUBLIC_FILE: u32 = 0o644;
/// Mode for directories that hold secrets.
pub const PRIVATE_DIR: u32 = 0o700;
/// Mode for directories whose files the service's group may read.
pub const GROUP_DIR: u32 = 0o750;

/// Whether a write waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync the file before the rename and the directory after it: a crash keeps the old or the new content.
    Synced,
    /// Skip both fsyncs: a crash may lose the write (never tear it). For marks rewritten very often whose
    /// loss only repeats work.
    Unsynced,
}

/// Writes `bytes` to `path` with permission bits `mode`, atomically and durably.
///
/// The data goes to a new temporary file beside `path`, created with `O_EXCL | O_NOFOLLOW` (so a planted file
/// or symlink is never written through) and with `mode` set explicitly (the umask cannot widen or narrow it);
/// the file is synced, renamed over `path`, and the directory is synced. A reader sees the old content or the
/// new, never half, and a private file is never readable by others, not even for an instant.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    write_atomic_with(path, bytes, mode, Durability::Synced)
}

/// [`write_atomic`] with a choice of [`Durability`].
pub fn write_atomic_with(path: &Path, bytes: &[u8], mode: u32, durability: Durability) -> io::Result<()> {
    let file_name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: the path has no file name", path.display()),
        )
    })?;
    let dir = parent_dir(path);
    let counter = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut temp_name = OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(".{}.{counter}.tmp", std::process::id()));
    let temp_path = dir.join(temp_name);

    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .mode(mode)
            .open(&temp_path)?;
        // The umask may have cleared bits of `mode` at creation; set them exactly.
        file.set_permissions(Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        if durability == Durability::Synced {
            file.sync_all()?;
        }
        std::fs::rename(&temp_path, path)
    })();
    if let Err(error) = result {
        let _ = std::fs::remove_file(&temp_path);
        return Err(error);
    }
    if durability == Durability::Synced {
        // The rename is durable only once the directory entry is on disk.
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Creates `dir` and any missing parents with permission bits `mode`, whatever the umask. An existing
/// directory is left as it is (an operator may have chosen its mode); only the ones created here get `mode`.
pub fn create_dir_all(dir: &Path, mode: u32) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all(parent, mode)?;
    }
    match DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => std::fs::set_permissions(dir, Permissions::from_mode(mode)),
        // Another process may have created it meanwhile.
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(error) => Err(error),
    }
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Sets the process umask for a test and restores it when dropped. The umask is process-wide, so tests that
/// use this must not run in parallel with others that create files and check their modes; they serialize on
/// one lock.
#[doc(hidden)]
pub struct UmaskGuard {
    previous: libc::mode_t,
    _lock: std::sync::MutexGuard<'static, ()>,
}

impl UmaskGuard {
    /// Sets the umask to `mask` until the guard is dropped.
    pub fn set(mask: u32) -> UmaskGuard {
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let lock = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // SAFETY: umask(2) only swaps the process's file mode creation mask.
        let previous = unsafe { libc::umask(mask as libc::mode_t) };
        UmaskGuard {
            previous,
            _lock: lock,
        }
    }
}

impl Drop for UmaskGuard {
    fn drop(&mut self) {
        // SAFETY: as in `set`.
        unsafe {
            libc::umask(self.previous);
        }
    }
}

/// The permission bits of `path`, for tests and checks.
pub fn mode_of(path: &Path) -> io::Result<u32> {
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_exact_under_a_permissive_and_a_strict_umask() {
        let dir = tempfile::tempdir().unwrap();
        for mask in [0o000, 0o077] {
            let _umask = UmaskGuard::set(mask);
            let key = dir.path().join(format!("key-{mask:o}"));
            let cert = dir.path().join(format!("cert-{mask:o}"));
            write_atomic(&key, b"secret", PRIVATE_FILE).unwrap();
            write_atomic(&cert, b"public", PUBLIC_FILE).unwrap();
            assert_eq!(mode_of(&key).unwrap(), 0o600, "umask {mask:o}");
            assert_eq!(mode_of(&cert).unwrap(), 0o644, "umask {mask:o}");
            let nested = dir.path().join(format!("a-{mask:o}/b/c"));
            create_dir_all(&nested, PRIVATE_DIR).unwrap();
            assert_eq!(mode_of(&nested).unwrap(), 0o700, "umask {mask:o}");
            assert_eq!(mode_of(nested.parent().unwrap()).unwrap(), 0o700);
        }
    }

    #[test]
    fn a_rewrite_replaces_the_content_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("next-seq");
        write_atomic(&path, b"1\n", PRIVATE_FILE).unwrap();
        write_atomic_with(&path, b"22\n", PRIVATE_FILE, Durability::Unsynced).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"22\n");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![OsString::from("next-seq")]);
    }

    #[test]
    fn a_symlink_at_the_temporary_name_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"untouched").unwrap();
        let path = dir.path().join("state");
        // Plant links at the next few temporary names this process would use.
        let next = TEMP_COUNTER.load(Ordering::Relaxed);
        for counter in next..next + 64 {
            let link = dir
                .path()
                .join(format!(".state.{}.{counter}.tmp", std::process::id()));
            std::os::unix::fs::symlink(&victim, link).unwrap();
        }
        // Other tests may take counters meanwhile; whichever name this write gets, it must not write through
        // a link.
        match write_atomic(&path, b"new", PRIVATE_FILE) {
            Ok(()) => assert_eq!(std::fs::read(&path).unwrap(), b"new"),
            Err(error) => assert_eq!(error.kind(), io::ErrorKind::AlreadyExists, "{error}"),
        }
        assert_eq!(std::fs::read(&victim).unwrap(), b"untouched");
    }

    #[test]
    fn a_path_without_a_file_name_is_refused() {
        assert!(write_atomic(Path::new("/"), b"x", PRIVATE_FILE).is_err());
    }
}
