//! The rules file as written (`RawFile`, `RawRule`) and its validation into a [`RuleSet`]: every kind's
//! keys, metric names (current or deprecated, with a warning), templates, scopes, composites and their
//! evaluation order.

use super::*;
use crate::metrics::Lookup;
use serde::Deserialize;
use std::cell::RefCell;

/// 1-based line of a byte offset.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    /// Label whose value names a host's group. Default "group".
    group_label: Option<String>,
    /// The rules, as `[[rule]]` tables.
    #[serde(default)]
    rule: Vec<toml::Spanned<RawRule>>,
}

/// One `[[rule]]` table: every key of every kind, checked against the kind during validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    /// Unique name; becomes the alert's `alertname`.
    name: String,
    /// threshold | percentile | rate_of_change | outlier | missing | clock_skew | headroom | composite.
    kind: String,
    /// info | warning | critical.
    severity: String,
    /// How long the condition must hold before firing, like "2m"; "0s" fires at once.
    #[serde(rename = "for")]
    for_duration: String,
    /// URL or text for whoever is paged.
    runbook: String,
    /// One line with placeholders such as {host} and {value}.
    summary: Option<String>,
    /// Label matchers, like { group = "web" }.
    #[serde(default)]
    scope: BTreeMap<String, String>,
    /// Metric name (threshold, percentile, rate_of_change, optional for outlier).
    metric: Option<String>,
    /// One of > >= < <= (threshold, percentile, rate_of_change).
    op: Option<String>,
    /// The limit (threshold, percentile) or the change per minute (rate_of_change).
    value: Option<f64>,
    /// Percentile in percent, like 99.9 (percentile).
    quantile: Option<f64>,
    /// Window, like "5m" (percentile, rate_of_change; headroom: the live load's window, default "15m").
    over: Option<String>,
    /// Forecast horizon of a headroom rule, like "30d": fires when the group becomes unsafe within it.
    within: Option<String>,
    /// host | group (percentile). Default host.
    across: Option<String>,
    /// Silence tolerated before a host counts as missing, like "30s" (missing).
    grace: Option<String>,
    /// Largest clock offset tolerated, either way, like "5m" (clock_skew).
    limit: Option<String>,
    /// Names of rules that must all fire (composite).
    all: Option<Vec<String>>,
    /// Names of rules of which one must fire (composite).
    any: Option<Vec<String>>,
}

struct Checker<'a> {
    origin: &'a str,
    line: usize,
    rule: String,
    /// Deprecation warnings gathered while checking, one line each.
    warnings: &'a RefCell<Vec<String>>,
}

impl Checker<'_> {
    fn error(&self, key: &str, problem: impl Into<String>) -> RulesError {
        RulesError::Invalid {
            origin: self.origin.to_string(),
            line: self.line,
            rule: self.rule.clone(),
            key: key.to_string(),
            problem: problem.into(),
        }
    }

    fn required<T>(&self, key: &str, kind: &str, value: Option<T>) -> Result<T, RulesError> {
        value.ok_or_else(|| {
            self.error(
                key,
                format!("missing; a {kind} rule needs {key} (see deploy/alarms.toml)"),
            )
        })
    }

    fn duration(&self, key: &str, text: &str, allow_zero: bool) -> Result<u64, RulesError> {
        let parsed = humantime::parse_duration(text).map_err(|e| {
            self.error(
                key,
                format!("\"{text}\" is not a duration ({e}); write it like \"90s\" or \"5m\""),
            )
        })?;
        let ms = u64::try_from(parsed.as_millis()).unwrap_or(u64::MAX);
        if (!allow_zero && ms == 0) || ms > MAX_RULE_DURATION_MS {
            let least = if allow_zero { "0s" } else { "1s" };
            return Err(self.error(key, format!("\"{text}\" is out of range (use {least} to 24h)")));
        }
        Ok(ms)
    }

    /// Any metric of the catalogue, by its name or a deprecated one (which adds a warning).
    fn metric(&self, name: &str) -> Result<Metric, RulesError> {
        match Metric::lookup(name) {
            Some(Lookup::Current(metric)) => Ok(metric),
            Some(Lookup::Deprecated(metric)) => {
                self.warnings.borrow_mut().push(format!(
                    "{}: line {}: rule \"{}\": metric \"{name}\" is deprecated; write \"{metric}\"",
                    self.origin, self.line, self.rule
                ));
                Ok(metric)
            }
            None => Err(self.error(
                "metric",
                format!("unknown metric \"{name}\" (use one of {})", Metric::names()),
            )),
        }
    }

    fn op(&self, text: &str) -> Result<Op, RulesError> {
        match text {
            ">" => Ok(Op::Above),
            ">=" => Ok(Op::AtLeast),
            "<" => Ok(Op::Below),
            "<=" => Ok(Op::AtMost),
            other => Err(self.error(
                "op",
                format!("\"{other}\" is not a comparison (use >, >=, < or <=)"),
            )),
        }
    }

    fn finite(&self, key: &str, value: f64) -> Result<f64, RulesError> {
        if value.is_finite() {
            Ok(value)
        } else {
            Err(self.error(key, "must be a finite number"))
        }
    }
}

