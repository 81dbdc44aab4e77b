//! Validation of what an agent sends before it touches the fleet state or the store: sequence, sizes, ranges
//! and names of a sample, and labels and capacity of a hello. Pure.
//!
//! A sample is never refused for its timestamp: a host with a wrong clock is one an operator wants to see, so
//! ingest places its samples on the collector's clock (`headroom_common::clock_offset`) and flags the host instead.

use headroom_common::wire::{
    Hello, Sample, MAX_CORES, MAX_INTERFACES, MAX_LABELS, MAX_LABEL_LEN, MAX_LISTENERS,
};
use std::collections::HashSet;

/// Longest interface name accepted, in bytes. Linux allows 15; other sources of names may be longer.
pub const MAX_INTERFACE_NAME_BYTES: usize = 64;

/// Accepted sampling intervals, in milliseconds.
pub const MIN_INTERVAL_MS: u32 = 100;
pub const MAX_INTERVAL_MS: u32 = 60_000;

/// How far a host's clock may be from the collector's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Past this offset (either way) a host's clock is wrong: it is logged and flagged in `hosts`; its samples
    /// are still stored, at corrected times.
    pub max_clock_skew_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_clock_skew_ms: 300_000,
        }
    }
}

/// Why a sample or a hello was refused. Each message is one line naming the field and the bad value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SampleError {
    #[error("sample seq {seq} was already received (it is the last seq)")]
    Duplicate { seq: u64 },
    #[error("sample seq {seq} is older than the last received seq {last_seq}")]
    OutOfOrder { seq: u64, last_seq: u64 },
    #[error("sample seq is 0, sequence numbers start at 1")]
    ZeroSeq,
    #[error("sample seq {seq}: {field} has {count} entries, over the limit of {max}")]
    TooMany {
        seq: u64,
        field: &'static str,
        count: usize,
        max: usize,
    },
    #[error("sample seq {seq}: {field} is {value}, outside {min}..={max}")]
    OutOfRange {
        seq: u64,
        field: &'static str,
        value: f64,
        min: f64,
        max: f64,
    },
    #[error("sample seq {seq}: {field} is {value}, not a finite number >= 0")]
    NotNonNegative {
        seq: u64,
        field: &'static str,
        value: f64,
    },
    #[error("sample seq {seq}: network interface name {name:?} {reason}")]
    BadInterfaceName {
        seq: u64,
        name: String,
        reason: &'static str,
    },
    #[error("sample seq {seq}: {field} {value} is over {total_field} {total}")]
    OverTotal {
        seq: u64,
        field: &'static str,
        value: u64,
        total_field: &'static str,
        total: u64,
    },
    #[error("hello: {count} labels, over the limit of {max}")]
    TooManyLabels { count: usize, max: usize },
    #[error("hello: label key {key:?} must be 1 to 63 of a-z, 0-9 and _")]
    BadLabelKey { key: String },
    #[error("hello: label {key:?}: {what} is {len} bytes, over the limit of {max}")]
    LabelTooLong {
        key: String,
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("hello: label {key:?}: value {value:?} contains a control character")]
    BadLabelValue { key: String, value: String },
    #[error("hello: capacity.cores is {cores}, outside 1..={max}")]
    Cores { cores: u32, max: usize },
    #[error("hello: capacity.memory_bytes is 0, the host's memory must be known")]
    ZeroMemory,
    #[error("hello: interval_ms is {interval_ms}, outside {min}..={max}")]
    Interval { interval_ms: u32, min: u32, max: u32 },
    #[error("hello: agent_version {version:?} is empty, over {max} bytes or has a control character")]
    BadAgentVersion { version: String, max: usize },
    #[error("hello: facts.{field} {value:?} is over {max} bytes or has a control character")]
    BadFact {
        field: &'static str,
        value: String,
        max: usize,
    },
}

impl SampleError {
    /// True for a sample the collector already has (a resend after a lost ack): drop it quietly, it is not an
    /// error of the agent.
    pub fn is_already_received(&self) -> bool {
        matches!(
            self,
            SampleError::Duplicate { .. } | SampleError::OutOfOrder { .. }
        )
    }
}

