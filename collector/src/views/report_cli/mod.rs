//! The `sizing` and `report` commands: open a collector database read-only (a copy works, no collector needs
//! to run), build the sizing model's input for a window, run the model, and render it.
//!
//! Where the numbers come from:
//! - Hosts (zone, cores, memory, first and last seen) come from `hosts`.
//! - Per-minute group sums come from `group_minutes` and `group_port_minutes` for every minute the rollup has
//!   finished (before its cutoff, `Store::rollup_marks`), and from raw `samples` for the rest of the window. Rollups run only for
//!   minutes that ended at least 10 s ago, so without the raw tail a report on a fresh database, or the last
//!   minute of any report, would be missing. The tail is read by row id past the rollup watermark, which is
//!   an indexed range over rows the rollup has not reached yet, never a scan of the whole table.
//! - Established connections per listening port: `group_port_minutes` for rolled-up minutes, each sample's
//!   listener detail for the raw tail; both sum each host's mean over the minute. A database created before
//!   per-port sums existed has none for the minutes rolled up before its upgrade, and the report says so.
//! - Agent-reported data gaps (samples dropped from a full spool) come from `gaps` and are written into the
//!   group's notes, as are hosts that joined or left (the model's own notes).

mod load;
mod progress;
mod table;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use crate::sizing::{size_with_scenarios, Scenario, SizingConfig, SizingInput, SizingReport, MINUTE_MS};
use crate::store::kept_stats::KeptHostStats;
use crate::store::rollup::HOUR_MS;
use crate::store::{FileReads, Store, StoreError};
use crate::views::end::{stale_note, EndAt};

pub use load::{load_input, load_input_with, RawTail};
pub use table::render_table;

/// The group name used for hosts without a group label.
pub use crate::sizing::UNGROUPED;

/// The labels the store keys `hosts.group_name`, `hosts.zone` and `group_minutes` by.
const STORED_GROUP_LABEL: &str = "group";
const STORED_ZONE_LABEL: &str = "zone";

/// What can stop a report.
#[derive(Debug, Error)]
pub enum ReportError {
    /// The database could not be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The command line or configuration asks for something the database cannot give.
    #[error("{0}")]
    Usage(String),
    /// A query API (`--source prometheus=URL`) could not be reached or gave no usable answer.
    #[error("{0}")]
    Source(String),
    /// The output file could not be written.
    #[error("writing {path}: {detail} (check that the directory exists and is writable)")]
    Write {
        /// The file.
        path: String,
        /// What the OS said.
        detail: String,
    },
}

/// The window a report covers, in whole minutes: `[start_ms, end_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First millisecond.
    pub start_ms: u64,
    /// End, exclusive; the minute holding `now_ms` is included.
    pub end_ms: u64,
}

impl Window {
    /// The window of length `window` that ends with the minute holding `now_ms`.
    pub fn ending_at(now_ms: u64, window: Duration) -> Window {
        let end_ms = (now_ms / MINUTE_MS + 1) * MINUTE_MS;
        let length_ms = (window.as_millis() as u64).div_ceil(MINUTE_MS).max(1) * MINUTE_MS;
        Window {
            start_ms: end_ms.saturating_sub(length_ms),
            end_ms,
        }
    }

    fn length_ms(&self) -> u64 {
        self.end_ms - self.start_ms
    }
}

/// The model's input read from a database, plus what the model cannot know on its own.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedInput {
    /// Hosts and per-minute sums.
    pub input: SizingInput,
    /// Extra statements per group name, appended to the group's notes.
    pub notes: BTreeMap<String, Vec<String>>,
    /// Minutes before this instant came from `group_minutes` and `group_port_minutes`, the rest from raw
    /// samples.
    pub rolled_up_through_ms: u64,
}

/// Options of one `sizing` or `report` run.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// The database file.
    pub db: PathBuf,
    /// The window's length.
    pub window: Duration,
    /// "Now", Unix ms (the caller reads the clock).
    pub now_ms: u64,
    /// Where the window ends: now, a given time, or the newest sample.
    pub end: EndAt,
    /// What-if scenarios sized beside the baseline.
    pub scenarios: Vec<Scenario>,
    /// Show a progress bar on stderr when it is a terminal and the window is long.
    pub progress: bool,
    /// End the window at the last minute the rollup has finished and read no raw rows. For the web view's
    /// once-a-minute refresh: reading the raw tail would take a minute or two of every host's samples each
    /// time (over a million rows at 20,000 hosts, seconds of CPU and hundreds of MiB of file pages).
    /// Late samples of finished minutes count once the rollup's next pass has merged them. Such a report
    /// is made inside the collector, so the file's pages are copied, not mapped ([`FileReads`]).
    pub rolled_up_only: bool,
}

impl ReportOptions {
    /// How the report reads the file: see [`ReportOptions::rolled_up_only`].
    pub fn file_reads(&self) -> FileReads {
        if self.rolled_up_only {
            FileReads::Copied
        } else {
            FileReads::Mapped
        }
    }
}

/// A database opened read-only for a report, with its newest sample and where the report's window ends.
pub struct OpenedDatabase {
    pub store: Store,
    pub newest_ms: Option<u64>,
    pub end_ms: u64,
}