/// Keys each kind accepts besides the common ones.
fn kind_keys(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "threshold" => &["metric", "op", "value"],
        "percentile" => &["metric", "op", "value", "quantile", "over", "across"],
        "rate_of_change" => &["metric", "op", "value", "over"],
        "outlier" => &["metric"],
        "missing" => &["grace"],
        "clock_skew" => &["limit"],
        "headroom" => &["over", "within"],
        "composite" => &["all", "any"],
        _ => return None,
    })
}

pub(super) fn validate(raw: RawFile, text: &str, origin: &str) -> Result<RuleSet, RulesError> {
    let names: Vec<String> = raw.rule.iter().map(|r| r.get_ref().name.clone()).collect();
    let mut rules = Vec::with_capacity(raw.rule.len());
    let warnings = RefCell::new(Vec::new());
    for (index, spanned) in raw.rule.into_iter().enumerate() {
        let line = line_of(text, spanned.span().start);
        let r = spanned.into_inner();
        let check = Checker {
            origin,
            line,
            rule: r.name.clone(),
            warnings: &warnings,
        };
        if r.name.is_empty() || r.name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(check.error(
                "name",
                "must be non-empty, without spaces (use dashes or underscores)",
            ));
        }
        if names[..index].contains(&r.name) {
            return Err(check.error("name", "is used by an earlier rule; rule names must be unique"));
        }
        let Some(allowed) = kind_keys(&r.kind) else {
            return Err(check.error(
                "kind",
                format!(
                    "unknown kind \"{}\" (use threshold, percentile, rate_of_change, outlier, missing, clock_skew, headroom or composite)",
                    r.kind
                ),
            ));
        };
        let present = [
            ("metric", r.metric.is_some()),
            ("op", r.op.is_some()),
            ("value", r.value.is_some()),
            ("quantile", r.quantile.is_some()),
            ("over", r.over.is_some()),
            ("across", r.across.is_some()),
            ("grace", r.grace.is_some()),
            ("limit", r.limit.is_some()),
            ("within", r.within.is_some()),
            ("all", r.all.is_some()),
            ("any", r.any.is_some()),
        ];
        if let Some((key, _)) = present.iter().find(|(key, set)| *set && !allowed.contains(key)) {
            return Err(check.error(key, format!("does not apply to a {} rule; remove it", r.kind)));
        }
        let severity = match r.severity.as_str() {
            "info" => Severity::Info,
            "warning" => Severity::Warning,
            "critical" => Severity::Critical,
            other => {
                return Err(check.error(
                    "severity",
                    format!("\"{other}\" is unknown (use info, warning or critical)"),
                ))
            }
        };
        let for_ms = check.duration("for", &r.for_duration, true)?;
        if r.runbook.trim().is_empty() {
            return Err(check.error("runbook", "is empty; give a URL or a line saying what to do"));
        }
        if let Some(summary) = &r.summary {
            check_template(summary).map_err(|problem| check.error("summary", problem))?;
        }
        let kind = r.kind.as_str();
        let condition = match kind {
            "threshold" => Condition::Threshold {
                metric: check.metric(&check.required("metric", kind, r.metric)?)?,
                op: check.op(&check.required("op", kind, r.op)?)?,
                value: check.finite("value", check.required("value", kind, r.value)?)?,
            },
            "percentile" => {
                let quantile_pct = check.required("quantile", kind, r.quantile)?;
                if !(quantile_pct > 0.0 && quantile_pct <= 100.0) {
                    return Err(check.error(
                        "quantile",
                        format!("{quantile_pct} is out of range (use a percent in (0, 100], like 99.9)"),
                    ));
                }
                let across = match r.across.as_deref().unwrap_or("host") {
                    "host" => Across::Host,
                    "group" => Across::Group,
                    other => {
                        return Err(
                            check.error("across", format!("\"{other}\" is unknown (use host or group)"))
                        )
                    }
                };
                Condition::Percentile {
                    metric: check.metric(&check.required("metric", kind, r.metric)?)?,
                    quantile_pct,
                    over_ms: check.duration("over", &check.required("over", kind, r.over)?, false)?,
                    across,
                    op: check.op(&check.required("op", kind, r.op)?)?,
                    value: check.finite("value", check.required("value", kind, r.value)?)?,
                }
            }
            "rate_of_change" => Condition::RateOfChange {
                metric: check.metric(&check.required("metric", kind, r.metric)?)?,
                over_ms: check.duration("over", &check.required("over", kind, r.over)?, false)?,
                op: check.op(&check.required("op", kind, r.op)?)?,
                per_minute: check.finite("value", check.required("value", kind, r.value)?)?,
            },
            "outlier" => Condition::Outlier {
                metric: r.metric.as_deref().map(|m| check.metric(m)).transpose()?,
            },
            "missing" => Condition::Missing {
                grace_ms: check.duration("grace", &check.required("grace", kind, r.grace)?, false)?,
            },
            "clock_skew" => Condition::ClockSkew {
                limit_ms: check.duration("limit", &check.required("limit", kind, r.limit)?, false)?,
            },
            "headroom" => {
                if r.over.is_some() && r.within.is_some() {
                    return Err(check.error(
                        "within",
                        "a headroom rule watches the live load (over) or the forecast (within), not both; \
                         write two rules",
                    ));
                }
                let within_days = match &r.within {
                    None => None,
                    Some(text) => {
                        let days = humantime::parse_duration(text)
                            .map_err(|e| {
                                check.error(
                                    "within",
                                    format!("\"{text}\" is not a duration ({e}); write it like \"30d\""),
                                )
                            })?
                            .as_secs_f64()
                            / 86_400.0;
                        if !(1.0..=3650.0).contains(&days) {
                            return Err(check
                                .error("within", format!("\"{text}\" is out of range (use 1d to 3650d)")));
                        }
                        Some(days)
                    }
                };
                Condition::Headroom {
                    over_ms: match &r.over {
                        Some(text) => check.duration("over", text, false)?,
                        None => headroom::DEFAULT_OVER_MS,
                    },
                    within_days,
                }
            }
            _ => {
                let (all, parts) = match (r.all, r.any) {
                    (Some(parts), None) => (true, parts),
                    (None, Some(parts)) => (false, parts),
                    _ => {
                        return Err(check.error(
                            "all",
                            "a composite rule needs exactly one of all = [...] or any = [...]",
                        ))
                    }
                };
                let key = if all { "all" } else { "any" };
                if parts.is_empty() {
                    return Err(check.error(key, "is empty; name at least one rule"));
                }
                let mut indices = Vec::with_capacity(parts.len());
                for part in &parts {
                    if part == &r.name {
                        return Err(
                            check.error(key, "names the rule itself; a composite combines other rules")
                        );
                    }
                    let found = names.iter().position(|n| n == part).ok_or_else(|| {
                        check.error(
                            key,
                            format!("no rule is named \"{part}\" (check the spelling in this file)"),
                        )
                    })?;
                    indices.push(found);
                }
                Condition::Composite { all, rules: indices }
            }
        };
        rules.push(Rule {
            name: r.name,
            severity,
            for_ms,
            runbook: r.runbook.trim().to_string(),
            summary: r.summary,
            scope: r.scope,
            condition,
            line,
        });
    }
    let order = evaluation_order(&rules).map_err(|index| {
        let rule = &rules[index];
        RulesError::Invalid {
            origin: origin.to_string(),
            line: rule.line,
            rule: rule.name.clone(),
            key: "all/any".to_string(),
            problem: "composites refer to each other in a cycle; break the cycle".to_string(),
        }
    })?;
    let group_label = raw.group_label.unwrap_or_else(|| "group".to_string());
    if group_label.is_empty() {
        return Err(RulesError::Invalid {
            origin: origin.to_string(),
            line: 1,
            rule: String::new(),
            key: "group_label".to_string(),
            problem: "is empty; name the label that groups hosts, like \"group\"".to_string(),
        });
    }
    Ok(RuleSet {
        rules,
        group_label,
        order,
        warnings: warnings.into_inner(),
    })
}

