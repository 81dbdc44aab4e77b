//! The engine's part of `headroom` rules: stepping each group's alarm from its verdict (the pure sizing of
//! its live load, or the forecast digest, in `alarms::headroom`) and carrying the verdict's sentence in the
//! alarm's description.

use super::super::headroom;
use super::super::Condition;
use super::{step_slot, AlarmEngine, AlarmEvent, Subject};

impl AlarmEngine {
    /// A headroom alarm carries its verdict's sentence (binding resource, worst loss, hosts to add) as its
    /// description, and in its summary unless the rule has its own.
    pub(super) fn with_detail(&self, mut event: AlarmEvent) -> AlarmEvent {
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

    /// Steps every headroom rule of every group one of whose hosts it applies to: the live variant sizes
    /// the hosts gathered in this round, the forecast variant reads the digest.
    pub(super) fn step_headroom(&mut self, now_ms: u64, events: &mut Vec<AlarmEvent>) {
        let rule_count = self.rules.rules.len();
        let members = std::mem::take(&mut self.headroom_members);
        for (&(group, index), hosts) in &members {
            let at = group as usize;
            let Condition::Headroom { over_ms, within_days } = self.rules.rules[index].condition else {
                continue;
            };
            let name = self.groups.names[at].clone();
            let verdict = match within_days {
                Some(days) => {
                    // Reports name the hosts without a group label as a group of their own.
                    let reported = if name.is_empty() {
                        crate::sizing::UNGROUPED
                    } else {
                        &name
                    };
                    headroom::forecast_verdict(self.forecast.as_ref(), reported, days, now_ms)
                }
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
                .insert((name.clone(), index), verdict.detail);
            events.extend(step_slot(
                &self.rules,
                index,
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
}