/// A value shortened for an error message, so a hostile megabyte-long name cannot flood the log.
fn shortened(text: &str) -> String {
    const SHOWN_CHARS: usize = 80;
    if text.chars().count() <= SHOWN_CHARS {
        text.to_string()
    } else {
        let mut short: String = text.chars().take(SHOWN_CHARS).collect();
        short.push('…');
        short
    }
}

fn check_interface_name(seq: u64, name: &str) -> Result<(), SampleError> {
    let reason = if name.is_empty() {
        Some("is empty")
    } else if name.len() > MAX_INTERFACE_NAME_BYTES {
        Some("is over 64 bytes")
    } else if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        Some("has a control or whitespace character")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(SampleError::BadInterfaceName {
            seq,
            name: shortened(name),
            reason,
        }),
        None => Ok(()),
    }
}

fn check_count(seq: u64, field: &'static str, count: usize, max: usize) -> Result<(), SampleError> {
    if count > max {
        return Err(SampleError::TooMany {
            seq,
            field,
            count,
            max,
        });
    }
    Ok(())
}

fn check_percent(seq: u64, field: &'static str, value: f32) -> Result<(), SampleError> {
    let value = f64::from(value);
    // NaN is outside every range, so it is refused here too.
    if !(0.0..=100.0).contains(&value) {
        return Err(SampleError::OutOfRange {
            seq,
            field,
            value,
            min: 0.0,
            max: 100.0,
        });
    }
    Ok(())
}

fn check_non_negative(seq: u64, field: &'static str, value: f32) -> Result<(), SampleError> {
    let value = f64::from(value);
    if !value.is_finite() || value < 0.0 {
        return Err(SampleError::NotNonNegative { seq, field, value });
    }
    Ok(())
}

