//! `docs/API.md` read as a schema: each document section (`## \`GET /api/v1/hosts\``) names its JSON in a
//! `JSON:` line, each type section (`### HostView`) lists its fields in a table, and `check` compares a real
//! JSON value with that, both ways: a field printed but not documented, or documented but not printed, is an
//! error.
//!
//! The grammar, as the doc writes it: a field's type cell that links a type (`[HostView](#hostview)`, `array
//! of [Listener](#listener)`) is checked against that type, element by element for arrays; a `map` is not
//! looked into (its keys are data); `absent` in the type cell lets the field be missing; `null` is never
//! looked into. A `JSON:` line that names `` `schema_version` `` adds it to the top-level fields, and it must
//! be the current version.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The schema version docs/API.md documents.
pub const SCHEMA_VERSION: u64 = 1;

/// One documented field: its name and its type cell.
#[derive(Debug, Clone)]
struct Field {
    name: String,
    type_cell: String,
}

/// docs/API.md, parsed.
pub struct ApiDoc {
    /// Document heading (inside the backticks) → its `JSON:` line.
    documents: BTreeMap<String, String>,
    /// Type name → its fields.
    types: BTreeMap<String, Vec<Field>>,
}

/// The linked type names in `text` (`[Name](#name)`), in order.
fn linked_types(text: &str) -> Vec<String> {
    text.split('[')
        .skip(1)
        .filter_map(|rest| rest.split_once("](#").map(|(name, _)| name.to_string()))
        .collect()
}

/// The first linked type name in `text`, if any.
fn linked_type(text: &str) -> Option<String> {
    linked_types(text).into_iter().next()
}

impl ApiDoc {
    /// Reads docs/API.md of this workspace.
    pub fn load() -> ApiDoc {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/API.md");
        ApiDoc::parse(&std::fs::read_to_string(path).expect("docs/API.md"))
    }

    pub fn parse(text: &str) -> ApiDoc {
        let mut documents = BTreeMap::new();
        let mut types: BTreeMap<String, Vec<Field>> = BTreeMap::new();
        let mut document: Option<String> = None;
        let mut type_name: Option<String> = None;
        for line in text.lines() {
            if let Some(heading) = line.strip_prefix("## ") {
                type_name = None;
                document = heading
                    .strip_prefix('`')
                    .and_then(|h| h.strip_suffix('`'))
                    .map(str::to_string);
            } else if let Some(heading) = line.strip_prefix("### ") {
                document = None;
                type_name = Some(heading.trim().to_string());
                types.entry(heading.trim().to_string()).or_default();
            } else if let (Some(doc), Some(json)) = (&document, line.strip_prefix("JSON: ")) {
                documents.insert(doc.clone(), json.to_string());
            } else if let (Some(name), Some(row)) = (&type_name, line.strip_prefix("| `")) {
                let mut cells = row.split(" | ");
                let field = cells.next().unwrap_or("").trim_end_matches('`').to_string();
                let type_cell = cells.next().unwrap_or("").to_string();
                types.get_mut(name).expect("type entered").push(Field {
                    name: field,
                    type_cell,
                });
            }
        }
        ApiDoc { documents, types }
    }

    /// Every documented route and command, as its heading names it.
    pub fn documents(&self) -> Vec<String> {
        self.documents.keys().cloned().collect()
    }

