//! Inline SVG charts for the HTML report: utilisation distribution, "what if this domain fails" bars against
//! the target, and the daily-peak trend with its forecast. Plain strings, sized in CSS pixels, no scripts.

use super::html::escape;
use super::report::percent;
use super::{GroupReport, LossCase, ResourceReport};

const COLOURS: &[&str] = &["#2b6cb0", "#b7791f", "#2f855a", "#805ad5", "#c53030", "#319795"];

fn colour(index: usize) -> &'static str {
    COLOURS[index % COLOURS.len()]
}

/// One histogram per measured resource: minutes per 5 % bin of utilisation, with the safe level marked.
pub(crate) fn distribution_chart(group: &GroupReport) -> String {
    let rows: Vec<&ResourceReport> = group
        .resources
        .iter()
        .filter(|r| r.distribution.is_some())
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let (left, width, row_height) = (130.0, 400.0, 70.0);
    let height = rows.len() as f64 * row_height + 24.0;
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {w} {height}\" width=\"{w}\" height=\"{height}\" role=\"img\" \
         xmlns=\"http://www.w3.org/2000/svg\"><title>Per-minute utilisation of {name} over the window</title>",
        w = left + width + 20.0,
        name = escape(&group.name)
    );
    for (row, resource) in rows.iter().enumerate() {
        let distribution = resource.distribution.as_ref().expect("filtered");
        let top = row as f64 * row_height + 6.0;
        let bar_area = row_height - 22.0;
        let tallest = distribution.histogram.iter().copied().max().unwrap_or(0).max(1) as f64;
        svg.push_str(&format!(
            "<text x=\"0\" y=\"{:.1}\" class=\"label\">{}</text><text x=\"0\" y=\"{:.1}\" class=\"small\">p99 {}</text>",
            top + 18.0,
            escape(&resource.resource.label()),
            top + 34.0,
            percent(distribution.p99)
        ));
        let bin_width = width / distribution.histogram.len() as f64;
        for (bin, &count) in distribution.histogram.iter().enumerate() {
            let bar = count as f64 / tallest * bar_area;
            svg.push_str(&format!(
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{}–{} %: {} minutes</title></rect>",
                left + bin as f64 * bin_width + 1.0,
                top + bar_area - bar,
                bin_width - 2.0,
                bar,
                colour(row),
                bin * 5,
                bin * 5 + 5,
                count
            ));
        }
        let safe_x = left + resource.safe_steady_state.clamp(0.0, 1.0) * width;
        svg.push_str(&format!(
            "<line x1=\"{safe_x:.1}\" y1=\"{:.1}\" x2=\"{safe_x:.1}\" y2=\"{:.1}\" class=\"safe\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" class=\"small\">safe {}</text>",
            top,
            top + bar_area,
            safe_x + 3.0,
            top + 8.0,
            percent(resource.safe_steady_state)
        ));
        svg.push_str(&format!(
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" class=\"axis\"/>\
             <text x=\"{left}\" y=\"{:.1}\" class=\"small\">0 %</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" class=\"small\" text-anchor=\"end\">100 %+</text>",
            left + width,
            top + bar_area + 12.0,
            left + width,
            top + bar_area + 12.0,
            y = top + bar_area
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// Bars of utilisation after losing each domain (the twelve worst) and the k largest hosts, per resource,
/// each with its target as a dashed tick.
pub(crate) fn failover_chart(group: &GroupReport) -> String {
    let Some(first) = group.resources.first() else {
        return String::new();
    };
    // Cases in the order of the binding resource's utilisation after them, worst first.
    let binding = group
        .resources
        .iter()
        .find(|r| Some(r.resource) == group.binding)
        .unwrap_or(first);
    let mut order: Vec<usize> = (0..binding.domain_losses.len()).collect();
    let severity = |case: &LossCase| case.utilisation.unwrap_or(f64::INFINITY);
    order.sort_by(|&a, &b| {
        severity(&binding.domain_losses[b]).total_cmp(&severity(&binding.domain_losses[a]))
    });
    let hidden = order.len().saturating_sub(12);
    order.truncate(12);
    let mut cases: Vec<(String, Vec<Option<f64>>)> = order
        .iter()
        .map(|&index| {
            let name = binding.domain_losses[index].name.clone();
            let values = group
                .resources
                .iter()
                .map(|r| r.domain_losses[index].utilisation)
                .collect();
            (name, values)
        })
        .collect();
    cases.push((
        format!("{} largest host{}", group.k, if group.k == 1 { "" } else { "s" }),
        group.resources.iter().map(|r| r.host_loss.utilisation).collect(),
    ));
    let scale_top = cases
        .iter()
        .flat_map(|(_, values)| values.iter().map(|v| v.unwrap_or(2.0)))
        .chain(group.resources.iter().map(|r| r.target))
        .fold(1.0_f64, f64::max)
        .min(2.0);
    let (left, chart_height, bar_width, gap) = (40.0, 180.0, 24.0, 36.0);
    let per_case = group.resources.len() as f64 * bar_width + gap;
    // Wide enough for the bars and for the legend below them (one entry per resource, 140 px each).
    let legend_width = left + group.resources.len() as f64 * 140.0 + if hidden > 0 { 200.0 } else { 0.0 };
    let width = (left + cases.len() as f64 * per_case + 10.0).max(legend_width);
    let legend_y = chart_height + 44.0;
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {width:.0} {h:.0}\" width=\"{width:.0}\" height=\"{h:.0}\" role=\"img\" \
         xmlns=\"http://www.w3.org/2000/svg\"><title>Utilisation of {name} after each loss, against the target</title>",
        h = legend_y + 10.0,
        name = escape(&group.name)
    );
    let y_of = |value: f64| 10.0 + chart_height * (1.0 - value.min(scale_top) / scale_top);
    for tick in [0.0, 0.5, 1.0, 1.5, 2.0].into_iter().filter(|t| *t <= scale_top) {
        svg.push_str(&format!(
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" class=\"grid\"/>\
             <text x=\"0\" y=\"{:.1}\" class=\"small\">{:.0} %</text>",
            width - 10.0,
            y_of(tick) + 4.0,
            tick * 100.0,
            y = y_of(tick)
        ));
    }
    for (case_index, (name, values)) in cases.iter().enumerate() {
        let x0 = left + case_index as f64 * per_case + gap / 2.0;
        for (r, (value, resource)) in values.iter().zip(&group.resources).enumerate() {
            let x = x0 + r as f64 * bar_width;
            let shown = value.unwrap_or(scale_top);
            let over = value.is_none_or(|v| v > resource.target + 1e-9);
            svg.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"{}><title>{}: {} after losing {}</title></rect>\
                 <line x1=\"{x:.1}\" y1=\"{t:.1}\" x2=\"{:.1}\" y2=\"{t:.1}\" class=\"target\"/>",
                y_of(shown),
                bar_width - 2.0,
                y_of(0.0) - y_of(shown),
                colour(r),
                if over { " class=\"over\"" } else { "" },
                escape(&resource.resource.label()),
                value.map_or("nothing survives".to_string(), percent),
                escape(name),
                x + bar_width - 2.0,
                t = y_of(resource.target)
            ));
        }
        let label: String = name.chars().take(16).collect();
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"small\">{}</text>",
            x0,
            chart_height + 24.0,
            escape(&label)
        ));
    }
    let mut legend_x = left;
    for (r, resource) in group.resources.iter().enumerate() {
        svg.push_str(&format!(
            "<rect x=\"{legend_x:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{legend_y:.1}\" class=\"small\">{}</text>",
            legend_y - 9.0,
            colour(r),
            legend_x + 14.0,
            escape(&resource.resource.label())
        ));
        legend_x += 140.0;
    }
    if hidden > 0 {
        svg.push_str(&format!(
            "<text x=\"{legend_x:.1}\" y=\"{legend_y:.1}\" class=\"small\">{hidden} milder domains not drawn</text>"
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// Daily peaks of one resource, the Theil–Sen line carried to the horizon, and the safe level.
pub(crate) fn trend_chart(resource: &ResourceReport, horizon_days: f64) -> String {
    let points = &resource.forecast.daily_peaks;
    if points.is_empty() {
        return String::new();
    }
    let x_min = points.iter().map(|p| p.0).fold(0.0, f64::min).floor();
    let x_max = horizon_days.max(1.0);
    let y_max = points
        .iter()
        .map(|p| p.1)
        .chain([resource.safe_steady_state, resource.target])
        .chain(resource.forecast.trend.map(|line| line.at(x_max)))
        .fold(0.1_f64, f64::max)
        .min(2.0)
        * 1.1;
    let (left, width, height) = (40.0, 520.0, 160.0);
    let x_of = |x: f64| left + (x - x_min) / (x_max - x_min) * width;
    let y_of = |y: f64| 10.0 + height * (1.0 - y.clamp(0.0, y_max) / y_max);
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {w:.0} {h:.0}\" width=\"{w:.0}\" height=\"{h:.0}\" role=\"img\" \
         xmlns=\"http://www.w3.org/2000/svg\"><title>Daily peak {} utilisation and its trend</title>",
        escape(&resource.resource.label()),
        w = left + width + 10.0,
        h = height + 36.0
    );
    svg.push_str(&format!(
        "<line x1=\"{left}\" y1=\"{b:.1}\" x2=\"{:.1}\" y2=\"{b:.1}\" class=\"axis\"/>\
         <line x1=\"{now:.1}\" y1=\"10\" x2=\"{now:.1}\" y2=\"{b:.1}\" class=\"grid\"/>\
         <text x=\"{now:.1}\" y=\"{:.1}\" class=\"small\" text-anchor=\"middle\">now</text>\
         <text x=\"{left}\" y=\"{:.1}\" class=\"small\">{:.0} d</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" class=\"small\" text-anchor=\"end\">+{:.0} d</text>\
         <text x=\"0\" y=\"{:.1}\" class=\"small\">{}</text>",
        left + width,
        y_of(0.0) + 14.0,
        y_of(0.0) + 14.0,
        x_min,
        left + width,
        y_of(0.0) + 14.0,
        x_max,
        y_of(y_max / 1.1) + 4.0,
        percent(y_max / 1.1),
        b = y_of(0.0),
        now = x_of(0.0),
    ));
    let safe_y = y_of(resource.safe_steady_state);
    svg.push_str(&format!(
        "<line x1=\"{left}\" y1=\"{safe_y:.1}\" x2=\"{:.1}\" y2=\"{safe_y:.1}\" class=\"safe\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" class=\"small\" text-anchor=\"end\">safe level {}</text>",
        left + width,
        left + width,
        safe_y - 4.0,
        percent(resource.safe_steady_state)
    ));
    for (x, y) in points {
        svg.push_str(&format!(
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{}\"/>",
            x_of(*x),
            y_of(*y),
            colour(0)
        ));
    }
    if let Some(line) = resource.forecast.trend {
        svg.push_str(&format!(
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" class=\"trend\"/>",
            x_of(x_min),
            y_of(line.at(x_min)),
            x_of(x_max),
            y_of(line.at(x_max))
        ));
        if let super::ForecastOutcome::Crosses { days, .. } = resource.forecast.outcome {
            svg.push_str(&format!(
                "<circle cx=\"{:.1}\" cy=\"{safe_y:.1}\" r=\"4\" class=\"cross\"><title>crosses in {days:.0} days</title></circle>",
                x_of(days)
            ));
        }
    }
    svg.push_str("</svg>");
    svg
}