/// Depth-first order with composites after their parts; `Err(index)` names a rule on a cycle.
fn evaluation_order(rules: &[Rule]) -> Result<Vec<usize>, usize> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Visiting,
        Done,
    }
    fn visit(index: usize, rules: &[Rule], marks: &mut [Mark], order: &mut Vec<usize>) -> Result<(), usize> {
        match marks[index] {
            Mark::Done => return Ok(()),
            Mark::Visiting => return Err(index),
            Mark::New => {}
        }
        marks[index] = Mark::Visiting;
        if let Condition::Composite { rules: parts, .. } = &rules[index].condition {
            for &part in parts {
                visit(part, rules, marks, order)?;
            }
        }
        marks[index] = Mark::Done;
        order.push(index);
        Ok(())
    }
    let mut marks = vec![Mark::New; rules.len()];
    let mut order = Vec::with_capacity(rules.len());
    for index in 0..rules.len() {
        visit(index, rules, &mut marks, &mut order)?;
    }
    Ok(order)
}

/// Checks that every `{placeholder}` of a summary template is known.
fn check_template(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("unclosed \"{{\" in \"{template}\" (close it, like {{host}})"))?;
        let name = &after[..close];
        if !SUMMARY_PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder {{{name}}} (use {})",
                SUMMARY_PLACEHOLDERS
                    .iter()
                    .map(|p| format!("{{{p}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}
