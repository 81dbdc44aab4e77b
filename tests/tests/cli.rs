//! The command-line contract: `sample` without network, `check-config`, exit codes and one-line errors.

use headroom_tests::binary;
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
    let port = headroom_tests::free_tcp_port();
    let api = format!("127.0.0.1:{port}");
    let (code, _, stderr) = run("headroom-collector", &["fleet", "--api", &api]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(&api) && stderr.contains("headroom-collector serve"),
        "{stderr}"
    );
}
