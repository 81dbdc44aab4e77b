//! The HTML form of each page (maud templates, escaped by default): one layout with landmarks (header,
//! nav, main, footer), a heading per section, tables with captions and column headers, inline CSS with
//! text contrast of at least 4.5:1, and no script. Charts are inline SVG from `chart.rs`.

use super::chart::line_chart;
use super::model::{AlarmsPage, FleetPage, GapLine, GroupPage, HostName, HostPage, SizingLine};
use crate::analytics::outliers::rfc3339_seconds;
use crate::analytics::{AlarmRow, OutlierRow};
use crate::live::fleet::HostStatus;
use crate::metrics::{fleet_page_columns, format_number, metrics_in, Key, Metric, Place, Stat};
use maud::{html, Markup, PreEscaped, DOCTYPE};

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:0;color:#1a1a1a;background:#ffffff;line-height:1.4}
header,main,footer{padding:0.5rem 1rem}
header{background:#14325c;color:#ffffff}header a{color:#ffffff;background:#14325c}
nav ul{list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:1rem}
h1{font-size:1.4rem;margin:0.5rem 0}h2{font-size:1.15rem;margin:1.2rem 0 0.4rem}
a{color:#0645ad}
.scroll{overflow-x:auto}
table{border-collapse:collapse;margin:0.3rem 0;font-size:0.9rem}
caption{text-align:left;font-weight:600;padding:0.2rem 0}
th,td{border-bottom:1px solid #c8ccd2;padding:0.25rem 0.5rem;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:0 0.35rem;border-radius:3px;font-size:0.8rem}
.up{background:#1b5e20;color:#ffffff}.stale{background:#ffd966;color:#1a1a1a}.down{background:#b00020;color:#ffffff}
.firing{background:#b00020;color:#ffffff}.pending{background:#ffd966;color:#1a1a1a}.flagged{background:#7a3e00;color:#ffffff}
.notice{background:#fff4ce;border:1px solid #8a6d00;padding:0.4rem 0.6rem}
.muted{color:#4a4f57}
svg.chart{display:block}
footer{color:#4a4f57;font-size:0.85rem}
@media (max-width:600px){th,td{padding:0.2rem 0.3rem}body{font-size:0.95rem}}
";

fn layout(title: &str, refresh_s: Option<u32>, body: Markup, generated_ms: u64) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(seconds) = refresh_s {
                    meta http-equiv="refresh" content=(seconds);
                }
                link rel="icon" href="data:,";
                title { (title) " · headroom" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    nav aria-label="Main" {
                        ul {
                            li { a href="/fleet" { "Fleet" } }
                            li { a href="/alarms" { "Alarms" } }
                            li { a href="/report.html" { "Sizing report" } }
                            li { a href="/metrics" { "Collector metrics" } }
                        }
                    }
                }
                main { (body) }
                footer {
                    "Generated " (rfc3339_seconds(generated_ms)) ". This page as JSON: add "
                    code { ".json" } " to the address or send " code { "Accept: application/json" } "."
                }
            }
        }
    }
}

fn status_badge(status: HostStatus) -> Markup {
    html! { span class={ "badge " (status.name()) } { (status.name()) } }
}

fn pct(value: Option<f64>) -> String {
    value.map_or("–".to_string(), |v| format!("{v:.1}"))
}

/// A metric's value as a bare number in its catalogue unit (the heading names the unit), "–" when missing.
fn cell(metric: Metric, value: Option<f64>) -> String {
    value.map_or("–".to_string(), |v| format_number(metric.def().unit, v))
}

/// A chart of one metric's values over time, scaled as its unit asks, titled in words.
fn metric_chart(
    metric: Metric,
    points: &[(u64, Option<f64>)],
    size: (u32, u32),
    label: &str,
) -> PreEscaped<String> {
    PreEscaped(line_chart(
        points,
        size.0,
        size.1,
        metric.def().unit.chart_floor(),
        label,
    ))
}

/// The heading of a fleet-page column: the metric's title and the statistic across the row's hosts.
fn fleet_heading(metric: Metric, stat: Stat) -> String {
    format!("{}, {}", metric.def().show.title, stat.name())
}

fn host_link(host: &str) -> Markup {
    html! { a href={ "/hosts/" (host) } { (host) } }
}

fn alarm_table(caption: &str, alarms: &[AlarmRow]) -> Markup {
    html! {
        div class="scroll" {
            table {
                caption { (caption) }
                thead { tr {
                    th scope="col" { "Status" } th scope="col" { "Severity" } th scope="col" { "Rule" }
                    th scope="col" { "Subject" } th scope="col" { "Summary" } th scope="col" { "Runbook" }
                    th scope="col" { "Since" }
                } }
                tbody {
                    @for alarm in alarms {
                        tr {
                            td { span class={ "badge " (alarm.status) } { (alarm.status) } }
                            td { (alarm.severity) }
                            td { (alarm.rule) }
                            td {
                                @if alarm.subject_type == "host" { (host_link(&alarm.subject)) }
                                @else { a href={ "/groups/" (alarm.subject) } { "group " (alarm.subject) } }
                            }
                            td { (alarm.summary) }
                            td { (runbook(&alarm.runbook)) }
                            td { (alarm.active_since_ms.map(rfc3339_seconds).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    }
}

/// A runbook is a link when it is a URL, else the text itself.
fn runbook(text: &str) -> Markup {
    html! {
        @if text.starts_with("https://") || text.starts_with("http://") { a href=(text) { (text) } }
        @else { (text) }
    }
}

fn outlier_list(outliers: &[OutlierRow]) -> Markup {
    html! {
        @if outliers.is_empty() {
            p class="muted" { "No host stands out from its peers." }
        } @else {
            ul {
                @for outlier in outliers {
                    li {
                        span class="badge flagged" { "outlier" } " "
                        (host_link(&outlier.host)) ": " (outlier.explanation)
                    }
                }
            }
        }
    }
}

fn gap_table(gaps: &[GapLine]) -> Markup {
    html! {
        @if gaps.is_empty() {
            p class="muted" { "No data gaps reported." }
        } @else {
            div class="scroll" {
                table {
                    caption { "Samples agents could not keep" }
                    thead { tr {
                        th scope="col" { "Host" } th scope="col" { "From" } th scope="col" { "To" }
                        th scope="col" { "Samples" } th scope="col" { "Reason" }
                    } }
                    tbody {
                        @for gap in gaps {
                            tr {
                                td { (host_link(&gap.host)) }
                                td { (rfc3339_seconds(gap.from_ms)) }
                                td { (rfc3339_seconds(gap.to_ms)) }
                                td class="n" { (gap.count) }
                                td { (gap.reason) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn named_host(name: &HostName) -> Markup {
    html! {
        (host_link(&name.host))
        @if name.status != HostStatus::Up { " " (status_badge(name.status)) }
        @if name.flagged { " " span class="badge flagged" { "outlier" } }
    }
}

fn sizing_table(lines: &[SizingLine], window: &str, span: Option<(&str, &str)>) -> Markup {
    html! {
        div class="scroll" {
            table {
                caption {
                    "Failover sizing per group (peak over " (window)
                    @if let Some((from, through)) = span { ", from " (from) " through " (through) }
                    ")"
                }
                thead { tr {
                    th scope="col" { "Group" } th scope="col" { "Verdict" } th scope="col" { "Binding" }
                    th scope="col" { "Worst case" } th scope="col" { "Hosts to add" }
                } }
                tbody {
                    @for line in lines {
                        tr {
                            td { a href={ "/groups/" (line.group) } { (line.group) } }
                            td { (line.status) }
                            td { (line.binding.clone().unwrap_or_default()) }
                            td { (line.worst_case.clone().unwrap_or_default()) }
                            td { (line.hosts_to_add) }
                        }
                    }
                }
            }
        }
    }
}

pub fn fleet(page: &FleetPage) -> String {
    let step_s = page.history_step_ms / 1000;
    let columns = fleet_page_columns();
    let body = html! {
        h1 { "Fleet" }
        @if let Some(notice) = &page.notice { p class="notice" role="note" { (notice) } }
        p {
            (page.hosts_up) " up, " (page.hosts_stale) " stale, " (page.hosts_down) " down."
        }
        section aria-labelledby="alarms-h" {
            h2 id="alarms-h" { "Firing alarms" }
            @if page.alarms.is_empty() { p class="muted" { "No alarm is pending or firing." } }
            @else { (alarm_table("Pending and firing alarms", &page.alarms)) }
        }
        section aria-labelledby="outliers-h" {
            h2 id="outliers-h" { "Outliers" }
            (outlier_list(&page.outliers))
        }
        section aria-labelledby="groups-h" {
            h2 id="groups-h" { "Groups and zones" }
            p class="muted" {
                "Charts: the last hour, one point every " (step_s) " s, of each statistic across the row's hosts."
            }
            div class="scroll" {
                table {
                    caption { "Hosts per group and zone, with statistics across hosts" }
                    thead { tr {
                        th scope="col" { "Group" } th scope="col" { "Zone" } th scope="col" { "Hosts" }
                        th scope="col" { "Up / stale / down" }
                        @for (metric, stat) in &columns { th scope="col" { (fleet_heading(*metric, *stat)) } }
                        th scope="col" { "Hosts named" }
                    } }
                    tbody {
                        @for row in &page.rows {
                            tr {
                                td { a href={ "/groups/" (row.group) } { (row.group) } }
                                td { (row.zone) }
                                td class="n" { (row.hosts) }
                                td { (row.hosts_up) " / " (row.hosts_stale) " / " (row.hosts_down) }
                                @for (metric, stat) in &columns {
                                    @let key = Key::stat(*metric, *stat);
                                    @let points: Vec<(u64, Option<f64>)> = row.history.iter().map(|p| (p.at_ms, p.values.get(key))).collect();
                                    td {
                                        (cell(*metric, row.values.get(key)))
                                        (metric_chart(*metric, &points, (120, 26), &fleet_heading(*metric, *stat)))
                                    }
                                }
                                td {
                                    @for (index, name) in row.named_hosts.iter().enumerate() {
                                        @if index > 0 { ", " }
                                        (named_host(name))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="sizing-h" {
            h2 id="sizing-h" { "Headroom" }
            @if page.sizing.is_empty() { p class="muted" { "Sizing appears once a minute of data is rolled up." } }
            @else { (sizing_table(&page.sizing, &page.sizing_window, page.sizing_from.as_deref().zip(page.sizing_through.as_deref()))) }
        }
    };
    layout("Fleet", Some(30), body, page.generated_ms).into_string()
}

pub fn group(page: &GroupPage) -> String {
    let body = html! {
        h1 { "Group " (page.group) }
        section aria-labelledby="outliers-h" {
            h2 id="outliers-h" { "Outliers" }
            (outlier_list(&page.outliers))
        }
        @if !page.alarms.is_empty() {
            section aria-labelledby="alarms-h" {
                h2 id="alarms-h" { "Alarms" }
                (alarm_table("Pending and firing alarms of this group", &page.alarms))
            }
        }
        section aria-labelledby="hosts-h" {
            h2 id="hosts-h" { "Hosts" }
            div class="scroll" {
                table {
                    caption { "Hosts of " (page.group) " (choose a heading to sort)" }
                    thead { tr {
                        @for column in &page.columns {
                            @let active = column.key == page.sort;
                            @let next = match (active, page.descending, column.numeric) {
                                (true, true, _) => "asc",
                                (true, false, _) | (false, _, true) => "desc",
                                (false, _, false) => "asc",
                            };
                            th scope="col" aria-sort=(if !active { "none" } else if page.descending { "descending" } else { "ascending" }) {
                                a href={ "?sort=" (column.key) "&order=" (next) } {
                                    (column.heading)
                                    @if active { (if page.descending { " ↓" } else { " ↑" }) }
                                }
                            }
                        }
                    } }
                    tbody {
                        @for host in &page.hosts {
                            tr {
                                th scope="row" {
                                    (host_link(&host.host))
                                    @if host.flagged { " " span class="badge flagged" { "outlier" } }
                                }
                                td { (host.zone) }
                                td { (status_badge(host.status)) }
                                @for (key, value) in &host.values.0 { td class="n" { (cell(key.metric, *value)) } }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="sizing-h" {
            h2 id="sizing-h" { "Failover sizing" }
            @if let Some(sizing) = &page.sizing {
                p {
                    "Over " (sizing.window) ", from " (sizing.from) " through " (sizing.through) ": " strong { (sizing.line.status) }
                    @if let Some(binding) = &sizing.line.binding { "; binding resource " (binding) }
                    @if let Some(worst) = &sizing.line.worst_case { "; " (worst) }
                    "; hosts to add: " (sizing.line.hosts_to_add)
                    @if let Some(days) = sizing.days_to_safe_target { "; forecast to reach the safe level in " (format!("{days:.0}")) " days" }
                    "."
                }
                figure {
                    (PreEscaped(crate::sizing::svg::failover_chart(&sizing.report)))
                    figcaption { "Utilisation after losing each zone or the largest hosts, against the target (what-if)." }
                }
                @if !sizing.notes.is_empty() {
                    ul { @for note in &sizing.notes { li { (note) } } }
                }
            } @else if let Some(error) = &page.sizing_error {
                p class="muted" { (error) }
            }
            p {
                a href=(page.report_html) { "Full sizing report (HTML)" } " · "
                a href=(page.report_csv) { "CSV" }
            }
        }
    };
    layout(&format!("Group {}", page.group), None, body, page.generated_ms).into_string()
}

pub fn host(page: &HostPage) -> String {
    let view = &page.host;
    let recent = |key: Key| -> Vec<(u64, Option<f64>)> {
        page.last_hour
            .iter()
            .map(|p| (p.ts_ms, p.values.get(key)))
            .collect()
    };
    let hours = |key: Key| -> Vec<(u64, Option<f64>)> {
        page.last_30_days
            .iter()
            .map(|p| (p.bucket_ms, p.values.get(key)))
            .collect()
    };
    let body = html! {
        h1 { "Host " (view.host) }
        p {
            (status_badge(view.status))
            @if !page.outliers.is_empty() { " " span class="badge flagged" { "outlier" } }
            " group " a href={ "/groups/" (view.group) } { (view.group) } ", zone " (view.zone)
            ", " (view.cores) " cores, " (format!("{:.1}", view.memory_bytes as f64 / f64::from(1u32 << 30))) " GiB, "
            "agent " (view.agent_version) ", sampling every " (view.interval_ms) " ms."
        }
        @if !page.outliers.is_empty() {
            section aria-labelledby="outliers-h" { h2 id="outliers-h" { "Why it is flagged" } (outlier_list(&page.outliers)) }
        }
        @if !page.alarms.is_empty() {
            section aria-labelledby="alarms-h" { h2 id="alarms-h" { "Alarms" } (alarm_table("Alarms on this host", &page.alarms)) }
        }
        section aria-labelledby="hour-h" {
            h2 id="hour-h" { "Last hour (" (page.last_hour.len()) " samples)" }
            @for metric in metrics_in(Place::HostLastHour) {
                @let title = metric.def().show.title;
                h3 { (title) }
                (metric_chart(metric, &recent(Key::of(metric)), (600, 90), &format!("{title} over the last hour")))
            }
        }
        section aria-labelledby="days-h" {
            h2 id="days-h" { "Last 30 days (" (page.last_30_days.len()) " hourly rollups)" }
            @for metric in metrics_in(Place::HostDays) {
                @let title = metric.def().show.title;
                h3 { (title) ", hourly mean" }
                (metric_chart(metric, &hours(Key::stat(metric, Stat::Mean)), (600, 90), &format!("hourly mean {title} over 30 days")))
            }
        }
        section aria-labelledby="ports-h" {
            h2 id="ports-h" { "Listening ports" }
            @if page.listeners.is_empty() { p class="muted" { "No listening port reported." } }
            @else {
                div class="scroll" { table {
                    caption { "Connections and accept queue per listening port" }
                    thead { tr {
                        th scope="col" { "Port" } th scope="col" { "Established" } th scope="col" { "Accept queue" }
                        th scope="col" { "Limit" } th scope="col" { "Fill %" }
                    } }
                    tbody { @for l in &page.listeners { tr {
                        th scope="row" { (l.port) } td class="n" { (l.established) } td class="n" { (l.accept_queue) }
                        td class="n" { @if l.accept_queue_limit > 0 { (l.accept_queue_limit) } @else { "unknown" } }
                        td class="n" { (pct(l.accept_queue_fill_pct)) }
                    } } }
                } }
            }
        }
        section aria-labelledby="gaps-h" { h2 id="gaps-h" { "Data gaps" } (gap_table(&page.gaps)) }
        section aria-labelledby="cert-h" {
            h2 id="cert-h" { "Certificate" }
            @if let Some(cert) = &page.certificate {
                p {
                    "Serial " code { (cert.serial) } ", issued " (rfc3339_seconds(cert.issued_at_s.max(0) as u64 * 1000))
                    " (" (cert.issued_by) "), valid until " (rfc3339_seconds(cert.not_after_s.max(0) as u64 * 1000)) "."
                }
            } @else {
                p class="muted" { "Not in this collector's certificate registry (issued elsewhere or before the registry existed)." }
            }
        }
    };
    layout(&format!("Host {}", view.host), None, body, page.generated_ms).into_string()
}

pub fn alarms(page: &AlarmsPage) -> String {
    let body = html! {
        h1 { "Alarms" }
        p {
            @if let Some(file) = &page.rules_file { (page.rules) " rules from " code { (file) } }
            @else { "Alarms are off: set alarms.rules in the collector config." }
            @if let Some(at) = page.evaluated_ms { ", evaluated " (rfc3339_seconds(at)) }
            ". Deliveries: " (page.delivered_batches) " sent, " (page.failed_batches) " failed."
        }
        section aria-labelledby="firing-h" {
            h2 id="firing-h" { "Firing" }
            @if page.firing.is_empty() { p class="muted" { "Nothing is firing." } }
            @else { (alarm_table("Firing alarms, with their runbooks", &page.firing)) }
        }
        section aria-labelledby="pending-h" {
            h2 id="pending-h" { "Pending" }
            @if page.pending.is_empty() { p class="muted" { "Nothing is pending." } }
            @else { (alarm_table("Pending alarms (condition holds, not yet for long enough)", &page.pending)) }
        }
        section aria-labelledby="resolved-h" {
            h2 id="resolved-h" { "Resolved in the last day" }
            @if page.resolved.is_empty() { p class="muted" { "Nothing resolved in the last day." } }
            @else {
                div class="scroll" { table {
                    caption { "Resolved alarms, newest first" }
                    thead { tr {
                        th scope="col" { "Rule" } th scope="col" { "Severity" } th scope="col" { "Subject" }
                        th scope="col" { "Summary" } th scope="col" { "Runbook" } th scope="col" { "Fired" } th scope="col" { "Resolved" }
                    } }
                    tbody { @for alarm in &page.resolved { tr {
                        td { (alarm.rule) } td { (alarm.severity) } td { (alarm.subject) } td { (alarm.summary) }
                        td { (runbook(&alarm.runbook)) }
                        td { (alarm.fired_ms.map(rfc3339_seconds).unwrap_or_default()) }
                        td { (rfc3339_seconds(alarm.resolved_ms)) }
                    } } }
                } }
            }
        }
        section aria-labelledby="outliers-h" { h2 id="outliers-h" { "Outliers" } (outlier_list(&page.outliers)) }
        section aria-labelledby="gaps-h" { h2 id="gaps-h" { "Data gaps (last day)" } (gap_table(&page.gaps)) }
    };
    layout("Alarms", Some(30), body, page.generated_ms).into_string()
}

#[cfg(test)]
mod tests {
    use super::STYLE;

    /// WCAG relative luminance of `#rrggbb`.
    fn luminance(hex: &str) -> f64 {
        let channel = |i: usize| {
            let value = f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap()) / 255.0;
            if value <= 0.03928 {
                value / 12.92
            } else {
                ((value + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5)
    }

    fn contrast(a: &str, b: &str) -> f64 {
        let (x, y) = (luminance(a), luminance(b));
        (x.max(y) + 0.05) / (x.min(y) + 0.05)
    }

    /// The `#rrggbb` after `key` in a CSS rule body, if any.
    fn colour<'a>(rule: &'a str, key: &str) -> Option<&'a str> {
        rule.split(';')
            .find_map(|decl| decl.trim().strip_prefix(key))
            .filter(|value| value.starts_with('#') && value.len() == 7)
    }

    #[test]
    fn every_text_colour_has_at_least_4_5_to_1_contrast_on_its_background() {
        let page_background = "#ffffff";
        let mut checked = 0;
        for rule in STYLE.split('}') {
            let Some((_, body)) = rule.split_once('{') else {
                continue;
            };
            let Some(text) = colour(body, "color:") else {
                continue;
            };
            let background = colour(body, "background:").unwrap_or(page_background);
            let ratio = contrast(text, background);
            assert!(ratio >= 4.5, "{rule}}}: {text} on {background} is {ratio:.2}:1");
            checked += 1;
        }
        // body, header, links, the status and alarm badges, notices, muted text and the footer.
        assert!(checked >= 10, "only {checked} colour rules found");
    }
}
