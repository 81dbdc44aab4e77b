//! Tests of rule parsing, validation and evaluation, on an injected clock.

use super::*;
use crate::analytics::outliers::{HostWindow, MetricValues, OutlierSettings, OutlierTracker};

const T0_MS: u64 = 1_700_000_000_000;

const RULE_HEAD: &str = "severity = \"warning\"\nfor = \"0s\"\nrunbook = \"https://runbooks.invalid/x\"\n";

fn rules(body: &str) -> RuleSet {
    parse(body, "alarms.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn error_of(body: &str) -> String {
    parse(body, "alarms.toml").unwrap_err().to_string()
}

fn values(pairs: &[(Metric, f64)]) -> MetricValues {
    let mut v = MetricValues::default();
    for &(metric, value) in pairs {
        v.set(metric, Some(value));
    }
    v
}

fn host(name: &str, group: &str, last_seen_ms: u64) -> HostInput {
    HostInput {
        host: name.to_string(),
        labels: Arc::new([("group".to_string(), group.to_string())].into()),
        interval_ms: 1_000,
        last_seen_ms,
        clock_offset_ms: None,
        cores: 0,
        memory_bytes: 0,
        history: HostHistory::new(600),
        ports: Default::default(),
    }
}

fn inputs(hosts: &[HostInput]) -> EvalInputs<'_> {
    EvalInputs {
        hosts,
        outliers: None,
    }
}

#[test]
fn the_deploy_example_is_valid_and_uses_every_kind() {
    let set = parse(
        include_str!("../../../../deploy/alarms.toml"),
        "deploy/alarms.toml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let kinds: std::collections::BTreeSet<&str> = set.rules.iter().map(|r| r.condition.kind()).collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        [
            "clock_skew",
            "composite",
            "headroom",
            "missing",
            "outlier",
            "percentile",
            "rate_of_change",
            "threshold"
        ]
    );
    assert!(set.rules.iter().all(|r| !r.runbook.is_empty()));
    assert_eq!(set.group_label, "group");
    // The composite comes after both of its parts in evaluation order.
    let position = |name: &str| set.order.iter().position(|&i| set.rules[i].name == name).unwrap();
    assert!(position("hot-and-dropping") > position("cpu-saturated"));
    assert!(position("hot-and-dropping") > position("retransmits-high"));
    let retrans = &set.rules[set.index_of("retransmits-high").unwrap()];
    assert_eq!(retrans.scope.get("group").map(String::as_str), Some("web"));
    assert_eq!(retrans.line, 39, "the line of its [[rule]] header");
}

#[test]
fn mistakes_are_one_line_naming_file_line_rule_key_and_fix() {
    let text = format!("[[rule]]\nname = \"a\"\nkind = \"threshold\"\n{RULE_HEAD}metric = \"cpu_busy\"\nop = \">\"\nvalue = 1\n");
    let error = error_of(&text);
    assert!(
        error.starts_with("alarm rules alarms.toml: line 1: rule \"a\": metric: unknown metric \"cpu_busy\" (use one of cpu_busy_pct"),
        "{error}"
    );
    assert!(!error.contains('\n'));

    let unknown_key =
        format!("[[rule]]\nname = \"a\"\nkind = \"missing\"\n{RULE_HEAD}grace = \"30s\"\nthreshhold = 3\n");
    let error = error_of(&unknown_key);
    assert!(
        error.starts_with("alarm rules alarms.toml: line 8: unknown field \"threshhold\""),
        "{error}"
    );

    let wrong_kind_key =
        format!("[[rule]]\nname = \"a\"\nkind = \"missing\"\n{RULE_HEAD}grace = \"30s\"\nquantile = 99.0\n");
    assert!(error_of(&wrong_kind_key).contains("quantile: does not apply to a missing rule; remove it"));

    let missing_key =
        format!("\n\n[[rule]]\nname = \"b\"\nkind = \"percentile\"\n{RULE_HEAD}metric = \"load1\"\n");
    let error = error_of(&missing_key);
    assert!(
        error.contains("line 3: rule \"b\": quantile: missing; a percentile rule needs quantile"),
        "{error}"
    );

    let bad_duration = "[[rule]]\nname = \"a\"\nkind = \"missing\"\nseverity = \"info\"\nfor = \"soon\"\nrunbook = \"r\"\ngrace = \"1m\"\n";
    assert!(error_of(bad_duration).contains("for: \"soon\" is not a duration"));

    let bad_template = format!("[[rule]]\nname = \"a\"\nkind = \"missing\"\n{RULE_HEAD}grace = \"1m\"\nsummary = \"{{hots}} down\"\n");
    assert!(error_of(&bad_template).contains("summary: unknown placeholder {hots}"));

    let duplicate = format!(
        "[[rule]]\nname = \"a\"\nkind = \"missing\"\n{RULE_HEAD}grace = \"1m\"\n[[rule]]\nname = \"a\"\nkind = \"missing\"\n{RULE_HEAD}grace = \"1m\"\n"
    );
    assert!(error_of(&duplicate).contains("line 8: rule \"a\": name: is used by an earlier rule"));
}

