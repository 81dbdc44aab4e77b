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

mod window;

use super::headroom::{self, ForecastDigest, LiveHost};
use super::state::{AlarmState, Transition};
use super::{render_template, Across, Condition, Rule, RuleSet, Severity};
use crate::analytics::outliers::{Metric, OutlierTracker};
use crate::sizing::SizingConfig;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use window::Runs;
pub use window::{percentile, slope_per_minute, HostHistory};

/// A threshold compares the latest sample only while it is at most this many of the host's intervals old; a
/// silent host's last value is not a current value (the missing-data rule covers silence).
pub const FRESH_INTERVALS: u64 = 3;

/// What evaluation knows about one host.
#[derive(Debug, Clone)]
pub struct HostInput {
    pub host: String,
    pub labels: BTreeMap<String, String>,
    pub interval_ms: u32,
    /// When the collector last heard from the host.
    pub last_seen_ms: u64,
    /// How far the host's clock is ahead of the collector's (negative: behind), once estimated.
    pub clock_offset_ms: Option<i64>,
    /// Logical CPUs and physical memory from the host's hello; 0 until it has sent one (`headroom` rules
    /// leave such a host out).
    pub cores: u32,
    pub memory_bytes: u64,
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

/// No group: the rules name no group-wide percentile, so hosts are not sorted into groups.
const NO_GROUP: u32 = u32::MAX;

/// Which rules do what, worked out once from the rule set so the per-host loop only walks what applies.
#[derive(Debug, Clone)]
struct Plan {
    /// Rules judged per host from its own readings: everything but composites and group-wide percentiles.
    host_rules: Vec<usize>,
    /// Group-wide percentiles.
    group_rules: Vec<usize>,
    /// Headroom rules (one alarm per group).
    headroom_rules: Vec<usize>,
    /// Composites, parts before the composites naming them.
    composites: Vec<usize>,
    /// Whether the rule has a scope; a rule without one applies to every host.
    scoped: Vec<bool>,
}

impl Plan {
    fn new(rules: &RuleSet) -> Plan {
        let is_group = |rule: &Rule| {
            matches!(
                rule.condition,
                Condition::Percentile {
                    across: Across::Group,
                    ..
                }
            )
        };
        let is_composite = |rule: &Rule| matches!(rule.condition, Condition::Composite { .. });
        let is_headroom = |rule: &Rule| matches!(rule.condition, Condition::Headroom { .. });
        let indices = || rules.rules.iter().enumerate();
        Plan {
            host_rules: indices()
                .filter(|(_, r)| !is_group(r) && !is_composite(r) && !is_headroom(r))
                .map(|(i, _)| i)
                .collect(),
            group_rules: indices().filter(|(_, r)| is_group(r)).map(|(i, _)| i).collect(),
            headroom_rules: indices()
                .filter(|(_, r)| is_headroom(r))
                .map(|(i, _)| i)
                .collect(),
            composites: rules
                .order
                .iter()
                .copied()
                .filter(|&i| is_composite(&rules.rules[i]))
                .collect(),
            scoped: rules.rules.iter().map(|r| !r.scope.is_empty()).collect(),
        }
    }
}

/// Hosts or groups interned to small numbers, each with one slot per rule in a flat array, so the per-host
/// work indexes arrays instead of hashing names.
#[derive(Debug, Clone, Default)]
struct Subjects {
    index: HashMap<String, u32>,
    names: Vec<String>,
    /// The number is in `index` (a group may be interned only to gather samples).
    interned: Vec<bool>,
    /// The subject has alarm states: evaluated at least once and not yet dropped as idle.
    live: Vec<bool>,
    free: Vec<u32>,
    /// `rule_count` slots per number.
    slots: Vec<Slot>,
}

impl Subjects {
    fn intern(&mut self, name: &str, rule_count: usize) -> u32 {
        if let Some(&id) = self.index.get(name) {
            return id;
        }
        let id = match self.free.pop() {
            Some(id) => {
                let at = id as usize;
                self.names[at].clear();
                self.names[at].push_str(name);
                self.slots[at * rule_count..(at + 1) * rule_count].fill(IDLE);
                id
            }
            None => {
                self.names.push(name.to_string());
                self.interned.push(false);
                self.live.push(false);
                self.slots.extend(std::iter::repeat_n(IDLE, rule_count));
                (self.names.len() - 1) as u32
            }
        };
        self.interned[id as usize] = true;
        self.live[id as usize] = false;
        self.index.insert(name.to_string(), id);
        id
    }

