//! Runs deploy/install-agent.sh with `sh` into a temporary root, with a stand-in agent binary that records how
//! it is called, and checks what the script installs, keeps, passes to `enroll` and refuses.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_file(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// A stand-in for headroom-agent: appends its arguments to $FAKE_AGENT_LOG and knows `check-config`, and
/// `enroll` only when `with_enroll` is set (older builds lack it).
fn fake_agent(dir: &Path, with_enroll: bool) -> PathBuf {
    let enroll_case = if with_enroll { "enroll) exit 0 ;;" } else { "" };
    let script = format!(
        "#!/bin/sh\necho \"$*\" >>\"$FAKE_AGENT_LOG\"\n\
         if [ \"${{2:-}}\" = --help ]; then\n  case $1 in check-config) exit 0 ;; {enroll_case} esac\n  \
         echo \"error: unrecognized subcommand '$1'\" >&2\n  exit 2\nfi\nexit 0\n"
    );
    let path = dir.join(if with_enroll { "agent-new" } else { "agent-old" });
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

struct Install {
    root: tempfile::TempDir,
    log: PathBuf,
}

impl Install {
    fn new() -> Install {
        let root = tempfile::tempdir().unwrap();
        let log = root.path().join("agent-calls.log");
        Install { root, log }
    }

    fn run(&self, binary: &Path, args: &[&str]) -> Output {
        Command::new("sh")
            .arg(repo_file("deploy/install-agent.sh"))
            .arg("--binary")
            .arg(binary)
            .arg("--root")
            .arg(self.root.path().join("sysroot"))
            .args(args)
            .env("FAKE_AGENT_LOG", &self.log)
            .output()
            .expect("run sh")
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.path().join("sysroot").join(relative)
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn fresh_install_with_enrollment_writes_the_collector_and_enrolls() {
    let install = Install::new();
    let agent = fake_agent(install.root.path(), true);
    let output = install.run(
        &agent,
        &[
            "--collector",
            "[::1]:9600",
            "--token",
            "tok123",
            "--ca-fingerprint",
            "AB:CD",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));

    let binary = install.path("usr/bin/headroom-agent");
    assert_eq!(
        std::fs::metadata(&binary).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert_eq!(
        std::fs::read(install.path("etc/systemd/system/headroom-agent.service")).unwrap(),
        std::fs::read(repo_file("systemd/headroom-agent.service")).unwrap()
    );

    // The installed config is the example with exactly the collector lines switched on.
    let example = std::fs::read_to_string(repo_file("deploy/agent.toml")).unwrap();
    let config_path = install.path("etc/headroom/agent.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    let changed: Vec<(&str, &str)> = example
        .lines()
        .zip(config.lines())
        .filter(|(before, after)| before != after)
        .collect();
    assert_eq!(
        changed,
        vec![
            ("#[collector]", "[collector]"),
            (
                "#address = \"collector.example.net:9600\"",
                "address = \"[::1]:9600\""
            ),
        ]
    );
    assert_eq!(example.lines().count(), config.lines().count());

    let config_arg = config_path.display().to_string();
    assert_eq!(
        install.calls(),
        vec![
            "check-config --help".to_string(),
            format!("check-config --config {config_arg}"),
            "enroll --help".to_string(),
            format!(
                "enroll --config {config_arg} --collector [::1]:9602 --token tok123 --ca-fingerprint AB:CD"
            ),
        ]
    );
}

#[test]
fn existing_config_is_kept_and_nothing_is_enrolled_without_details() {
    let install = Install::new();
    let agent = fake_agent(install.root.path(), true);
    let config_path = install.path("etc/headroom/agent.toml");
    std::fs::create_dir_all(config_path.parent().unwrap()).unwrap();
    std::fs::write(&config_path, "[labels]\nzone = \"b\"\n").unwrap();

    let output = install.run(&agent, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        std::fs::read_to_string(&config_path).unwrap(),
        "[labels]\nzone = \"b\"\n"
    );
    assert!(
        install.calls().iter().all(|call| !call.starts_with("enroll")),
        "{:?}",
        install.calls()
    );
}

#[test]
fn binary_without_enroll_fails_clearly() {
    let install = Install::new();
    let agent = fake_agent(install.root.path(), false);
    let output = install.run(
        &agent,
        &[
            "--collector",
            "c.example.net:9600",
            "--token",
            "t",
            "--ca-fingerprint",
            "f",
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("has no 'enroll' command"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn partial_or_malformed_enrollment_details_are_usage_errors() {
    let install = Install::new();
    let agent = fake_agent(install.root.path(), true);
    for (args, expected) in [
        (
            &["--collector", "c.example.net:9600"][..],
            "--collector needs --token",
        ),
        (&["--token", "t", "--ca-fingerprint", "f"][..], "need --collector"),
        (
            &[
                "--collector",
                "c.example.net",
                "--token",
                "t",
                "--ca-fingerprint",
                "f",
            ][..],
            "has no port",
        ),
        (
            &[
                "--collector",
                "2001:db8::1:9600",
                "--token",
                "t",
                "--ca-fingerprint",
                "f",
            ][..],
            "in brackets",
        ),
        (
            &["--collector", "c/x:9600", "--token", "t", "--ca-fingerprint", "f"][..],
            "characters",
        ),
        (
            &[
                "--collector",
                "c.example.net:9600",
                "--enroll-port",
                "96o2",
                "--token",
                "t",
                "--ca-fingerprint",
                "f",
            ][..],
            "--enroll-port '96o2' is not a port number",
        ),
        (&["--colector", "c:1"][..], "unknown option '--colector'"),
    ] {
        let output = install.run(&agent, args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
        assert!(
            stderr(&output).contains(expected),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    assert!(
        !install.path("usr/bin/headroom-agent").exists(),
        "usage errors must not install anything"
    );
}

#[test]
fn help_prints_usage() {
    let output = Command::new("sh")
        .arg(repo_file("deploy/install-agent.sh"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.starts_with("usage: install-agent.sh"), "{text}");
    assert!(text.contains("--ca-fingerprint SHA256"), "{text}");
}
