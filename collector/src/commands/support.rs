//! What every command shares: the failure that becomes an exit code, the config and state directory, the
//! clock in seconds.

use crate::cli::PlaceArgs;
use headroom_collector::config;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// A usage or configuration error exits 2, anything else 1.
pub(crate) enum Failure {
    Usage(String),
    Runtime(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure::Runtime(error.into())
    }
}

pub(crate) fn load_config(path: &Path) -> Result<config::Config, Failure> {
    config::load(path).map_err(|e| Failure::Usage(e.to_string()))
}

/// The state directory: `--state-dir`, else the config's (the config file may be absent: defaults apply).
pub(crate) fn state_dir(place: &PlaceArgs) -> Result<PathBuf, Failure> {
    if let Some(dir) = &place.state_dir {
        return Ok(dir.clone());
    }
    if place.config.exists() {
        return Ok(load_config(&place.config)?.state_dir);
    }
    Ok(config::Config::default().state_dir)
}

pub(crate) fn now_s() -> i64 {
    headroom_collector::identity::unix_s(SystemTime::now())
}
