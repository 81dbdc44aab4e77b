//! `report --kind review`: the weekly operational review from a collector's database (a copy works, no
//! collector needs to run). Reads alarm transitions, outlier flags, agent-reported gaps and hosts through the
//! store's API, sizes the fleet as of the window's end and as of its start with the sizing model, and hands
//! it all to the pure builder (`model.rs`); `render.rs` writes HTML, Markdown or JSON.

pub mod model;
pub mod render;

use std::path::PathBuf;
use std::time::Duration;

use crate::sizing::{ReportFormat, SizingConfig};
use crate::store::FileReads;
use crate::views::end::{stale_note, EndAt};
use crate::views::report_cli::{
    build_report, open_database, OpenedDatabase, ReportError, ReportOptions, Window,
};
pub use model::Review;

/// The review's window when the command line gives none.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(7 * 86_400);

/// Options of one review.
#[derive(Debug, Clone)]
pub struct ReviewOptions {
    pub db: PathBuf,
    pub window: Duration,
    /// "Now", Unix ms (the caller reads the clock).
    pub now_ms: u64,
    pub end: EndAt,
}

/// Opens the database read-only and builds the review.
pub fn build_review(options: &ReviewOptions, sizing: &SizingConfig) -> Result<Review, ReportError> {
    let OpenedDatabase {
        store,
        newest_ms,
        end_ms,
    } = open_database(&options.db, options.now_ms, options.end, FileReads::Mapped)?;
    let window = Window::ending_at(end_ms, options.window);
    let alarms = store.alarm_history(window.start_ms, window.end_ms)?;
    let outliers = store.outlier_history(window.start_ms, window.end_ms)?;
    let gaps = store.gaps(window.start_ms, window.end_ms)?;
    let hosts = store.hosts()?;
    drop(store);
    // Sizing over its own window, as of the review's end and as of its start.
    let sizing_at = |end_ms: u64| {
        build_report(
            &ReportOptions {
                db: options.db.clone(),
                window: sizing.window,
                now_ms: options.now_ms,
                end: EndAt::At(end_ms),
                scenarios: Vec::new(),
                progress: false,
                rolled_up_only: false,
            },
            sizing,
        )
    };
    let sizing_now = sizing_at(window.end_ms - 1)?;
    let sizing_before = sizing_at(window.start_ms.saturating_sub(1))?;
    let mut review = model::build(&model::ReviewInput {
        window_start_ms: window.start_ms,
        window_end_ms: window.end_ms,
        alarms: &alarms,
        outliers: &outliers,
        gaps: &gaps,
        hosts: &hosts,
        sizing_now: &sizing_now,
        sizing_before: &sizing_before,
    });
    review.notes.extend(stale_note(newest_ms, end_ms));
    Ok(review)
}

/// The review in one of its formats; CSV is not one (its sections have different columns).
pub fn render(review: &Review, format: ReportFormat) -> Result<String, ReportError> {
    match format {
        ReportFormat::Html => Ok(render::render_html(review)),
        ReportFormat::Markdown => Ok(render::render_markdown(review)),
        ReportFormat::Json => Ok(render::render_json(review)),
        ReportFormat::Csv => Err(ReportError::Usage(
            "report --kind review --format csv: the review's sections have different columns (use html, md \
             or json)"
                .to_string(),
        )),
    }
}

#[cfg(test)]
mod tests;