    /// Compares `value` with the document `heading` names; every difference as one line.
    pub fn check(&self, heading: &str, value: &Value) -> Result<(), Vec<String>> {
        let line = self
            .documents
            .get(heading)
            .unwrap_or_else(|| panic!("docs/API.md has no document `{heading}`"));
        let mut errors = Vec::new();
        let versioned = line.starts_with("an object: `schema_version`");
        let mut fields = match linked_type(line) {
            Some(name) => self.fields(&name).to_vec(),
            None => Vec::new(),
        };
        // `cert list` and `token list`: the list's key and its row type are named in the line.
        for (key, row) in [("certs", "CertRow"), ("tokens", "TokenRow")] {
            if line.contains(&format!("`{key}`")) {
                fields = vec![Field {
                    name: key.to_string(),
                    type_cell: format!("array of [{row}](#{})", row.to_lowercase()),
                }];
            }
        }
        // `hosts`: each element adds `gaps`.
        if line.contains("each with `gaps`") {
            fields.push(Field {
                name: "gaps".to_string(),
                type_cell: "number".to_string(),
            });
        }
        if versioned {
            fields.insert(
                0,
                Field {
                    name: "schema_version".to_string(),
                    type_cell: "number".to_string(),
                },
            );
            if value["schema_version"].as_u64() != Some(SCHEMA_VERSION) {
                errors.push(format!(
                    "{heading}: schema_version {} is not {SCHEMA_VERSION}",
                    value["schema_version"]
                ));
            }
        }
        if line.starts_with("a map") {
            if !value.is_object() {
                errors.push(format!("{heading}: not a map: {value}"));
            }
        } else if line.starts_with("array of") && !value.is_array() {
            errors.push(format!("{heading}: not an array"));
        } else if !line.starts_with("array of") && !value.is_object() {
            errors.push(format!("{heading}: not an object"));
        } else {
            self.check_value(heading, value, &fields, None, &mut errors);
        }
        // One line per path, not per array element.
        errors.dedup();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn fields(&self, type_name: &str) -> &[Field] {
        self.types
            .get(type_name)
            .unwrap_or_else(|| panic!("docs/API.md links type {type_name} but has no section for it"))
    }

    /// Checks `value` against `fields`; `rows` is the row type of a generic section (`[A](#a) of [B](#b)`).
    fn check_value(
        &self,
        path: &str,
        value: &Value,
        fields: &[Field],
        rows: Option<&str>,
        errors: &mut Vec<String>,
    ) {
        match value {
            Value::Array(items) => {
                for item in items {
                    self.check_value(&format!("{path}[]"), item, fields, rows, errors);
                }
            }
            Value::Object(object) => {
                let printed: BTreeSet<&str> = object.keys().map(String::as_str).collect();
                for field in fields {
                    let here = format!("{path}.{}", field.name);
                    match object.get(&field.name) {
                        None if field.type_cell.contains("absent") => {}
                        None => errors.push(format!("{here}: documented, not printed")),
                        Some(Value::Null) => {}
                        Some(inner) => {
                            if field.type_cell.starts_with("map") {
                                continue;
                            }
                            let linked = linked_types(&field.type_cell);
                            if field.type_cell.contains("row type") {
                                let row =
                                    rows.unwrap_or_else(|| panic!("{here}: a row type outside a section"));
                                self.check_value(&here, inner, self.fields(row), None, errors);
                            } else if let Some(name) = linked.first() {
                                let parameter = linked.get(1).filter(|_| field.type_cell.contains(") of ["));
                                self.check_value(
                                    &here,
                                    inner,
                                    self.fields(name),
                                    parameter.map(String::as_str),
                                    errors,
                                );
                            }
                        }
                    }
                }
                let documented: BTreeSet<&str> = fields.iter().map(|f| f.name.as_str()).collect();
                for extra in printed.difference(&documented) {
                    errors.push(format!("{path}.{extra}: printed, not documented in docs/API.md"));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(heading: &str, value: Value) -> Vec<String> {
        ApiDoc::load().check(heading, &value).err().unwrap_or_default()
    }

    #[test]
    fn a_field_printed_but_not_documented_or_documented_but_not_printed_is_an_error() {
        let health = json!({"schema_version": 1, "status": "ok", "hosts": 3, "storage": "ok"});
        assert_eq!(errors("GET /api/v1/health", health.clone()), Vec::<String>::new());
        let mut added = health.clone();
        added["uptime_s"] = json!(5);
        assert_eq!(
            errors("GET /api/v1/health", added),
            ["GET /api/v1/health.uptime_s: printed, not documented in docs/API.md"]
        );
        let mut removed = health.clone();
        removed.as_object_mut().unwrap().remove("storage");
        assert_eq!(
            errors("GET /api/v1/health", removed),
            ["GET /api/v1/health.storage: documented, not printed"]
        );
        let mut unversioned = health;
        unversioned.as_object_mut().unwrap().remove("schema_version");
        assert_eq!(errors("GET /api/v1/health", unversioned).len(), 2);
    }

    #[test]
    fn nested_types_arrays_maps_and_section_rows_are_followed() {
        let listener = json!({"port": 443, "established": 1, "accept_queue": 0, "accept_queue_limit": 128});
        // A linked type inside an array: a wrong listener is found at its path.
        let mut bad = listener;
        bad["backlog"] = json!(1);
        let doc = ApiDoc::load();
        let mut found = Vec::new();
        doc.check_value("x", &json!([bad]), doc.fields("Listener"), None, &mut found);
        assert_eq!(found, ["x[].backlog: printed, not documented in docs/API.md"]);
        // A review section's rows are checked against the row type the Review table names.
        let mut found = Vec::new();
        let section = json!({"title": "t", "look_at": "l", "rows": [{"rule": "r"}]});
        doc.check_value(
            "alarms",
            &section,
            doc.fields("ReviewSection"),
            Some("AlarmCount"),
            &mut found,
        );
        assert!(
            found
                .iter()
                .any(|e| e.starts_with("alarms.rows[].severity: documented")),
            "{found:?}"
        );
        // Map values are data: any key passes.
        let mut found = Vec::new();
        let row = json!({"key": {"anything": "x"}, "hosts": 1, "metrics": []});
        doc.check_value("row", &row, doc.fields("ViewRow"), None, &mut found);
        assert!(found.is_empty(), "{found:?}");
    }
}
