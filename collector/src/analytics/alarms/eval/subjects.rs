//! The engine's bookkeeping: which rules do what (`Plan`), and hosts or groups interned to small numbers
//! with one alarm slot per rule in a flat array (`Subjects`).

use std::collections::HashMap;

use super::super::state::AlarmState;
use super::super::{Across, Condition, Rule, RuleSet};

#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    pub(super) state: AlarmState,
    pub(super) value: Option<f64>,
    /// Evaluation round in which the slot was last evaluated with a real condition.
    pub(super) round: u64,
}

pub(super) const IDLE: Slot = Slot {
    state: AlarmState::Inactive,
    value: None,
    round: 0,
};

/// No group: the rules name no group-wide percentile, so hosts are not sorted into groups.
pub(super) const NO_GROUP: u32 = u32::MAX;

/// Which rules do what, worked out once from the rule set so the per-host loop only walks what applies.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    /// Rules judged per host from its own readings: everything but composites and group-wide percentiles.
    pub(super) host_rules: Vec<usize>,
    /// Group-wide percentiles.
    pub(super) group_rules: Vec<usize>,
    /// Headroom rules (one alarm per group).
    pub(super) headroom_rules: Vec<usize>,
    /// Composites, parts before the composites naming them.
    pub(super) composites: Vec<usize>,
    /// Whether the rule has a scope; a rule without one applies to every host.
    pub(super) scoped: Vec<bool>,
}

impl Plan {
    pub(super) fn new(rules: &RuleSet) -> Plan {
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
pub(super) struct Subjects {
    pub(super) index: HashMap<String, u32>,
    pub(super) names: Vec<String>,
    /// The number is in `index` (a group may be interned only to gather samples).
    pub(super) interned: Vec<bool>,
    /// The subject has alarm states: evaluated at least once and not yet dropped as idle.
    pub(super) live: Vec<bool>,
    pub(super) free: Vec<u32>,
    /// `rule_count` slots per number.
    pub(super) slots: Vec<Slot>,
}

impl Subjects {
    pub(super) fn intern(&mut self, name: &str, rule_count: usize) -> u32 {
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
    pub(super) fn intern_hinted(&mut self, hint: Option<u32>, name: &str, rule_count: usize) -> u32 {
        match hint {
            Some(id) if self.interned.get(id as usize) == Some(&true) && self.names[id as usize] == name => {
                id
            }
            _ => self.intern(name, rule_count),
        }
    }

    pub(super) fn forget(&mut self, id: u32) {
        let at = id as usize;
        self.index.remove(&self.names[at]);
        self.interned[at] = false;
        self.live[at] = false;
        self.free.push(id);
    }

    pub(super) fn get(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied().filter(|&id| self.live[id as usize])
    }
}

/// One host visited in the current evaluation, for the composites that run after the groups.
#[derive(Debug, Clone, Copy)]
pub(super) struct Visit {
    pub(super) host: u32,
    pub(super) group: u32,
}
