//! How the views show a metric, declared with it in the catalogue: its short column header, its title on
//! web pages, its place among the metrics a table or page lists, and where it appears (the `hosts` table,
//! the fleet page's rows and charts, the group page's columns, the host page's charts). The views iterate
//! these declarations, so a metric shows everywhere its entry says and nowhere else.
//!
//! Also here: [`Key`] and [`Values`], a few metrics' values under their JSON names, which the web pages and
//! the host history rows carry flat in their JSON (`"cpu_busy_p99": 12.5`).

use super::{Metric, Stat, Storage, Unit, CATALOGUE};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};

/// How the views show one metric.
#[derive(Debug)]
pub struct Show {
    /// A short name: the `hosts` table's column header and the group page's `?sort=` key (`cpu`, `estab`).
    pub short: &'static str,
    /// What a web page calls it, with the unit a bare number there needs (`CPU busy %`, `Rx B/s`).
    pub title: &'static str,
    /// Position among the metrics a table or page lists, smallest first. The catalogue's own order is the
    /// storage order, which only grows at the end; this one is chosen for reading.
    pub order: u8,
    /// Where the metric appears besides the views that show every metric (`fleet --by`, `--window`, JSON
    /// and CSV host lists, export, alarms).
    pub places: &'static [Place],
}

/// A view that shows only some metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// A column of the `hosts` table in the terminal.
    HostsTable,
    /// A column of the web fleet page's rows with this statistic across the row's hosts (a column of the
    /// live summary), charted over the last hour.
    FleetPage(Stat),
    /// A sortable column of the web group page's host table.
    GroupPage,
    /// Charted on the web host page from the host's raw samples of the last hour.
    HostLastHour,
    /// Charted on the web host page from its hourly rollups of the last 30 days (hourly mean; the JSON
    /// also carries the hour's highest sample).
    HostDays,
}

impl Place {
    /// The same kind of place, whatever its statistic.
    fn same_kind(self, other: Place) -> bool {
        std::mem::discriminant(&self) == std::mem::discriminant(&other)
    }
}

/// The metrics shown in `place` (a place of that kind: a [`Place::FleetPage`] of any statistic), in display
/// order, each with the place as declared.
fn shown_in(place: Place) -> Vec<(Metric, Place)> {
    let mut shown: Vec<(Metric, Place)> = CATALOGUE
        .iter()
        .flat_map(|def| {
            def.show
                .places
                .iter()
                .filter(move |p| p.same_kind(place))
                .map(move |p| (def.metric, *p))
        })
        .collect();
    shown.sort_by_key(|(metric, _)| metric.def().show.order);
    shown
}

/// The fleet page's columns: each metric placed there with its statistic across a row's hosts, in display
/// order.
pub fn fleet_page_columns() -> Vec<(Metric, Stat)> {
    shown_in(Place::FleetPage(Stat::P99))
        .into_iter()
        .filter_map(|(metric, place)| match place {
            Place::FleetPage(stat) => Some((metric, stat)),
            _ => None,
        })
        .collect()
}

/// The metrics shown in `place`, in display order.
pub fn metrics_in(place: Place) -> Vec<Metric> {
    shown_in(place).into_iter().map(|(metric, _)| metric).collect()
}

impl Stat {
    /// The statistic as a word in keys and titles.
    pub fn name(self) -> &'static str {
        match self {
            Stat::Mean => "mean",
            Stat::P50 => "p50",
            Stat::P99 => "p99",
            Stat::Max => "max",
            Stat::Sum => "sum",
        }
    }
}

impl Unit {
    /// What the largest value a chart's scale starts from: a share is drawn against its whole, anything
    /// else against its own data (with 1 as the least full scale).
    pub fn chart_floor(self) -> f64 {
        match self {
            Unit::Percent => 100.0,
            _ => 1.0,
        }
    }
}

