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
/// `enroll` with `--token-file` only when `with_enroll` is set (older builds lack it). `enroll` writes the
/// token it was given (from the file after --token-file, else from HEADROOM_TOKEN) to $FAKE_AGENT_LOG.token
/// and a certificate into the state directory below the install root, as the real one does.
fn fake_agent(dir: &Path, with_enroll: bool) -> PathBuf {
    let enroll_case = if with_enroll {
        "enroll) echo '      --token-file <TOKEN_FILE>'; exit 0 ;;"
    } else {
        ""
    };
    let script = format!(
        "#!/bin/sh\necho \"$*\" >>\"$FAKE_AGENT_LOG\"\n\
         if [ \"${{2:-}}\" = --help ]; then\n  case $1 in check-config) exit 0 ;; {enroll_case} esac\n  \
         echo \"error: unrecognized subcommand '$1'\" >&2\n  exit 2\nfi\n\
         if [ \"$1\" = enroll ]; then\n  token=${{HEADROOM_TOKEN:-}}\n  \
         while [ $# -gt 0 ]; do [ \"$1\" = --token-file ] && token=$(cat \"$2\"); shift; done\n  \
         printf '%s' \"$token\" >\"$FAKE_AGENT_LOG.token\"\n  \
         mkdir -p \"$FAKE_STATE_DIR\" && echo cert >\"$FAKE_STATE_DIR/agent.pem\"\nfi\nexit 0\n"
    );
    let path = dir.join(if with_enroll { "agent-new" } else { "agent-old" });
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    write_sums(&path);
    path
}

/// Writes SHA256SUMS beside `file` with its line, as a release directory ships it.
fn write_sums(file: &Path) {
    let out = Command::new("sha256sum").arg(file).output().unwrap();
    let hex = String::from_utf8_lossy(&out.stdout)
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    let name = file.file_name().unwrap().to_string_lossy();
    let sums = file.with_file_name("SHA256SUMS");
    let mut text = std::fs::read_to_string(&sums).unwrap_or_default();
    text.push_str(&format!("{hex}  {name}\n"));
    std::fs::write(sums, text).unwrap();
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
        self.run_with_env(binary, args, &[])
    }

    fn run_with_env(&self, binary: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new("sh")
            .arg(repo_file("deploy/install-agent.sh"))
            .arg("--binary")
            .arg(binary)
            .arg("--root")
            .arg(self.root.path().join("sysroot"))
            .args(args)
            .env_remove("HEADROOM_TOKEN")
            .envs(env.iter().copied())
            .env("FAKE_AGENT_LOG", &self.log)
            .env("FAKE_STATE_DIR", self.path("var/lib/headroom-agent"))
            .output()
            .expect("run sh")
    }

    /// The token the stand-in agent's `enroll` received.
    fn enrolled_token(&self) -> Option<String> {
        std::fs::read_to_string(self.log.with_extension("log.token")).ok()
    }

    fn token_file(&self, token: &str) -> String {
        let path = self.root.path().join("token");
        std::fs::write(&path, format!("{token}\n")).unwrap();
        path.display().to_string()
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
    let _suite = headroom_tests::shared();
    let install = Install::new();
    let agent = fake_agent(install.root.path(), true);
    let token_file = install.token_file("tok123");
    let output = install.run(
        &agent,
        &[
            "--collector",
            "[::1]:9600",
            "--token-file",
            &token_file,
            "--ca-fingerprint",
            "AB:CD",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(install.enrolled_token().as_deref(), Some("tok123"));

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
                "enroll --config {config_arg} --collector [::1]:9602 --ca-fingerprint AB:CD --token-file {token_file}"
            ),
        ]
    );
}

