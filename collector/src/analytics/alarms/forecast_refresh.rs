//! When the forecast behind `headroom` rules with `within` is recomputed from the database, and for which
//! groups, as pure data: the collector's task (`app/serve.rs`) gathers the groups in scope
//! ([`watched_group`] of each host), asks [`ForecastRefresh::plan`] with the time, runs the sizing it is
//! told to, and reports back with [`ForecastRefresh::record`]. The evaluation decides separately whether a digest is too old to act on
//! ([`super::headroom::forecast_verdict`]).

use std::collections::{BTreeMap, BTreeSet};

use super::{Condition, RuleSet};

/// How soon a failed refresh is tried again, doubling per failure in a row up to the refresh period; also
/// how soon a group that came into scope after the last refresh is sized.
pub const RETRY_MS: u64 = 60_000;

/// The group of a host with `labels` when a `headroom` rule with `within` applies to it (the rules' group
/// label; `""` for a host without it), else `None`.
pub fn watched_group<'a>(rules: &RuleSet, labels: &'a BTreeMap<String, String>) -> Option<&'a str> {
    let watched = rules.rules.iter().any(|rule| {
        matches!(
            rule.condition,
            Condition::Headroom {
                within_days: Some(_),
                ..
            }
        ) && rule.applies_to(labels)
    });
    watched.then(|| labels.get(&rules.group_label).map_or("", String::as_str))
}

/// Adds `group` to `groups` when it is `Some` and not there yet (allocating only then).
pub fn add_group(groups: &mut BTreeSet<String>, group: Option<&str>) {
    if let Some(group) = group {
        if !groups.contains(group) {
            groups.insert(group.to_string());
        }
    }
}

/// The refresh task's memory: its last attempt, its last success and the groups that one sized.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastRefresh {
    period_ms: u64,
    last_attempt_ms: Option<u64>,
    last_success_ms: Option<u64>,
    failures_in_a_row: u32,
    sized: BTreeSet<String>,
}

impl ForecastRefresh {
    /// A task that refreshes every `period_ms` once it has a forecast.
    pub fn new(period_ms: u64) -> ForecastRefresh {
        ForecastRefresh {
            period_ms,
            last_attempt_ms: None,
            last_success_ms: None,
            failures_in_a_row: 0,
            sized: BTreeSet::new(),
        }
    }

    /// The groups to size now, or `None` to wait. Nothing is sized while no host is in scope (no group to
    /// speak for). Otherwise a refresh is due at once the first time; after a failure, [`RETRY_MS`]
    /// doubling per failure in a row (at most the period); after a success, a period later, or a minute
    /// after it when a group in scope now was not sized then (a host came into scope), so a new group does
    /// not wait an hour for its first forecast.
    pub fn plan(&self, now_ms: u64, in_scope: &BTreeSet<String>) -> Option<BTreeSet<String>> {
        if in_scope.is_empty() {
            return None;
        }
        let due = match self.last_attempt_ms {
            None => true,
            Some(attempt_ms) => {
                let since_attempt_ms = now_ms.saturating_sub(attempt_ms);
                if self.failures_in_a_row > 0 {
                    let backoff_ms = RETRY_MS
                        .saturating_mul(1 << (self.failures_in_a_row - 1).min(20))
                        .min(self.period_ms);
                    since_attempt_ms >= backoff_ms
                } else {
                    let since_success_ms = self
                        .last_success_ms
                        .map_or(u64::MAX, |s| now_ms.saturating_sub(s));
                    since_success_ms >= self.period_ms
                        || (since_attempt_ms >= RETRY_MS && !in_scope.is_subset(&self.sized))
                }
            }
        };
        due.then(|| in_scope.clone())
    }