#[test]
fn composites_must_name_existing_rules_without_cycles() {
    let dangling = format!("[[rule]]\nname = \"c\"\nkind = \"composite\"\n{RULE_HEAD}any = [\"nope\"]\n");
    assert!(error_of(&dangling).contains("any: no rule is named \"nope\""));
    let cycle = format!(
        "[[rule]]\nname = \"c\"\nkind = \"composite\"\n{RULE_HEAD}any = [\"d\"]\n\
         [[rule]]\nname = \"d\"\nkind = \"composite\"\n{RULE_HEAD}all = [\"c\"]\n"
    );
    assert!(error_of(&cycle).contains("in a cycle"), "{}", error_of(&cycle));
    let both =
        format!("[[rule]]\nname = \"c\"\nkind = \"composite\"\n{RULE_HEAD}any = [\"c\"]\nall = [\"c\"]\n");
    assert!(error_of(&both).contains("exactly one of all"));
}

#[test]
fn threshold_fires_after_for_and_resolves() {
    let set = rules(
        "[[rule]]\nname = \"hot\"\nkind = \"threshold\"\nseverity = \"critical\"\nfor = \"2s\"\n\
         runbook = \"https://runbooks.invalid/hot\"\nsummary = \"{host} at {value} over {threshold}\"\n\
         metric = \"cpu_busy_pct\"\nop = \">\"\nvalue = 90\n",
    );
    let mut engine = AlarmEngine::new(set);
    let mut hosts = vec![host("a", "web", T0_MS)];
    let mut statuses = Vec::new();
    for (second, cpu) in [95.0, 96.0, 97.0, 97.0, 40.0, 40.0].into_iter().enumerate() {
        let now_ms = T0_MS + second as u64 * 1_000;
        hosts[0]
            .history
            .push(now_ms, values(&[(Metric::CpuBusyPct, cpu)]));
        hosts[0].last_seen_ms = now_ms;
        for event in engine.evaluate(inputs(&hosts), now_ms) {
            statuses.push((second, event.status));
            if event.status == AlarmStatus::Firing {
                assert_eq!(event.summary, "a at 97.0% over 90.0%");
                assert_eq!(event.fired_ms, Some(T0_MS + 2_000));
                assert_eq!(event.active_since_ms, Some(T0_MS));
                assert_eq!(event.labels.get("host").map(String::as_str), Some("a"));
                assert_eq!(event.labels.get("alertname").map(String::as_str), Some("hot"));
            }
        }
    }
    assert_eq!(
        statuses,
        [
            (0, AlarmStatus::Pending),
            (2, AlarmStatus::Firing),
            (4, AlarmStatus::Resolved)
        ]
    );
    assert_eq!(
        engine.state_of("hot", &Subject::Host("a".into())),
        Some(AlarmState::Inactive)
    );
}

#[test]
fn a_stale_sample_does_not_keep_a_threshold_firing() {
    let set = rules(&format!(
        "[[rule]]\nname = \"hot\"\nkind = \"threshold\"\n{RULE_HEAD}metric = \"cpu_busy_pct\"\nop = \">\"\nvalue = 90\n"
    ));
    let mut engine = AlarmEngine::new(set);
    let mut hosts = vec![host("a", "web", T0_MS)];
    hosts[0]
        .history
        .push(T0_MS, values(&[(Metric::CpuBusyPct, 99.0)]));
    assert_eq!(
        engine.evaluate(inputs(&hosts), T0_MS)[0].status,
        AlarmStatus::Firing
    );
    let later = engine.evaluate(inputs(&hosts), T0_MS + 10_000);
    assert_eq!(later[0].status, AlarmStatus::Resolved);
}