fn check_not_over(
    seq: u64,
    (field, value): (&'static str, u64),
    (total_field, total): (&'static str, u64),
) -> Result<(), SampleError> {
    if value > total {
        return Err(SampleError::OverTotal {
            seq,
            field,
            value,
            total_field,
            total,
        });
    }
    Ok(())
}

/// Checks one sample against the host's last received sequence number and the wire limits.
pub fn validate_sample(sample: &Sample, last_seq: Option<u64>) -> Result<(), SampleError> {
    let seq = sample.seq;
    if seq == 0 {
        return Err(SampleError::ZeroSeq);
    }
    match last_seq {
        Some(last_seq) if seq == last_seq => return Err(SampleError::Duplicate { seq }),
        Some(last_seq) if seq < last_seq => return Err(SampleError::OutOfOrder { seq, last_seq }),
        _ => {}
    }

    if let Some(cpu) = &sample.cpu {
        check_count(seq, "cpu.per_core", cpu.per_core.len(), MAX_CORES)?;
        check_count(seq, "cpu.cores", cpu.cores as usize, MAX_CORES)?;
        if let Some(load) = cpu.load {
            check_non_negative(seq, "cpu.load.one", load.one)?;
            check_non_negative(seq, "cpu.load.five", load.five)?;
            check_non_negative(seq, "cpu.load.fifteen", load.fifteen)?;
        }
    }

    if let Some(memory) = &sample.memory {
        let total = ("memory.total_bytes", memory.total_bytes);
        check_not_over(seq, ("memory.available_bytes", memory.available_bytes), total)?;
        check_not_over(seq, ("memory.used_bytes", memory.used_bytes), total)?;
        check_not_over(
            seq,
            ("memory.swap_used_bytes", memory.swap_used_bytes),
            ("memory.swap_total_bytes", memory.swap_total_bytes),
        )?;
    }

    if let Some(pressure) = &sample.pressure {
        let lines = [
            ("pressure.cpu.some_avg10", pressure.cpu),
            ("pressure.memory.some_avg10", pressure.memory),
            ("pressure.io.some_avg10", pressure.io),
        ];
        for (field, line) in lines {
            if let Some(line) = line {
                check_percent(seq, field, line.some_avg10)?;
            }
        }
    }

    check_count(seq, "network", sample.network.len(), MAX_INTERFACES)?;
    // A name sent twice would be counted twice in the fleet's traffic. A host has a handful of interfaces,
    // compared pairwise; a set is built only for long lists.
    let mut names = (sample.network.len() > 16).then(|| HashSet::with_capacity(sample.network.len()));
    for (position, interface) in sample.network.iter().enumerate() {
        check_interface_name(seq, &interface.name)?;
        let repeated = match &mut names {
            Some(names) => !names.insert(interface.name.as_str()),
            None => sample.network[..position]
                .iter()
                .any(|earlier| earlier.name == interface.name),
        };
        if repeated {
            return Err(SampleError::BadInterfaceName {
                seq,
                name: interface.name.clone(),
                reason: "appears twice",
            });
        }
    }

    if let Some(sockets) = &sample.sockets {
        check_count(seq, "sockets.listeners", sockets.listeners.len(), MAX_LISTENERS)?;
    }
    Ok(())
}

/// Checks a hello's labels, capacity and interval.
pub fn validate_hello(hello: &Hello) -> Result<(), SampleError> {
    if hello.labels.len() > MAX_LABELS {
        return Err(SampleError::TooManyLabels {
            count: hello.labels.len(),
            max: MAX_LABELS,
        });
    }
    for (key, value) in &hello.labels {
        let too_long = |what: &'static str, len: usize| SampleError::LabelTooLong {
            key: shortened(key),
            what,
            len,
            max: MAX_LABEL_LEN,
        };
        if key.len() > MAX_LABEL_LEN {
            return Err(too_long("key", key.len()));
        }
        if !headroom_common::wire::is_label_key(key) {
            return Err(SampleError::BadLabelKey { key: shortened(key) });
        }
        if value.len() > MAX_LABEL_LEN {
            return Err(too_long("value", value.len()));
        }
        // Values end up in tables, CSV and logs, where a newline or escape sequence would forge output.
        if value.chars().any(char::is_control) {
            return Err(SampleError::BadLabelValue {
                key: key.clone(),
                value: shortened(value),
            });
        }
    }
    let cores = hello.capacity.cores;
    if cores == 0 || cores as usize > MAX_CORES {
        return Err(SampleError::Cores {
            cores,
            max: MAX_CORES,
        });
    }
    if hello.capacity.memory_bytes == 0 {
        return Err(SampleError::ZeroMemory);
    }
    if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&hello.interval_ms) {
        return Err(SampleError::Interval {
            interval_ms: hello.interval_ms,
            min: MIN_INTERVAL_MS,
            max: MAX_INTERVAL_MS,
        });
    }
    let version = &hello.agent_version;
    if version.is_empty() || version.len() > MAX_LABEL_LEN || version.chars().any(char::is_control) {
        return Err(SampleError::BadAgentVersion {
            version: shortened(version),
            max: MAX_LABEL_LEN,
        });
    }
    // Facts are shown in `hosts` and stored with the host: the same bounds as label values.
    let facts = &hello.facts;
    for (field, value) in [
        ("hostname", &facts.hostname),
        ("os", &facts.os),
        ("kernel", &facts.kernel),
    ] {
        if value.len() > MAX_LABEL_LEN || value.chars().any(char::is_control) {
            return Err(SampleError::BadFact {
                field,
                value: shortened(value),
                max: MAX_LABEL_LEN,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use headroom_common::wire::{
        Capacity, CpuSample, CpuTimes, HostFacts, InterfaceCounters, Listener, LoadAverage, MemorySample,
        Pressure, PressureLine, SocketSample,
    };

    const NOW_MS: u64 = 1_700_000_000_000;

    fn good_sample() -> Sample {
        Sample {
            seq: 10,
            timestamp_ms: NOW_MS - 500,
            cpu: Some(CpuSample {
                total: CpuTimes::default(),
                per_core: vec![CpuTimes::default(); 2],
                cores: 2,
                load: Some(LoadAverage {
                    one: 0.5,
                    five: 0.4,
                    fifteen: 0.3,
                }),
            }),
            memory: Some(MemorySample {
                total_bytes: 1_000,
                available_bytes: 600,
                used_bytes: 400,
                swap_total_bytes: 100,
                swap_used_bytes: 10,
                ..Default::default()
            }),
            pressure: Some(Pressure {
                cpu: Some(PressureLine {
                    some_avg10: 12.5,
                    some_total_us: 1,
                }),
                memory: None,
                io: Some(PressureLine::default()),
            }),
            network: vec![InterfaceCounters {
                name: "eth0".into(),
                ..Default::default()
            }],
            sockets: Some(SocketSample::default()),
            failed: Vec::new(),
        }
    }

    fn good_hello() -> Hello {
        Hello {
            protocol_version: 1,
            agent_version: "0.1.0".into(),
            instance_id: 1,
            interval_ms: 1_000,
            labels: [
                ("group".to_string(), "web".to_string()),
                ("zone".to_string(), "eu-1a".to_string()),
            ]
            .into(),
            capacity: Capacity {
                cores: 8,
                memory_bytes: 1 << 34,
            },
            facts: HostFacts::default(),
        }
    }

    /// Validates a mutated good sample and returns the error message, which must name `field`.
    fn sample_error(field: &str, mutate: impl FnOnce(&mut Sample)) -> SampleError {
        let mut sample = good_sample();
        mutate(&mut sample);
        let error = validate_sample(&sample, Some(9)).unwrap_err();
        let message = error.to_string();
        assert!(message.contains(field), "{message:?} does not name {field}");
        assert!(!message.contains('\n'), "one line: {message:?}");
        error
    }

    fn hello_error(field: &str, mutate: impl FnOnce(&mut Hello)) -> SampleError {
        let mut hello = good_hello();
        mutate(&mut hello);
        let error = validate_hello(&hello).unwrap_err();
        let message = error.to_string();
        assert!(message.contains(field), "{message:?} does not name {field}");
        error
    }

    #[test]
    fn good_sample_and_hello_pass() {
        assert_eq!(validate_sample(&good_sample(), Some(9)), Ok(()));
        assert_eq!(validate_sample(&good_sample(), None), Ok(()));
        // A gap (samples lost to a full spool) is not an error: it is counted elsewhere.
        assert_eq!(validate_sample(&good_sample(), Some(3)), Ok(()));
        assert_eq!(validate_hello(&good_hello()), Ok(()));
    }

    #[test]
    fn duplicates_and_out_of_order_are_distinguishable() {
        let duplicate = validate_sample(&good_sample(), Some(10)).unwrap_err();
        assert_eq!(duplicate, SampleError::Duplicate { seq: 10 });
        let older = validate_sample(&good_sample(), Some(11)).unwrap_err();
        assert_eq!(
            older,
            SampleError::OutOfOrder {
                seq: 10,
                last_seq: 11
            }
        );
        assert!(duplicate.is_already_received() && older.is_already_received());
        let zero = sample_error("seq", |s| s.seq = 0);
        assert_eq!(zero, SampleError::ZeroSeq);
        assert!(!zero.is_already_received());
    }

    #[test]
    fn issue_11_timestamps_far_ahead_or_far_behind_are_not_refused() {
        for timestamp_ms in [NOW_MS + 600_000, NOW_MS - 600_000, NOW_MS - 8 * 24 * 3_600_000, 0] {
            let mut sample = good_sample();
            sample.timestamp_ms = timestamp_ms;
            assert_eq!(validate_sample(&sample, None), Ok(()), "{timestamp_ms}");
        }
    }

    #[test]
    fn counts_over_the_wire_limits_are_refused() {
        sample_error("cpu.per_core", |s| {
            s.cpu.as_mut().unwrap().per_core = vec![CpuTimes::default(); MAX_CORES + 1]
        });
        sample_error("cpu.cores", |s| {
            s.cpu.as_mut().unwrap().cores = MAX_CORES as u32 + 1
        });
        sample_error("network", |s| {
            s.network = (0..=MAX_INTERFACES)
                .map(|i| InterfaceCounters {
                    name: format!("veth{i}"),
                    ..Default::default()
                })
                .collect()
        });
        sample_error("sockets.listeners", |s| {
            s.sockets.as_mut().unwrap().listeners = vec![Listener::default(); MAX_LISTENERS + 1]
        });
    }

    #[test]
    fn ranges_are_checked() {
        let psi = sample_error("pressure.cpu.some_avg10", |s| {
            s.pressure.as_mut().unwrap().cpu.as_mut().unwrap().some_avg10 = 100.5
        });
        assert!(psi.to_string().contains("100.5"), "{psi}");
        sample_error("pressure.io.some_avg10", |s| {
            s.pressure.as_mut().unwrap().io.as_mut().unwrap().some_avg10 = f32::NAN
        });
        sample_error("cpu.load.five", |s| {
            s.cpu.as_mut().unwrap().load.as_mut().unwrap().five = -1.0
        });
        sample_error("memory.available_bytes", |s| {
            s.memory.as_mut().unwrap().available_bytes = 1_001
        });
        sample_error("memory.used_bytes", |s| {
            s.memory.as_mut().unwrap().used_bytes = 2_000
        });
        sample_error("memory.swap_used_bytes", |s| {
            s.memory.as_mut().unwrap().swap_used_bytes = 101
        });
    }

    #[test]
    fn interface_names_are_checked() {
        let rename = |name: String| {
            move |s: &mut Sample| {
                s.network[0].name = name;
            }
        };
        let empty = sample_error("network interface name", rename(String::new()));
        assert!(empty.to_string().contains("empty"));
        let long = sample_error("network interface name", rename("x".repeat(65)));
        assert!(long.to_string().contains("64 bytes"));
        sample_error("network interface name", rename("eth0\n".into()));
        sample_error("network interface name", rename("eth 0".into()));
        let twice = sample_error("network interface name", |s| s.network.push(s.network[0].clone()));
        assert!(twice.to_string().contains("twice"));
        // A long list is checked through a set: the same verdicts.
        let veths = |s: &mut Sample| {
            for i in 0..30 {
                let mut veth = s.network[0].clone();
                veth.name = format!("veth{i}");
                s.network.push(veth);
            }
        };
        let long_twice = sample_error("network interface name", |s| {
            veths(s);
            s.network.push(s.network[7].clone());
        });
        assert!(long_twice.to_string().contains("twice"));
        let mut many = good_sample();
        veths(&mut many);
        assert_eq!(validate_sample(&many, None), Ok(()));
        let mut ok = good_sample();
        ok.network[0].name = "x".repeat(64);
        assert_eq!(validate_sample(&ok, None), Ok(()));
    }

    #[test]
    fn hello_fields_are_checked() {
        hello_error("labels", |h| {
            h.labels = (0..=MAX_LABELS)
                .map(|i| (format!("k{i}"), "v".to_string()))
                .collect()
        });
        hello_error("label key \"Group\"", |h| {
            h.labels.insert("Group".into(), "web".into());
        });
        hello_error("facts.os", |h| {
            h.facts.os = "Debian\n2026-12-03 INFO forged line".to_string();
        });
        hello_error("label key \"\"", |h| {
            h.labels.insert(String::new(), "web".into());
        });
        let long_key = hello_error("key is 129 bytes", |h| {
            h.labels.insert("k".repeat(MAX_LABEL_LEN + 1), "v".into());
        });
        assert!(matches!(long_key, SampleError::LabelTooLong { what: "key", .. }));
        hello_error("value is 129 bytes", |h| {
            h.labels.insert("rack".into(), "v".repeat(MAX_LABEL_LEN + 1));
        });
        hello_error("label \"rack\"", |h| {
            h.labels.insert("rack".into(), "r1\u{1b}[2J".into());
        });
        hello_error("capacity.cores is 0", |h| h.capacity.cores = 0);
        hello_error("capacity.cores is 4097", |h| {
            h.capacity.cores = MAX_CORES as u32 + 1
        });
        hello_error("capacity.memory_bytes", |h| h.capacity.memory_bytes = 0);
        hello_error("interval_ms is 99", |h| h.interval_ms = 99);
        hello_error("interval_ms is 60001", |h| h.interval_ms = 60_001);
        hello_error("agent_version", |h| h.agent_version = String::new());
        let mut edge = good_hello();
        edge.interval_ms = 100;
        edge.capacity.cores = MAX_CORES as u32;
        edge.labels.insert(
            "k".repeat(headroom_common::wire::MAX_LABEL_KEY_LEN),
            "v".repeat(MAX_LABEL_LEN),
        );
        assert_eq!(validate_hello(&edge), Ok(()));
        // Issue 11: one character set for label keys, here as in tokens and certificates.
        hello_error("label key", |h| {
            h.labels.insert(
                "k".repeat(headroom_common::wire::MAX_LABEL_KEY_LEN + 1),
                "v".to_string(),
            );
        });
    }

    #[test]
    fn a_huge_bad_name_is_shortened_in_the_message() {
        let error = sample_error("network interface name", |s| {
            s.network[0].name = "\u{7}".repeat(10_000)
        });
        assert!(error.to_string().len() < 1_000, "{}", error.to_string().len());
    }
}
