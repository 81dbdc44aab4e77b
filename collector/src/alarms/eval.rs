//! Evaluation of alarm rules against every host's recent samples, once per interval. Pure: the hosts, their
//! recent samples and last-seen times, the outlier verdicts and `now_ms` come in; transitions come out.
//!
//! Times in [`HostHistory`] and `last_seen_ms` are on the collector's clock, like `now_ms`, so that a host
//! with a wrong clock neither hides from nor trips the windowed rules.

use super::state::{AlarmState, Transition};
use super::{render_template, Across, Condition, Rule, RuleSet, Severity};
use crate::outliers::{Metric, MetricValues, OutlierTracker};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// A threshold compares the latest sample only while it is at most this many of the host's intervals old; a
/// silent host's last value is not a current value (the missing-data rule covers silence).
pub const FRESH_INTERVALS: u64 = 3;

/// The last readings of one host, oldest first, bounded: a ring stored metric by metric, so that a rule
/// reading one metric over a window touches only that metric's values (8 bytes a reading, contiguous).
#[derive(Debug, Clone, Default)]
pub struct HostHistory {
    capacity: usize,
    /// Physical index of the oldest reading.
    head: usize,
    len: usize,
    times_ms: Vec<u64>,
    /// `capacity` values per metric, metric after metric; NaN where the reading lacked the metric.
    columns: Vec<f64>,
}

impl HostHistory {
    pub fn new(capacity: usize) -> HostHistory {
        let capacity = capacity.max(1);
        HostHistory {
            capacity,
            head: 0,
            len: 0,
            times_ms: vec![0; capacity],
            columns: vec![f64::NAN; capacity * Metric::COUNT],
        }
    }

    /// Adds a reading taken (or received) at `at_ms`, dropping the oldest when full. Readings are expected
    /// in time order; the window searches rely on it.
    pub fn push(&mut self, at_ms: u64, values: MetricValues) {
        let slot = if self.len == self.capacity {
            let oldest = self.head;
            self.head = (self.head + 1) % self.capacity;
            oldest
        } else {
            self.len += 1;
            (self.head + self.len - 1) % self.capacity
        };
        self.times_ms[slot] = at_ms;
        for metric in Metric::ALL {
            self.columns[metric.index() * self.capacity + slot] = values.get(metric).unwrap_or(f64::NAN);
        }
    }

    fn physical(&self, logical: usize) -> usize {
        (self.head + logical) % self.capacity
    }

    /// Time and value of `metric` in the newest reading, when it has the metric.
    pub fn latest(&self, metric: Metric) -> Option<(u64, f64)> {
        let slot = self.physical(self.len.checked_sub(1)?);
        let value = self.columns[metric.index() * self.capacity + slot];
        (!value.is_nan()).then_some((self.times_ms[slot], value))
    }

    /// Time of the newest reading.
    pub fn latest_ms(&self) -> Option<u64> {
        Some(self.times_ms[self.physical(self.len.checked_sub(1)?)])
    }

