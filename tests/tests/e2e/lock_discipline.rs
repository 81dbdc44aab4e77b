//! Every end-to-end test takes the suite lock before anything else, and every file here is a module of the
//! binary: a test without the lock would run beside an exclusive one, a file without its `mod` line would
//! never run.

use std::path::{Path, PathBuf};

/// The ways to take the suite lock.
const LOCK_KINDS: [&str; 3] = ["shared", "long_shared", "exclusive"];

/// The tests in `text` (a module's source) that do not take the suite lock on their first line: the name of
/// each top-level `#[test]` function whose body does not start with `let _suite = headroom_tests::shared();`,
/// `long_shared();` or `exclusive();`.
fn tests_without_the_lock(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut missing = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if *line != "#[test]" {
            continue;
        }
        let Some(offset) = lines[i + 1..].iter().position(|l| l.starts_with("fn ")) else {
            missing.push(format!("a #[test] without a function after line {}", i + 1));
            continue;
        };
        let signature = lines[i + 1 + offset];
        let name = signature["fn ".len()..].split('(').next().unwrap_or(signature);
        let first = lines.get(i + 2 + offset).map(|l| l.trim()).unwrap_or("");
        let locked = LOCK_KINDS
            .iter()
            .any(|kind| first == format!("let _suite = headroom_tests::{kind}();"));
        let again = lines.get(i + 3 + offset).is_some_and(|l| {
            let l = l.trim();
            l.starts_with("let _")
                && LOCK_KINDS
                    .iter()
                    .any(|kind| l.ends_with(&format!("headroom_tests::{kind}();")))
        });
        if !locked {
            missing.push(name.to_string());
        } else if again {
            // A second take of the bounded lock by the same test can wait forever.
            missing.push(format!("{name} (takes the lock twice)"));
        }
    }
    missing
}

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e")
}

#[test]
fn issue_9_every_end_to_end_test_takes_the_suite_lock_and_every_file_is_a_module() {
    let _suite = headroom_tests::shared();
    let dir = suite_dir();
    let main = std::fs::read_to_string(dir.join("main.rs")).expect("tests/e2e/main.rs");
    let mut files = 0;
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("reading tests/e2e") {
        let path = entry.expect("a directory entry").path();
        let Some(module) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if path.extension().is_none_or(|e| e != "rs") || module == "main" {
            continue;
        }
        files += 1;
        if !main.lines().any(|l| l == format!("mod {module};")) {
            problems.push(format!("tests/e2e/main.rs has no `mod {module};`"));
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for test in tests_without_the_lock(&text) {
            problems.push(format!(
                "{module}::{test} does not take the suite lock first (headroom_tests::shared(), long_shared() or exclusive())"
            ));
        }
    }
    assert!(files > 20, "only {files} modules found in {}", dir.display());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_test_without_the_lock_is_found() {
    let _suite = headroom_tests::shared();
    let text = "#[test]\nfn a() {\n    let _suite = headroom_tests::shared();\n}\n\n#[test]\n#[ignore]\nfn b() {\n    \
                let x = 1;\n}\n\n#[test]\nfn c() {\n    let _suite = headroom_tests::exclusive();\n}\n\n#[test]\n\
                fn d() {\n    let _suite = headroom_tests::shared();\n    let _suite = headroom_tests::shared();\n}\n\n\
                #[test]\nfn e() {\n    let _suite = headroom_tests::long_shared();\n}\n\n#[test]\nfn f() {\n    \
                let _suite = headroom_tests::long_shared();\n    let _again = headroom_tests::exclusive();\n}\n";
    assert_eq!(
        tests_without_the_lock(text),
        ["b", "d (takes the lock twice)", "f (takes the lock twice)"]
    );
}

#[test]
fn issue_9_the_harness_has_a_thread_for_every_test_and_few_are_long() {
    let _suite = headroom_tests::shared();
    // Set before `main` by this binary unless the environment had it (main.rs).
    let threads: usize = std::env::var("RUST_TEST_THREADS")
        .expect("RUST_TEST_THREADS is set for this binary")
        .parse()
        .expect("a number");
    let (mut tests, mut long) = (0, 0);
    for entry in std::fs::read_dir(suite_dir()).expect("reading tests/e2e") {
        let text = std::fs::read_to_string(entry.expect("a directory entry").path()).unwrap_or_default();
        tests += text.lines().filter(|l| *l == "#[test]").count();
        long += text
            .lines()
            .filter(|l| l.trim() == "let _suite = headroom_tests::long_shared();")
            .count();
    }
    assert!(tests > 50, "only {tests} tests found");
    assert!(
        (1..=headroom_tests::MAX_LONG).contains(&long),
        "{long} tests take long_shared(): with more than MAX_LONG, the last would wait for the first to end"
    );
    assert!(
        threads >= tests,
        "{threads} test threads for {tests} tests: a long test late in name order would start late and end the \
         suite alone (raise HARNESS_THREADS in tests/lib.rs)"
    );
}
