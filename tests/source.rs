//! The workspace's source read as text, for the tests that check structural rules (`code_map`,
//! `source_size`, `invariants`): every `.rs` file below a folder, the part of a file before its test module,
//! and code with its comments left out.

use std::path::{Path, PathBuf};

/// The workspace root (the folder holding `ARCHITECTURE.md`).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

/// Every `.rs` file below `dir`, sorted.
pub fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = files_below(dir, &[]);
    found.retain(|path| path.extension().is_some_and(|ext| ext == "rs"));
    found
}

/// Every file below `dir`, sorted, leaving out folders named in `skip` (build output, fuzz corpora).
pub fn files_below(dir: &Path, skip: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                if !path
                    .file_name()
                    .is_some_and(|name| skip.iter().any(|s| name == *s))
                {
                    pending.push(path);
                }
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Index of the line holding the `#[cfg(test)]` attribute of the file's test module (`mod tests {` or
/// `mod tests;`), if it has one.
pub fn test_module_line(text: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .position(|pair| pair[0].trim() == "#[cfg(test)]" && pair[1].trim_start().starts_with("mod tests"))
}

/// The lines of `text` before its test module (all of it without one).
pub fn non_test_code(text: &str) -> String {
    match test_module_line(text) {
        Some(line) => text.lines().take(line).collect::<Vec<_>>().join("\n"),
        None => text.to_string(),
    }
}

/// `text` without its comments: lines that start with `//` (doc comments included) are left out, and a line's
/// trailing `// ...` is cut where it stands outside a string literal. Block comments are not used in this
/// workspace.
pub fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line.trim_start().starts_with("//") {
            out.push('\n');
            continue;
        }
        out.push_str(code_part(line));
        out.push('\n');
    }
    out
}

/// The part of one line before a `//` comment that starts outside a string literal.
fn code_part(line: &str) -> &str {
    let bytes = line.as_bytes();
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            // A char literal such as '"' must not open a string.
            b'\'' if !in_string && bytes.get(i + 2) == Some(&b'\'') => i += 2,
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => return &line[..i],
            _ => {}
        }
        i += 1;
    }
    line
}

/// The non-test code of every source file under the crates' `src/` folders (`common`, `agent`, `collector`),
/// without comments, as (path relative to the workspace, code). Files named `tests.rs` hold only tests and are
/// left out. Read once per test binary.
pub fn crate_code() -> Vec<(String, String)> {
    static CODE: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    CODE.get_or_init(read_crate_code).clone()
}

fn read_crate_code() -> Vec<(String, String)> {
    let root = workspace();
    let mut out = Vec::new();
    for krate in ["common", "agent", "collector"] {
        for path in rust_files(&root.join(krate).join("src")) {
            if path.file_name().is_some_and(|name| name == "tests.rs") {
                continue;
            }
            let text =
                std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            let relative = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            out.push((relative, without_comments(&non_test_code(&text))));
        }
    }
    assert!(
        out.len() > 100,
        "only {} source files found under {}",
        out.len(),
        root.display()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_go_and_strings_stay() {
        let text = "//! doc\nlet a = \"http://x\"; // why\n    /// more\nlet b = '\"'; // c\n";
        assert_eq!(
            without_comments(text),
            "\nlet a = \"http://x\"; \n\nlet b = '\"'; \n"
        );
    }

    #[test]
    fn the_test_module_is_cut_off() {
        let text = "fn a() {}\n#[cfg(test)]\nmod tests {\n    fn t() {}\n}\n";
        assert_eq!(non_test_code(text), "fn a() {}");
        assert_eq!(
            non_test_code("#[cfg(test)]\nfn helper() {}\n"),
            "#[cfg(test)]\nfn helper() {}\n"
        );
    }
}
