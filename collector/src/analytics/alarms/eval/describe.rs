//! The alarm event for a slot's transition: summary, description and labels in the rule's words.

use std::collections::BTreeMap;

use super::super::state::AlarmState;
use super::super::{render_template, Across, Condition, Rule, RuleSet};
use super::subjects::Slot;
use super::{AlarmEvent, AlarmStatus, Subject};
use crate::analytics::outliers::Metric;

pub(super) fn describe(
    rules: &RuleSet,
    index: usize,
    subject: &Subject,
    slot: &Slot,
    status: AlarmStatus,
) -> AlarmEvent {
    let rule: &Rule = &rules.rules[index];
    let metric = rule.condition.metric();
    let show = |v: f64| match metric {
        Some(metric) => metric.format_value(v),
        None => format!("{v:.1}"),
    };
    let value_text = slot.value.map(show).unwrap_or_else(|| "n/a".to_string());
    let for_text = humantime::format_duration(std::time::Duration::from_millis(rule.for_ms)).to_string();
    let (threshold_text, description) =
        match &rule.condition {
            Condition::Threshold { metric, op, value } => (
                show(*value),
                format!(
                    "{metric} is {value_text} ({} {}), for {for_text}",
                    op.symbol(),
                    show(*value)
                ),
            ),
            Condition::Percentile {
                metric,
                quantile_pct,
                over_ms,
                across,
                op,
                value,
            } => {
                (
                    show(*value),
                    format!(
                "p{quantile_pct} of {metric} over {} of the {} is {value_text} ({} {}), for {for_text}",
                duration_text(*over_ms),
                if *across == Across::Group { "group's hosts" } else { "host's samples" },
                op.symbol(),
                show(*value)
            ),
                )
            }
            Condition::RateOfChange {
                metric,
                over_ms,
                op,
                per_minute,
            } => (
                format!("{per_minute}/min"),
                format!(
                    "{metric} changes by {}/min over {} ({} {per_minute}/min), for {for_text}",
                    slot.value.map_or("n/a".to_string(), |v| format!("{v:.2}")),
                    duration_text(*over_ms),
                    op.symbol()
                ),
            ),
            Condition::Outlier { metric } => (
                String::new(),
                format!(
                    "flagged as an outlier among its peers in {}, for {for_text}",
                    metric.map_or("at least one metric", |m| m.name())
                ),
            ),
            Condition::Missing { grace_ms } => (
                duration_text(*grace_ms),
                format!(
                    "no data for {value_text} s (grace {}), for {for_text}",
                    duration_text(*grace_ms)
                ),
            ),
            Condition::ClockSkew { limit_ms } => (
                duration_text(*limit_ms),
                format!(
                    "host clock off by {value_text} s (limit {}; its samples are stored at corrected times), \
                     for {for_text}",
                    duration_text(*limit_ms)
                ),
            ),
            Condition::Headroom {
                over_ms,
                within_days: None,
            } => (
                String::new(),
                format!(
                    "the group's load over {} would not survive its worst loss, for {for_text}",
                    duration_text(*over_ms)
                ),
            ),
            Condition::Headroom {
                within_days: Some(days),
                ..
            } => (
                format!("{days:.0} days"),
                format!("forecast to stop surviving its worst loss within {days:.0} days"),
            ),
            Condition::Composite { all, rules: parts } => (
                String::new(),
                format!(
                    "{} of [{}] firing",
                    if *all { "all" } else { "any" },
                    parts
                        .iter()
                        .map(|&p| rules.rules[p].name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        };
    let (host, group) = match subject {
        Subject::Host(name) => (name.as_str(), ""),
        Subject::Group(name) => ("", name.as_str()),
    };
    let summary = match &rule.summary {
        Some(template) => render_template(template, |name| match name {
            "host" => host.to_string(),
            "group" => group.to_string(),
            "rule" => rule.name.clone(),
            "metric" => metric.map(Metric::name).unwrap_or_default().to_string(),
            "value" => value_text.clone(),
            "threshold" => threshold_text.clone(),
            "severity" => rule.severity.name().to_string(),
            _ => String::new(),
        }),
        None => format!("{} on {}: {description}", rule.name, subject.name()),
    };
    let mut labels = BTreeMap::new();
    labels.insert("alertname".to_string(), rule.name.clone());
    labels.insert("severity".to_string(), rule.severity.name().to_string());
    match subject {
        Subject::Host(name) => labels.insert("host".to_string(), name.clone()),
        Subject::Group(name) => labels.insert(rules.group_label.clone(), name.clone()),
    };
    let (active_since_ms, fired_ms, resolved_ms) = match slot.state {
        AlarmState::Inactive => (None, None, None),
        AlarmState::Pending { active_since_ms } => (Some(active_since_ms), None, None),
        AlarmState::Firing {
            active_since_ms,
            fired_ms,
        } => (Some(active_since_ms), Some(fired_ms), None),
        AlarmState::Resolved {
            fired_ms,
            resolved_ms,
        } => (None, Some(fired_ms), Some(resolved_ms)),
    };
    AlarmEvent {
        rule: rule.name.clone(),
        kind: rule.condition.kind(),
        subject: subject.clone(),
        status,
        severity: rule.severity,
        runbook: rule.runbook.clone(),
        summary,
        description,
        value: slot.value,
        labels,
        active_since_ms,
        fired_ms,
        resolved_ms,
    }
}

fn duration_text(ms: u64) -> String {
    humantime::format_duration(std::time::Duration::from_millis(ms)).to_string()
}
