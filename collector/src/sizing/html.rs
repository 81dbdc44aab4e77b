//! The HTML sizing report: one self-contained page (inline CSS and SVG, no scripts, no external assets)
//! that reads on a laptop and prints cleanly. Built from strings with every text escaped; a template crate
//! would add a proc-macro build for a handful of fixed fragments.

use super::report::{
    after_loss, amount, case_text, days_until_unsafe_text, escape, forecast_text, hosts_to_add_text, percent,
    status_text, utc,
};
use super::svg::{distribution_chart, failover_chart, trend_chart};
use super::{GroupReport, GroupStatus, LoadSource, SizingReport};

/// Screen: the page is at most 1200 px wide, so the summary fits a 1280 px laptop screen without scrolling;
/// a table wider than the page (many resources, long names) scrolls inside its own `.wide` container,
/// never the page, and names (group, host, domain) wrap anywhere. Print: A4 pages, rows never cut across
/// pages, table headers repeated on each page, and only black or grey ink where a light colour or a
/// background would vanish on paper (the status is always spelled out, never shown by colour alone).
const STYLE: &str = "\
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1a202c;margin:0 auto;max-width:1200px;padding:1rem}\
h1{font-size:1.6rem;margin:0 0 .3rem}h2{font-size:1.25rem;margin:2rem 0 .5rem;border-bottom:2px solid #e2e8f0}\
h3{font-size:1rem;margin:1.2rem 0 .4rem}\
.wide{max-width:100%;overflow-x:auto}\
table{border-collapse:collapse;margin:.5rem 0;font-variant-numeric:tabular-nums}\
th,td{border:1px solid #e2e8f0;padding:.25rem .4rem;text-align:right}td{white-space:nowrap}th{background:#f7fafc}\
td:first-child,th:first-child{text-align:left;white-space:normal;overflow-wrap:anywhere;min-width:6em}\
td.text{white-space:normal;text-align:left;min-width:7em}\
.safe-status{color:#276749;font-weight:600}.unsafe-status{color:#c53030;font-weight:600}\
.notes{background:#fffbea;border-left:4px solid #d69e2e;padding:.4rem .8rem;margin:.5rem 0;overflow-wrap:anywhere}\
.charts{display:flex;flex-wrap:wrap;gap:1rem}.chart{max-width:100%;height:auto}\
.chart .label{font-size:12px;font-weight:600}.chart .small{font-size:10px;fill:#4a5568}\
.chart .axis{stroke:#4a5568}.chart .grid{stroke:#e2e8f0}\
.chart .safe{stroke:#2f855a;stroke-dasharray:4 3;stroke-width:1.5}\
.chart .target{stroke:#c53030;stroke-dasharray:3 2;stroke-width:2}\
.chart .trend{stroke:#805ad5;stroke-width:2}.chart .cross{fill:#c53030}\
.chart rect.over{stroke:#c53030;stroke-width:1.5}\
.meta{color:#4a5568}section.group{break-inside:avoid-page}\
@page{size:A4;margin:14mm 12mm}\
@media print{body{max-width:none;padding:0;font-size:9pt;color:#000}h2{break-before:auto;border-bottom-color:#666}\
h2,h3{break-after:avoid}section.group{break-before:page}section.group:first-of-type{break-before:auto}a{color:inherit}\
.wide{overflow:visible}table{width:100%}thead{display:table-header-group}tr,.chart{break-inside:avoid}\
th,td{border-color:#666;white-space:normal;padding:.15rem .3rem}th{background:none}\
.safe-status,.unsafe-status,.meta{color:#000}.notes{background:none;border:1px solid #666;border-left-width:4px}\
.chart .grid{stroke:#aaa}}";

/// Renders the whole page.
pub(crate) fn render_html(report: &SizingReport) -> String {
    let mut page = String::with_capacity(64 * 1024 + report.groups.len() * 16 * 1024);
    page.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    page.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    page.push_str("<title>headroom failover sizing report</title><style>");
    page.push_str(STYLE);
    page.push_str("</style></head><body><header><h1>Failover sizing report</h1>");
    page.push_str(&format!(
        "<p class=\"meta\">Window {} to {}. Peak = {} of per-minute group sums. Each group must hold its peak \
         after losing its largest failure domain or its k largest hosts. Forecast horizon {:.0} days. \
         Schema version {}.</p></header>",
        utc(report.window_start_ms),
        utc(report.window_end_ms),
        escape(&report.peak_statistic),
        report.horizon_days,
        report.schema_version
    ));
    for note in &report.notes {
        page.push_str(&format!("<p class=\"notes\">{}</p>", escape(note)));
    }
    page.push_str(&summary_table(report));
    page.push_str(&ranking_table(report));
    for group in &report.groups {
        page.push_str(&group_section(group, report.horizon_days));
    }
    page.push_str("</body></html>\n");
    page
}

