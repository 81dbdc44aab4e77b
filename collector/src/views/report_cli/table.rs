//! The `sizing` command's table: the window line, one row per group and scenario, each group's notes and
//! the ranking by days until unsafe.

use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};

use crate::sizing::report::{after_loss, case_text, hosts_to_add_text, percent, status_text, utc};
use crate::sizing::SizingReport;

/// The `sizing` table: the window line, one row per group, then each group's notes; only the rows without `header`.
pub fn render_table(report: &SizingReport, header: bool) -> String {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    if header {
        table.set_header(vec![
            "group",
            "scenario",
            "status",
            "hosts",
            "domains",
            "binding",
            "worst loss",
            "now",
            "after worst loss",
            "safe level",
            "hosts to add",
        ]);
    }
    for (scenario, group) in crate::sizing::report::rows(report) {
        let binding = group.resources.iter().find(|r| Some(r.resource) == group.binding);
        let cell = |value: Option<String>| value.unwrap_or_else(|| "-".to_string());
        table.add_row(vec![
            group.name.clone(),
            scenario.to_string(),
            status_text(group.status).to_string(),
            group.hosts.to_string(),
            group.domains.len().to_string(),
            cell(group.binding.map(|b| b.label())),
            cell(group.worst_case.as_ref().map(case_text)),
            cell(binding.map(|r| percent(r.current_utilisation))),
            cell(binding.map(|r| after_loss(&r.worst))),
            cell(binding.map(|r| percent(r.safe_steady_state))),
            hosts_to_add_text(group),
        ]);
    }
    if !header {
        return format!("{table}\n");
    }
    let mut out = String::new();
    for note in &report.notes {
        out.push_str(note);
        out.push('\n');
    }
    out.push_str(&format!(
        "window {} to {}, peak {} of per-minute group sums\n{table}\n",
        utc(report.window_start_ms),
        utc(report.window_end_ms),
        report.peak_statistic
    ));
    for group in &report.groups {
        for note in &group.notes {
            out.push_str(&format!("{}: {note}\n", group.name));
        }
    }
    if !report.ranking.is_empty() {
        out.push_str("days until a group stops surviving its worst loss (unsafe now first):\n");
        for ranked in &report.ranking {
            out.push_str(&format!(
                "  {}: {}{}\n",
                ranked.group,
                crate::sizing::report::days_until_unsafe_text(ranked),
                ranked
                    .resource
                    .map(|r| format!(" ({})", r.label()))
                    .unwrap_or_default()
            ));
        }
    }
    out
}
