//! Evaluation of alarm rules against every host's recent samples, once per interval. Pure: the hosts, their
//! recent samples and last-seen times, the outlier verdicts and `now_ms` come in; transitions come out.
//!
//! Times in [`HostHistory`] and `last_seen_ms` are on the collector's clock, like `now_ms`, so that a host
//! with a wrong clock neither hides from nor trips the windowed rules.
//!
//! The engine keeps its states in flat arrays indexed by interned host and group numbers, visits each host
//! once per evaluation (so a caller may hand hosts over one at a time, each under its own lock, see
//! [`AlarmEngine::evaluate_each`]), and computes window statistics straight from the ring without
//! allocating.

mod describe;
mod headroom_step;
mod subjects;
mod window;

use super::headroom::{self, ForecastDigest, LiveHost};
use super::state::{AlarmState, Transition};
use super::{Across, Condition, HostInput, RuleSet, Severity};
use crate::analytics::outliers::OutlierTracker;
use crate::sizing::SizingConfig;
use describe::describe;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use subjects::{Plan, Slot, Subjects, Visit, NO_GROUP};
use window::Runs;
pub use window::{percentile, slope_per_minute, HostHistory, KeptMetrics};

/// A threshold compares the latest sample only while it is at most this many of the host's intervals old; a
/// silent host's last value is not a current value (the missing-data rule covers silence).
pub const FRESH_INTERVALS: u64 = 3;

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

/// Alarm states for every (rule, host) and (rule, group), stepped by [`AlarmEngine::evaluate`].
#[derive(Debug, Clone)]
pub struct AlarmEngine {
    rules: RuleSet,
    plan: Plan,
    hosts: Subjects,
    groups: Subjects,
    /// Per interned group, per group-wide rule: the samples gathered in the current evaluation (kept to
    /// reuse their memory).
    group_samples: Vec<Vec<Vec<f64>>>,
    /// Per interned host, the group it was in at its last visit: a guess that saves hashing the group name.
    host_groups: Vec<u32>,
    round: u64,
    /// This evaluation's visits in order, and the last one's hosts: hosts usually come in the same order,
    /// so the host at position i is looked up by comparing one name rather than hashing it.
    visits: Vec<Visit>,
    previous_hosts: Vec<u32>,
    /// Per visit, per composite: whether the composite's scope takes the host.
    composite_applies: Vec<bool>,
    scratch: Vec<f64>,
    /// The sizing settings `headroom` rules size groups with.
    sizing: SizingConfig,
    /// The latest forecast digest for `headroom` rules with `within`.
    forecast: Option<ForecastDigest>,
    /// Per (interned group, headroom rule): the group's hosts gathered in the current evaluation.
    headroom_members: BTreeMap<(u32, usize), Vec<LiveHost>>,
    /// Per (group name, headroom rule): the last verdict's sentence, which the alarm's description carries.
    headroom_details: HashMap<(String, usize), String>,
}

impl AlarmEngine {
    pub fn new(rules: RuleSet) -> AlarmEngine {
        AlarmEngine {
            plan: Plan::new(&rules),
            rules,
            hosts: Subjects::default(),
            groups: Subjects::default(),
            group_samples: Vec::new(),
            host_groups: Vec::new(),
            round: 0,
            visits: Vec::new(),
            previous_hosts: Vec::new(),
            composite_applies: Vec::new(),
            scratch: Vec::new(),
            sizing: SizingConfig::default(),
            forecast: None,
            headroom_members: BTreeMap::new(),
            headroom_details: HashMap::new(),
        }
    }

    /// The sizing settings (`[sizing]`: targets, k, balance, memory, peak statistic) `headroom` rules use.
    pub fn set_sizing(&mut self, sizing: SizingConfig) {
        self.sizing = sizing;
    }