#[test]
fn a_silent_host_fires_within_two_intervals_of_its_grace_period() {
    let set = rules(&format!(
        "[[rule]]\nname = \"silent\"\nkind = \"missing\"\n{RULE_HEAD}grace = \"30s\"\n"
    ));
    let mut engine = AlarmEngine::new(set);
    let silent_from_ms = T0_MS + 5_000;
    let mut fired_at = None;
    for second in 0..60_u64 {
        let now_ms = T0_MS + second * 1_000;
        let hosts = vec![
            host("a", "web", now_ms.min(silent_from_ms)),
            host("b", "web", now_ms),
        ];
        for event in engine.evaluate(inputs(&hosts), now_ms) {
            assert_eq!(event.subject, Subject::Host("a".into()), "only the silent host");
            if event.status == AlarmStatus::Firing {
                fired_at.get_or_insert(now_ms);
            }
        }
    }
    let fired_at = fired_at.expect("the silent host fired");
    let grace_end_ms = silent_from_ms + 30_000;
    assert!(
        fired_at > grace_end_ms && fired_at <= grace_end_ms + 2_000,
        "fired at +{} ms",
        fired_at - grace_end_ms
    );
    // It comes back: resolved at the next evaluation.
    let hosts = vec![host("a", "web", T0_MS + 60_000)];
    let events = engine.evaluate(inputs(&hosts), T0_MS + 60_000);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].status, AlarmStatus::Resolved);
    assert_eq!(events[0].resolved_ms, Some(T0_MS + 60_000));
}

#[test]
fn percentile_per_host_and_per_group() {
    let set = rules(&format!(
        "[[rule]]\nname = \"p99\"\nkind = \"percentile\"\n{RULE_HEAD}metric = \"retrans_per_s\"\nquantile = 99.0\n\
         over = \"5m\"\nop = \">\"\nvalue = 50\nscope = {{ group = \"web\" }}\n\
         [[rule]]\nname = \"gp50\"\nkind = \"percentile\"\n{RULE_HEAD}metric = \"retrans_per_s\"\nquantile = 50.0\n\
         over = \"5m\"\nacross = \"group\"\nop = \">\"\nvalue = 5\n"
    ));
    let mut engine = AlarmEngine::new(set);
    let now_ms = T0_MS + 600_000;
    let mut hosts = vec![
        host("a", "web", now_ms),
        host("b", "web", now_ms),
        host("c", "db", now_ms),
    ];
    for i in 0..300_u64 {
        let at_ms = now_ms - 299_000 + i * 1_000;
        // Host a has 2 % of its samples at 100/s: p99 sees them, a median would not.
        let a = if i % 50 == 0 { 100.0 } else { 1.0 };
        hosts[0].history.push(at_ms, values(&[(Metric::RetransPerS, a)]));
        hosts[1]
            .history
            .push(at_ms, values(&[(Metric::RetransPerS, 1.0)]));
        hosts[2]
            .history
            .push(at_ms, values(&[(Metric::RetransPerS, 9.0)]));
    }
    // An old spike outside the 5-minute window must not count.
    hosts[1].history = {
        let mut h = HostHistory::new(600);
        h.push(now_ms - 400_000, values(&[(Metric::RetransPerS, 1e6)]));
        for (at_ms, v) in hosts[1].history.since(Metric::RetransPerS, 0) {
            h.push(at_ms, values(&[(Metric::RetransPerS, v)]));
        }
        h
    };
    let mut events = engine.evaluate(inputs(&hosts), now_ms);
    events.sort_by(|x, y| (&x.rule, &x.subject).cmp(&(&y.rule, &y.subject)));
    let fired: Vec<(&str, &Subject)> = events.iter().map(|e| (e.rule.as_str(), &e.subject)).collect();
    assert_eq!(
        fired,
        [
            ("gp50", &Subject::Group("db".into())),
            ("p99", &Subject::Host("a".into()))
        ],
        "host c is out of the p99 rule's scope; only group db has a median above 5"
    );
    assert_eq!(events[0].labels.get("group").map(String::as_str), Some("db"));
    assert!(
        events[1]
            .description
            .starts_with("p99 of retrans_per_s over 5m of the host's samples is"),
        "{}",
        events[1].description
    );
}

