//! Configuration pieces both daemons share: the one-line [`ConfigError`], TOML diagnostics (line numbers, key
//! suggestions), value checks, and the `[tls]` section. Each binary's own config module builds on these; the
//! collector never reaches into the agent's.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Paths of the PEM files used for mutual TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPaths {
    /// CA certificate that signed the peer's certificate.
    pub ca: PathBuf,
    /// This side's certificate chain.
    pub cert: PathBuf,
    /// This side's private key.
    pub key: PathBuf,
}

impl TlsPaths {
    /// The conventional file names inside a directory: `ca.pem`, `<role>.pem`, `<role>.key`.
    pub fn in_dir(dir: &Path, role: &str) -> TlsPaths {
        TlsPaths {
            ca: dir.join("ca.pem"),
            cert: dir.join(format!("{role}.pem")),
            key: dir.join(format!("{role}.key")),
        }
    }
}

/// The `[tls]` section as written, shared by both daemons. A relative path is taken inside the directory that
/// holds the default files (the agent's state directory, the collector's `pki` directory).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// CA certificate that signed the peer's certificate.
    ca: Option<String>,
    /// This side's certificate chain.
    cert: Option<String>,
    /// This side's private key.
    key: Option<String>,
}

impl RawTls {
    /// Resolves the three paths against `dir`, falling back to the conventional names for `role`.
    pub fn resolve(self, origin: &str, dir: &Path, role: &str) -> Result<TlsPaths, ConfigError> {
        let defaults = TlsPaths::in_dir(dir, role);
        let pick = |key: &str, value: Option<String>, default: PathBuf| match value {
            None => Ok(default),
            Some(text) if text.is_empty() => Err(invalid(origin, key, "is empty (give a file path)")),
            // Path::join keeps an absolute path as it is and puts a relative one inside `dir`.
            Some(text) => Ok(dir.join(text)),
        };
        Ok(TlsPaths {
            ca: pick("tls.ca", self.ca, defaults.ca)?,
            cert: pick("tls.cert", self.cert, defaults.cert)?,
            key: pick("tls.key", self.key, defaults.key)?,
        })
    }
}

/// A configuration problem. Its Display is one line naming the file, the place (line or key) and the fix; the
/// binaries print it and exit with code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file does not exist.
    #[error("config {path}: file not found ({fix})")]
    NotFound {
        /// The path that was tried.
        path: String,
        /// How to create it.
        fix: &'static str,
    },
    /// The file exists but could not be read as UTF-8 text.
    #[error(
        "config {path}: cannot read: {reason} (check the path, its permissions and that it is UTF-8 text)"
    )]
    Unreadable {
        /// The path that was tried.
        path: String,
        /// The operating system's reason.
        reason: String,
    },
    /// A key the file format does not know.
    #[error("config {origin}: line {line}: unknown key \"{key}\"{}", render_hint(.hint))]
    UnknownKey {
        /// The file.
        origin: String,
        /// 1-based line of the key.
        line: usize,
        /// The key as written.
        key: String,
        /// What the user probably meant, if anything.
        hint: Option<KeyHint>,
    },
    /// Not TOML, or a value of the wrong type.
    #[error("config {origin}: {}{}{message}", render_line(.line), render_key(.key))]
    Syntax {
        /// The file.
        origin: String,
        /// 1-based line of the problem, when the parser knows it.
        line: Option<usize>,
        /// Dotted key whose value is wrong, when the problem lies in a `key = value` line.
        key: Option<String>,
        /// The parser's message, on one line.
        message: String,
    },
    /// A well-formed value that is not acceptable.
    #[error("config {origin}: {key}: {problem}")]
    Invalid {
        /// The file.
        origin: String,
        /// Dotted key, like `sampling.interval`.
        key: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
}

/// What an unknown key probably should have been.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyHint {
    /// A known key of the same section within a small edit distance.
    DidYouMean(String),
    /// The key exists, but in another section ("" is the top level).
    BelongsUnder(String),
    /// No close match: the keys the section accepts.
    Known(Vec<String>),
}

fn render_hint(hint: &Option<KeyHint>) -> String {
    match hint {
        None => String::new(),
        Some(KeyHint::DidYouMean(key)) => format!(" (did you mean \"{key}\"?)"),
        Some(KeyHint::BelongsUnder(section)) if section.is_empty() => {
            " (it belongs at the top of the file, before any [section])".to_string()
        }
        Some(KeyHint::BelongsUnder(section)) => format!(" (it belongs under [{section}])"),
        Some(KeyHint::Known(keys)) => format!(" (known keys: {})", keys.join(", ")),
    }
}

