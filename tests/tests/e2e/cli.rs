//! The command-line contract: `sample` without network, `check-config`, exit codes and one-line errors.

use headroom_tests::{binary, stderr_with_closed_stdout};
use std::process::Command;

fn run(bin: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(binary(bin)).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn workspace_file(relative: &str) -> String {
    format!("{}/../{relative}", env!("CARGO_MANIFEST_DIR"))
}

/// Issue 11 (point 7): `cert issue --days` is capped like enrollment, with a one-line usage error.
#[test]
fn issue_11_cert_issue_days_is_capped_like_enrollment() {
    let _suite = headroom_tests::shared();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("collector");
    let state = state.to_str().unwrap();
    let (code, _, stderr) = run("headroom-collector", &["ca", "init", "--state-dir", state]);
    assert_eq!(code, Some(0), "{stderr}");
    let out = dir.path().join("web-1");
    let out = out.to_str().unwrap();
    let issue = |days: &str| {
        run(
            "headroom-collector",
            &[
                "cert",
                "issue",
                "--host",
                "web-1",
                "--days",
                days,
                "--state-dir",
                state,
                "--out",
                out,
            ],
        )
    };
    let (code, _, stderr) = issue("3650");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--days 3650 is outside 1..=365") && stderr.trim().lines().count() == 1,
        "{stderr}"
    );
    assert!(!dir.path().join("web-1/agent.pem").exists());
    let (code, _, stderr) = issue("365");
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn agent_sample_prints_this_host_as_json_and_as_a_table() {
    let _suite = headroom_tests::shared();
    let (code, stdout, stderr) = run("headroom-agent", &["sample", "--format", "json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let sample: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let cores = sample["cpu"]["cores"].as_u64().unwrap();
    assert!(cores >= 1, "{sample}");
    assert!(sample["memory"]["total_bytes"].as_u64().unwrap() > 0);
    let established = sample["sockets"]["tcp_states"]["counts"][0].as_u64();
    assert!(
        established.is_some(),
        "per-state TCP counts present: {}",
        sample["sockets"]
    );

    let (code, table, stderr) = run("headroom-agent", &["sample"]);
    assert_eq!(code, Some(0), "{stderr}");
    for needle in ["busy", "available", "established", "time_wait", "listen"] {
        assert!(table.contains(needle), "table lacks {needle}:\n{table}");
    }
}

#[test]
fn example_configs_pass_check_config() {
    let _suite = headroom_tests::shared();
    let (code, stdout, stderr) = run(
        "headroom-agent",
        &["check-config", "--config", &workspace_file("deploy/agent.toml")],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains(": ok"), "{stdout}");
    let (code, _, stderr) = run(
        "headroom-collector",
        &[
            "check-config",
            "--config",
            &workspace_file("deploy/collector.toml"),
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn a_bad_config_exits_2_with_one_line_naming_file_line_and_fix() {
    let _suite = headroom_tests::shared();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, "[sampling]\nintervl = \"1s\"\n").unwrap();
    let (code, _, stderr) = run(
        "headroom-agent",
        &["check-config", "--config", path.to_str().unwrap()],
    );
    assert_eq!(code, Some(2));
    let line = stderr.trim();
    assert_eq!(line.lines().count(), 1, "{stderr}");
    assert!(
        line.contains("agent.toml") && line.contains("line 2") && line.contains("did you mean \"interval\""),
        "{line}"
    );

    // `run` without a collector address is a config error too.
    std::fs::write(&path, "").unwrap();
    let (code, _, stderr) = run("headroom-agent", &["run", "--config", path.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("collector.address"), "{stderr}");

    let (code, _, stderr) = run(
        "headroom-collector",
        &["serve", "--config", "/nonexistent/collector.toml"],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("/nonexistent/collector.toml"), "{stderr}");
}

#[test]
fn fleet_without_a_running_collector_says_where_it_looked() {
    let _suite = headroom_tests::shared();
    let port = headroom_tests::free_tcp_port();
    let api = format!("127.0.0.1:{port}");
    let (code, _, stderr) = run("headroom-collector", &["fleet", "--api", &api]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(&api) && stderr.contains("headroom-collector serve"),
        "{stderr}"
    );
}

/// Runs `check-config` on `config`, writes what it printed to a file and checks that file again: the printed
/// effective configuration is itself a valid configuration that prints the same way.
fn check_config_round_trip(bin: &str, config: &str) {
    let (code, printed, stderr) = run(bin, &["check-config", "--config", config]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(printed.starts_with(&format!("# {config}: ok")), "{printed}");
    assert!(!printed.contains("Config {"), "no debug dump: {printed}");
    let dir = tempfile::tempdir().unwrap();
    let again_path = dir.path().join("effective.toml");
    std::fs::write(&again_path, &printed).unwrap();
    let again_path = again_path.display().to_string();
    let (code, again, stderr) = run(bin, &["check-config", "--config", &again_path]);
    assert_eq!(code, Some(0), "{stderr}");
    let body = |text: &str| text.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&again), body(&printed));

    let (code, json, stderr) = run(bin, &["check-config", "--config", config, "--format", "json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let document: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(
        document["tls"]["key"].as_str().unwrap().starts_with('/'),
        "{document}"
    );
}

#[test]
fn issue_15_check_config_prints_the_effective_configuration_as_toml_and_json() {
    let _suite = headroom_tests::shared();
    check_config_round_trip("headroom-agent", &workspace_file("deploy/agent.toml"));
    check_config_round_trip("headroom-collector", &workspace_file("deploy/collector.toml"));
}

#[test]
fn issue_15_a_closed_pipe_ends_commands_quietly() {
    let _suite = headroom_tests::shared();
    let agent_config = workspace_file("deploy/agent.toml");
    let collector_config = workspace_file("deploy/collector.toml");
    for (bin, args) in [
        ("headroom-agent", vec!["check-config", "--config", &agent_config]),
        ("headroom-agent", vec!["sample"]),
        (
            "headroom-collector",
            vec!["check-config", "--config", &collector_config],
        ),
    ] {
        let stderr = stderr_with_closed_stdout(bin, &args);
        assert!(stderr.is_empty(), "{bin} {args:?}: {stderr}");
    }
}

#[test]
fn issue_15_sample_prints_human_units_in_tables_and_raw_numbers_in_csv() {
    let _suite = headroom_tests::shared();
    let (code, table, stderr) = run("headroom-agent", &["sample", "--no-header"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!table.contains("family"), "{table}");
    let total = table
        .lines()
        .find(|l| l.contains("memory") && l.contains("total"))
        .unwrap();
    assert!(total.trim_end().ends_with("iB"), "{total}");
    let busy = table.lines().find(|l| l.contains("busy")).unwrap();
    assert!(busy.trim_end().ends_with('%'), "{busy}");

    let (code, csv, stderr) = run("headroom-agent", &["sample", "--format", "csv"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(csv.lines().next(), Some("family,metric,value,unit"));
    let total = csv.lines().find(|l| l.starts_with("memory,total,")).unwrap();
    let bytes: u64 = total.split(',').nth(2).unwrap().parse().unwrap();
    assert!(bytes > 1 << 20 && total.ends_with(",bytes"), "{total}");
}

#[test]
fn issue_15_man_pages_render_and_completions_cover_every_subcommand() {
    let _suite = headroom_tests::shared();
    let has_man = Command::new("man").arg("--version").output().is_ok();
    if !has_man && headroom_tests::e2e_required() {
        panic!("man is missing (apt-get install man-db)");
    }
    for (bin, subcommands) in [
        ("headroom-agent", &["run", "sample", "enroll", "check-config"][..]),
        (
            "headroom-collector",
            &[
                "serve",
                "demo",
                "ca",
                "cert",
                "token",
                "check-config",
                "fleet",
                "outliers",
                "alarms",
                "hosts",
                "sizing",
                "report",
            ][..],
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().display().to_string();
        let (code, _, stderr) = run(bin, &["generate-docs", "--out", &out]);
        assert_eq!(code, Some(0), "{stderr}");
        let read = |relative: &str| std::fs::read_to_string(dir.path().join(relative)).unwrap();
        let bash = read(&format!("completions/{bin}.bash"));
        let zsh = read(&format!("completions/_{bin}"));
        let fish = read(&format!("completions/{bin}.fish"));
        for sub in subcommands {
            assert!(
                dir.path().join(format!("man/{bin}-{sub}.1")).exists(),
                "no page for {sub}"
            );
            assert!(
                bash.contains(sub) && zsh.contains(sub) && fish.contains(sub),
                "{sub}"
            );
        }
        if !has_man {
            println!("skipped rendering: man is not installed");
            continue;
        }
        let page = dir.path().join(format!("man/{bin}.1"));
        let rendered = Command::new("man")
            .arg("-l")
            .arg(&page)
            .env("MANWIDTH", "100")
            .env("MANPAGER", "cat")
            .output()
            .unwrap();
        assert!(rendered.status.success());
        let text = String::from_utf8_lossy(&rendered.stdout);
        for sub in subcommands {
            assert!(text.contains(&format!("{bin}-{sub}(1)")), "{sub} not in:\n{text}");
        }
    }
}

/// Every command of `bin` as its argument list (`["cert", "list"]`), read from the man pages it generates:
/// one page per visible command.
fn every_command(bin: &str) -> Vec<Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(bin, &["generate-docs", "--out", dir.path().to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    let mut commands: Vec<Vec<String>> = std::fs::read_dir(dir.path().join("man"))
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            let words = name
                .strip_prefix(&format!("{bin}-"))?
                .strip_suffix(".1")?
                .to_string();
            Some(words.split('-').map(str::to_string).collect())
        })
        .collect();
    // Page names join words with '-', like command names do: put multi-word commands back together.
    for command in &mut commands {
        if command.len() == 2 && command[0] == "check" {
            *command = vec!["check-config".to_string()];
        }
    }
    commands.sort();
    commands
}

/// Issue 15: every table command takes `--format table|json|csv` and `--no-header` (the walk finds each
/// command offering a table), and `cert list` / `token list` print all three.
#[test]
fn issue_15_every_table_command_takes_format_and_no_header() {
    let _suite = headroom_tests::shared();
    let mut table_commands = Vec::new();
    for bin in ["headroom-agent", "headroom-collector"] {
        for command in every_command(bin) {
            let mut args: Vec<&str> = command.iter().map(String::as_str).collect();
            args.push("--help");
            let (code, help, stderr) = run(bin, &args);
            assert_eq!(code, Some(0), "{bin} {args:?}: {stderr}");
            let offers_table = help
                .lines()
                .any(|line| line.contains("--format") && help.contains("possible values: table"));
            if offers_table {
                assert!(
                    help.contains("[possible values: table, json, csv]") && help.contains("--no-header"),
                    "{bin} {command:?}:\n{help}"
                );
                table_commands.push(command.join(" "));
            }
        }
    }
    for expected in [
        "sample",
        "fleet",
        "hosts",
        "outliers",
        "alarms",
        "sizing",
        "cert list",
        "token list",
    ] {
        assert!(
            table_commands.iter().any(|c| c == expected),
            "{expected} not among {table_commands:?}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("collector");
    let state = state.to_str().unwrap();
    let (code, _, stderr) = run("headroom-collector", &["ca", "init", "--state-dir", state]);
    assert_eq!(code, Some(0), "{stderr}");
    let out = dir.path().join("web-1");
    let (code, _, stderr) = run(
        "headroom-collector",
        &[
            "cert",
            "issue",
            "--host",
            "web-1",
            "--state-dir",
            state,
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let (code, token, stderr) = run(
        "headroom-collector",
        &[
            "token",
            "create",
            "--uses",
            "3",
            "--label",
            "group=web",
            "--state-dir",
            state,
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let token_id = token.split_once('.').unwrap().0.to_string();
    for (list, key, first) in [("cert", "certs", "web-1"), ("token", "tokens", token_id.as_str())] {
        let print = |extra: &[&str]| {
            let mut args = vec![list, "list", "--state-dir", state];
            args.extend_from_slice(extra);
            let (code, stdout, stderr) = run("headroom-collector", &args);
            assert_eq!(code, Some(0), "{list} list {extra:?}: {stderr}");
            stdout
        };
        let table = print(&[]);
        assert_eq!(table.lines().count(), 2, "{table}");
        let bare = print(&["--no-header"]);
        let words = |text: &str| text.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        assert_eq!(words(&bare), words(table.lines().nth(1).unwrap()), "{bare}");
        assert!(bare.trim_start().starts_with(first), "{bare}");
        let csv = print(&["--format", "csv"]);
        assert_eq!(csv.lines().count(), 2, "{csv}");
        assert!(
            csv.lines().nth(1).unwrap().starts_with(&format!("{first},")),
            "{csv}"
        );
        assert_eq!(
            print(&["--format", "csv", "--no-header"]),
            csv.lines().nth(1).unwrap().to_string() + "\n"
        );
        let json: serde_json::Value = serde_json::from_str(&print(&["--format", "json"])).unwrap();
        assert_eq!(json["schema_version"], 1, "{json}");
        assert_eq!(json[key].as_array().unwrap().len(), 1, "{json}");
        // docs/API.md documents exactly these fields.
        let heading = format!("headroom-collector {list} list --format json");
        if let Err(errors) = headroom_tests::api_doc::ApiDoc::load().check(&heading, &json) {
            panic!("{}", errors.join("\n"));
        }
    }
    assert!(
        !print_contains_secret(state, &token),
        "token list printed the secret"
    );
}

/// Whether any format of `token list` shows the secret part of `token`.
fn print_contains_secret(state: &str, token: &str) -> bool {
    let secret = token.trim().split_once('.').unwrap().1;
    ["table", "json", "csv"].iter().any(|format| {
        let (_, stdout, _) = run(
            "headroom-collector",
            &["token", "list", "--state-dir", state, "--format", format],
        );
        stdout.contains(secret)
    })
}

/// Issue 15: the packaging command `generate-docs` is hidden from `--help`, the man pages and every shell's
/// completions.
#[test]
fn issue_15_generate_docs_is_in_no_completion_or_man_page() {
    let _suite = headroom_tests::shared();
    for bin in ["headroom-agent", "headroom-collector"] {
        let (_, help, _) = run(bin, &["--help"]);
        assert!(!help.contains("generate-docs"), "{help}");
        let dir = tempfile::tempdir().unwrap();
        let (code, listed, stderr) = run(bin, &["generate-docs", "--out", dir.path().to_str().unwrap()]);
        assert_eq!(code, Some(0), "{stderr}");
        let files: Vec<&str> = listed.lines().collect();
        assert!(files.len() >= 6, "{listed}");
        for file in files {
            let text = std::fs::read_to_string(file).unwrap();
            assert!(
                !text.contains("generate-docs") && !text.contains("generate__subcmd__docs"),
                "{file} mentions the hidden command"
            );
            assert!(!file.contains("generate"), "{file}");
        }
    }
}

/// Every file under `dir`, relative to it, sorted.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    found.sort();
    found
}

/// Issue 15: `cargo deb -p NAME` packages the man pages and completions kept in deploy/docs/, so they must be
/// what the binary's command line generates today: same files, same bytes.
#[test]
fn issue_15_the_packaged_man_pages_and_completions_match_the_command_line() {
    let _suite = headroom_tests::shared();
    for (bin, name) in [("headroom-agent", "agent"), ("headroom-collector", "collector")] {
        let dir = tempfile::tempdir().unwrap();
        let (code, _, stderr) = run(bin, &["generate-docs", "--out", dir.path().to_str().unwrap()]);
        assert_eq!(code, Some(0), "{stderr}");
        let kept = std::path::PathBuf::from(workspace_file(&format!("deploy/docs/{name}")));
        let generated = files_under(dir.path());
        assert!(!generated.is_empty());
        assert_eq!(
            generated,
            files_under(&kept),
            "deploy/docs/{name} lists other files than {bin} generates: run deploy/gen-docs.sh and commit"
        );
        for file in &generated {
            assert!(
                std::fs::read(dir.path().join(file)).unwrap() == std::fs::read(kept.join(file)).unwrap(),
                "deploy/docs/{name}/{} differs from what {bin} generates: run deploy/gen-docs.sh and commit",
                file.display()
            );
        }
    }
}
