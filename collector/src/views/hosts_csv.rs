//! The host list as CSV: one flat record per host, its columns taken from the derived metrics' own
//! declaration (`HostMetrics`, whose scalar fields carry the metric catalogue's names) rather than listed
//! again here, so a metric added to the derivation and the catalogue appears without touching this file.

use crate::live::fleet::{HostStatus, HostView};
use serde::{Deserialize, Serialize};

/// The fields of a serializable value in declaration order, from its JSON form (serde writes a struct's
/// fields in order; the map visitor keeps that order, which `serde_json::Value` would sort away).
fn ordered_fields<T: Serialize>(value: &T) -> Vec<(String, serde_json::Value)> {
    struct Ordered(Vec<(String, serde_json::Value)>);
    impl<'de> Deserialize<'de> for Ordered {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct Fields;
            impl<'de> serde::de::Visitor<'de> for Fields {
                type Value = Ordered;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a record")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                    let mut fields = Vec::new();
                    while let Some(field) = map.next_entry()? {
                        fields.push(field);
                    }
                    Ok(Ordered(fields))
                }
            }
            deserializer.deserialize_map(Fields)
        }
    }
    let text = serde_json::to_string(value).expect("records serialize to JSON");
    serde_json::from_str::<Ordered>(&text)
        .expect("a record's JSON reads back")
        .0
}

/// The facts of a host ahead of its metrics in the CSV host list.
#[derive(Serialize)]
struct HostFacts<'a> {
    host: &'a str,
    status: HostStatus,
    connected: bool,
    group: &'a str,
    zone: &'a str,
    labels: String,
    cores: u32,
    memory_bytes: u64,
    interval_ms: u32,
    agent_version: &'a str,
    last_seen_ms: u64,
    last_sample_ms: Option<u64>,
    seq: Option<u64>,
}

/// The host's clock after its metrics in the CSV host list.
#[derive(Serialize)]
struct HostClock {
    clock_offset_ms: Option<i64>,
    clock_skewed: bool,
}

/// One host as a flat CSV record: its facts, then every derived value under its own name in
/// `HostMetrics` order (the catalogue's metrics among them, named as the catalogue names them), then its
/// clock. Nested values become one raw value: `listeners` is counted, any other list is joined with `;`
/// (`failed` as `cpu;network`), and a map (`tcp_states`) is left to JSON.
pub fn host_csv_record(host: &HostView) -> Vec<(String, serde_json::Value)> {
    use serde_json::Value;
    let facts = HostFacts {
        host: &host.host,
        status: host.status,
        connected: host.connected,
        group: &host.group,
        zone: &host.zone,
        labels: host
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";"),
        cores: host.cores,
        memory_bytes: host.memory_bytes,
        interval_ms: host.interval_ms,
        agent_version: &host.agent_version,
        last_seen_ms: host.last_seen_ms,
        last_sample_ms: host.last_sample_ms,
        seq: host.seq,
    };
    let metrics = ordered_fields(&host.metrics)
        .into_iter()
        .filter_map(|(name, value)| match value {
            Value::Object(_) => None,
            Value::Array(items) if name == "listeners" => Some((name, Value::from(items.len()))),
            Value::Array(items) => {
                let names: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
                Some((name, Value::String(names.join(";"))))
            }
            scalar => Some((name, scalar)),
        });
    let clock = HostClock {
        clock_offset_ms: host.clock_offset_ms,
        clock_skewed: host.clock_skewed,
    };
    ordered_fields(&facts)
        .into_iter()
        .chain(metrics)
        .chain(ordered_fields(&clock))
        .collect()
}

/// A host with nothing known, for the header of an empty host list.
fn blank_host() -> HostView {
    HostView {
        host: String::new(),
        status: HostStatus::Down,
        connected: false,
        disconnected_ms: None,
        group: String::new(),
        zone: String::new(),
        labels: Default::default(),
        cores: 0,
        memory_bytes: 0,
        interval_ms: 0,
        agent_version: String::new(),
        last_seen_ms: 0,
        last_sample_ms: None,
        seq: None,
        clock_offset_ms: None,
        clock_skewed: false,
        metrics: Default::default(),
    }
}

/// The host list as CSV: the header (when `header`, also for no hosts) and one record per host.
pub fn render(hosts: &[HostView], header: bool) -> String {
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    if header {
        let names: Vec<String> = match hosts.first() {
            Some(host) => host_csv_record(host),
            None => host_csv_record(&blank_host()),
        }
        .into_iter()
        .map(|(name, _)| name)
        .collect();
        writer.write_record(&names).expect("writing to memory");
    }
    for host in hosts {
        let values: Vec<serde_json::Value> = host_csv_record(host).into_iter().map(|(_, v)| v).collect();
        writer.serialize(values).expect("flat records serialize to CSV");
    }
    String::from_utf8(writer.into_inner().expect("writing to memory")).expect("csv is utf-8")
}