fn render_line(line: &Option<usize>) -> String {
    line.map(|line| format!("line {line}: ")).unwrap_or_default()
}

fn render_key(key: &Option<String>) -> String {
    key.as_ref().map(|key| format!("{key}: ")).unwrap_or_default()
}

impl ConfigError {
    /// Turns a TOML parser error (its message and byte span in `text`) into a one-line error. `sections` lists
    /// the keys of every section so that a misplaced key can be pointed to the right one.
    pub fn from_toml(
        origin: &str,
        text: &str,
        message: &str,
        span: Option<Range<usize>>,
        sections: &[(&str, &[&str])],
    ) -> ConfigError {
        let start = span.map(|span| span.start);
        let line = start.map(|start| line_of(text, start));
        if let (Some(line), Some((key, expected))) = (line, unknown_field(message)) {
            return ConfigError::UnknownKey {
                origin: origin.to_string(),
                line,
                hint: key_hint(&key, &expected, sections),
                key,
            };
        }
        // The parser's messages are short, but flatten them anyway: the contract is one line.
        let mut message = message.split_whitespace().collect::<Vec<_>>().join(" ");
        if message.ends_with("expected a string") {
            message.push_str(" (put the value in double quotes)");
        }
        ConfigError::Syntax {
            origin: origin.to_string(),
            line,
            key: start.and_then(|start| key_at(text, start)),
            message,
        }
    }
}

/// Reads a configuration file, turning IO failures into one-line errors; `fix_if_missing` tells how to create it.
pub fn read_config_file(path: &Path, fix_if_missing: &'static str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|error| {
        if error.kind() == std::io::ErrorKind::NotFound {
            ConfigError::NotFound {
                path: path.display().to_string(),
                fix: fix_if_missing,
            }
        } else {
            ConfigError::Unreadable {
                path: path.display().to_string(),
                reason: error.to_string(),
            }
        }
    })
}

/// The 1-based line holding byte `offset` of `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end].iter().filter(|b| **b == b'\n').count() + 1
}

/// The dotted key of the `key = value` line holding byte `offset`, when the offset lies in the value.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let (key, _) = text[line_start..offset].split_once('=')?;
    let key = key.trim();
    if key.is_empty() || key.starts_with('#') {
        return None;
    }
    // The innermost table header above the line, if any, names the section.
    let section = text[..line_start].lines().rev().find_map(|line| {
        let line = line.trim();
        let inner = line.strip_prefix('[')?.split(']').next()?;
        Some(inner.trim_matches(['[', ' ']).to_string())
    });
    Some(match section {
        Some(section) => format!("{section}.{key}"),
        None => key.to_string(),
    })
}

/// Reads serde's "unknown field `x`, expected one of `a`, `b`" into the key and the keys it expected.
fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (key, rest) = rest.split_once('`')?;
    // Every other back-quoted word after the key is an expected key.
    let expected = rest.split('`').skip(1).step_by(2).map(str::to_string).collect();
    Some((key.to_string(), expected))
}

fn key_hint(key: &str, expected: &[String], sections: &[(&str, &[&str])]) -> Option<KeyHint> {
    if let Some(nearest) = nearest_key(key, expected.iter().map(String::as_str)) {
        return Some(KeyHint::DidYouMean(nearest.to_string()));
    }
    let section = sections.iter().find(|(_, keys)| keys.contains(&key));
    if let Some((section, _)) = section {
        return Some(KeyHint::BelongsUnder(section.to_string()));
    }
    (!expected.is_empty()).then(|| KeyHint::Known(expected.to_vec()))
}

/// The candidate closest to `key` by edit distance, if it is close enough to be a typo.
pub fn nearest_key<'a>(key: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    // A third of the length, at least 2, catches a dropped, doubled or swapped letter without suggesting
    // unrelated short keys.
    let budget = (key.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|candidate| (edit_distance(key, candidate), candidate))
        .filter(|(distance, _)| *distance <= budget)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance counted in characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    strsim::levenshtein(a, b)
}

/// Builds an [`ConfigError::Invalid`].
pub fn invalid(origin: &str, key: &str, problem: &str) -> ConfigError {
    ConfigError::Invalid {
        origin: origin.to_string(),
        key: key.to_string(),
        problem: problem.to_string(),
    }
}