    /// The outcome of the refresh started at `started_ms` for `groups`.
    pub fn record(&mut self, started_ms: u64, groups: BTreeSet<String>, succeeded: bool) {
        self.last_attempt_ms = Some(started_ms);
        if succeeded {
            self.last_success_ms = Some(started_ms);
            self.failures_in_a_row = 0;
            self.sized = groups;
        } else {
            self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::alarms::parse;

    const HOUR_MS: u64 = 3_600_000;
    const T0_MS: u64 = 1_700_000_000_000;

    fn groups(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    fn forecast_groups(rules: &RuleSet, hosts: &[BTreeMap<String, String>]) -> BTreeSet<String> {
        let mut groups = BTreeSet::new();
        for labels in hosts {
            add_group(&mut groups, watched_group(rules, labels));
        }
        groups
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn issue_10_the_forecast_sizes_the_groups_a_within_rule_watches() {
        let rules = parse(
            r#"
[[rule]]
name = "soon"
kind = "headroom"
severity = "warning"
for = "0s"
runbook = "add hosts"
within = "30d"
scope = { tier = "front" }

[[rule]]
name = "live"
kind = "headroom"
severity = "critical"
for = "0s"
runbook = "add hosts"
"#,
            "alarms.toml",
        )
        .unwrap();
        let hosts = [
            labels(&[("group", "web"), ("tier", "front")]),
            labels(&[("group", "api"), ("tier", "front")]),
            labels(&[("group", "db"), ("tier", "store")]),
            labels(&[("tier", "front")]),
        ];
        // db is watched only by the live rule; the unlabelled front host is the group "".
        assert_eq!(forecast_groups(&rules, &hosts), groups(&["", "api", "web"]));
        let live_only = parse(
            "[[rule]]\nname = \"live\"\nkind = \"headroom\"\nseverity = \"info\"\nfor = \"0s\"\nrunbook = \"r\"\n",
            "alarms.toml",
        )
        .unwrap();
        assert!(forecast_groups(&live_only, &hosts).is_empty());
    }

    #[test]
    fn issue_10_refreshes_at_once_then_hourly_sooner_for_a_new_group_and_backs_off_after_failures() {
        let mut refresh = ForecastRefresh::new(HOUR_MS);
        let web = groups(&["web"]);
        // No host in scope: nothing to size, even the first time.
        assert_eq!(refresh.plan(T0_MS, &BTreeSet::new()), None);
        // The first refresh is at once.
        assert_eq!(refresh.plan(T0_MS, &web), Some(web.clone()));
        refresh.record(T0_MS, web.clone(), true);
        assert_eq!(refresh.plan(T0_MS + HOUR_MS - 1, &web), None);
        assert_eq!(refresh.plan(T0_MS + HOUR_MS, &web), Some(web.clone()));
        // A group that came into scope after the refresh is sized a minute after it, with the others.
        let both = groups(&["db", "web"]);
        assert_eq!(refresh.plan(T0_MS + RETRY_MS - 1, &both), None);
        assert_eq!(refresh.plan(T0_MS + RETRY_MS, &both), Some(both.clone()));
        refresh.record(T0_MS + RETRY_MS, both.clone(), true);
        // A group leaving scope needs no refresh.
        assert_eq!(refresh.plan(T0_MS + 2 * RETRY_MS, &web), None);

        // Failures: retried after 1, 2, 4 ... minutes, never later than the period; a success resets it.
        let started = T0_MS + RETRY_MS + HOUR_MS;
        assert_eq!(refresh.plan(started, &both), Some(both.clone()));
        refresh.record(started, both.clone(), false);
        assert_eq!(refresh.plan(started + RETRY_MS - 1, &both), None);
        assert_eq!(refresh.plan(started + RETRY_MS, &both), Some(both.clone()));
        let mut at = started;
        for failures in 1..=8u32 {
            let wait_ms = (RETRY_MS << (failures - 1)).min(HOUR_MS);
            assert_eq!(refresh.plan(at + wait_ms - 1, &both), None, "failure {failures}");
            assert!(refresh.plan(at + wait_ms, &both).is_some(), "failure {failures}");
            at += wait_ms;
            refresh.record(at, both.clone(), false);
        }
        assert_eq!(refresh.plan(at + HOUR_MS, &both), Some(both.clone()));
        refresh.record(at + HOUR_MS, both.clone(), true);
        assert_eq!(refresh.plan(at + HOUR_MS + RETRY_MS, &both), None);
        assert_eq!(refresh.plan(at + 2 * HOUR_MS, &both), Some(both));
    }
}
