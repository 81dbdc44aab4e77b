//! End to end on loopback: token enrollment with the real binaries (files and modes, every bad-token case, a
//! wrong CA pin), token listing that never shows the secret, and revocation of a streaming host.
//!
//! Every test that talks to a running collector needs `serve` to offer ALPN `headroom-enroll/1` (hook "server TLS
//! config") and route it to
//! `identity::enroll_server::handle_enrollment` (hook "route enroll ALPN" in ingest.rs); the revocation test
//! also needs the hooks "live registry" and "revocation sweeper".

use headroom_tests::{binary, start_agent_with, wait_for, Collector};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

fn collector_cli(collector: &Collector, args: &[&str]) -> Output {
    collector.cli(args)
}

fn create_token(collector: &Collector, extra: &[&str]) -> String {
    collector.create_token(extra)
}

fn pin(collector: &Collector) -> String {
    collector.ca_pin()
}

fn enroll(collector: &Collector, state: &Path, host: &str, token: &str, pin: &str) -> Output {
    collector.enroll_pinned(state, host, token, pin)
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn stderr_line(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(text.lines().count(), 1, "expected one line: {text}");
    text
}

#[test]
fn enroll_help_exits_zero() {
    let _suite = headroom_tests::shared();
    let out = Command::new(binary("headroom-agent"))
        .args(["enroll", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in ["--collector", "--token", "--ca-fingerprint"] {
        assert!(text.contains(flag), "{text}");
    }
}

// Needs hook "route enroll ALPN".
#[test]
fn enrolled_host_gets_private_key_and_certificate_with_token_labels_and_streams() {
    let _suite = headroom_tests::shared();
    let collector = Collector::start();
    let token = create_token(
        &collector,
        &[
            "--ttl",
            "1h",
            "--uses",
            "2",
            "--label",
            "group=web",
            "--label",
            "zone=eu-1a",
        ],
    );
    let state = collector.dir.path().join("agents/web-7");
    let out = enroll(&collector, &state, "web-7", &token, &pin(&collector));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("enrolled as web-7"));
    assert_eq!(mode_of(&state.join("agent.key")), 0o600);
    assert_eq!(mode_of(&state.join("agent.pem")), 0o644);
    assert_eq!(mode_of(&state), 0o700);
    assert_eq!(
        std::fs::read_to_string(state.join("ca.pem")).unwrap(),
        std::fs::read_to_string(collector.pki_dir().join("ca.pem")).unwrap()
    );
    // The key was made on the host: the collector's directory holds no copy of it.
    let key = std::fs::read_to_string(state.join("agent.key")).unwrap();
    for entry in std::fs::read_dir(collector.pki_dir()).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        assert!(!text.contains(key.trim()));
    }
    // cert list shows it with its labels and its serial.
    let listed = collector_cli(&collector, &["cert", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(
        listed.contains("web-7") && listed.contains("group=web,zone=eu-1a"),
        "{listed}"
    );

    // The agent config claims another group; the certificate's label wins.
    let _agent = start_agent_with(&state, collector.quic, &[("group", "db")], collector.dir.path());
    let entry = collector
        .wait_host("web-7", 2, Duration::from_secs(30))
        .expect("enrolled host streams");
    assert_eq!(entry["labels"]["group"], "web", "{entry}");
}

// Needs hook "route enroll ALPN".
#[test]
fn unknown_expired_and_used_up_tokens_fail_with_one_line_and_exit_1() {
    let _suite = headroom_tests::shared();
    let collector = Collector::start();
    let pin = pin(&collector);
    let dir = collector.dir.path();

    let once = create_token(&collector, &["--uses", "1"]);
    assert!(enroll(&collector, &dir.join("a"), "host-a", &once, &pin)
        .status
        .success());
    let out = enroll(&collector, &dir.join("b"), "host-b", &once, &pin);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_line(&out).contains("enrollment token used up"),
        "{}",
        stderr_line(&out)
    );

    let (id, secret) = once.split_once('.').unwrap();
    let wrong = format!("{id}.{}", secret.chars().rev().collect::<String>());
    for bad in [wrong.as_str(), "nonsense"] {
        let out = enroll(&collector, &dir.join("c"), "host-c", bad, &pin);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr_line(&out).contains("enrollment token not accepted"),
            "{}",
            stderr_line(&out)
        );
    }

    let short = create_token(&collector, &["--ttl", "1s"]);
    // Wait for the expiry itself, as the collector's own token list reports it, rather than for a fixed time.
    let short_id = short.split_once('.').unwrap().0.to_string();
    let expired = wait_for(Duration::from_secs(15), || {
        let listed = collector_cli(&collector, &["token", "list"]);
        String::from_utf8_lossy(&listed.stdout)
            .lines()
            .any(|line| line.contains(&short_id) && line.contains("expired"))
            .then_some(())
    });
    assert!(expired.is_some(), "a 1 s token never listed as expired");
    let out = enroll(&collector, &dir.join("d"), "host-d", &short, &pin);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_line(&out).contains("enrollment token expired"),
        "{}",
        stderr_line(&out)
    );
    for refused in ["b", "c", "d"] {
        assert!(!dir.join(refused).join("agent.pem").exists());
    }
    // The collector logged the attempts with the peer, never the token.
    let log = collector.process.stderr_text();
    assert!(
        log.contains("enrollment refused") && log.contains("127.0.0.1"),
        "{log}"
    );
    assert!(!log.contains(secret), "the collector logged a token secret");
}