#[test]
fn history_is_a_bounded_ring_searched_by_time() {
    let mut history = HostHistory::new(3);
    assert_eq!(history.latest(Metric::Load1), None);
    for i in 0..5_u64 {
        let mut v = values(&[(Metric::Load1, i as f64)]);
        if i == 4 {
            v.set(Metric::Load1, None);
        }
        history.push(T0_MS + i * 1_000, v);
    }
    assert_eq!(history.len(), 3);
    // The newest reading lacks the metric: no latest value, though it has a time.
    assert_eq!(history.latest(Metric::Load1), None);
    assert_eq!(history.latest_ms(), Some(T0_MS + 4_000));
    let kept: Vec<(u64, f64)> = history.since(Metric::Load1, 0).collect();
    assert_eq!(kept, [(T0_MS + 2_000, 2.0), (T0_MS + 3_000, 3.0)]);
    let recent: Vec<(u64, f64)> = history.since(Metric::Load1, T0_MS + 2_500).collect();
    assert_eq!(recent, [(T0_MS + 3_000, 3.0)]);
    assert_eq!(history.values_since(Metric::Load1, T0_MS + 5_000).count(), 0);
    // Wrapped around more than once: still oldest first across the seam.
    for i in 5..12_u64 {
        history.push(T0_MS + i * 1_000, values(&[(Metric::Load1, i as f64)]));
        let all: Vec<f64> = history.values_since(Metric::Load1, 0).collect();
        let expected: Vec<f64> = (i - 2..=i).filter(|&v| v != 4).map(|v| v as f64).collect();
        assert_eq!(all, expected, "after pushing {i}");
    }
}

#[test]
fn percentile_interpolates_and_slope_fits_a_line() {
    let mut v = vec![4.0, 1.0, 3.0, 2.0, 5.0];
    assert_eq!(eval::percentile(&mut v, 50.0), Some(3.0));
    assert_eq!(eval::percentile(&mut v, 100.0), Some(5.0));
    assert_eq!(eval::percentile(&mut v, 87.5), Some(4.5));
    assert_eq!(eval::percentile(&mut [], 50.0), None);
    let line = (0..10_u64).map(|i| (T0_MS + i * 30_000, 40.0 + i as f64 * 1.5));
    let slope = eval::slope_per_minute(line).unwrap();
    assert!((slope - 3.0).abs() < 1e-9, "{slope}");
    assert_eq!(eval::slope_per_minute([(T0_MS, 1.0)].into_iter()), None);
}

#[test]
fn rate_of_change_catches_a_climb_and_ignores_a_plateau() {
    let set = rules(&format!(
        "[[rule]]\nname = \"leak\"\nkind = \"rate_of_change\"\n{RULE_HEAD}metric = \"mem_used_pct\"\nover = \"10m\"\nop = \">\"\nvalue = 2\n"
    ));
    let mut engine = AlarmEngine::new(set);
    let now_ms = T0_MS + 600_000;
    let mut hosts = vec![host("leaky", "web", now_ms), host("steady", "web", now_ms)];
    for minute in 0..=10_u64 {
        let at_ms = T0_MS + minute * 60_000;
        hosts[0]
            .history
            .push(at_ms, values(&[(Metric::MemUsedPct, 40.0 + 3.0 * minute as f64)]));
        hosts[1]
            .history
            .push(at_ms, values(&[(Metric::MemUsedPct, 80.0 + (minute % 2) as f64)]));
    }
    let events = engine.evaluate(inputs(&hosts), now_ms);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].subject, Subject::Host("leaky".into()));
    assert!((events[0].value.unwrap() - 3.0).abs() < 1e-9);
}

