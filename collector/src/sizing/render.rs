//! Picks the renderer for a report format: the text formats in `report`, the HTML page in `html`.

use super::SizingReport;

/// The formats `headroom-collector report --format` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    /// One self-contained page with inline SVG charts.
    Html,
    /// One row per group.
    Csv,
    /// The full model with `schema_version`.
    Json,
    /// Markdown for pasting into a ticket.
    Markdown,
}

impl std::str::FromStr for ReportFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<ReportFormat, String> {
        match text {
            "html" => Ok(ReportFormat::Html),
            "csv" => Ok(ReportFormat::Csv),
            "json" => Ok(ReportFormat::Json),
            "md" | "markdown" => Ok(ReportFormat::Markdown),
            other => Err(format!(
                "unknown report format \"{other}\" (use html, csv, json or md)"
            )),
        }
    }
}

/// Renders the report in `format`.
pub fn render(report: &SizingReport, format: ReportFormat) -> String {
    match format {
        ReportFormat::Html => super::html::render_html(report),
        ReportFormat::Csv => super::report::render_csv(report),
        ReportFormat::Json => super::report::render_json(report),
        ReportFormat::Markdown => super::report::render_markdown(report),
    }
}