fn status_cell(group: &GroupReport) -> String {
    let class = if group.status == GroupStatus::Safe {
        "safe-status"
    } else {
        "unsafe-status"
    };
    format!("<td class=\"{class} text\">{}</td>", status_text(group.status))
}

fn summary_table(report: &SizingReport) -> String {
    let mut html = String::from(
        "<h2>Summary</h2><div class=\"wide\" id=\"summary\"><table><thead><tr><th>group</th><th>scenario</th><th>status</th><th>hosts</th><th>domains</th>\
         <th>binding</th><th>worst case</th><th>now</th><th>after worst loss</th><th>safe level</th>\
         <th>hosts to add</th><th>safe level crossed</th></tr></thead><tbody>",
    );
    for (scenario, group) in super::report::rows(report) {
        let binding = group.resources.iter().find(|r| Some(r.resource) == group.binding);
        let cell =
            |value: Option<String>| format!("<td>{}</td>", escape(&value.unwrap_or_else(|| "-".into())));
        // Words may wrap so that the summary fits a laptop screen; numbers stay on one line.
        let text_cell = |value: String| format!("<td class=\"text\">{}</td>", escape(&value));
        html.push_str(&format!(
            "<tr><td><a href=\"#group-{id}\">{name}</a></td><td>{scenario}</td>{status}<td>{hosts}</td><td>{domains}</td>{binding}{case}{now}{after}{safe}{add}{cross}</tr>",
            id = escape(&anchor(&group.name)),
            name = escape(&group.name),
            scenario = escape(scenario),
            status = status_cell(group),
            hosts = group.hosts,
            domains = group.domains.len(),
            binding = cell(group.binding.map(|b| b.label())),
            case = text_cell(group.worst_case.as_ref().map(case_text).unwrap_or_else(|| "-".into())),
            now = cell(binding.map(|r| percent(r.current_utilisation))),
            after = cell(binding.map(|r| after_loss(&r.worst))),
            safe = cell(binding.map(|r| percent(r.safe_steady_state))),
            add = text_cell(hosts_to_add_text(group)),
            cross = text_cell(match group.days_to_safe_target {
                Some(days) if days <= 0.0 => "already over".to_string(),
                Some(days) => format!("in {days:.0} days"),
                None => "not within the horizon".to_string(),
            }),
        ));
    }
    html.push_str("</tbody></table></div>");
    html
}

/// The fleet-wide ranking: groups by days until they stop surviving their worst loss, unsafe ones first.
fn ranking_table(report: &SizingReport) -> String {
    let mut html = String::from("<h2>Days until a group stops surviving its worst loss</h2>");
    if report.ranking.is_empty() {
        html.push_str("<p>No group is unsafe or forecast to become unsafe within the horizon.</p>");
        return html;
    }
    html.push_str(
        "<div class=\"wide\"><table><thead><tr><th>rank</th><th>group</th><th>days until unsafe</th><th>resource</th></tr></thead><tbody>",
    );
    for (index, ranked) in report.ranking.iter().enumerate() {
        html.push_str(&format!(
            "<tr><td>{}</td><td><a href=\"#group-{}\">{}</a></td><td>{}</td><td>{}</td></tr>",
            index + 1,
            escape(&anchor(&ranked.group)),
            escape(&ranked.group),
            days_until_unsafe_text(ranked),
            escape(&ranked.resource.map(|r| r.label()).unwrap_or_else(|| "-".into()))
        ));
    }
    html.push_str("</tbody></table></div>");
    html
}

