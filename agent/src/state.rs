//! The agent's small persistent state: its instance id and, after a clean stop, the next sequence number.
//!
//! Sequence numbers must keep growing across restarts, or the collector would drop new samples as
//! duplicates of old ones. Every sample is written to the spool before it is sent, so after a crash the spool
//! knows the last number used; this file covers the case where the spool was emptied (everything acknowledged)
//! or removed, and is written on every clean stop.

use headroom_common::files;
use std::path::{Path, PathBuf};

pub struct AgentState {
    dir: PathBuf,
    instance_id: u64,
    next_seq: u64,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "state directory {path}: {detail} (check state_dir in the config and that the agent may write there)"
)]
pub struct StateError {
    path: String,
    detail: String,
}

fn error(path: &Path, detail: impl ToString) -> StateError {
    StateError {
        path: path.display().to_string(),
        detail: detail.to_string(),
    }
}

impl AgentState {
    /// Open (creating if needed) the state in `dir`.
    pub fn open(dir: &Path) -> Result<AgentState, StateError> {
        files::create_dir_all(dir, files::PRIVATE_DIR).map_err(|e| error(dir, e))?;
        let id_path = dir.join("instance-id");
        let instance_id = match std::fs::read_to_string(&id_path) {
            Ok(text) => u64::from_str_radix(text.trim(), 16).map_err(|_| {
                error(
                    &id_path,
                    "not a hex instance id; delete the file to start as a new instance",
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let id = fastrand::u64(1..);
                write_atomic(&id_path, &format!("{id:016x}\n")).map_err(|e| error(&id_path, e))?;
                id
            }
            Err(e) => return Err(error(&id_path, e)),
        };
        let seq_path = dir.join("next-seq");
        let next_seq = match std::fs::read_to_string(&seq_path) {
            Ok(text) => text.trim().parse::<u64>().map_err(|_| {
                error(
                    &seq_path,
                    "not a number; delete the file and the instance id together",
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 1,
            Err(e) => return Err(error(&seq_path, e)),
        };
        Ok(AgentState {
            dir: dir.to_path_buf(),
            instance_id,
            next_seq: next_seq.max(1),
        })
    }

    pub fn instance_id(&self) -> u64 {
        self.instance_id
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Record the exact next sequence number (clean shutdown).
    pub fn save_next_seq(&mut self, next: u64) -> Result<(), StateError> {
        let path = self.dir.join("next-seq");
        write_atomic(&path, &format!("{next}\n")).map_err(|e| error(&path, e))?;
        self.next_seq = next;
        Ok(())
    }
}

/// The state files are private to the agent (mode 0600); a crash leaves the old or the new content, never half.
fn write_atomic(path: &Path, contents: &str) -> std::io::Result<()> {
    files::write_atomic(path, contents.as_bytes(), files::PRIVATE_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use headroom_common::files::{mode_of, UmaskGuard};

    /// Issue 11, point 7: the state directory and files are private whatever the umask.
    #[test]
    fn issue_11_state_is_private_under_a_permissive_umask() {
        let _umask = UmaskGuard::set(0);
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("var/lib/headroom-agent");
        let mut state = AgentState::open(&state_dir).unwrap();
        state.save_next_seq(17).unwrap();
        assert_eq!(mode_of(&state_dir).unwrap(), 0o700);
        assert_eq!(mode_of(&state_dir.join("instance-id")).unwrap(), 0o600);
        assert_eq!(mode_of(&state_dir.join("next-seq")).unwrap(), 0o600);
    }

    #[test]
    fn instance_id_and_next_seq_survive_a_clean_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = AgentState::open(dir.path()).unwrap();
        let id = state.instance_id();
        assert_eq!(state.next_seq(), 1);
        state.save_next_seq(42).unwrap();
        let state = AgentState::open(dir.path()).unwrap();
        assert_eq!(state.instance_id(), id, "the instance id survives restarts");
        assert_eq!(state.next_seq(), 42);
    }

    #[test]
    fn a_corrupt_instance_id_is_named_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("instance-id"), "zz").unwrap();
        let err = AgentState::open(dir.path()).err().unwrap().to_string();
        assert!(
            err.contains("instance-id") && err.contains("delete the file"),
            "{err}"
        );
    }
}