#[test]
fn existing_config_is_kept_and_nothing_is_enrolled_without_details() {
    let _suite = headroom_tests::shared();
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
    let _suite = headroom_tests::shared();
    let install = Install::new();
    let agent = fake_agent(install.root.path(), false);
    let output = install.run(
        &agent,
        &["--collector", "c.example.net:9600", "--ca-fingerprint", "f"],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let output = install.run_with_env(
        &agent,
        &["--collector", "c.example.net:9600", "--ca-fingerprint", "f"],
        &[("HEADROOM_TOKEN", "t")],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("cannot read a token from a file"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn partial_or_malformed_enrollment_details_are_usage_errors() {
    let _suite = headroom_tests::shared();
    let install = Install::new();
    let agent = fake_agent(install.root.path(), true);
    for (args, expected) in [
        (
            &["--collector", "c.example.net:9600", "--ca-fingerprint", "f"][..],
            "--collector needs a token",
        ),
        (&["--ca-fingerprint", "f"][..], "need --collector"),
        (
            &["--collector", "c.example.net:9600", "--token", "t"][..],
            "--token is not accepted",
        ),
        (&["--sha256", "abc"][..], "not 64 hex characters"),
        (
            &[
                "--collector",
                "c.example.net",
                "--token-file",
                "/dev/null",
                "--ca-fingerprint",
                "f",
            ][..],
            "has no port",
        ),
        (
            &[
                "--collector",
                "2001:db8::1:9600",
                "--token-file",
                "/dev/null",
                "--ca-fingerprint",
                "f",
            ][..],
            "in brackets",
        ),
        (
            &[
                "--collector",
                "c/x:9600",
                "--token-file",
                "/dev/null",
                "--ca-fingerprint",
                "f",
            ][..],
            "characters",
        ),
        (
            &[
                "--collector",
                "c.example.net:9600",
                "--enroll-port",
                "96o2",
                "--token-file",
                "/dev/null",
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
    let _suite = headroom_tests::shared();
    let output = Command::new("sh")
        .arg(repo_file("deploy/install-agent.sh"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.starts_with("usage: install-agent.sh"), "{text}");
    assert!(text.contains("--ca-fingerprint SHA256"), "{text}");
    assert!(
        text.contains("--token-file FILE") && text.contains("HEADROOM_TOKEN"),
        "{text}"
    );
}

/// Issue 15: the token comes from HEADROOM_TOKEN as well as from a file, and never reaches a command line:
/// neither the agent's arguments nor any other command the script runs (checked in the script's text).
#[test]
fn issue_15_the_token_comes_from_the_environment_and_is_never_an_argument() {
    let _suite = headroom_tests::shared();
    let install = Install::new();
    let agent = fake_agent(install.root.path(), true);
    let output = install.run_with_env(
        &agent,
        &["--collector", "c.example.net:9600", "--ca-fingerprint", "AB"],
        &[("HEADROOM_TOKEN", "env-secret-7")],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(install.enrolled_token().as_deref(), Some("env-secret-7"));
    assert!(
        install.calls().iter().all(|call| !call.contains("env-secret-7")),
        "{:?}",
        install.calls()
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("env-secret-7") && !stderr(&output).contains("env-secret-7"));
    // The script never expands the token variable at all: it only tests whether it is set, and the agent
    // inherits it. A token file's contents are never read by the script either.
    let script = std::fs::read_to_string(repo_file("deploy/install-agent.sh")).unwrap();
    let expansions = script.matches("$HEADROOM_TOKEN").count() + script.matches("${HEADROOM_TOKEN").count();
    let tests = script.matches("[ -n \"${HEADROOM_TOKEN:-}\" ]").count();
    assert!(
        expansions >= 1 && expansions == tests,
        "the script uses the token's value"
    );
    assert!(!script.contains("cat \"$token_file\"") && !script.contains("< \"$token_file\""));
}

/// Issue 15: a second run with the same inputs changes nothing and says so; an enrolled host is not enrolled
/// again (its token was one-time).
#[test]
fn issue_15_a_second_run_changes_nothing_and_says_so() {
    let _suite = headroom_tests::shared();
    let install = Install::new();
    let agent = fake_agent(install.root.path(), true);
    let token_file = install.token_file("tok1");
    let args = [
        "--collector",
        "c.example.net:9600",
        "--token-file",
        &token_file,
        "--ca-fingerprint",
        "AB",
    ];
    let first = install.run(&agent, &args);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(!String::from_utf8_lossy(&first.stdout).contains("nothing to do"));
    let snapshot = |root: &Path| {
        let mut files = Vec::new();
        for relative in [
            "usr/bin/headroom-agent",
            "etc/systemd/system/headroom-agent.service",
            "etc/headroom/agent.toml",
            "var/lib/headroom-agent/agent.pem",
        ] {
            let path = root.join("sysroot").join(relative);
            let meta = std::fs::metadata(&path).unwrap();
            files.push((relative, std::fs::read(&path).unwrap(), meta.modified().unwrap()));
        }
        files
    };
    let before = snapshot(install.root.path());
    let enrolls = |calls: Vec<String>| calls.iter().filter(|c| c.starts_with("enroll --config")).count();
    assert_eq!(enrolls(install.calls()), 1);
    let second = install.run(&agent, &args);
    assert!(second.status.success(), "{}", stderr(&second));
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(
        stdout.contains("nothing to do") && stdout.contains("already enrolled"),
        "{stdout}"
    );
    assert_eq!(snapshot(install.root.path()), before);
    assert_eq!(enrolls(install.calls()), 1, "enrolled twice");
}

/// Issue 15: a binary whose SHA-256 differs from the given or shipped checksum is refused, as is one with no
/// checksum at all; nothing is installed.
#[test]
fn issue_15_a_checksum_mismatch_is_refused() {
    let _suite = headroom_tests::shared();
    let install = Install::new();
    let agent = fake_agent(install.root.path(), true);
    let wrong = "0".repeat(64);
    let output = install.run(&agent, &["--sha256", &wrong]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("refusing to install"),
        "{}",
        stderr(&output)
    );
    // The shipped SHA256SUMS no longer matches once the file changed.
    std::fs::write(&agent, "#!/bin/sh\nexit 0\n").unwrap();
    let output = install.run(&agent, &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("expected"), "{}", stderr(&output));
    std::fs::remove_file(agent.with_file_name("SHA256SUMS")).unwrap();
    let output = install.run(&agent, &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("no checksum"), "{}", stderr(&output));
    assert!(!install.path("usr/bin/headroom-agent").exists());
    // The right checksum given by hand is accepted.
    let out = Command::new("sha256sum").arg(&agent).output().unwrap();
    let hex = String::from_utf8_lossy(&out.stdout)
        .split(' ')
        .next()
        .unwrap()
        .to_uppercase();
    let output = install.run(&agent, &["--sha256", &hex]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(install.path("usr/bin/headroom-agent").exists());
}
