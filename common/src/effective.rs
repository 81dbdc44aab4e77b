//! The effective configuration as a document in the file's own shape: every default filled in and every path
//! resolved, so each binary's `check-config` prints it as TOML (which reads back as the same configuration) or
//! as JSON. Each config module builds its document with these helpers.

use std::path::Path;

use toml::{Table, Value};

use crate::config::human_duration;

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
