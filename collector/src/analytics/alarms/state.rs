//! The life of one alarm, per (rule, host or group): inactive → pending → firing → resolved → inactive.
//! Pure: the condition and the time come in, the next state and the transition come out.

use serde::Serialize;

/// Where an alarm is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum AlarmState {
    /// The condition does not hold.
    Inactive,
    /// The condition holds, for less than the rule's `for` duration so far.
    Pending { active_since_ms: u64 },
    /// The condition has held for at least `for`; whoever is paged has been told.
    Firing { active_since_ms: u64, fired_ms: u64 },
    /// The condition stopped holding after firing; kept for one evaluation so the resolution is delivered
    /// and shown, then the alarm goes back to inactive.
    Resolved { fired_ms: u64, resolved_ms: u64 },
}

/// A change worth telling someone about (or showing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transition {
    /// Inactive or resolved → pending.
    Pending,
    /// Pending (or, with `for` = 0, inactive) → firing.
    Firing,
    /// Firing → resolved.
    Resolved,
    /// Pending → inactive: the condition went away before `for` elapsed; nobody was paged.
    Cancelled,
}

impl AlarmState {
    /// The state after one evaluation in which the condition did or did not hold at `now_ms`.
    ///
    /// Resolved → inactive is silent: the resolution was announced when it happened. A condition that
    /// returns while resolved starts a new pending period, as a new alarm.
    pub fn step(self, condition: bool, for_ms: u64, now_ms: u64) -> (AlarmState, Option<Transition>) {
        match (self, condition) {
            (AlarmState::Inactive | AlarmState::Resolved { .. }, false) => (AlarmState::Inactive, None),
            (AlarmState::Inactive | AlarmState::Resolved { .. }, true) => {
                if for_ms == 0 {
                    (
                        AlarmState::Firing {
                            active_since_ms: now_ms,
                            fired_ms: now_ms,
                        },
                        Some(Transition::Firing),
                    )
                } else {
                    (
                        AlarmState::Pending {
                            active_since_ms: now_ms,
                        },
                        Some(Transition::Pending),
                    )
                }
            }
            (AlarmState::Pending { active_since_ms }, true) => {
                if now_ms.saturating_sub(active_since_ms) >= for_ms {
                    (
                        AlarmState::Firing {
                            active_since_ms,
                            fired_ms: now_ms,
                        },
                        Some(Transition::Firing),
                    )
                } else {
                    (self, None)
                }
            }
            (AlarmState::Pending { .. }, false) => (AlarmState::Inactive, Some(Transition::Cancelled)),
            (AlarmState::Firing { .. }, true) => (self, None),
            (AlarmState::Firing { fired_ms, .. }, false) => (
                AlarmState::Resolved {
                    fired_ms,
                    resolved_ms: now_ms,
                },
                Some(Transition::Resolved),
            ),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            AlarmState::Inactive => "inactive",
            AlarmState::Pending { .. } => "pending",
            AlarmState::Firing { .. } => "firing",
            AlarmState::Resolved { .. } => "resolved",
        }
    }

    pub fn is_firing(self) -> bool {
        matches!(self, AlarmState::Firing { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOR_MS: u64 = 120_000;

    #[test]
    fn inactive_stays_inactive_while_the_condition_is_false() {
        assert_eq!(
            AlarmState::Inactive.step(false, FOR_MS, 1_000),
            (AlarmState::Inactive, None)
        );
    }

    #[test]
    fn the_full_life_honours_for() {
        let (pending, t) = AlarmState::Inactive.step(true, FOR_MS, 10_000);
        assert_eq!(t, Some(Transition::Pending));
        assert_eq!(
            pending,
            AlarmState::Pending {
                active_since_ms: 10_000
            }
        );
        // One millisecond short of `for`: still pending, no transition.
        let (still, t) = pending.step(true, FOR_MS, 10_000 + FOR_MS - 1);
        assert_eq!((still, t), (pending, None));
        let (firing, t) = still.step(true, FOR_MS, 10_000 + FOR_MS);
        assert_eq!(t, Some(Transition::Firing));
        assert_eq!(
            firing,
            AlarmState::Firing {
                active_since_ms: 10_000,
                fired_ms: 10_000 + FOR_MS
            }
        );
        let (same, t) = firing.step(true, FOR_MS, 500_000);
        assert_eq!((same, t), (firing, None));
        let (resolved, t) = firing.step(false, FOR_MS, 600_000);
        assert_eq!(t, Some(Transition::Resolved));
        assert_eq!(
            resolved,
            AlarmState::Resolved {
                fired_ms: 10_000 + FOR_MS,
                resolved_ms: 600_000
            }
        );
        assert_eq!(
            resolved.step(false, FOR_MS, 601_000),
            (AlarmState::Inactive, None)
        );
    }

    #[test]
    fn a_blip_shorter_than_for_is_cancelled_without_firing() {
        let (pending, _) = AlarmState::Inactive.step(true, FOR_MS, 0);
        assert_eq!(
            pending.step(false, FOR_MS, 60_000),
            (AlarmState::Inactive, Some(Transition::Cancelled))
        );
    }

    #[test]
    fn zero_for_fires_at_once_and_a_return_after_resolving_starts_over() {
        let (firing, t) = AlarmState::Inactive.step(true, 0, 5_000);
        assert_eq!(t, Some(Transition::Firing));
        assert!(firing.is_firing());
        let (resolved, _) = firing.step(false, 0, 6_000);
        let (again, t) = resolved.step(true, FOR_MS, 7_000);
        assert_eq!(t, Some(Transition::Pending));
        assert_eq!(
            again,
            AlarmState::Pending {
                active_since_ms: 7_000
            }
        );
    }

    #[test]
    fn a_clock_that_steps_back_does_not_fire_early() {
        let (pending, _) = AlarmState::Inactive.step(true, FOR_MS, 100_000);
        assert_eq!(pending.step(true, FOR_MS, 50_000), (pending, None));
    }
}