/// Parses a duration like "1s" or "500ms" and checks it lies within `range`.
pub fn duration_in(
    origin: &str,
    key: &str,
    text: &str,
    range: std::ops::RangeInclusive<Duration>,
) -> Result<Duration, ConfigError> {
    let bounds = format!(
        "use {} to {}",
        human_duration(*range.start()),
        human_duration(*range.end())
    );
    let duration = humantime::parse_duration(text).map_err(|_| {
        invalid(
            origin,
            key,
            &format!("\"{text}\" is not a duration (write it like \"1s\" or \"500ms\"; {bounds})"),
        )
    })?;
    if duration < *range.start() {
        return Err(invalid(
            origin,
            key,
            &format!("\"{text}\" is too short ({bounds})"),
        ));
    }
    if duration > *range.end() {
        return Err(invalid(
            origin,
            key,
            &format!("\"{text}\" is too long ({bounds})"),
        ));
    }
    Ok(duration)
}

/// Writes a duration the way a user would type it in the file: "100ms", "60s", "5m", "1h".
pub fn human_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    if duration.subsec_nanos() != 0 || secs == 0 {
        return format!("{}ms", duration.as_millis());
    }
    match secs {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s > 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Checks that `text` is an absolute path; relative paths would depend on the daemon's working directory.
pub fn absolute_path(origin: &str, key: &str, text: &str) -> Result<PathBuf, ConfigError> {
    let path = PathBuf::from(text);
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(invalid(
            origin,
            key,
            &format!("\"{text}\" is not an absolute path (start it with /)"),
        ))
    }
}

impl fmt::Display for TlsPaths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ca {}, cert {}, key {}",
            self.ca.display(),
            self.cert.display(),
            self.key.display()
        )
    }
}

/// Checks that a config module's key table (`SECTIONS`) lists exactly the keys its parser accepts, section by
/// section; both config modules call it from their tests so the "did you mean" hints never drift.
pub fn check_section_table<T: std::fmt::Debug>(
    sections: &[(&str, &[&str])],
    origin: &str,
    parse: impl Fn(&str, &str) -> Result<T, ConfigError>,
) {
    for (section, keys) in sections {
        let header = if section.is_empty() {
            String::new()
        } else {
            format!("[{section}]\n")
        };
        match parse(&format!("{header}zzzzzzzzzzzz = 1\n"), origin) {
            Err(ConfigError::UnknownKey {
                hint: Some(KeyHint::Known(mut expected)),
                ..
            }) => {
                expected.sort();
                assert_eq!(&expected, keys, "section [{section}]");
            }
            other => panic!("section [{section}]: unexpected {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_keys_are_found_from_byte_offsets() {
        let text = "a = 1\n[fleet]\n# note\ndown_after = 5\n";
        let value_offset = text.find('5').unwrap();
        assert_eq!(line_of(text, 0), 1);
        assert_eq!(line_of(text, value_offset), 4);
        assert_eq!(
            line_of(text, text.len() + 10),
            5,
            "offsets past the end stay on the last line"
        );
        assert_eq!(key_at(text, value_offset).as_deref(), Some("fleet.down_after"));
        assert_eq!(key_at(text, text.find('1').unwrap()).as_deref(), Some("a"));
        assert_eq!(
            key_at(text, text.find("fleet").unwrap()),
            None,
            "a header is not a key"
        );
    }

    #[test]
    fn serde_unknown_field_messages_are_read() {
        assert_eq!(
            unknown_field("unknown field `intervl`, expected one of `interval`, `netlink`"),
            Some((
                "intervl".to_string(),
                vec!["interval".to_string(), "netlink".to_string()]
            ))
        );
        assert_eq!(
            unknown_field("unknown field `x`, expected `ca` or `key`"),
            Some(("x".to_string(), vec!["ca".to_string(), "key".to_string()]))
        );
        assert_eq!(
            unknown_field("unknown field `x`, there are no fields"),
            Some(("x".to_string(), vec![]))
        );
        assert_eq!(
            unknown_field("invalid type: integer `5`, expected a string"),
            None
        );
    }

    #[test]
    fn edit_distance_and_human_durations() {
        assert_eq!(edit_distance("intervl", "interval"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(
            nearest_key("ca", ["cert", "key"]),
            None,
            "short keys need a close match"
        );
        assert_eq!(human_duration(Duration::from_millis(100)), "100ms");
        assert_eq!(human_duration(Duration::from_secs(60)), "60s");
        assert_eq!(human_duration(Duration::from_secs(300)), "5m");
        assert_eq!(human_duration(Duration::from_secs(3600)), "1h");
    }
}
