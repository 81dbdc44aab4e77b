//! The effective configuration as a document in the file's own shape: every default filled in and every path
//! resolved, so `check-config` can print it as TOML (which reads back as the same configuration) or as JSON.

use std::path::Path;

use toml::{Table, Value};

use super::{human_duration, Config};

/// How `check-config` prints the effective configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DocumentFormat {
    /// The file's own format; it parses back to the same configuration.
    #[default]
    Toml,
    /// The same document as pretty JSON, for scripts.
    Json,
}

/// Renders a configuration document. TOML starts with a comment naming the checked file, so the whole output
/// stays a valid configuration file; JSON is the bare document.
pub fn render_document(document: &Table, origin: &str, format: DocumentFormat) -> String {
    match format {
        DocumentFormat::Toml => {
            // A table of strings, numbers, booleans and tables always has a TOML form.
            let body = toml::to_string(document).expect("a configuration document serializes to TOML");
            format!(
                "# {origin}: ok; the effective configuration (defaults filled in, paths resolved)\n{body}"
            )
        }
        DocumentFormat::Json => {
            let mut text =
                serde_json::to_string_pretty(document).expect("a configuration document serializes to JSON");
            text.push('\n');
            text
        }
    }
}

/// A path as the document shows it.
pub fn path_value(path: &Path) -> Value {
    Value::String(path.display().to_string())
}

/// A duration as a user types it, like "30s" or "14d".
pub fn duration_value(duration: std::time::Duration) -> Value {
    Value::String(human_duration(duration))
}

/// A list of strings.
pub fn strings_value(items: &[String]) -> Value {
    Value::Array(items.iter().cloned().map(Value::String).collect())
}

/// A table from key-value pairs, skipping the absent ones.
pub fn table_of<const N: usize>(entries: [(&str, Option<Value>); N]) -> Table {
    entries
        .into_iter()
        .filter_map(|(key, value)| value.map(|value| (key.to_string(), value)))
        .collect()
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

/// Keys of a key table (`SECTIONS`: section, then its keys; `NAME` stands for any entry) that `document` lacks.
/// Tests call it with a configuration that sets every optional key, so a key added to the file format cannot be
/// forgotten by `check-config`.
pub fn missing_keys(document: &Table, sections: &[(&str, &[&str])]) -> Vec<String> {
    let mut missing = Vec::new();
    for (section, keys) in sections {
        let mut table = Some(document);
        for part in section.split('.').filter(|part| !part.is_empty()) {
            table = table.and_then(|t| {
                let key = if part == "NAME" { t.keys().next()? } else { part };
                t.get(key)?.as_table()
            });
        }
        for key in *keys {
            if !table.is_some_and(|t| t.contains_key(*key)) {
                missing.push(format!("{section}.{key}"));
            }
        }
    }
    missing
}

impl Config {
    /// The configuration as a document in the file's shape.
    pub fn effective(&self) -> Table {
        let mut document = table_of([("state_dir", Some(path_value(&self.state_dir)))]);
        if let Some(collector) = &self.collector {
            let section = table_of([
                ("address", Some(Value::String(collector.address.clone()))),
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
            (
                "full_dump_cpu",
                Some(Value::String(format!(
                    "{}%",
                    f64::from(sampling.full_dump_cpu_ppm) / 10_000.0
                ))),
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
        let missing = missing_keys(&config.effective(), super::super::SECTIONS);
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