// Needs hooks "server TLS config" and "route enroll ALPN".
#[test]
fn a_wrong_pin_sends_nothing_and_names_the_fingerprint_seen() {
    let _suite = headroom_tests::shared();
    let collector = Collector::start();
    let token = create_token(&collector, &["--uses", "1"]);
    let wrong = format!("SHA256:{}", "ab".repeat(32));
    let state = collector.dir.path().join("agents/pinned");
    let out = enroll(&collector, &state, "web-1", &token, &wrong);
    assert_eq!(out.status.code(), Some(1));
    let line = stderr_line(&out);
    assert!(line.contains(&pin(&collector)), "{line}");
    assert!(line.contains("nothing was sent"), "{line}");
    assert!(!state.join("agent.pem").exists() && !state.join("agent.key").exists());
    // The token was not spent: nothing reached the collector.
    let listed = collector_cli(&collector, &["token", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    let id = token.split_once('.').unwrap().0;
    let row = listed
        .lines()
        .find(|line| line.contains(id))
        .expect("token listed");
    assert!(row.split_whitespace().nth(1) == Some("1"), "{row}");
}

#[test]
fn token_list_never_shows_the_secret() {
    let _suite = headroom_tests::shared();
    let collector = Collector::start();
    let token = create_token(
        &collector,
        &["--ttl", "24h", "--uses", "50", "--label", "group=web"],
    );
    let (id, secret) = token.split_once('.').unwrap();
    let out = collector_cli(&collector, &["token", "list"]);
    assert!(out.status.success());
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        listed.contains(id) && listed.contains("50") && listed.contains("group=web"),
        "{listed}"
    );
    assert!(!listed.contains(secret), "{listed}");
    let stored = std::fs::read_to_string(collector.pki_dir().join("tokens.json")).unwrap();
    assert!(!stored.contains(secret));
    assert_eq!(mode_of(&collector.pki_dir().join("tokens.json")), 0o600);
}

// Needs hooks "route enroll ALPN", "live registry" and "revocation sweeper".
#[test]
fn a_revoked_host_is_cut_off_and_refused_afterwards() {
    let _suite = headroom_tests::shared();
    let collector = Collector::start();
    let token = create_token(&collector, &["--uses", "1"]);
    let state = collector.dir.path().join("agents/web-9");
    assert!(enroll(&collector, &state, "web-9", &token, &pin(&collector))
        .status
        .success());
    let agent = start_agent_with(&state, collector.quic, &[], collector.dir.path());
    let entry = collector
        .wait_host("web-9", 2, Duration::from_secs(30))
        .expect("streams");
    let seq_at_revoke = entry["seq"].as_u64().unwrap();
    let out = collector_cli(&collector, &["cert", "revoke", "--host", "web-9"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cut = wait_for(Duration::from_secs(5), || {
        collector
            .process
            .stderr_text()
            .contains("certificate revoked; closing its connection")
            .then_some(())
    });
    assert!(
        cut.is_some(),
        "not cut within 5 s: {}",
        collector.process.stderr_text()
    );
    // Refused at the next handshakes: wait for the collector to refuse the agent's reconnect twice, and the
    // sequence must not grow between the two refusals. A full handshake fails on the revoked certificate; a
    // resumed one (the agent holds a session ticket from before) completes and is closed before anything is
    // read, when the certificate is checked again.
    let refusals = || {
        let log = collector.process.stderr_text();
        log.matches("handshake failed; connection refused").count()
            + log
                .matches("client certificate refused after the handshake")
                .count()
    };
    let refused_once = wait_for(Duration::from_secs(60), || (refusals() >= 1).then(refusals));
    assert!(
        refused_once.is_some(),
        "the revoked agent's reconnect was never refused: {}",
        collector.process.stderr_text()
    );
    let before = collector
        .hosts()
        .into_iter()
        .find(|h| h["host"] == "web-9")
        .unwrap()["seq"]
        .as_u64()
        .unwrap();
    let first = refused_once.unwrap();
    assert!(
        wait_for(Duration::from_secs(60), || (refusals() > first).then_some(())).is_some(),
        "the revoked agent did not try again: {}",
        agent.stderr_text()
    );
    let after = collector
        .hosts()
        .into_iter()
        .find(|h| h["host"] == "web-9")
        .unwrap()["seq"]
        .as_u64()
        .unwrap();
    assert!(before >= seq_at_revoke);
    assert_eq!(
        before,
        after,
        "a revoked host kept streaming; agent log: {}",
        agent.stderr_text()
    );
    let listed = String::from_utf8_lossy(&collector_cli(&collector, &["cert", "list"]).stdout).to_string();
    assert!(listed.contains("revoked"), "{listed}");
}