/// Opens `db` read-only, its pages read as `reads` says (mapped for a report of its own process, copied
/// inside the running collector), and resolves `end` against its newest sample; a missing file or
/// `--end latest` on an empty database is a usage error naming the file.
pub fn open_database(
    db: &Path,
    now_ms: u64,
    end: EndAt,
    reads: FileReads,
) -> Result<OpenedDatabase, ReportError> {
    if !db.exists() {
        return Err(ReportError::Usage(format!(
            "database {}: file not found (pass --db FILE, or --config with the collector's state_dir)",
            db.display()
        )));
    }
    let store = Store::open_read_only_with(db, reads)?;
    let newest_ms = store.newest_sample_ms()?;
    let end_ms = end.resolve(now_ms, newest_ms).ok_or_else(|| {
        ReportError::Usage(format!(
            "--end latest: database {} holds no samples yet (pass --end TIME, or wait for data)",
            db.display()
        ))
    })?;
    Ok(OpenedDatabase {
        store,
        newest_ms,
        end_ms,
    })
}

/// Opens the database read-only, reads the window and runs the model.
pub fn build_report(options: &ReportOptions, config: &SizingConfig) -> Result<SizingReport, ReportError> {
    build_report_of(options, config, None)
}

/// [`build_report`] for the groups named in `groups` only (as stored: `""` for hosts without a group), or
/// every group when `None`.
pub fn build_report_of(
    options: &ReportOptions,
    config: &SizingConfig,
    groups: Option<&BTreeSet<String>>,
) -> Result<SizingReport, ReportError> {
    build(options, config, groups, None)
}

/// [`build_report`] of the rolled-up minutes only, recomputed from `kept`: the window starts at the hour
/// at or before `options.window` back, so a report made every minute reads each host's memory from the
/// rollups added since the last one ([`KeptHostStats`]) rather than from the whole window.
pub fn build_report_kept(
    options: &ReportOptions,
    config: &SizingConfig,
    kept: &mut KeptHostStats,
) -> Result<SizingReport, ReportError> {
    let options = ReportOptions {
        rolled_up_only: true,
        ..options.clone()
    };
    build(&options, config, None, Some(kept))
}

fn build(
    options: &ReportOptions,
    config: &SizingConfig,
    groups: Option<&BTreeSet<String>>,
    kept: Option<&mut KeptHostStats>,
) -> Result<SizingReport, ReportError> {
    check_labels(config)?;
    let OpenedDatabase {
        store,
        newest_ms,
        end_ms,
    } = open_database(&options.db, options.now_ms, options.end, options.file_reads())?;
    let (window, tail) = if options.rolled_up_only {
        let through_ms = store.rollup_marks()?.rolled_up_through_ms;
        // The minute before `through_ms` is the last the window holds.
        let last_ms = end_ms.min(through_ms).saturating_sub(1);
        (Window::ending_at(last_ms, options.window), RawTail::Skip)
    } else {
        (Window::ending_at(end_ms, options.window), RawTail::Read)
    };
    let mut loaded = match kept {
        Some(kept) => {
            let window = Window {
                start_ms: window.start_ms - window.start_ms % HOUR_MS,
                ..window
            };
            load::load_input_kept(&store, window, config.percentile, kept)?
        }
        None => {
            let bar = progress::progress_bar(
                options.progress && options.window > progress::PROGRESS_AFTER,
                window,
            );
            let loaded = load_input_with(&store, window, config.percentile, &bar, tail)?;
            bar.finish_and_clear();
            loaded
        }
    };
    if let Some(groups) = groups {
        loaded
            .input
            .groups
            .retain(|group| groups.contains(&group.name) || (group.name == UNGROUPED && groups.contains("")));
    }
    let mut report = apply_notes(
        size_with_scenarios(&loaded.input, config, &options.scenarios),
        &loaded.notes,
    );
    report.notes.extend(stale_note(newest_ms, end_ms));
    Ok(report)
}

/// The store keys groups and zones by fixed labels; other labels in `[sizing]` cannot be honoured.
fn check_labels(config: &SizingConfig) -> Result<(), ReportError> {
    if config.group_label != STORED_GROUP_LABEL || config.zone_label != STORED_ZONE_LABEL {
        return Err(ReportError::Usage(format!(
            "sizing.group_label \"{}\" / sizing.zone_label \"{}\": the database keeps per-minute sums by the \
             \"{STORED_GROUP_LABEL}\" and \"{STORED_ZONE_LABEL}\" labels (remove both keys, or label the hosts \
             with \"{STORED_GROUP_LABEL}\" and \"{STORED_ZONE_LABEL}\")",
            config.group_label, config.zone_label
        )));
    }
    Ok(())
}

/// Appends `notes` to the groups they name.
pub fn apply_notes(mut report: SizingReport, notes: &BTreeMap<String, Vec<String>>) -> SizingReport {
    let scenario_groups = report
        .scenarios
        .iter_mut()
        .flat_map(|scenario| scenario.groups.iter_mut());
    for group in report.groups.iter_mut().chain(scenario_groups) {
        if let Some(extra) = notes.get(&group.name) {
            group.notes.extend(extra.iter().cloned());
        }
    }
    report
}
/// Writes a report atomically ([`headroom_common::files::write_atomic`]) with mode 0644, so a reader never sees
/// half and whoever the report is for can read it.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), ReportError> {
    use headroom_common::files;
    files::write_atomic(path, text.as_bytes(), files::PUBLIC_FILE).map_err(|e| ReportError::Write {
        path: path.display().to_string(),
        detail: e.to_string(),
    })
}
#[cfg(test)]
mod tests;
