//! The progress bar a long report shows on a terminal while it reads the rollups, a day at a time.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::load::READ_CHUNK_MS;
use super::Window;

/// Windows longer than this show a progress bar on a terminal.
pub(super) const PROGRESS_AFTER: Duration = Duration::from_secs(86_400);

pub(super) fn progress_bar(show: bool, window: Window) -> ProgressBar {
    if !show || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(
        Some(window.length_ms().div_ceil(READ_CHUNK_MS) + 1),
        ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} days ({eta} left)") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message("reading rollups");
    bar
}
