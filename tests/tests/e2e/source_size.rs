//! Issue 9: no source file grows past about 600 lines of non-test code; a file that does is split by
//! responsibility into a folder (`foo/mod.rs` and submodules).
//!
//! Non-test code is every line of a `.rs` file under a crate's `src/` before its `#[cfg(test)]` test module;
//! files named `tests.rs` hold only tests and are not counted.

use headroom_tests::source;

/// The most non-test lines a file may have: the ~600 of the house style plus a margin, so that a small
/// change to a file near the limit does not fail the build before it can be split.
const MAX_NON_TEST_LINES: usize = 650;

/// Lines before the `#[cfg(test)]` attribute of the file's test module (`mod tests {` or `mod tests;`).
fn non_test_lines(text: &str) -> usize {
    source::test_module_line(text).unwrap_or(text.lines().count())
}

#[test]
fn counting_stops_at_the_test_module() {
    let _suite = headroom_tests::shared();
    let text = "//! a\nfn a() {}\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn t() {}\n}\n";
    assert_eq!(non_test_lines(text), 3);
    assert_eq!(non_test_lines("fn a() {}\n#[cfg(test)]\nmod tests;\n"), 1);
    // A `#[cfg(test)]` on anything but the test module is code like any other.
    assert_eq!(non_test_lines("#[cfg(test)]\nfn helper() {}\nfn b() {}\n"), 3);
}

#[test]
fn issue_9_no_source_file_has_more_than_650_lines_of_non_test_code() {
    let _suite = headroom_tests::shared();
    let root = &source::workspace();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root).expect("reading the workspace") {
        let src = entry.expect("a directory entry").path().join("src");
        if src.is_dir() {
            files.extend(source::rust_files(&src));
        }
    }
    // The walk must see the crates, or the check below would pass on nothing.
    for expected in ["common/src/lib.rs", "agent/src/main.rs", "collector/src/main.rs"] {
        assert!(
            files.contains(&root.join(expected)),
            "{expected} not found under {}",
            root.display()
        );
    }
    let mut too_long: Vec<String> = files
        .iter()
        .filter(|path| path.file_name().is_some_and(|name| name != "tests.rs"))
        .filter_map(|path| {
            let text =
                std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            let lines = non_test_lines(&text);
            let name = path.strip_prefix(root).unwrap_or(path).display().to_string();
            (lines > MAX_NON_TEST_LINES).then(|| format!("{name}: {lines} lines of non-test code"))
        })
        .collect();
    too_long.sort();
    assert!(
        too_long.is_empty(),
        "over {MAX_NON_TEST_LINES} lines of non-test code (split each by responsibility into foo/mod.rs and \
         submodules):\n{}",
        too_long.join("\n")
    );
}
