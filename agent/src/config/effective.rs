//! The agent's effective configuration as a document in the file's own shape (`headroom_common::effective`),
//! printed by `check-config`.

use toml::{Table, Value};

use super::Config;
use headroom_common::effective::{duration_value, path_value, strings_value, table_of};

/// A share of a core, in parts per million, as the config file writes it ("0.01%").
fn share_value(ppm: u32) -> Value {
    Value::String(format!("{}%", f64::from(ppm) / 10_000.0))
}

/// A byte count the way `spool.max_size` reads it: the largest binary unit that divides it exactly.
fn size_text(bytes: u64) -> String {
    for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes % (1 << shift) == 0 {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

impl Config {
    /// The configuration as a document in the file's shape.
    pub fn effective(&self) -> Table {
        let mut document = table_of([("state_dir", Some(path_value(&self.state_dir)))]);
        if let Some(collector) = &self.collector {
            let section = table_of([
                // One collector is written as `address`, several as `addresses` (the file takes one or the other).
                (
                    "address",
                    (collector.addresses.len() <= 1).then(|| Value::String(collector.address.clone())),
                ),
                (
                    "addresses",
                    (collector.addresses.len() > 1).then(|| strings_value(&collector.addresses)),
                ),
                ("server_name", Some(Value::String(collector.server_name.clone()))),
            ]);
            document.insert("collector".into(), Value::Table(section));
        }
        let tls = table_of([
            ("ca", Some(path_value(&self.tls.ca))),
            ("cert", Some(path_value(&self.tls.cert))),
            ("key", Some(path_value(&self.tls.key))),
        ]);
        document.insert("tls".into(), Value::Table(tls));
        let sampling = &self.sampling;
        let sampling = table_of([
            ("interval", Some(duration_value(sampling.interval))),
            ("proc_root", Some(path_value(&sampling.proc_root))),
            ("netlink", Some(Value::Boolean(sampling.netlink))),
            (
                "full_dump_max_sockets",
                Some(Value::Integer(i64::from(sampling.full_dump_max_sockets))),
            ),
            (
                "full_dump_interval",
                Some(duration_value(sampling.full_dump_interval)),
            ),
            ("full_dump_cpu", Some(share_value(sampling.full_dump_cpu_ppm))),
            (
                "full_dump_cpu_ceiling",
                Some(share_value(sampling.full_dump_cpu_ceiling_ppm)),
            ),
        ]);
        document.insert("sampling".into(), Value::Table(sampling));
        let network = table_of([
            ("include", Some(strings_value(&self.network.include))),
            ("exclude", Some(strings_value(&self.network.exclude))),
        ]);
        document.insert("network".into(), Value::Table(network));
        let memory_max_samples = i64::try_from(self.spool_memory_max_samples).unwrap_or(i64::MAX);
        let spool = table_of([
            ("max_size", Some(Value::String(size_text(self.spool_max_bytes)))),
            ("memory_max_samples", Some(Value::Integer(memory_max_samples))),
        ]);
        document.insert("spool".into(), Value::Table(spool));
        let labels = self
            .labels
            .iter()
            .map(|(key, value)| (key.clone(), Value::String(value.clone())))
            .collect();
        document.insert("labels".into(), Value::Table(labels));
        document
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;
    use headroom_common::effective::{missing_keys, render_document, DocumentFormat};

    const CUSTOM: &str = r#"
state_dir = "/srv/agent"
[collector]
address = "[2001:db8::1]:9600"
[tls]
key = "keys/agent.key"
[sampling]
interval = "500ms"
full_dump_interval = "2m"
full_dump_cpu = "0.5%"
full_dump_cpu_ceiling = "0%"
netlink = false
[network]
include = ["eth*"]
[spool]
max_size = "1536KiB"
memory_max_samples = 120
[labels]
group = "web"
zone = "eu-1a"
"#;

    #[test]
    fn printed_toml_reads_back_as_the_same_configuration() {
        for text in ["", CUSTOM] {
            let config = parse(text, "agent.toml").unwrap();
            let printed = render_document(&config.effective(), "agent.toml", DocumentFormat::Toml);
            assert!(printed.starts_with("# agent.toml: ok;"), "{printed}");
            let again = parse(&printed, "printed").unwrap_or_else(|e| panic!("{e}\n{printed}"));
            assert_eq!(again, config, "{printed}");
        }
    }

    #[test]
    fn defaults_are_filled_in_and_paths_resolved() {
        let config = parse(CUSTOM, "agent.toml").unwrap();
        let printed = render_document(&config.effective(), "agent.toml", DocumentFormat::Toml);
        for line in [
            "key = \"/srv/agent/keys/agent.key\"",
            "ca = \"/srv/agent/ca.pem\"",
            "server_name = \"2001:db8::1\"",
            "interval = \"500ms\"",
            "full_dump_interval = \"2m\"",
            "full_dump_max_sockets = 20000",
            "max_size = \"1536KiB\"",
        ] {
            assert!(printed.lines().any(|l| l == line), "{line} missing:\n{printed}");
        }
    }

    #[test]
    fn every_key_is_printed() {
        let config = parse(CUSTOM, "agent.toml").unwrap();
        let mut missing = missing_keys(&config.effective(), super::super::SECTIONS);
        // The custom file names one collector, so it is printed as `address`, not `addresses`.
        missing.retain(|key| key != "collector.addresses");
        assert!(missing.is_empty(), "not printed: {missing:?}");
    }

    #[test]
    fn json_has_the_same_document() {
        let config = parse(CUSTOM, "agent.toml").unwrap();
        let text = render_document(&config.effective(), "agent.toml", DocumentFormat::Json);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["sampling"]["interval"], "500ms");
        assert_eq!(value["labels"]["zone"], "eu-1a");
        assert_eq!(value["network"]["exclude"][0], "lo");
        assert_eq!(value["spool"]["max_size"], "1536KiB");
    }

    #[test]
    fn sizes_use_the_largest_exact_unit() {
        assert_eq!(size_text(64 << 20), "64MiB");
        assert_eq!(size_text(3 << 30), "3GiB");
        assert_eq!(size_text(65_537), "65537");
    }
}
