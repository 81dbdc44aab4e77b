//! ARCHITECTURE.md's code map names every module: each source file of every crate (and the collector's
//! examples) appears by its path, by its path within its crate's `src/`, or by its file name beside its
//! folder; a folder's `mod.rs` by the folder.

use headroom_tests::source::{rust_files as sources, workspace};

/// Whether the code map names `path` (components relative to the workspace, like
/// `["collector", "src", "store", "history.rs"]`).
fn is_mapped(doc: &str, path: &[&str]) -> bool {
    // The module's own components: below `src/` (or `examples/`).
    let module = &path[2..];
    let (name, folder) = module.split_last().expect("a file below src/");
    let crate_folder = format!("{}/{}/", path[0], path[1]);
    if doc.contains(&path.join("/")) {
        return true;
    }
    // `store/history.rs`, `views/web/` … : any tail of the module path, folder tails ending in `/`.
    let folder_named = (0..folder.len()).any(|i| doc.contains(&format!("{}/", folder[i..].join("/"))))
        || doc.contains(&format!(
            "{crate_folder}{}",
            folder.iter().map(|f| format!("{f}/")).collect::<String>()
        ));
    if *name == "mod.rs" {
        return folder_named;
    }
    let tail_named = (0..folder.len()).any(|i| doc.contains(&format!("{}/{name}", folder[i..].join("/"))));
    tail_named
        || (doc.contains(&format!("`{name}`"))
            && (folder_named || (folder.is_empty() && doc.contains(&crate_folder))))
}

#[test]
fn issue_9_the_code_map_names_every_module() {
    let _suite = headroom_tests::shared();
    let root = &workspace();
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut missing = Vec::new();
    let mut seen = 0;
    for dir in ["common/src", "agent/src", "collector/src", "collector/examples"] {
        for file in sources(&root.join(dir)) {
            let relative = file.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let parts: Vec<&str> = relative.split('/').collect();
            seen += 1;
            if !is_mapped(&doc, &parts) {
                missing.push(relative);
            }
        }
    }
    assert!(seen > 100, "only {seen} source files found");
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's code map does not name:\n{}",
        missing.join("\n")
    );
}

#[test]
fn a_module_the_map_does_not_name_is_found() {
    let _suite = headroom_tests::shared();
    let doc = "| `collector/src/store/` | `mod.rs`, `history.rs` |\n| `agent/src/sampler/cpu.rs` |";
    assert!(is_mapped(doc, &["collector", "src", "store", "history.rs"]));
    assert!(is_mapped(doc, &["collector", "src", "store", "mod.rs"]));
    assert!(is_mapped(doc, &["agent", "src", "sampler", "cpu.rs"]));
    assert!(!is_mapped(doc, &["collector", "src", "store", "ports.rs"]));
    assert!(!is_mapped(doc, &["agent", "src", "sampler", "memory.rs"]));
    assert!(!is_mapped(doc, &["agent", "src", "run.rs"]));
}