/// A fragment identifier from a group name: letters, digits and dashes.
fn anchor(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

fn group_section(group: &GroupReport, horizon_days: f64) -> String {
    let mut html = format!(
        "<section class=\"group\" id=\"group-{}\"><h2>{}</h2><p>Status: <strong>{}</strong>. {} hosts in {} \
         failure domains; N+{} host loss. Hosts to add: <strong>{}</strong>.{}</p>",
        escape(&anchor(&group.name)),
        escape(&group.name),
        status_text(group.status),
        group.hosts,
        group.domains.len(),
        group.k,
        escape(&hosts_to_add_text(group)),
        group
            .added_host
            .as_ref()
            .map(|shape| format!(
                " Added hosts are counted as the group's median host ({} cores, {:.1} GiB).",
                shape.cores,
                shape.memory_bytes / (1u64 << 30) as f64
            ))
            .unwrap_or_default()
    );
    if !group.notes.is_empty() || !group.removable_hosts.is_empty() {
        html.push_str("<div class=\"notes\"><ul>");
        for note in &group.notes {
            html.push_str(&format!("<li>{}</li>", escape(note)));
        }
        if !group.removable_hosts.is_empty() {
            html.push_str(&format!(
                "<li>could remove {} while staying safe: {}</li>",
                group.removable_hosts.len(),
                escape(&group.removable_hosts.join(", "))
            ));
        }
        html.push_str("</ul></div>");
    }
    if !group.resources.is_empty() {
        html.push_str(
            "<h3>Resources</h3><div class=\"wide\"><table><thead><tr><th>resource</th><th>peak</th><th>capacity</th><th>now</th>\
             <th>worst loss</th><th>after it</th><th>target</th><th>safe level</th><th>headroom</th>\
             <th>trend</th></tr></thead><tbody>",
        );
        for r in &group.resources {
            html.push_str(&format!(
                "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{:+.1} pts ({})</td><td>{}</td></tr>",
                escape(&r.resource.label()),
                if r.load_source == LoadSource::LittlesLaw { " (Little's law)" } else { "" },
                amount(r.resource, r.peak),
                amount(r.resource, r.capacity),
                percent(r.current_utilisation),
                escape(&case_text(&r.worst)),
                after_loss(&r.worst),
                percent(r.target),
                percent(r.safe_steady_state),
                r.headroom * 100.0,
                amount(r.resource, r.headroom_load),
                forecast_text(r)
            ));
        }
        html.push_str("</tbody></table></div>");
        html.push_str("<h3>What if this fails</h3><div class=\"charts\">");
        html.push_str(&failover_chart(group));
        html.push_str("</div><h3>Utilisation over the window</h3><div class=\"charts\">");
        html.push_str(&distribution_chart(group));
        html.push_str("</div>");
        if let Some(binding) = group.resources.iter().find(|r| Some(r.resource) == group.binding) {
            let chart = trend_chart(binding, horizon_days);
            if !chart.is_empty() {
                html.push_str(&format!(
                    "<h3>Trend of daily peak {} (binding)</h3><div class=\"charts\">{chart}</div>",
                    escape(&binding.resource.label())
                ));
            }
        }
    }
    if !group.domains.is_empty() {
        html.push_str("<h3>Failure domains</h3><div class=\"wide\"><table><thead><tr><th>domain</th><th>kind</th><th>hosts</th></tr></thead><tbody>");
        for domain in group.domains.iter().take(50) {
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&domain.name),
                if domain.kind == super::LossKind::Zone {
                    "zone"
                } else {
                    "unzoned host"
                },
                domain.hosts
            ));
        }
        html.push_str("</tbody></table></div>");
        if group.domains.len() > 50 {
            html.push_str(&format!("<p>and {} more domains.</p>", group.domains.len() - 50));
        }
    }
    let gaps = &group.gaps;
    html.push_str(&format!(
        "<h3>Data coverage</h3><p>{} of {} minutes have data; {} minutes are partial. {} hosts joined and {} left \
         during the window.</p>",
        gaps.expected_minutes - gaps.missing_minutes,
        gaps.expected_minutes,
        gaps.partial_minutes,
        group.joined.len(),
        group.left.len()
    ));
    if !gaps.longest_gaps.is_empty() {
        html.push_str("<div class=\"wide\"><table><thead><tr><th>gap from</th><th>to</th><th>minutes</th></tr></thead><tbody>");
        for (from, to) in &gaps.longest_gaps {
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                utc(*from),
                utc(*to),
                (to - from) / super::MINUTE_MS
            ));
        }
        html.push_str("</tbody></table></div>");
    }
    html.push_str("</section>");
    html
}