/// A value as a bare number for a cell whose heading names the unit: `92.0`, `1.2 M` (bytes per second in
/// SI steps), `3.1`, `412`, `1.50`.
pub fn format_number(unit: Unit, value: f64) -> String {
    match unit {
        Unit::Percent | Unit::PerSecond => format!("{value:.1}"),
        Unit::Count => format!("{value:.0}"),
        Unit::Load => format!("{value:.2}"),
        Unit::Bytes | Unit::BytesPerSecond => {
            let magnitude = value.abs();
            if magnitude >= 1e9 {
                format!("{:.1} G", value / 1e9)
            } else if magnitude >= 1e6 {
                format!("{:.1} M", value / 1e6)
            } else if magnitude >= 1e3 {
                format!("{:.1} k", value / 1e3)
            } else {
                format!("{value:.0}")
            }
        }
    }
}

/// Which value of a metric a field holds: the metric itself (a host's sample), or a statistic of it
/// (across a row's hosts, or over an hour of one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub metric: Metric,
    pub stat: Option<Stat>,
}

impl Key {
    pub fn of(metric: Metric) -> Key {
        Key { metric, stat: None }
    }

    pub fn stat(metric: Metric, stat: Stat) -> Key {
        Key {
            metric,
            stat: Some(stat),
        }
    }

    /// The JSON name: the metric's name; for a statistic, the live summary's key when the catalogue
    /// declares that column (`cpu_busy_p99`), else the name and the statistic (`tcp_established_mean`).
    pub fn name(self) -> String {
        let def = self.metric.def();
        match self.stat {
            None => def.name.to_string(),
            Some(stat) => def
                .summary
                .iter()
                .find(|column| column.stat == stat)
                .map(|column| column.key.to_string())
                .unwrap_or_else(|| format!("{}_{}", def.name, stat.name())),
        }
    }

    /// Whether the value is written as an integer: the metric is stored as one and the statistic keeps
    /// whole numbers whole (everything but the mean).
    fn integer(self) -> bool {
        self.metric.def().storage == Storage::Integer && self.stat != Some(Stat::Mean)
    }

    /// The key of a JSON name, among every metric and statistic.
    fn from_name(name: &str) -> Option<Key> {
        const STATS: [Stat; 5] = [Stat::Mean, Stat::P50, Stat::P99, Stat::Max, Stat::Sum];
        Metric::ALL.into_iter().find_map(|metric| {
            std::iter::once(Key::of(metric))
                .chain(STATS.map(|stat| Key::stat(metric, stat)))
                .find(|key| key.name() == name)
        })
    }
}

/// Values of a few metrics, each under its [`Key`], in the order given. Serialized as flat fields (put
/// `#[serde(flatten)]` on it), `null` for a value not measured, integers for integer metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Values(pub Vec<(Key, Option<f64>)>);

impl Values {
    /// The value under `key`; `None` when absent or not measured.
    pub fn get(&self, key: Key) -> Option<f64> {
        self.0.iter().find(|(k, _)| *k == key).and_then(|(_, v)| *v)
    }

    /// The first value of `metric`, whatever its statistic.
    pub fn of_metric(&self, metric: Metric) -> Option<f64> {
        self.0
            .iter()
            .find(|(k, _)| k.metric == metric)
            .and_then(|(_, v)| *v)
    }
}

impl Serialize for Values {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            if key.integer() {
                map.serialize_entry(&key.name(), &value.map(|v| v.round() as u64))?;
            } else {
                map.serialize_entry(&key.name(), value)?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Values {
    /// Reads the fields that name a metric or one of its statistics; others (the page's own fields when
    /// flattened, or fields a newer collector added) are skipped.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = Values;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("metric values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Values, A::Error> {
                let mut values = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    match Key::from_name(&name) {
                        Some(key) => values.push((key, map.next_value::<Option<f64>>()?)),
                        None => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(Values(values))
            }
        }
        deserializer.deserialize_map(Fields)
    }
}