    /// `hint` when it still names `name`, else the interned number of `name`.
    fn intern_hinted(&mut self, hint: Option<u32>, name: &str, rule_count: usize) -> u32 {
        match hint {
            Some(id) if self.interned.get(id as usize) == Some(&true) && self.names[id as usize] == name => {
                id
            }
            _ => self.intern(name, rule_count),
        }
    }

    fn forget(&mut self, id: u32) {
        let at = id as usize;
        self.index.remove(&self.names[at]);
        self.interned[at] = false;
        self.live[at] = false;
        self.free.push(id);
    }

    fn get(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied().filter(|&id| self.live[id as usize])
    }
}

/// One host visited in the current evaluation, for the composites that run after the groups.
#[derive(Debug, Clone, Copy)]
struct Visit {
    host: u32,
    group: u32,
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

    /// Whether any rule is a `headroom` rule with `within` (the caller then computes forecasts).
    pub fn wants_forecast(&self) -> bool {
        self.rules.rules.iter().any(|rule| {
            matches!(
                rule.condition,
                Condition::Headroom {
                    within_days: Some(_),
                    ..
                }
            )
        })
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

    /// A headroom alarm carries its verdict's sentence (binding resource, worst loss, hosts to add) as its
    /// description, and in its summary unless the rule has its own.
    fn with_detail(&self, mut event: AlarmEvent) -> AlarmEvent {
        if event.kind != "headroom" {
            return event;
        }
        let Some(index) = self.rules.index_of(&event.rule) else {
            return event;
        };
        if let Some(detail) = self
            .headroom_details
            .get(&(event.subject.name().to_string(), index))
        {
            event.description.clone_from(detail);
            if self.rules.rules[index].summary.is_none() {
                event.summary = format!("{} on {}: {detail}", event.rule, event.subject.name());
            }
        }
        event
    }

    /// Steps every headroom rule of every group one of whose hosts it applies to: the live variant sizes the
    /// hosts gathered in this round, the forecast variant reads the digest.
    fn step_headroom(&mut self, now_ms: u64, events: &mut Vec<AlarmEvent>) {
        let rule_count = self.rules.rules.len();
        let members = std::mem::take(&mut self.headroom_members);
        for ((group, index), hosts) in &members {
            let at = *group as usize;
            let Condition::Headroom { over_ms, within_days } = self.rules.rules[*index].condition else {
                continue;
            };
            let name = self.groups.names[at].clone();
            let verdict = match within_days {
                Some(days) => headroom::forecast_verdict(self.forecast.as_ref(), &name, days),
                None => {
                    let from_ms = now_ms.saturating_sub(over_ms);
                    match headroom::size_live_group(&name, hosts, from_ms, now_ms, &self.sizing) {
                        Some(report) => headroom::live_verdict(&report),
                        None => headroom::Verdict {
                            holds: false,
                            value: None,
                            detail: "no host of the group reported its capacity in the window".to_string(),
                        },
                    }
                }
            };
            self.groups.live[at] = true;
            self.headroom_details
                .insert((name.clone(), *index), verdict.detail);
            events.extend(step_slot(
                &self.rules,
                *index,
                || Subject::Group(name.clone()),
                &mut self.groups.slots[at * rule_count + index],
                verdict.holds,
                verdict.value,
                self.round,
                now_ms,
            ));
        }
        self.headroom_members = members;
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
        // Composites are evaluated by the caller from the other rules' states, headroom rules per group.
        Condition::Composite { .. } | Condition::Headroom { .. } => (false, None),
    }
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