    /// A new forecast digest for `headroom` rules with `within`, used until the next one.
    pub fn set_forecast(&mut self, digest: ForecastDigest) {
        self.forecast = Some(digest);
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Evaluates every rule for every host (and group) at `now_ms` and returns the pending, firing and
    /// resolved transitions. Cancelled pendings are not returned: nobody was told about them.
    ///
    /// A host absent from `inputs`, or no longer in a rule's scope, counts as the condition not holding, so
    /// its alarms resolve rather than fire forever.
    pub fn evaluate(&mut self, inputs: EvalInputs<'_>, now_ms: u64) -> Vec<AlarmEvent> {
        self.evaluate_each(inputs.outliers, now_ms, |visit| {
            inputs.hosts.iter().for_each(visit)
        })
    }

    /// [`AlarmEngine::evaluate`] with the hosts handed over one at a time: `hosts` calls its argument once
    /// per host, in a stable order, and may hold each host's lock only for that call.
    ///
    /// One pass over the hosts evaluates the host rules and gathers the samples of group-wide percentiles,
    /// so each host's readings are read from memory once; then the groups are stepped, then the composites
    /// (which may name group rules) from the states just computed.
    pub fn evaluate_each(
        &mut self,
        outliers: Option<&OutlierTracker>,
        now_ms: u64,
        hosts: impl FnOnce(&mut dyn FnMut(&HostInput)),
    ) -> Vec<AlarmEvent> {
        self.round += 1;
        self.previous_hosts.clear();
        self.previous_hosts.extend(self.visits.iter().map(|v| v.host));
        self.visits.clear();
        self.composite_applies.clear();
        for buffers in &mut self.group_samples {
            buffers.iter_mut().for_each(Vec::clear);
        }
        let mut events = Vec::new();
        self.headroom_members.clear();
        hosts(&mut |host| self.visit(host, outliers, now_ms, &mut events));
        self.step_groups(now_ms, &mut events);
        self.step_headroom(now_ms, &mut events);
        self.step_composites(now_ms, &mut events);
        self.step_unvisited(now_ms, &mut events);
        events.into_iter().map(|event| self.with_detail(event)).collect()
    }

    fn visit(
        &mut self,
        host: &HostInput,
        outliers: Option<&OutlierTracker>,
        now_ms: u64,
        events: &mut Vec<AlarmEvent>,
    ) {
        let rules = &self.rules;
        let plan = &self.plan;
        let rule_count = rules.rules.len();
        let round = self.round;
        let hint = self.previous_hosts.get(self.visits.len()).copied();
        let id = self.hosts.intern_hinted(hint, &host.host, rule_count);
        self.hosts.live[id as usize] = true;
        if self.host_groups.len() < self.hosts.names.len() {
            self.host_groups.resize(self.hosts.names.len(), NO_GROUP);
        }
        let applies = |index: usize| !plan.scoped[index] || rules.rules[index].applies_to(&host.labels);
        // The window's runs are looked up once per distinct window length, not once per rule.
        let mut runs_cache: Option<(u64, Runs)> = None;
        let mut runs_since = |from_ms: u64| match &runs_cache {
            Some((cached_ms, runs)) if *cached_ms == from_ms => runs.clone(),
            _ => {
                let runs = host.history.runs_since(from_ms);
                runs_cache = Some((from_ms, runs.clone()));
                runs
            }
        };

        let mut group = NO_GROUP;
        if !plan.group_rules.is_empty() || !plan.headroom_rules.is_empty() {
            let name = host.labels.get(&rules.group_label).map_or("", String::as_str);
            let hint = Some(self.host_groups[id as usize]).filter(|&g| g != NO_GROUP);
            group = self.groups.intern_hinted(hint, name, rule_count);
            self.host_groups[id as usize] = group;
            if self.group_samples.len() < self.groups.names.len() {
                self.group_samples.resize_with(self.groups.names.len(), || {
                    vec![Vec::new(); plan.group_rules.len()]
                });
            }
            let buffers = &mut self.group_samples[group as usize];
            for (slot_in_group, &index) in plan.group_rules.iter().enumerate() {
                let Condition::Percentile { metric, over_ms, .. } = rules.rules[index].condition else {
                    continue;
                };
                if !applies(index) {
                    continue;
                }
                let runs = runs_since(now_ms.saturating_sub(over_ms));
                let [first, second] = host.history.parts(metric, &runs);
                buffers[slot_in_group].extend(first.iter().chain(second).copied().filter(|v| !v.is_nan()));
            }
            for &index in &plan.headroom_rules {
                let Condition::Headroom { over_ms, within_days } = rules.rules[index].condition else {
                    continue;
                };
                if !applies(index) {
                    continue;
                }
                let members = self.headroom_members.entry((group, index)).or_default();
                if within_days.is_none() {
                    let from_ms = now_ms.saturating_sub(over_ms);
                    members.extend(headroom::live_host(
                        host,
                        &self.sizing.zone_label,
                        from_ms,
                        self.sizing.percentile,
                    ));
                }
            }
        }

        let slots = &mut self.hosts.slots[id as usize * rule_count..(id as usize + 1) * rule_count];
        for &index in &plan.host_rules {
            if !applies(index) {
                continue;
            }
            let (condition, observed) = host_condition(
                &rules.rules[index].condition,
                host,
                outliers,
                now_ms,
                &mut runs_since,
                &mut self.scratch,
            );
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
        self.composite_applies
            .extend(plan.composites.iter().map(|&index| applies(index)));
        self.visits.push(Visit { host: id, group });
    }

    /// Steps the group-wide percentiles of every group that had samples, in order of group name.
    fn step_groups(&mut self, now_ms: u64, events: &mut Vec<AlarmEvent>) {
        let rules = &self.rules;
        let rule_count = rules.rules.len();
        let mut order: Vec<u32> = (0..self.group_samples.len() as u32)
            .filter(|&g| self.groups.interned[g as usize])
            .filter(|&g| self.group_samples[g as usize].iter().any(|b| !b.is_empty()))
            .collect();
        order.sort_by(|&a, &b| self.groups.names[a as usize].cmp(&self.groups.names[b as usize]));
        for group in order {
            let at = group as usize;
            for (slot_in_group, &index) in self.plan.group_rules.iter().enumerate() {
                let samples = &mut self.group_samples[at][slot_in_group];
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
                let observed = window::percentile_in_place(samples, quantile_pct);
                let condition = observed.is_some_and(|v| op.holds(v, value));
                self.groups.live[at] = true;
                let name = &self.groups.names[at];
                let subject = || Subject::Group(name.clone());
                events.extend(step_slot(
                    rules,
                    index,
                    subject,
                    &mut self.groups.slots[at * rule_count + index],
                    condition,
                    observed,
                    self.round,
                    now_ms,
                ));
            }
        }
    }

    /// Steps the composites of every host visited, from its parts' states of this round.
    fn step_composites(&mut self, now_ms: u64, events: &mut Vec<AlarmEvent>) {
        let rules = &self.rules;
        let rule_count = rules.rules.len();
        let round = self.round;
        let composite_count = self.plan.composites.len();
        if composite_count == 0 {
            return;
        }
        for (visit_number, visit) in self.visits.iter().enumerate() {
            let host = visit.host as usize;
            let applies = &self.composite_applies[visit_number * composite_count..][..composite_count];
            for (&index, _) in self.plan.composites.iter().zip(applies).filter(|(_, &a)| a) {
                let Condition::Composite { all, rules: parts } = &rules.rules[index].condition else {
                    continue;
                };
                let host_slots = &self.hosts.slots[host * rule_count..(host + 1) * rule_count];
                let firing = |part: &usize| {
                    let slot = match rules.rules[*part].condition {
                        Condition::Percentile {
                            across: Across::Group,
                            ..
                        } => (visit.group != NO_GROUP && self.groups.live[visit.group as usize])
                            .then(|| &self.groups.slots[visit.group as usize * rule_count + *part]),
                        _ => Some(&host_slots[*part]),
                    };
                    slot.is_some_and(|s| s.round == round && s.state.is_firing())
                };
                let holds = if *all {
                    parts.iter().all(firing)
                } else {
                    parts.iter().any(firing)
                };
                let name = &self.hosts.names[host];
                let subject = || Subject::Host(name.clone());
                events.extend(step_slot(
                    rules,
                    index,
                    subject,
                    &mut self.hosts.slots[host * rule_count + index],
                    holds,
                    None,
                    round,
                    now_ms,
                ));
            }
        }
    }

    /// Slots not evaluated this round: their host vanished or left the rule's scope. Then subjects with
    /// nothing left to say are dropped.
    fn step_unvisited(&mut self, now_ms: u64, events: &mut Vec<AlarmEvent>) {
        let rules = &self.rules;
        let rule_count = rules.rules.len();
        let round = self.round;
        for (is_host, subjects) in [(true, &mut self.hosts), (false, &mut self.groups)] {
            for id in 0..subjects.names.len() {
                if !subjects.live[id] {
                    continue;
                }
                let slots = &mut subjects.slots[id * rule_count..(id + 1) * rule_count];
                for (index, slot) in slots.iter_mut().enumerate() {
                    if slot.round != round && slot.state != AlarmState::Inactive {
                        let name = &subjects.names[id];
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
                if !slots
                    .iter()
                    .any(|s| s.round == round || s.state != AlarmState::Inactive)
                {
                    subjects.live[id] = false;
                }
            }
        }
        for id in 0..self.hosts.names.len() as u32 {
            if self.hosts.interned[id as usize] && !self.hosts.live[id as usize] {
                self.hosts.forget(id);
            }
        }
        for id in 0..self.groups.names.len() as u32 {
            let at = id as usize;
            let sampled = self
                .group_samples
                .get(at)
                .is_some_and(|b| b.iter().any(|s| !s.is_empty()));
            if self.groups.interned[at] && !self.groups.live[at] && !sampled {
                self.groups.forget(id);
            }
        }
    }

    /// Every pending and firing alarm now, most severe first, then by rule and subject.
    pub fn active(&self) -> Vec<AlarmEvent> {
        let mut out = Vec::new();
        let rule_count = self.rules.rules.len();
        for (subjects, host_subjects) in [(&self.hosts, true), (&self.groups, false)] {
            for (id, name) in subjects.names.iter().enumerate() {
                if !subjects.live[id] {
                    continue;
                }
                let slots = &subjects.slots[id * rule_count..(id + 1) * rule_count];
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
                    out.push(self.with_detail(describe(&self.rules, index, &subject, slot, status)));
                }
            }
        }
        out.sort_by(|a, b| (b.severity, &a.rule, &a.subject).cmp(&(a.severity, &b.rule, &b.subject)));
        out
    }

    /// The state of one rule for one subject, `None` when the rule or subject is unknown.
    pub fn state_of(&self, rule: &str, subject: &Subject) -> Option<AlarmState> {
        let index = self.rules.index_of(rule)?;
        let (subjects, name) = match subject {
            Subject::Host(name) => (&self.hosts, name),
            Subject::Group(name) => (&self.groups, name),
        };
        let id = subjects.get(name)? as usize;
        Some(subjects.slots[id * self.rules.rules.len() + index].state)
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
    outliers: Option<&OutlierTracker>,
    now_ms: u64,
    runs_since: &mut impl FnMut(u64) -> Runs,
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
            let runs = runs_since(now_ms.saturating_sub(over_ms));
            let observed = window::percentile_of(host.history.parts(metric, &runs), quantile_pct, scratch);
            (observed.is_some_and(|v| op.holds(v, value)), observed)
        }
        Condition::RateOfChange {
            metric,
            over_ms,
            op,
            per_minute,
        } => {
            let runs = runs_since(now_ms.saturating_sub(over_ms));
            let observed = host.history.slope_in(metric, &runs);
            (observed.is_some_and(|v| op.holds(v, per_minute)), observed)
        }
        Condition::Outlier { metric } => {
            let flagged = outliers.is_some_and(|tracker| match metric {
                Some(metric) => tracker.is_flagged(&host.host, metric),
                None => tracker.host_flagged(&host.host),
            });
            (flagged, None)
        }
        Condition::Missing { grace_ms } => {
            let silent_ms = now_ms.saturating_sub(host.last_seen_ms);
            (silent_ms > grace_ms, Some(silent_ms as f64 / 1000.0))
        }
        Condition::ClockSkew { limit_ms } => match host.clock_offset_ms {
            Some(offset_ms) => (
                offset_ms.unsigned_abs() > limit_ms,
                Some(offset_ms as f64 / 1000.0),
            ),
            None => (false, None),
        },
        // Composites are evaluated by the caller from the other rules' states.
        Condition::Composite { .. } | Condition::Headroom { .. } => (false, None),
    }
}
