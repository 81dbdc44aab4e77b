//! Alarm rules: the TOML file (deploy/alarms.toml documents it) read into a raw form and validated, without
//! IO, into typed [`Rule`]s; the state machine, the evaluation and the delivery live in the submodules.
//!
//! Kinds: `threshold` (latest value against a limit), `percentile` (a percentile of a host's or a group's
//! samples over a window), `rate_of_change` (least-squares slope per minute over a window), `outlier` (the
//! peer-outlier tracker flags the host), `missing` (the host has been silent longer than a grace period),
//! `clock_skew` (the host's clock is further from the collector's than a limit), `headroom` (a group's live
//! load is past the level at which it survives its worst loss, or the forecast says it will be within N days)
//! and `composite` (all or any of other rules firing for the host).

pub mod deliver;
pub mod eval;
pub mod forecast_refresh;
pub mod headroom;
mod rules;
pub mod state;

use crate::metrics::Metric;
use rules::{line_of, validate, RawFile};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

pub use eval::{AlarmEngine, AlarmEvent, AlarmStatus, EvalInputs, HostHistory, KeptMetrics, Subject};
pub use state::{AlarmState, Transition};

/// What evaluation knows about one host.
#[derive(Debug, Clone)]
pub struct HostInput {
    pub host: String,
    /// Shared with the live view's entry of the host: one copy per host, not one per reader (issue 12).
    pub labels: Arc<BTreeMap<String, String>>,
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
    /// Established connections per listening port, per minute, for live `headroom` rules (kept only
    /// when such a rule exists).
    pub ports: headroom::PortMinutes,
}

/// Placeholders a summary template may use.
pub const SUMMARY_PLACEHOLDERS: &[&str] = &[
    "host",
    "group",
    "rule",
    "metric",
    "value",
    "threshold",
    "severity",
];

/// Longest `for`, window or grace period a rule may ask for; the collector keeps at most this much recent
/// data for evaluation.
pub const MAX_RULE_DURATION_MS: u64 = 24 * 3_600_000;

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("alarm rules {path}: cannot read: {detail} (copy deploy/alarms.toml there, or fix the path)")]
    Read { path: String, detail: String },
    #[error("alarm rules {origin}: line {line}: {message}")]
    Syntax {
        origin: String,
        line: usize,
        message: String,
    },
    #[error("alarm rules {origin}: line {line}: rule \"{rule}\": {key}: {problem}")]
    Invalid {
        origin: String,
        line: usize,
        rule: String,
        key: String,
        problem: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Comparison of an observed value with the rule's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Above,
    AtLeast,
    Below,
    AtMost,
}

impl Op {
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Above => ">",
            Op::AtLeast => ">=",
            Op::Below => "<",
            Op::AtMost => "<=",
        }
    }

    pub fn holds(self, observed: f64, limit: f64) -> bool {
        match self {
            Op::Above => observed > limit,
            Op::AtLeast => observed >= limit,
            Op::Below => observed < limit,
            Op::AtMost => observed <= limit,
        }
    }
}

/// Whose samples a percentile is taken over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Across {
    /// Each host's own samples; one alarm per host.
    Host,
    /// All samples of all hosts sharing the group label value; one alarm per group.
    Group,
}

/// What a rule watches.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Threshold {
        metric: Metric,
        op: Op,
        value: f64,
    },
    Percentile {
        metric: Metric,
        /// In percent, e.g. 99.9.
        quantile_pct: f64,
        over_ms: u64,
        across: Across,
        op: Op,
        value: f64,
    },
    RateOfChange {
        metric: Metric,
        over_ms: u64,
        op: Op,
        /// Change of the metric per minute, in the metric's unit.
        per_minute: f64,
    },
    Outlier {
        /// `None`: any metric of the host.
        metric: Option<Metric>,
    },
    Missing {
        grace_ms: u64,
    },
    /// The host's clock is further than this from the collector's, either way (its samples are still stored,
    /// at corrected times).
    ClockSkew {
        limit_ms: u64,
    },
    /// The group's load would no longer survive its worst loss: sized live over `over_ms`, or, with
    /// `within_days`, forecast to become unsafe within that many days (from a cached sizing report).
    Headroom {
        over_ms: u64,
        within_days: Option<f64>,
    },
    Composite {
        /// True: every listed rule must fire; false: any one.
        all: bool,
        /// Indices into [`RuleSet::rules`].
        rules: Vec<usize>,
    },
}

impl Condition {
    pub fn kind(&self) -> &'static str {
        match self {
            Condition::Threshold { .. } => "threshold",
            Condition::Percentile { .. } => "percentile",
            Condition::RateOfChange { .. } => "rate_of_change",
            Condition::Outlier { .. } => "outlier",
            Condition::Missing { .. } => "missing",
            Condition::ClockSkew { .. } => "clock_skew",
            Condition::Headroom { .. } => "headroom",
            Condition::Composite { .. } => "composite",
        }
    }

    /// The metric it watches, when there is one.
    pub fn metric(&self) -> Option<Metric> {
        match self {
            Condition::Threshold { metric, .. }
            | Condition::Percentile { metric, .. }
            | Condition::RateOfChange { metric, .. } => Some(*metric),
            Condition::Outlier { metric } => *metric,
            Condition::Missing { .. }
            | Condition::ClockSkew { .. }
            | Condition::Headroom { .. }
            | Condition::Composite { .. } => None,
        }
    }
}

/// One validated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub severity: Severity,
    /// How long the condition must hold before the alarm fires.
    pub for_ms: u64,
    /// A URL or a short text telling whoever is paged what to do.
    pub runbook: String,
    pub summary: Option<String>,
    /// Label matchers: the rule applies to hosts whose labels have every one of these values.
    pub scope: BTreeMap<String, String>,
    pub condition: Condition,
    /// Line of the rule in its file, for messages.
    pub line: usize,
}

impl Rule {
    pub fn applies_to(&self, labels: &BTreeMap<String, String>) -> bool {
        self.scope
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
    }
}

/// Every rule of a file, in an order where a composite comes after the rules it names.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    /// Label whose value names a host's group (for `across = "group"`).
    pub group_label: String,
    /// Rule indices, composites after their parts.
    pub order: Vec<usize>,
    /// One line per deprecated name the file used (still accepted); whoever loads the file logs them.
    pub warnings: Vec<String>,
}

impl RuleSet {
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.rules.iter().position(|r| r.name == name)
    }
}

/// Reads and validates the rules file at `path`.
pub fn load(path: &Path) -> Result<RuleSet, RulesError> {
    let text = std::fs::read_to_string(path).map_err(|e| RulesError::Read {
        path: path.display().to_string(),
        detail: e.to_string(),
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses and validates rules text; `origin` names the file in messages.
pub fn parse(text: &str, origin: &str) -> Result<RuleSet, RulesError> {
    let raw: RawFile = toml::from_str(text).map_err(|error| RulesError::Syntax {
        origin: origin.to_string(),
        line: error.span().map_or(1, |span| line_of(text, span.start)),
        message: error
            .message()
            .lines()
            .next()
            .unwrap_or_default()
            .replace('`', "\""),
    })?;
    validate(raw, text, origin)
}

/// Fills a validated template; `value_of` returns the text for a placeholder name.
pub fn render_template(template: &str, value_of: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                out.push_str(&value_of(&after[..close]));
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests;