#[test]
fn outlier_rules_follow_the_tracker_and_composites_follow_their_parts() {
    let set = rules(&format!(
        "[[rule]]\nname = \"odd\"\nkind = \"outlier\"\n{RULE_HEAD}metric = \"cpu_busy_pct\"\n\
         [[rule]]\nname = \"hot\"\nkind = \"threshold\"\n{RULE_HEAD}metric = \"cpu_busy_pct\"\nop = \">\"\nvalue = 80\n\
         [[rule]]\nname = \"both\"\nkind = \"composite\"\n{RULE_HEAD}all = [\"odd\", \"hot\"]\n"
    ));
    let mut tracker = OutlierTracker::new(OutlierSettings::default());
    let window = |odd_cpu: f64| -> Vec<HostWindow> {
        (0..6)
            .map(|i| HostWindow {
                host: format!("h{i}"),
                group: "web".into(),
                values: values(&[(
                    Metric::CpuBusyPct,
                    if i == 0 { odd_cpu } else { 30.0 + i as f64 * 0.2 },
                )]),
            })
            .collect()
    };
    for w in 0..5 {
        tracker.observe(&window(95.0), T0_MS + w * 60_000);
    }
    assert!(tracker.is_flagged("h0", Metric::CpuBusyPct));
    let mut engine = AlarmEngine::new(set);
    let now_ms = T0_MS + 300_000;
    let mut hosts: Vec<HostInput> = (0..6).map(|i| host(&format!("h{i}"), "web", now_ms)).collect();
    hosts[0]
        .history
        .push(now_ms, values(&[(Metric::CpuBusyPct, 95.0)]));
    hosts[1]
        .history
        .push(now_ms, values(&[(Metric::CpuBusyPct, 85.0)]));
    let events = engine.evaluate(
        EvalInputs {
            hosts: &hosts,
            outliers: Some(&tracker),
        },
        now_ms,
    );
    let mut fired: Vec<(String, String)> = events
        .iter()
        .map(|e| (e.rule.clone(), e.subject.name().to_string()))
        .collect();
    fired.sort();
    let expected: Vec<(String, String)> = [("both", "h0"), ("hot", "h0"), ("hot", "h1"), ("odd", "h0")]
        .iter()
        .map(|(r, h)| (r.to_string(), h.to_string()))
        .collect();
    assert_eq!(
        fired, expected,
        "h1 is hot but not odd, so the composite holds only for h0"
    );
    let active = engine.active();
    assert_eq!(active.len(), 4);
    assert!(active.iter().all(|a| a.status == AlarmStatus::Firing));
    // A host that vanishes from the inputs has its alarms resolved, not left firing.
    let events = engine.evaluate(
        EvalInputs {
            hosts: &hosts[2..],
            outliers: Some(&tracker),
        },
        now_ms + 1_000,
    );
    assert_eq!(events.len(), 4);
    assert!(events.iter().all(|e| e.status == AlarmStatus::Resolved));
    assert!(engine.active().is_empty());
}

#[test]
fn issue_10_headroom_rules_parse_with_their_errors() {
    let live = rules(&format!(
        "[[rule]]\nname = \"h\"\nkind = \"headroom\"\n{RULE_HEAD}"
    ));
    assert_eq!(
        live.rules[0].condition,
        Condition::Headroom {
            over_ms: 15 * 60_000,
            within_days: None
        }
    );
    let forecast = rules(&format!(
        "[[rule]]\nname = \"h\"\nkind = \"headroom\"\n{RULE_HEAD}within = \"30d\"\n"
    ));
    assert_eq!(
        forecast.rules[0].condition,
        Condition::Headroom {
            over_ms: 15 * 60_000,
            within_days: Some(30.0)
        }
    );
    let both = error_of(&format!(
        "[[rule]]\nname = \"h\"\nkind = \"headroom\"\n{RULE_HEAD}over = \"5m\"\nwithin = \"30d\"\n"
    ));
    assert!(
        both.contains(
            "within: a headroom rule watches the live load (over) or the forecast (within), not both"
        ),
        "{both}"
    );
    let far = error_of(&format!(
        "[[rule]]\nname = \"h\"\nkind = \"headroom\"\n{RULE_HEAD}within = \"20years\"\n"
    ));
    assert!(
        far.contains("within: \"20years\" is out of range (use 1d to 3650d)"),
        "{far}"
    );
    let metric = error_of(&format!(
        "[[rule]]\nname = \"h\"\nkind = \"headroom\"\n{RULE_HEAD}metric = \"cpu_busy_pct\"\n"
    ));
    assert!(
        metric.contains("metric: does not apply to a headroom rule"),
        "{metric}"
    );
}
