//! ARCHITECTURE.md's invariants are promises: every one names the tests that prove it (`test: module::name`),
//! and the structural ones (which code may use what) are checked here by reading the source, which takes
//! milliseconds. Test names cited in the other docs must exist too.

use headroom_tests::source::{self, crate_code, rust_files, workspace};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A test function found in the source: its file's path components (folders and file stem) and its name.
struct TestFn {
    components: Vec<String>,
    has_test_module: bool,
    name: String,
}

/// Every `#[test]` (or `#[tokio::test]`) function of the workspace's crates, with where it is.
fn test_functions() -> Vec<TestFn> {
    let root = workspace();
    let mut found = Vec::new();
    for dir in ["common", "agent", "collector", "tests"] {
        for path in rust_files(&root.join(dir)) {
            let relative = path.strip_prefix(&root).unwrap();
            if relative.components().any(|c| c.as_os_str() == "target") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let components: Vec<String> = relative
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            for name in test_names(&text) {
                found.push(TestFn {
                    components: components.clone(),
                    has_test_module: source::test_module_line(&text).is_some(),
                    name,
                });
            }
        }
    }
    assert!(found.len() > 500, "only {} tests found", found.len());
    found
}

/// Names of the functions in `text` that carry a test attribute among the attributes right above them.
fn test_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut attributed = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with("#[test]") || line.starts_with("#[tokio::test") {
            attributed = true;
        } else if let Some((before, rest)) = line.split_once("fn ") {
            let is_item = ["", "async ", "pub ", "pub(crate) ", "pub async "].contains(&before);
            if attributed && is_item {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                names.push(name);
            }
            attributed = false;
        } else if !(line.starts_with("#[") || line.starts_with("//") || line.is_empty()) {
            attributed = false;
        }
    }
    names
}

/// Whether `cited` (`module::…::name`) names a test: a test function `name` in a file whose path holds every
/// module segment (a folder or the file's stem, or `tests` for a file's own test module).
fn resolves(cited: &str, tests: &[TestFn]) -> bool {
    let segments: Vec<&str> = cited.split("::").collect();
    let Some((name, modules)) = segments.split_last() else {
        return false;
    };
    tests.iter().any(|test| {
        test.name == *name
            && modules.iter().all(|module| {
                test.components.iter().any(|c| c == module) || (*module == "tests" && test.has_test_module)
            })
    })
}

/// The invariants of ARCHITECTURE.md: each bullet of its "Invariants" section, continuation lines joined.
fn invariants(doc: &str) -> Vec<String> {
    let section = doc
        .split("\n## Invariants\n")
        .nth(1)
        .expect("ARCHITECTURE.md has an Invariants section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut bullets: Vec<String> = Vec::new();
    for line in section.lines() {
        if let Some(start) = line.strip_prefix("- ") {
            bullets.push(start.to_string());
        } else if let (Some(last), false) = (bullets.last_mut(), line.trim().is_empty()) {
            last.push(' ');
            last.push_str(line.trim());
        }
    }
    bullets
}

/// The tests an invariant cites: every backticked name inside a `(test: …)` or `(tests: …)` group.
fn cited_tests(invariant: &str) -> Vec<String> {
    let mut cited = Vec::new();
    let mut rest = invariant;
    while let Some(start) = rest.find("(test: ").or_else(|| rest.find("(tests: ")) {
        let group = &rest[start..];
        let end = group.find(')').unwrap_or(group.len());
        cited.extend(
            group[..end]
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|name| name.contains("::"))
                .map(str::to_string),
        );
        rest = &group[end..];
    }
    cited
}

