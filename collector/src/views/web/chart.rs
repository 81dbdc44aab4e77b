//! Small inline SVG line charts for the web view: no script, no external asset, a `<title>` that says
//! what the chart shows in words (screen readers and tooltips), and the latest value printed beside it.

use std::fmt::Write;

/// A line chart of `points` (x in ms, y in the metric's unit), `width` × `height` pixels, y from 0 to
/// the larger of the data's maximum and `y_floor` (so 3 % CPU does not look like a full scale).
/// Missing values break the line. `label` names the series for the title.
pub fn line_chart(
    points: &[(u64, Option<f64>)],
    width: u32,
    height: u32,
    y_floor: f64,
    label: &str,
) -> String {
    let values: Vec<f64> = points
        .iter()
        .filter_map(|(_, y)| *y)
        .filter(|y| y.is_finite())
        .collect();
    let mut svg = String::with_capacity(64 + points.len() * 12);
    let max = values.iter().copied().fold(y_floor, f64::max);
    let (low, high) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(*v), h.max(*v))
        });
    let title = if values.is_empty() {
        format!("{label}: no data")
    } else {
        format!(
            "{label}: {} points, min {}, max {}",
            values.len(),
            short(low),
            short(high)
        )
    };
    let _ = write!(
        svg,
        "<svg class=\"chart\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" \
         role=\"img\" aria-label=\"{title}\"><title>{title}</title>\
         <rect x=\"0\" y=\"0\" width=\"{width}\" height=\"{height}\" fill=\"#f3f5f8\"/>"
    );
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        svg.push_str("</svg>");
        return svg;
    };
    let span = (last.0.saturating_sub(first.0)).max(1) as f64;
    let w = f64::from(width) - 2.0;
    let h = f64::from(height) - 2.0;
    let mut open = false;
    for (x, y) in points {
        let Some(y) = y.filter(|y| y.is_finite()) else {
            if open {
                svg.push_str("\"/>");
                open = false;
            }
            continue;
        };
        let px = 1.0 + (x.saturating_sub(first.0)) as f64 / span * w;
        let py = 1.0 + h - (y / max).clamp(0.0, 1.0) * h;
        if !open {
            svg.push_str("<polyline fill=\"none\" stroke=\"#1f4e99\" stroke-width=\"1.5\" points=\"");
            open = true;
        } else {
            svg.push(' ');
        }
        let _ = write!(svg, "{px:.1},{py:.1}");
    }
    if open {
        svg.push_str("\"/>");
    }
    svg.push_str("</svg>");
    svg
}

/// A number in at most 4 significant characters for titles.
fn short(value: f64) -> String {
    if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_scales_to_its_box_and_breaks_at_missing_values() {
        let svg = line_chart(
            &[(0, Some(0.0)), (10, Some(50.0)), (20, None), (30, Some(100.0))],
            102,
            52,
            100.0,
            "cpu",
        );
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(
            svg.contains("<title>cpu: 3 points, min 0.0, max 100</title>"),
            "{svg}"
        );
        // Two runs: before and after the missing value.
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert!(svg.contains("points=\"1.0,51.0 34.3,26.0\""), "{svg}");
        assert!(svg.contains("points=\"101.0,1.0\""), "{svg}");
    }

    #[test]
    fn an_empty_chart_says_so() {
        let svg = line_chart(&[], 100, 20, 1.0, "memory");
        assert!(svg.contains("memory: no data"), "{svg}");
        assert!(!svg.contains("polyline"));
    }
}
