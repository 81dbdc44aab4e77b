//! The review as Markdown, HTML (one self-contained page: inline CSS, no script, no external asset) and
//! JSON (the model serialized). Markdown and HTML lay out the same tables from one function, so the two
//! cannot disagree.

use maud::{html, PreEscaped, DOCTYPE};

use super::model::{duration_text, time_text, HostChange, Review, Section};
use crate::sizing::report::{percent, status_text};

/// One section laid out as a table.
struct Table {
    title: &'static str,
    look_at: String,
    headers: &'static [&'static str],
    rows: Vec<Vec<String>>,
}

fn optional_percent(value: Option<f64>) -> String {
    value.map(percent).unwrap_or_else(|| "-".to_string())
}

/// A section of the review as a table: its title and what to look at, the headers, and one row of cells per
/// item of the section.
fn table_of<T>(
    section: &Section<T>,
    headers: &'static [&'static str],
    cells: impl Fn(&T) -> Vec<String>,
) -> Table {
    Table {
        title: section.title,
        look_at: section.look_at.clone(),
        headers,
        rows: section.rows.iter().map(cells).collect(),
    }
}

fn tables(review: &Review) -> Vec<Table> {
    let dash = || "-".to_string();
    vec![
        table_of(
            &review.alarms,
            &[
                "rule",
                "severity",
                "subject",
                "fired",
                "resolved",
                "firing at end",
                "runbook",
            ],
            |r| {
                vec![
                    r.rule.clone(),
                    r.severity.clone(),
                    format!("{} {}", r.subject_type, r.subject),
                    r.fired.to_string(),
                    r.resolved.to_string(),
                    if r.firing_at_end { "yes" } else { "no" }.to_string(),
                    r.runbook.clone(),
                ]
            },
        ),
        table_of(
            &review.resolve_times,
            &["rule", "resolved", "p50", "p90", "max"],
            |r| {
                vec![
                    r.rule.clone(),
                    r.resolved.to_string(),
                    duration_text(r.p50_ms),
                    duration_text(r.p90_ms),
                    duration_text(r.max_ms),
                ]
            },
        ),
        table_of(
            &review.noisy_rules,
            &["rule", "fired", "resolved within 5 min", "share"],
            |r| {
                vec![
                    r.rule.clone(),
                    r.fired.to_string(),
                    r.short.to_string(),
                    percent(r.short_share),
                ]
            },
        ),
        table_of(
            &review.outlier_hosts,
            &["host", "group", "flags", "metrics", "latest"],
            |r| {
                vec![
                    r.host.clone(),
                    r.group.clone(),
                    r.flags.to_string(),
                    r.metrics.join(", "),
                    r.latest.clone(),
                ]
            },
        ),
        table_of(
            &review.gaps,
            &["host", "gaps", "samples lost", "from", "to", "reasons"],
            |r| {
                vec![
                    r.host.clone(),
                    r.gaps.to_string(),
                    r.samples.to_string(),
                    time_text(r.first_ms),
                    time_text(r.last_ms),
                    r.reasons.join(", "),
                ]
            },
        ),
        table_of(
            &review.headroom,
            &[
                "group",
                "status now",
                "status before",
                "tightest",
                "headroom now",
                "headroom before",
                "hosts to add",
                "forecast",
            ],
            |r| {
                vec![
                    r.group.clone(),
                    status_text(r.status_now).to_string(),
                    r.status_before
                        .map(status_text)
                        .unwrap_or("(not there)")
                        .to_string(),
                    r.tightest_now.clone().unwrap_or_else(dash),
                    optional_percent(r.headroom_now),
                    optional_percent(r.headroom_before),
                    r.hosts_to_add_now.map(|n| n.to_string()).unwrap_or_else(dash),
                    r.days_to_safe_target
                        .map(|d| format!("safe level crossed in {d:.0} days"))
                        .unwrap_or_else(|| "no crossing forecast".to_string()),
                ]
            },
        ),
        table_of(&review.hosts_added, HOST_CHANGE_HEADERS, host_change_cells),
        table_of(&review.hosts_removed, HOST_CHANGE_HEADERS, host_change_cells),
    ]
}

const HOST_CHANGE_HEADERS: &[&str] = &["host", "group", "zone", "at"];

fn host_change_cells(r: &HostChange) -> Vec<String> {
    vec![
        r.host.clone(),
        r.group.clone(),
        r.zone.clone(),
        time_text(r.at_ms),
    ]
}

fn md_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// Markdown for pasting into a ticket or a wiki page.
pub fn render_markdown(review: &Review) -> String {
    let mut out = String::from("# Weekly operational review\n\n");
    out.push_str(&format!(
        "Window {} to {}.\n\n",
        time_text(review.window_start_ms),
        time_text(review.window_end_ms)
    ));
    for note in &review.notes {
        out.push_str(&format!("**{}**\n\n", md_cell(note)));
    }
    for table in tables(review) {
        out.push_str(&format!("## {}\n\n", table.title));
        out.push_str(&format!("*What to look at:* {}\n\n", md_cell(&table.look_at)));
        if table.rows.is_empty() {
            continue;
        }
        out.push_str(&format!("| {} |\n", table.headers.join(" | ")));
        out.push_str(&format!("|{}\n", "---|".repeat(table.headers.len())));
        for row in &table.rows {
            let cells: Vec<String> = row.iter().map(|c| md_cell(c)).collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        out.push('\n');
    }
    out
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;color:#1a202c;margin:0 auto;max-width:1100px;\
padding:1.5rem}h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:2px solid #e2e8f0}\
table{border-collapse:collapse;margin:.5rem 0}th,td{border:1px solid #e2e8f0;padding:.25rem .5rem;\
text-align:left;vertical-align:top}th{background:#f7fafc}.look{background:#ebf8ff;border-left:4px solid #2b6cb0;\
padding:.4rem .8rem}.notes{background:#fffbea;border-left:4px solid #d69e2e;padding:.4rem .8rem}\
.meta{color:#4a5568}";

/// One self-contained page.
pub fn render_html(review: &Review) -> String {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "headroom weekly operational review" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    h1 { "Weekly operational review" }
                    p class="meta" {
                        "Window " (time_text(review.window_start_ms)) " to " (time_text(review.window_end_ms))
                        ". Schema version " (review.schema_version) "."
                    }
                }
                main {
                    @for note in &review.notes { p class="notes" { (note) } }
                    @for table in tables(review) {
                        section {
                            h2 { (table.title) }
                            p class="look" { strong { "What to look at: " } (table.look_at) }
                            @if !table.rows.is_empty() {
                                table {
                                    thead { tr { @for header in table.headers { th scope="col" { (header) } } } }
                                    tbody {
                                        @for row in &table.rows {
                                            tr { @for cell in row { td { (cell) } } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let mut text = page.into_string();
    text.push('\n');
    text
}

/// The model as JSON.
pub fn render_json(review: &Review) -> String {
    let mut text = serde_json::to_string_pretty(review).expect("the review serializes");
    text.push('\n');
    text
}