#[test]
fn issue_9_every_invariant_names_a_test_that_exists() {
    let _suite = headroom_tests::shared();
    let doc = std::fs::read_to_string(workspace().join("ARCHITECTURE.md")).unwrap();
    let tests = test_functions();
    let bullets = invariants(&doc);
    assert!(bullets.len() > 20, "only {} invariants found", bullets.len());
    let mut problems = Vec::new();
    for bullet in &bullets {
        let start: String = bullet.chars().take(70).collect();
        let cited = cited_tests(bullet);
        if cited.is_empty() {
            problems.push(format!(
                "names no test (add \"(test: `module::name`)\"): {start}…"
            ));
        }
        for name in cited.iter().filter(|name| !resolves(name, &tests)) {
            problems.push(format!(
                "cites {name}, which is no test in the source tree: {start}…"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "ARCHITECTURE.md invariants:\n{}",
        problems.join("\n")
    );
}

/// Test names the docs cite by name (`issue_N_…`) exist, so a renamed or deleted test cannot leave a doc
/// pointing at nothing.
#[test]
fn issue_9_every_test_the_docs_name_exists() {
    let _suite = headroom_tests::shared();
    let root = workspace();
    let tests = test_functions();
    let names: BTreeSet<&str> = tests.iter().map(|t| t.name.as_str()).collect();
    let mut docs = vec![
        root.join("ARCHITECTURE.md"),
        root.join("SECURITY.md"),
        root.join("README.md"),
    ];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        docs.push(entry.unwrap().path());
    }
    let mut missing = Vec::new();
    for doc in docs.iter().filter(|p| p.extension().is_some_and(|e| e == "md")) {
        let text = std::fs::read_to_string(doc).unwrap();
        for quoted in text.split('`').skip(1).step_by(2) {
            let name = quoted.rsplit("::").next().unwrap_or(quoted);
            let looks_like_a_test = name.starts_with("issue_")
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if looks_like_a_test && !names.contains(name) {
                missing.push(format!(
                    "{}: {quoted}",
                    doc.strip_prefix(&root).unwrap().display()
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs name tests that do not exist:\n{}",
        missing.join("\n")
    );
}

/// Source files and scripts the docs name (`store/history.rs`, `tests/tests/e2e/signer.rs`, `bench/flood.sh`)
/// exist, by their full path or as the tail of one.
#[test]
fn issue_9_every_source_file_the_docs_name_exists() {
    let _suite = headroom_tests::shared();
    let root = workspace();
    let mut files = Vec::new();
    for dir in ["common", "agent", "collector", "tests", "bench", "deploy", "fuzz"] {
        for path in source::files_below(&root.join(dir), &["target", "corpus", "artifacts"]) {
            files.push(path.strip_prefix(&root).unwrap().to_string_lossy().into_owned());
        }
    }
    let mut docs = vec![
        root.join("ARCHITECTURE.md"),
        root.join("SECURITY.md"),
        root.join("README.md"),
    ];
    docs.extend(
        std::fs::read_dir(root.join("docs"))
            .unwrap()
            .flatten()
            .map(|e| e.path()),
    );
    let mut missing = Vec::new();
    for doc in docs.iter().filter(|p| p.extension().is_some_and(|e| e == "md")) {
        let text = std::fs::read_to_string(doc).unwrap();
        for quoted in text.split('`').skip(1).step_by(2) {
            // A path broken across lines in the doc is one path.
            let joined: String = quoted.lines().map(str::trim).collect();
            let quoted = joined.as_str();
            let is_path = (quoted.ends_with(".rs") || quoted.ends_with(".sh"))
                && quoted.contains('/')
                && !quoted.contains([' ', '*', '<', '{']);
            let found = files
                .iter()
                .any(|f| f == quoted || f.ends_with(&format!("/{quoted}")));
            if is_path && !found {
                missing.push(format!(
                    "{}: {quoted}",
                    doc.strip_prefix(&root).unwrap().display()
                ));
            }
        }
    }
    assert!(files.len() > 200, "only {} files found", files.len());
    assert!(
        missing.is_empty(),
        "docs name files that do not exist:\n{}",
        missing.join("\n")
    );
}

/// ARCHITECTURE.md's "Follow one value" names real code hop by hop: every backticked type (`CpuTimes`),
/// function (`derive_metrics(previous, current)`), method (`FleetState::stored_previous`) and field or table
/// name (`cpu_busy_pct`) is defined or used in the crates' code (paths are checked with the other docs').
#[test]
fn issue_9_the_follow_one_value_section_names_code_that_exists() {
    let _suite = headroom_tests::shared();
    let doc = std::fs::read_to_string(workspace().join("ARCHITECTURE.md")).unwrap();
    let section = doc
        .split("\n## Follow one value")
        .nth(1)
        .expect("ARCHITECTURE.md has a \"Follow one value\" section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let code: String = crate_code().into_iter().map(|(_, text)| text).collect();
    // `needle` as a whole identifier at its end (`CpuTime` is not `CpuTimes`).
    let has = |needle: &str| {
        code.match_indices(needle).any(|(at, _)| {
            !code[at + needle.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
    };
    let defines = |name: &str| {
        ["struct ", "enum ", "trait ", "type ", "fn ", "mod "]
            .iter()
            .any(|item| has(&format!("{item}{name}")))
    };
    let mut checked = 0;
    let mut missing = Vec::new();
    for quoted in section.split('`').skip(1).step_by(2) {
        if quoted.contains('/') || quoted.contains(' ') && !quoted.contains('(') {
            continue;
        }
        let name = quoted.split('(').next().unwrap_or(quoted);
        if !name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == ':') || name.is_empty() {
            continue;
        }
        let segments: Vec<&str> = name.split("::").collect();
        let last = segments[segments.len() - 1];
        if last.starts_with("issue_") {
            // A cited test, checked with the invariants' citations.
            continue;
        }
        checked += 1;
        let found = match segments.as_slice() {
            // `Type::method`: both exist.
            [.., owner, method] if owner.starts_with(char::is_uppercase) => {
                defines(owner) && code.contains(&format!("fn {method}("))
            }
            _ if quoted.contains('(') => code.contains(&format!("fn {last}(")),
            _ if last.starts_with(char::is_uppercase) => defines(last),
            // A field, column or table name.
            _ => has(last),
        };
        if !found {
            missing.push(quoted.to_string());
        }
    }
    assert!(checked > 10, "only {checked} names checked in the section");
    assert!(
        missing.is_empty(),
        "\"Follow one value\" names code that does not exist: {missing:?}"
    );
}

#[test]
fn the_invariant_checker_reads_bullets_and_citations() {
    let _suite = headroom_tests::shared();
    let doc = "## Invariants\n- **A.** one\n  two (test: `store::tests::a`).\n- B (tests: `x::b`, `y::c`)\n\n## Next\n- not one";
    let bullets = invariants(&format!("# Title\n{doc}"));
    assert_eq!(bullets.len(), 2);
    assert_eq!(cited_tests(&bullets[0]), ["store::tests::a"]);
    assert_eq!(cited_tests(&bullets[1]), ["x::b", "y::c"]);
    assert!(cited_tests("- C (`x::y` without the word)").is_empty());
    let tests = [TestFn {
        components: ["collector", "src", "store", "tests"].map(String::from).to_vec(),
        has_test_module: false,
        name: "a".into(),
    }];
    assert!(resolves("store::tests::a", &tests));
    assert!(!resolves("live::tests::a", &tests));
    assert!(!resolves("store::tests::b", &tests));
    assert_eq!(
        test_names("#[test]\nfn t() {}\nfn u() {}\n#[tokio::test]\n#[ignore]\nasync fn v() {}"),
        ["t", "v"]
    );
}

/// The non-test code of the source files whose path starts with `prefix`.
fn code_under(prefix: &str) -> Vec<(String, String)> {
    crate_code()
        .into_iter()
        .filter(|(path, _)| path.starts_with(prefix))
        .collect()
}

/// Files whose non-test code mentions `needle`, as paths relative to the workspace.
fn files_naming(code: &[(String, String)], needle: &str) -> BTreeSet<String> {
    code.iter()
        .filter(|(_, text)| text.contains(needle))
        .map(|(path, _)| path.clone())
        .collect()
}

/// Asserts that only `allowed` files (paths, or folders ending in `/`) mention any of `needles`.
fn only_these_name(code: &[(String, String)], needles: &[&str], allowed: &[&str], rule: &str) {
    let mut offenders = BTreeMap::new();
    for needle in needles {
        for path in files_naming(code, needle) {
            if !allowed
                .iter()
                .any(|a| path == *a || (a.ends_with('/') && path.starts_with(a)))
            {
                offenders.entry(path).or_insert_with(Vec::new).push(*needle);
            }
        }
    }
    assert!(offenders.is_empty(), "{rule}; broken by: {offenders:?}");
}

#[test]
fn issue_9_common_has_no_tokio_and_no_sockets() {
    let _suite = headroom_tests::shared();
    let manifest = std::fs::read_to_string(workspace().join("common/Cargo.toml")).unwrap();
    let dependencies = manifest.split("[dependencies]").nth(1).unwrap();
    let dependencies = dependencies.split("\n[").next().unwrap();
    for line in dependencies.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['=', ' ', '.']).next().unwrap_or("");
        assert!(
            !["tokio", "quinn", "mio", "socket2"].contains(&name),
            "common/Cargo.toml depends on {name}: common stays free of runtimes and sockets"
        );
        if name == "reqwest" {
            assert!(
                line.contains("optional = true"),
                "reqwest is common's optional `http` feature only"
            );
        }
    }
    let code = code_under("common/");
    let needles = [
        "tokio",
        "quinn",
        "TcpStream",
        "TcpListener",
        "UdpSocket",
        "reqwest",
    ];
    only_these_name(
        &code,
        &needles,
        &["common/src/http.rs"],
        "common has no tokio and no sockets",
    );
    let lib = std::fs::read_to_string(workspace().join("common/src/lib.rs")).unwrap();
    assert!(
        lib.contains("#[cfg(feature = \"http\")]\npub mod http;"),
        "common::http is behind its feature"
    );
}

#[test]
fn issue_9_common_reads_the_clock_only_in_clock_rs() {
    let _suite = headroom_tests::shared();
    let code = code_under("common/");
    let needles = [
        "SystemTime::now",
        "Instant::now",
        "UNIX_EPOCH.elapsed",
        "thread_rng",
    ];
    only_these_name(
        &code,
        &needles,
        &["common/src/clock.rs"],
        "common reads the clock only in clock.rs",
    );
}

#[test]
fn issue_9_files_are_written_whole_only_through_write_atomic() {
    let _suite = headroom_tests::shared();
    let code = crate_code();
    // Files written whole go through `write_atomic`; these hold files open or append to them.
    let allowed = [
        "common/src/files.rs",
        // Spool segments, appended to, and the ack mark overwritten in place when the disk is full.
        "agent/src/spool/mod.rs",
        "agent/src/spool/scan.rs",
        "agent/src/spool/marks.rs",
        // An identity file's lock (`FileLock`).
        "collector/src/identity/mod.rs",
        // `generate-docs`: packaging, not a service.
        "common/src/cli_docs.rs",
    ];
    let needles = [
        "fs::write(",
        "File::create(",
        "OpenOptions",
        "fs::create_dir(",
        "fs::create_dir_all(",
        "fs::copy(",
        "tokio::fs::",
    ];
    only_these_name(
        &code,
        &needles,
        &allowed,
        "a file written whole goes through common::files::write_atomic",
    );
    // Every file opened for writing gets an explicit mode, whatever the umask.
    for (path, text) in &code {
        for (at, _) in text.match_indices("OpenOptions::new()") {
            let statement = &text[at..];
            let statement = &statement[..statement.find(".open(").unwrap_or(statement.len())];
            // A mode only matters when the call may create the file.
            let creates = statement.contains(".create(true)") || statement.contains(".create_new(true)");
            assert!(
                !creates || statement.contains(".mode("),
                "{path}: a file created without an explicit mode: {statement}"
            );
        }
    }
}

#[test]
fn issue_9_only_the_listed_files_know_quic() {
    let _suite = headroom_tests::shared();
    let allowed = [
        "agent/src/uplink.rs",
        "agent/src/enroll.rs",
        "collector/src/quic/mod.rs",
        "collector/src/quic/driver.rs",
        "collector/src/quic/handles.rs",
        "collector/src/quic/ids.rs",
    ];
    only_these_name(
        &crate_code(),
        &["quinn"],
        &allowed,
        "only the listed files know QUIC",
    );
}

#[test]
fn issue_9_the_collector_uses_the_agent_library_only_to_run_an_agent_in_the_demo() {
    let _suite = headroom_tests::shared();
    let code = code_under("collector/");
    let allowed = ["collector/src/app/demo.rs", "collector/src/app/sim.rs"];
    only_these_name(
        &code,
        &["headroom_agent"],
        &allowed,
        "the collector uses the agent only in demo",
    );
    let manifest = std::fs::read_to_string(workspace().join("collector/Cargo.toml")).unwrap();
    assert!(
        manifest.contains("headroom-agent"),
        "the demo's in-process agent comes from the agent library"
    );
}

#[test]
fn issue_9_samplers_read_only_through_the_injected_proc_root() {
    let _suite = headroom_tests::shared();
    let code = code_under("agent/src/sampler/");
    assert!(code.len() > 10, "the sampler files were not found");
    for (path, text) in &code {
        assert!(
            !text.contains("sysinfo"),
            "{path} reads host facts through sysinfo, not the proc root"
        );
        for absolute in ["\"/proc", "\"/sys", "\"/etc", "\"/run", "\"/dev"] {
            let uses: Vec<&str> = text.lines().filter(|line| line.contains(absolute)).collect();
            // The default root itself is the one absolute path (`SamplerConfig::default`).
            let default_root = path.ends_with("sampler/mod.rs")
                && uses
                    .iter()
                    .all(|l| l.trim() == "proc_root: PathBuf::from(\"/proc\"),");
            assert!(
                uses.is_empty() || default_root,
                "{path} names an absolute path: {uses:?}"
            );
        }
    }
}

#[test]
fn issue_9_web_pages_carry_no_script_and_no_external_asset() {
    let _suite = headroom_tests::shared();
    let code = code_under("collector/src/views/web/");
    assert!(code.len() >= 5, "the web view's files were not found");
    for (path, text) in &code {
        let lower = text.to_lowercase();
        // Markup is maud (`script { … }`) or text (`<script`); assets would be absolute URLs or imports.
        let banned = [
            "<script",
            "script {",
            "script(",
            "javascript",
            "src=\"http",
            "href=\"http",
            "@import",
            "url(http",
        ];
        for banned in banned {
            assert!(
                !lower.contains(banned),
                "{path}: the web view must not use {banned:?}"
            );
        }
    }
}

/// SECURITY.md: "a poisoned lock does not stop ingest". No lock in the collector is unwrapped: a thread that
/// panicked while holding one leaves a state that is still whole, and the others take it as it is.
#[test]
fn issue_9_a_poisoned_lock_does_not_stop_the_collector() {
    let _suite = headroom_tests::shared();
    let mut unwrapped = Vec::new();
    for (path, text) in code_under("collector/src/") {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        for lock in [".lock()", ".read()", ".write()"] {
            for then in [".unwrap()", ".expect("] {
                if compact.contains(&format!("{lock}{then}")) {
                    unwrapped.push(format!("{path}: {lock}{then}"));
                }
            }
        }
    }
    assert!(
        unwrapped.is_empty(),
        "locks unwrapped (take a poisoned lock with `unwrap_or_else(|p| p.into_inner())`): {unwrapped:?}"
    );
}

#[test]
fn issue_9_serve_never_reads_the_ca_key() {
    let _suite = headroom_tests::shared();
    let code = crate_code();
    let pki_cli = &code
        .iter()
        .find(|(p, _)| p == "collector/src/identity/pki_cli.rs")
        .expect("pki_cli.rs")
        .1;
    // `load_ca` and every function of pki_cli.rs that calls it.
    let mut readers = vec!["load_ca".to_string()];
    for (name, body) in functions(pki_cli) {
        if body.contains("load_ca(") && name != "load_ca" {
            readers.push(name);
        }
    }
    let needles: Vec<String> = readers.iter().map(|name| format!("{name}(")).collect();
    let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
    let allowed = [
        "collector/src/identity/pki_cli.rs",
        "collector/src/identity/signer/process.rs",
        "collector/src/commands/identity.rs",
        "collector/src/app/demo.rs",
    ];
    only_these_name(
        &code,
        &needles,
        &allowed,
        "only the signer and one-shot commands read the CA key",
    );
}

/// Every `fn` item in `code` with its body (braces matched), by name.
fn functions(code: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (at, _) in code.match_indices("fn ") {
        if at > 0
            && code[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            continue;
        }
        let name: String = code[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let Some(open) = code[at..].find(['{', ';']).map(|i| at + i) else {
            continue;
        };
        if code.as_bytes()[open] == b'{' {
            out.push((name, code[open..block_end(code, open)].to_string()));
        }
    }
    out
}

/// The index just past the brace that closes the block opening at `open`.
fn block_end(code: &str, open: usize) -> usize {
    closing(code, open, '{', '}')
}

/// The index just past the `close` that matches the `open_char` at `open`.
fn closing(code: &str, open: usize, open_char: char, close: char) -> usize {
    let mut depth = 0usize;
    for (i, c) in code[open..].char_indices() {
        if c == open_char {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return open + i + 1;
            }
        }
    }
    code.len()
}

/// `code` with the arguments of every `spawn_blocking(…)` call blanked out.
fn without_blocking_calls(code: &str) -> String {
    let mut out = code.to_string();
    while let Some(at) = out.find("spawn_blocking(") {
        let end = closing(&out, at + "spawn_blocking".len(), '(', ')');
        out.replace_range(at..end, "blocking_call");
    }
    out
}

/// The async regions of `code`: bodies of `async fn` items and `async` blocks.
fn async_regions(code: &str) -> Vec<String> {
    let mut regions = Vec::new();
    for (at, _) in code.match_indices("async ") {
        let rest = &code[at..];
        let opens_block = rest.starts_with("async move {") || rest.starts_with("async {");
        let is_fn = rest.starts_with("async fn ");
        if !(opens_block || is_fn) {
            continue;
        }
        if let Some(open) = rest.find('{').map(|i| at + i) {
            regions.push(code[open..block_end(code, open)].to_string());
        }
    }
    regions
}

/// Whether `code` calls `name` (`name(`, `.name(` or `::name(`, not a longer identifier ending in it).
fn calls(code: &str, name: &str) -> bool {
    let call = format!("{name}(");
    code.match_indices(&call).any(|(at, _)| {
        !code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

#[test]
fn issue_9_nothing_on_a_connections_async_path_writes_a_file() {
    let _suite = headroom_tests::shared();
    let code = crate_code();
    // The identity files' writers: functions under identity/ that write a file, and those that call them.
    let identity: Vec<(String, String)> = code
        .iter()
        .filter(|(p, _)| p.starts_with("collector/src/identity/"))
        .flat_map(|(_, text)| functions(text))
        .collect();
    let mut writers: BTreeSet<String> = ["write_json", "write_atomic"].map(String::from).into();
    loop {
        let before = writers.len();
        for (name, body) in &identity {
            if writers
                .iter()
                .any(|w| w != name && calls(&without_blocking_calls(body), w))
            {
                writers.insert(name.clone());
            }
        }
        if writers.len() == before {
            break;
        }
    }
    // `decide` (enrollment's decision) writes certs.json and tokens.json: it must be among them, or this
    // test would check nothing.
    assert!(
        writers.contains("decide") && writers.len() > 5,
        "writers found: {writers:?}"
    );
    let path_files = [
        "collector/src/ingest/mod.rs",
        "collector/src/ingest/connection.rs",
        "collector/src/ingest/stored.rs",
        "collector/src/ingest/context.rs",
        "collector/src/ingest/enroll.rs",
        "collector/src/identity/enroll_server.rs",
    ];
    let mut offenders = Vec::new();
    for path in path_files {
        let text = &code
            .iter()
            .find(|(p, _)| p == path)
            .unwrap_or_else(|| panic!("{path}"))
            .1;
        let regions = async_regions(text);
        assert!(!regions.is_empty(), "{path} has no async code");
        for region in regions.iter().map(|r| without_blocking_calls(r)) {
            for primitive in ["std::fs::", "tokio::fs::", "File::", "OpenOptions"] {
                if region.contains(primitive) {
                    offenders.push(format!("{path}: {primitive}"));
                }
            }
            for writer in writers.iter().filter(|w| calls(&region, w)) {
                offenders.push(format!("{path}: {writer}"));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "file writes on a connection's async path (move them to a blocking thread): {offenders:?}"
    );
}

#[test]
fn the_async_path_checker_sees_writes_outside_blocking_calls_only() {
    let _suite = headroom_tests::shared();
    let code = "fn decide() { write_json(x) }\nasync fn handle() { let d = spawn_blocking(move || decide(a, f(b))).await; }\nfn sync() { decide() }";
    let regions = async_regions(code);
    assert_eq!(regions.len(), 1);
    assert!(calls(&regions[0], "decide"));
    assert!(!calls(&without_blocking_calls(&regions[0]), "decide"));
    assert!(!calls("undecide()", "decide"));
    assert_eq!(
        functions(code)[0],
        ("decide".to_string(), "{ write_json(x) }".to_string())
    );
}

/// The collector's layers and which other layers each may use (`crate::X` in its non-test code). The layers
/// listed first are the lower ones; a layer uses only layers before it, so there is no cycle between them.
const LAYERS: [(&str, &[&str]); 13] = [
    ("quic", &[]),
    ("metrics", &[]),
    ("telemetry", &[]),
    ("sizing", &[]),
    ("store", &["metrics", "telemetry"]),
    ("live", &["metrics"]),
    ("export", &["metrics", "telemetry", "store"]),
    ("analytics", &["metrics", "telemetry", "sizing", "store", "live"]),
    ("identity", &["quic", "telemetry"]),
    (
        "ingest",
        &[
            "quic",
            "metrics",
            "telemetry",
            "store",
            "live",
            "analytics",
            "identity",
        ],
    ),
    (
        "views",
        &[
            "metrics",
            "telemetry",
            "sizing",
            "store",
            "live",
            "export",
            "analytics",
            "identity",
        ],
    ),
    (
        "config",
        &[
            "metrics",
            "telemetry",
            "sizing",
            "store",
            "live",
            "export",
            "analytics",
            "identity",
            "views",
        ],
    ),
    (
        "app",
        &[
            "quic",
            "metrics",
            "telemetry",
            "sizing",
            "store",
            "live",
            "export",
            "analytics",
            "identity",
            "ingest",
            "views",
            "config",
        ],
    ),
];

/// The collector's non-test code by module path (`["live", "fleet"]` for `live/fleet.rs`, `["live"]` for
/// `live/mod.rs`), from `collector/src`.
fn collector_modules() -> Vec<(Vec<String>, String)> {
    crate_code()
        .into_iter()
        .filter_map(|(path, text)| {
            let relative = path
                .strip_prefix("collector/src/")?
                .strip_suffix(".rs")?
                .to_string();
            let mut module: Vec<String> = relative.split('/').map(String::from).collect();
            if module.last().is_some_and(|last| last == "mod") {
                module.pop();
            }
            Some((module, text))
        })
        .collect()
}

/// The module paths `code` (in module `module`) refers to: `crate::a::b`, `super::c` and `crate::{d, e}`,
/// resolved to absolute paths from the crate root (items included; the caller keeps what is a module).
fn references(module: &[String], code: &str) -> Vec<Vec<String>> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    for (at, _) in code.match_indices("crate::").chain(code.match_indices("super::")) {
        if code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
        {
            continue;
        }
        let mut base: Vec<String> = Vec::new();
        let mut rest = &code[at..];
        if let Some(after) = rest.strip_prefix("crate::") {
            rest = after;
        } else {
            // `self` is the module itself (a folder's `mod.rs` is the folder); each `super` goes up one.
            let mut depth = module.len();
            while let Some(after) = rest.strip_prefix("super::") {
                depth = depth.saturating_sub(1);
                rest = after;
            }
            base = module[..depth.min(module.len())].to_vec();
        }
        let mut path = base;
        loop {
            if let Some(group) = rest.strip_prefix('{') {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                for item in group.split(',') {
                    let mut each = path.clone();
                    each.push(ident(item.trim()));
                    out.push(each);
                }
                break;
            }
            let segment = ident(rest);
            if segment.is_empty() {
                break;
            }
            rest = &rest[segment.len()..];
            path.push(segment);
            match rest.strip_prefix("::") {
                Some(after) => rest = after,
                None => break,
            }
        }
        if !path.is_empty() {
            out.push(path);
        }
    }
    out
}

#[test]
fn issue_9_collector_layers_import_one_way() {
    let _suite = headroom_tests::shared();
    let allowed: BTreeMap<&str, &[&str]> = LAYERS.into_iter().collect();
    // The table itself has no cycle: every layer uses only layers listed before it.
    for (index, (layer, uses)) in LAYERS.iter().enumerate() {
        for used in *uses {
            let position = LAYERS
                .iter()
                .position(|(l, _)| l == used)
                .expect("a listed layer");
            assert!(position < index, "{layer} may use {used}, listed after it");
        }
    }
    let mut broken = BTreeSet::new();
    for (module, code) in collector_modules() {
        let Some(uses) = allowed.get(module[0].as_str()) else {
            // The binary's own modules (main, cli, commands) and lib.rs sit above every layer.
            continue;
        };
        for target in references(&module, &code) {
            let used = target[0].as_str();
            if used != module[0] && allowed.contains_key(used) && !uses.contains(&used) {
                broken.insert(format!("{} uses {}", module.join("/"), target.join("::")));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "imports against the layering:\n{}",
        broken.into_iter().collect::<Vec<_>>().join("\n")
    );
}

/// Alarm transitions and outlier flags reach the database through the store writer: the analytics layer
/// names nothing of the store but the writer's handle (`StoreHandle`) and the history rows it hands over.
#[test]
fn issue_9_analytics_reaches_the_store_only_through_the_writer() {
    let _suite = headroom_tests::shared();
    let mut seen = 0;
    let mut other = BTreeSet::new();
    for (module, code) in collector_modules()
        .into_iter()
        .filter(|(m, _)| m[0] == "analytics")
    {
        for target in references(&module, &code).into_iter().filter(|t| t[0] == "store") {
            seen += 1;
            if !matches!(target.get(1).map(String::as_str), Some("StoreHandle" | "history")) {
                other.insert(format!("{} uses {}", module.join("/"), target.join("::")));
            }
        }
    }
    assert!(
        seen > 0,
        "analytics names no store type: is the history still kept?"
    );
    assert!(
        other.is_empty(),
        "analytics reaches the store past its writer: {other:?}"
    );
}

#[test]
fn issue_9_no_import_cycles_between_collector_modules() {
    let _suite = headroom_tests::shared();
    let modules = collector_modules();
    let known: BTreeSet<Vec<String>> = modules.iter().map(|(m, _)| m.clone()).collect();
    // Edges between siblings: module a (or anything under it) uses module b (or anything under it), both
    // children of the same folder.
    let mut edges: BTreeMap<Vec<String>, BTreeSet<(String, String)>> = BTreeMap::new();
    for (module, code) in &modules {
        for target in references(module, code) {
            // The longest prefix of the target that is a module.
            let Some(target) = (1..=target.len())
                .rev()
                .map(|n| target[..n].to_vec())
                .find(|p| known.contains(p))
            else {
                continue;
            };
            let common = module.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common < module.len() && common < target.len() {
                edges
                    .entry(module[..common].to_vec())
                    .or_default()
                    .insert((module[common].clone(), target[common].clone()));
            }
        }
    }
    let mut cycles = Vec::new();
    for (folder, pairs) in &edges {
        if let Some(cycle) = find_cycle(pairs) {
            cycles.push(format!(
                "{}: {}",
                if folder.is_empty() {
                    "src".into()
                } else {
                    folder.join("/")
                },
                cycle.join(" -> ")
            ));
        }
    }
    assert!(edges.len() > 5, "too few module edges found: {edges:?}");
    assert!(
        cycles.is_empty(),
        "import cycles between collector modules:\n{}",
        cycles.join("\n")
    );
}

/// A cycle in the directed graph `edges`, as the nodes along it (first repeated at the end), if there is one.
fn find_cycle(edges: &BTreeSet<(String, String)>) -> Option<Vec<String>> {
    fn visit<'a>(
        node: &'a str,
        edges: &'a BTreeSet<(String, String)>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| *n == node) {
            let mut cycle: Vec<String> = path[at..].iter().map(|n| n.to_string()).collect();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        for (_, next) in edges.iter().filter(|(from, _)| from == node) {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    edges
        .iter()
        .find_map(|(from, _)| visit(from, edges, &mut Vec::new(), &mut done))
}

#[test]
fn the_import_checkers_resolve_paths_and_find_cycles() {
    let _suite = headroom_tests::shared();
    let module = ["live".to_string(), "summary".to_string()];
    let refs = references(
        &module,
        "use super::fleet::FleetState;\nuse crate::{metrics, store::x};\nlet a = crate::sizing::size();",
    );
    assert!(
        refs.contains(&vec!["live".into(), "fleet".into(), "FleetState".into()]),
        "{refs:?}"
    );
    assert!(refs.contains(&vec!["metrics".into()]), "{refs:?}");
    assert!(refs.contains(&vec!["sizing".into(), "size".into()]), "{refs:?}");
    let folder = ["live".to_string()];
    assert_eq!(
        references(&folder, "super::store::Store"),
        [vec!["store".to_string(), "Store".into()]]
    );
    let pairs = |list: &[(&str, &str)]| -> BTreeSet<(String, String)> {
        list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    };
    assert_eq!(find_cycle(&pairs(&[("a", "b"), ("b", "c")])), None);
    assert_eq!(
        find_cycle(&pairs(&[("html", "svg"), ("svg", "report"), ("report", "html")])).map(|c| c.len()),
        Some(4)
    );
    assert!(Path::new(&workspace()).join("collector/src").is_dir());
}