    /// Physical index ranges of the readings at or after `from_ms`, oldest first: the ring as at most two
    /// contiguous runs, so that iteration needs no per-reading modulo.
    fn runs_since(&self, from_ms: u64) -> [std::ops::Range<usize>; 2] {
        let (mut low, mut high) = (0, self.len);
        while low < high {
            let middle = (low + high) / 2;
            if self.times_ms[self.physical(middle)] < from_ms {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        if low == self.len {
            return [0..0, 0..0];
        }
        let first = self.physical(low);
        let end = self.head + self.len;
        if first >= self.head && end > self.capacity {
            [first..self.capacity, 0..end - self.capacity]
        } else {
            [first..first + (self.len - low), 0..0]
        }
    }

    /// (time, value) of `metric` in the readings at or after `from_ms`, oldest first.
    pub fn since(&self, metric: Metric, from_ms: u64) -> impl Iterator<Item = (u64, f64)> + '_ {
        let column = &self.columns[metric.index() * self.capacity..(metric.index() + 1) * self.capacity];
        let [a, b] = self.runs_since(from_ms);
        let times = self.times_ms[a.clone()].iter().chain(&self.times_ms[b.clone()]);
        let values = column[a].iter().chain(&column[b]);
        times
            .zip(values)
            .filter(|(_, value)| !value.is_nan())
            .map(|(&at_ms, &value)| (at_ms, value))
    }

    /// Values of `metric` in the readings at or after `from_ms`, oldest first.
    pub fn values_since(&self, metric: Metric, from_ms: u64) -> impl Iterator<Item = f64> + '_ {
        let column = &self.columns[metric.index() * self.capacity..(metric.index() + 1) * self.capacity];
        let [a, b] = self.runs_since(from_ms);
        column[a]
            .iter()
            .chain(&column[b])
            .copied()
            .filter(|value| !value.is_nan())
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// What evaluation knows about one host.
#[derive(Debug, Clone)]
pub struct HostInput {
    pub host: String,
    pub labels: BTreeMap<String, String>,
    pub interval_ms: u32,
    /// When the collector last heard from the host.
    pub last_seen_ms: u64,
    pub history: HostHistory,
}

/// Everything one evaluation reads.
#[derive(Debug, Clone, Copy)]
pub struct EvalInputs<'a> {
    pub hosts: &'a [HostInput],
    /// Verdicts for `outlier` rules; without a tracker those rules never hold.
    pub outliers: Option<&'a OutlierTracker>,
}

/// What an alarm is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "type", content = "name", rename_all = "lowercase")]
pub enum Subject {
    Host(String),
    Group(String),
}

impl Subject {
    pub fn name(&self) -> &str {
        match self {
            Subject::Host(name) | Subject::Group(name) => name,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlarmStatus {
    Pending,
    Firing,
    Resolved,
}

/// An alarm at a transition (from [`AlarmEngine::evaluate`]) or as it stands (from [`AlarmEngine::active`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmEvent {
    pub rule: String,
    pub kind: &'static str,
    pub subject: Subject,
    pub status: AlarmStatus,
    pub severity: Severity,
    pub runbook: String,
    pub summary: String,
    pub description: String,
    /// The value the condition last compared, where it has one.
    pub value: Option<f64>,
    /// Identifying labels: alertname, severity, and host or the group label.
    pub labels: BTreeMap<String, String>,
    pub active_since_ms: Option<u64>,
    pub fired_ms: Option<u64>,
    pub resolved_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    state: AlarmState,
    value: Option<f64>,
    /// Evaluation round in which the slot was last evaluated with a real condition.
    round: u64,
}

const IDLE: Slot = Slot {
    state: AlarmState::Inactive,
    value: None,
    round: 0,
};

/// Alarm states for every (rule, host) and (rule, group), stepped by [`AlarmEngine::evaluate`].
#[derive(Debug, Clone)]
pub struct AlarmEngine {
    rules: RuleSet,
    hosts: HashMap<String, Vec<Slot>>,
    groups: HashMap<String, Vec<Slot>>,
    round: u64,
    scratch: Vec<f64>,
    /// Per group, per group-wide rule: the samples gathered in the current evaluation (kept to reuse them).
    group_samples: BTreeMap<String, Vec<Vec<f64>>>,
}

impl AlarmEngine {
    pub fn new(rules: RuleSet) -> AlarmEngine {
        AlarmEngine {
            rules,
            hosts: HashMap::new(),
            groups: HashMap::new(),
            round: 0,
            scratch: Vec::new(),
            group_samples: BTreeMap::new(),
        }
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Evaluates every rule for every host (and group) at `now_ms` and returns the pending, firing and
    /// resolved transitions. Cancelled pendings are not returned: nobody was told about them.
    ///
    /// A host absent from `inputs`, or no longer in a rule's scope, counts as the condition not holding, so
    /// its alarms resolve rather than fire forever.
    ///
    /// One pass over the hosts evaluates the host rules and gathers the samples of group-wide percentiles,
    /// so each host's readings are read from memory once; then the groups are stepped, then the composites
    /// (which may name group rules).
    pub fn evaluate(&mut self, inputs: EvalInputs<'_>, now_ms: u64) -> Vec<AlarmEvent> {
        self.round += 1;
        let round = self.round;
        let rule_count = self.rules.rules.len();
        let mut events = Vec::new();
        let rules = &self.rules;
        let group_rules: Vec<usize> = (0..rule_count)
            .filter(|&i| {
                matches!(
                    rules.rules[i].condition,
                    Condition::Percentile {
                        across: Across::Group,
                        ..
                    }
                )
            })
            .collect();
        for buffers in self.group_samples.values_mut() {
            buffers.iter_mut().for_each(Vec::clear);
        }

        for host in inputs.hosts {
            let group = host.labels.get(&rules.group_label).map_or("", String::as_str);
            for (slot_in_group, &index) in group_rules.iter().enumerate() {
                let rule = &rules.rules[index];
                let Condition::Percentile { metric, over_ms, .. } = rule.condition else {
                    continue;
                };
                if !rule.applies_to(&host.labels) {
                    continue;
                }
                if !self.group_samples.contains_key(group) {
                    self.group_samples
                        .insert(group.to_string(), vec![Vec::new(); group_rules.len()]);
                }
                let buffers = self.group_samples.get_mut(group).expect("inserted above");
                let from_ms = now_ms.saturating_sub(over_ms);
                buffers[slot_in_group].extend(host.history.values_since(metric, from_ms));
            }
            if !self.hosts.contains_key(&host.host) {
                self.hosts.insert(host.host.clone(), vec![IDLE; rule_count]);
            }
            let slots = self.hosts.get_mut(&host.host).expect("inserted above");
            for (index, rule) in rules.rules.iter().enumerate() {
                if matches!(
                    rule.condition,
                    Condition::Composite { .. }
                        | Condition::Percentile {
                            across: Across::Group,
                            ..
                        }
                ) || !rule.applies_to(&host.labels)
                {
                    continue;
                }
                let (condition, observed) =
                    host_condition(&rule.condition, host, inputs, now_ms, &mut self.scratch);
                let subject = || Subject::Host(host.host.clone());
                events.extend(step_slot(
                    rules,
                    index,
                    subject,
                    &mut slots[index],
                    condition,
                    observed,
                    round,
                    now_ms,
                ));
            }
        }

        for (group, buffers) in self.group_samples.iter_mut() {
            for (slot_in_group, &index) in group_rules.iter().enumerate() {
                let samples = &mut buffers[slot_in_group];
                if samples.is_empty() {
                    continue;
                }
                let Condition::Percentile {
                    quantile_pct,
                    op,
                    value,
                    ..
                } = rules.rules[index].condition
                else {
                    continue;
                };
                let observed = percentile(samples, quantile_pct);
                let condition = observed.is_some_and(|v| op.holds(v, value));
                if !self.groups.contains_key(group) {
                    self.groups.insert(group.clone(), vec![IDLE; rule_count]);
                }
                let slots = self.groups.get_mut(group).expect("inserted above");
                let subject = || Subject::Group(group.clone());
                events.extend(step_slot(
                    rules,
                    index,
                    subject,
                    &mut slots[index],
                    condition,
                    observed,
                    round,
                    now_ms,
                ));
            }
        }
        self.group_samples
            .retain(|_, buffers| buffers.iter().any(|b| !b.is_empty()));

        let has_composites = rules
            .order
            .iter()
            .any(|&i| matches!(rules.rules[i].condition, Condition::Composite { .. }));
        for host in inputs.hosts.iter().filter(|_| has_composites) {
            let group = host.labels.get(&rules.group_label).map_or("", String::as_str);
            let group_slots = self.groups.get(group);
            let Some(slots) = self.hosts.get_mut(&host.host) else {
                continue;
            };
            for &index in &rules.order {
                let rule = &rules.rules[index];
                let Condition::Composite { all, rules: parts } = &rule.condition else {
                    continue;
                };
                if !rule.applies_to(&host.labels) {
                    continue;
                }
                let firing = |part: &usize| {
                    let slot = match rules.rules[*part].condition {
                        Condition::Percentile {
                            across: Across::Group,
                            ..
                        } => group_slots.map(|s| &s[*part]),
                        _ => Some(&slots[*part]),
                    };
                    slot.is_some_and(|s| s.round == round && s.state.is_firing())
                };
                let holds = if *all {
                    parts.iter().all(firing)
                } else {
                    parts.iter().any(firing)
                };
                let subject = || Subject::Host(host.host.clone());
                events.extend(step_slot(
                    rules,
                    index,
                    subject,
                    &mut slots[index],
                    holds,
                    None,
                    round,
                    now_ms,
                ));
            }
        }

        // Slots not evaluated this round: their host vanished or left the rule's scope.
        for (is_host, map) in [(true, &mut self.hosts), (false, &mut self.groups)] {
            for (name, slots) in map.iter_mut() {
                for (index, slot) in slots.iter_mut().enumerate() {
                    if slot.round != round && slot.state != AlarmState::Inactive {
                        let subject = || {
                            if is_host {
                                Subject::Host(name.clone())
                            } else {
                                Subject::Group(name.clone())
                            }
                        };
                        let value = slot.value;
                        events.extend(step_slot(
                            rules, index, subject, slot, false, value, slot.round, now_ms,
                        ));
                    }
                }
            }
            map.retain(|_, slots| {
                slots
                    .iter()
                    .any(|s| s.round == round || s.state != AlarmState::Inactive)
            });
        }
        events
    }

    /// Every pending and firing alarm now, most severe first, then by rule and subject.
    pub fn active(&self) -> Vec<AlarmEvent> {
        let mut out = Vec::new();
        for (map, host_subjects) in [(&self.hosts, true), (&self.groups, false)] {
            for (name, slots) in map {
                for (index, slot) in slots.iter().enumerate() {
                    let status = match slot.state {
                        AlarmState::Pending { .. } => AlarmStatus::Pending,
                        AlarmState::Firing { .. } => AlarmStatus::Firing,
                        _ => continue,
                    };
                    let subject = if host_subjects {
                        Subject::Host(name.clone())
                    } else {
                        Subject::Group(name.clone())
                    };
                    out.push(describe(&self.rules, index, &subject, slot, status));
                }
            }
        }
        out.sort_by(|a, b| (b.severity, &a.rule, &a.subject).cmp(&(a.severity, &b.rule, &b.subject)));
        out
    }

    /// The state of one rule for one subject, `None` when the rule or subject is unknown.
    pub fn state_of(&self, rule: &str, subject: &Subject) -> Option<AlarmState> {
        let index = self.rules.index_of(rule)?;
        let slots = match subject {
            Subject::Host(name) => self.hosts.get(name)?,
            Subject::Group(name) => self.groups.get(name)?,
        };
        Some(slots[index].state)
    }
}

#[allow(clippy::too_many_arguments)]
fn step_slot(
    rules: &RuleSet,
    index: usize,
    subject: impl FnOnce() -> Subject,
    slot: &mut Slot,
    condition: bool,
    observed: Option<f64>,
    round: u64,
    now_ms: u64,
) -> Option<AlarmEvent> {
    let (state, transition) = slot.state.step(condition, rules.rules[index].for_ms, now_ms);
    slot.state = state;
    slot.round = round;
    if observed.is_some() {
        slot.value = observed;
    }
    let status = match transition? {
        Transition::Pending => AlarmStatus::Pending,
        Transition::Firing => AlarmStatus::Firing,
        Transition::Resolved => AlarmStatus::Resolved,
        Transition::Cancelled => return None,
    };
    Some(describe(rules, index, &subject(), slot, status))
}

/// The condition of a host-scoped, non-composite rule, and the value it compared.
fn host_condition(
    condition: &Condition,
    host: &HostInput,
    inputs: EvalInputs<'_>,
    now_ms: u64,
    scratch: &mut Vec<f64>,
) -> (bool, Option<f64>) {
    match *condition {
        Condition::Threshold { metric, op, value } => {
            let fresh_ms = FRESH_INTERVALS * u64::from(host.interval_ms.max(1));
            let observed = host
                .history
                .latest(metric)
                .filter(|(at_ms, _)| now_ms.saturating_sub(*at_ms) <= fresh_ms)
                .map(|(_, value)| value);
            (observed.is_some_and(|v| op.holds(v, value)), observed)
        }
        Condition::Percentile {
            metric,
            quantile_pct,
            over_ms,
            op,
            value,
            ..
        } => {
            scratch.clear();
            scratch.extend(host.history.values_since(metric, now_ms.saturating_sub(over_ms)));
            let observed = percentile(scratch, quantile_pct);
            (observed.is_some_and(|v| op.holds(v, value)), observed)
        }
        Condition::RateOfChange {
            metric,
            over_ms,
            op,
            per_minute,
        } => {
            let observed = slope_per_minute(host.history.since(metric, now_ms.saturating_sub(over_ms)));
            (observed.is_some_and(|v| op.holds(v, per_minute)), observed)
        }
        Condition::Outlier { metric } => {
            let flagged = inputs.outliers.is_some_and(|tracker| match metric {
                Some(metric) => tracker.is_flagged(&host.host, metric),
                None => tracker.host_flagged(&host.host),
            });
            (flagged, None)
        }
        Condition::Missing { grace_ms } => {
            let silent_ms = now_ms.saturating_sub(host.last_seen_ms);
            (silent_ms > grace_ms, Some(silent_ms as f64 / 1000.0))
        }
        // Composites are evaluated by the caller from the other rules' states.
        Condition::Composite { .. } => (false, None),
    }
}

/// The `quantile_pct` percentile of `values` by linear interpolation between closest ranks; reorders them.
pub fn percentile(values: &mut [f64], quantile_pct: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let rank = (quantile_pct / 100.0).clamp(0.0, 1.0) * (values.len() - 1) as f64;
    let lower_rank = rank.floor() as usize;
    let (_, lower, above) = values.select_nth_unstable_by(lower_rank, f64::total_cmp);
    let lower = *lower;
    let fraction = rank - lower_rank as f64;
    if fraction == 0.0 || above.is_empty() {
        return Some(lower);
    }
    let upper = above.iter().copied().fold(f64::INFINITY, f64::min);
    Some(lower + (upper - lower) * fraction)
}

/// Least-squares slope of (time, value) points, in value units per minute; `None` with fewer than two
/// distinct times. The fit uses every point, so one noisy reading does not make a trend.
pub fn slope_per_minute(points: impl Iterator<Item = (u64, f64)>) -> Option<f64> {
    // Sums relative to the first point keep the terms small enough for f64 over any window we allow.
    let mut origin: Option<(u64, f64)> = None;
    let (mut n, mut sum_t, mut sum_v, mut sum_tt, mut sum_tv) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (at_ms, value) in points {
        let (t0_ms, v0) = *origin.get_or_insert((at_ms, value));
        let t = at_ms.saturating_sub(t0_ms) as f64 / 60_000.0;
        let v = value - v0;
        n += 1.0;
        sum_t += t;
        sum_v += v;
        sum_tt += t * t;
        sum_tv += t * v;
    }
    let variance = n * sum_tt - sum_t * sum_t;
    (n >= 2.0 && variance > 1e-12).then(|| (n * sum_tv - sum_t * sum_v) / variance)
}

fn describe(
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
