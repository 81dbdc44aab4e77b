//! Per-host identity over time, end to end on loopback: an agent renews a certificate that lives seconds and
//! keeps every sequence number, the collector's own certificate is replaced while agents stream, a cloned
//! identity is noticed (newest connection wins), and every private file is readable by its owner only.

use headroom_common::pki::{cert_info, fingerprint_sha256};
use headroom_tests::{binary, start_agent_configured, start_agent_with, wait_for, Collector};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

/// Certificates that live 30 seconds: renewal is due about 20 seconds after issue.
const SHORT_CERTS: &str = "[identity]\ncert_validity = \"30s\"\n";

/// Sampling fast so that a few seconds hold many samples.
const FAST: &str = "[sampling]\ninterval = \"200ms\"\n";

fn collector_cli(collector: &Collector, args: &[&str]) -> Output {
    let out = Command::new(binary("headroom-collector"))
        .args(args)
        .arg("--state-dir")
        .arg(collector.dir.path().join("collector"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "headroom-collector {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Enrolls `host` with a fresh token into `<test dir>/agents/<host>` and returns that state directory.
fn enroll(collector: &Collector, host: &str) -> PathBuf {
    let out = collector_cli(collector, &["token", "create"]);
    let token = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_string();
    let pin =
        fingerprint_sha256(&std::fs::read_to_string(collector.pki_dir().join("ca.pem")).unwrap()).unwrap();
    let state = collector.dir.path().join("agents").join(host);
    let out = Command::new(binary("headroom-agent"))
        .args([
            "enroll",
            "--collector",
            &collector.enroll.to_string(),
            "--token",
            &token,
        ])
        .args([
            "--ca-fingerprint",
            &pin,
            "--host",
            host,
            "--server-name",
            "localhost",
            "--state-dir",
        ])
        .arg(&state)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "enroll: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    state
}

/// (serial, issued_by) of every certificate the registry lists for `host`, oldest first.
fn registry_of(collector: &Collector, host: &str) -> Vec<(String, String, Option<i64>)> {
    let text = std::fs::read_to_string(collector.pki_dir().join("certs.json")).unwrap();
    let list: serde_json::Value = serde_json::from_str(&text).unwrap();
    list["certs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|cert| cert["host"] == host)
        .map(|cert| {
            (
                cert["serial"].as_str().unwrap().to_string(),
                cert["issued_by"].as_str().unwrap().to_string(),
                cert["last_seen_s"].as_i64(),
            )
        })
        .collect()
}

fn serial_of_pem(path: &Path) -> String {
    cert_info(&std::fs::read_to_string(path).unwrap())
        .unwrap()
        .serial_hex
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// (rows, distinct seqs, min seq, max seq) stored for `host`.
fn stored(db: &Path, host: &str) -> (u64, u64, u64, u64) {
    let connection =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    connection
        .query_row(
            "SELECT COUNT(*), COUNT(DISTINCT s.seq), COALESCE(MIN(s.seq), 0), COALESCE(MAX(s.seq), 0)
             FROM samples s JOIN hosts h ON h.id = s.host_id WHERE h.name = ?1",
            [host],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .unwrap()
}

/// The last sequence number the agent used, from the state it writes on a clean stop.
fn last_seq_of(agent_state: &Path) -> u64 {
    let text = std::fs::read_to_string(agent_state.join("next-seq")).unwrap();
    text.trim().parse::<u64>().unwrap() - 1
}

/// How many times the agent's log says it connected.
fn connects(log: &str) -> usize {
    log.lines()
        .map(strip_colours)
        .filter(|line| line.contains(" connected collector="))
        .count()
}

/// A log line without its terminal colour codes (ESC [ ... m).
fn strip_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn renewal_with_a_short_lifetime_keeps_every_sequence_number() {
    let _suite = headroom_tests::long_shared();
    let collector = Collector::start_with(SHORT_CERTS);
    let state = enroll(&collector, "renew-1");
    let first_serial = serial_of_pem(&state.join("agent.pem"));
    let first = cert_info(&std::fs::read_to_string(state.join("agent.pem")).unwrap()).unwrap();
    assert!(
        first.not_after_s - first.not_before_s <= 40,
        "identity.cert_validity not applied: {first:?}"
    );
    let mut agent = start_agent_configured(
        &state,
        &collector.quic.to_string(),
        &[],
        FAST,
        collector.dir.path(),
    );
    assert!(collector
        .wait_host("renew-1", 5, Duration::from_secs(20))
        .is_some());

    // Renewal over the authenticated connection, without a restart: a new serial on disk and in the registry.
    let renewed = wait_for(Duration::from_secs(40), || {
        let serial = serial_of_pem(&state.join("agent.pem"));
        (serial != first_serial && agent.stderr_text().contains("certificate renewed")).then_some(serial)
    })
    .unwrap_or_else(|| panic!("no renewal; agent log: {}", agent.stderr_text()));
    let registry = registry_of(&collector, "renew-1");
    assert_eq!(
        registry
            .iter()
            .map(|(s, by, _)| (s.as_str(), by.as_str()))
            .collect::<Vec<_>>(),
        vec![(first_serial.as_str(), "enroll"), (renewed.as_str(), "renew")],
    );
    assert_eq!(mode_of(&state.join("agent.pem")), 0o644);
    assert_eq!(mode_of(&state.join("agent.key")), 0o600);

    // Cut the connection that still holds the old certificate: the agent must come back with the new one,
    // which only works if the uplink presents the renewed certificate at its next handshake.
    let connects_before = connects(&agent.stderr_text());
    collector_cli(&collector, &["cert", "revoke", "--serial", &first_serial]);
    let back = wait_for(Duration::from_secs(30), || {
        let seen_new = registry_of(&collector, "renew-1")
            .iter()
            .any(|(serial, _, last_seen)| *serial == renewed && last_seen.is_some());
        (seen_new && connects(&agent.stderr_text()) > connects_before).then_some(())
    });
    assert!(
        back.is_some(),
        "agent did not reconnect with its renewed certificate; agent log: {}\ncollector log: {}",
        agent.stderr_text(),
        collector.process.stderr_text()
    );
    let seq_now = collector.wait_host("renew-1", 1, Duration::from_secs(5)).unwrap()["seq"]
        .as_u64()
        .unwrap();
    assert!(collector
        .wait_host("renew-1", seq_now + 10, Duration::from_secs(20))
        .is_some());

    assert_eq!(
        agent.terminate(Duration::from_secs(15)),
        Some(0),
        "{}",
        agent.stderr_text()
    );
    let last = last_seq_of(&state);
    let db = collector.db_path();
    let complete = wait_for(Duration::from_secs(10), || {
        (stored(&db, "renew-1").3 >= last).then_some(())
    });
    assert!(
        complete.is_some(),
        "stored {:?}, agent sent up to {last}",
        stored(&db, "renew-1")
    );
    assert_eq!(
        stored(&db, "renew-1"),
        (last, last, 1, last),
        "every sequence 1..={last} exactly once across the renewal and the reconnect"
    );
}

/// Connects to the collector with `state`'s certificate and returns the serial of the certificate the
/// collector presented.
fn served_serial(collector: &Collector, state: &Path) -> String {
    let read = |name: &str| std::fs::read_to_string(state.join(name)).unwrap();
    let tls = headroom_common::tls::client_config(
        &read("ca.pem"),
        Some((&read("agent.pem"), &read("agent.key"))),
        &[headroom_common::wire::ALPN],
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(Arc::new(tls)).unwrap();
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let connection = endpoint
            .connect_with(
                quinn::ClientConfig::new(Arc::new(crypto)),
                collector.quic,
                "localhost",
            )
            .unwrap()
            .await
            .unwrap();
        let chain = connection
            .peer_identity()
            .unwrap()
            .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
            .unwrap();
        let serial = headroom_common::pki::serial_from_cert(&chain[0]).unwrap();
        connection.close(0u32.into(), b"probe done");
        endpoint.wait_idle().await;
        serial
    })
}

#[test]
fn the_collector_certificate_is_replaced_while_agents_stream() {
    let _suite = headroom_tests::shared();
    let collector = Collector::start();
    let agents: Vec<_> = ["keep-1", "keep-2"]
        .iter()
        .map(|host| collector.start_agent_extra(host, &[], FAST))
        .collect();
    for host in ["keep-1", "keep-2"] {
        assert!(collector.wait_host(host, 5, Duration::from_secs(20)).is_some());
    }
    let probe = collector.issue("probe");
    let old_serial = serial_of_pem(&collector.pki_dir().join("server.pem"));
    assert_eq!(served_serial(&collector, &probe), old_serial);
    let connects_before: Vec<usize> = agents.iter().map(|a| connects(&a.stderr_text())).collect();

    let out = collector_cli(&collector, &["cert", "server", "--days", "30"]);
    let new_serial = serial_of_pem(&collector.pki_dir().join("server.pem"));
    assert_ne!(new_serial, old_serial);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&new_serial));
    assert_eq!(mode_of(&collector.pki_dir().join("server.key")), 0o600);
    let reloaded = wait_for(Duration::from_secs(15), || {
        collector
            .process
            .stderr_text()
            .contains("server certificate reloaded")
            .then_some(())
    });
    assert!(reloaded.is_some(), "{}", collector.process.stderr_text());

    // New connections get the new certificate.
    assert_eq!(served_serial(&collector, &probe), new_serial);
    // Agents keep reporting on the connections they had: no reconnect.
    let seqs: Vec<u64> = ["keep-1", "keep-2"]
        .iter()
        .map(|host| {
            collector.wait_host(host, 1, Duration::from_secs(5)).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    for (host, seq) in ["keep-1", "keep-2"].iter().zip(&seqs) {
        assert!(
            collector
                .wait_host(host, seq + 10, Duration::from_secs(20))
                .is_some(),
            "{host} stopped reporting after the certificate change"
        );
    }
    let connects_after: Vec<usize> = agents.iter().map(|a| connects(&a.stderr_text())).collect();
    assert_eq!(
        connects_after, connects_before,
        "an agent connection was dropped by the reload"
    );

    // SIGHUP reloads at once and does not stop the collector.
    // SAFETY: kill(2) on the collector this test spawned and has not reaped.
    unsafe { libc::kill(collector.process.child.id() as i32, libc::SIGHUP) };
    let on_signal = wait_for(Duration::from_secs(10), || {
        strip_colours(&collector.process.stderr_text())
            .contains("trigger=SIGHUP")
            .then_some(())
    });
    assert!(on_signal.is_some(), "{}", collector.process.stderr_text());
    let seq = collector.wait_host("keep-1", 1, Duration::from_secs(5)).unwrap()["seq"]
        .as_u64()
        .unwrap();
    assert!(collector
        .wait_host("keep-1", seq + 5, Duration::from_secs(20))
        .is_some());

    // A pair that does not load (here a key file that is not a key) is logged with the file, and the
    // previous certificate stays in use (SECURITY.md, "Replacing the collector's certificate").
    let key_path = collector.pki_dir().join("server.key");
    let good_key = std::fs::read(&key_path).unwrap();
    std::fs::write(&key_path, "not a key\n").unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(collector.process.child.id() as i32, libc::SIGHUP) };
    let refused = wait_for(Duration::from_secs(15), || {
        let log = strip_colours(&collector.process.stderr_text());
        log.lines()
            .any(|line| line.contains("server certificate not reloaded") && line.contains("server.key"))
            .then_some(())
    });
    assert!(refused.is_some(), "{}", collector.process.stderr_text());
    assert_eq!(served_serial(&collector, &probe), new_serial);
    std::fs::write(&key_path, good_key).unwrap();
}

#[test]
fn two_agents_with_one_identity_newest_wins_and_it_is_logged() {
    let _suite = headroom_tests::shared();
    let collector = Collector::start();
    let original = collector.issue("twin");
    let clone = collector.dir.path().join("agents/twin-clone");
    std::fs::create_dir_all(&clone).unwrap();
    for file in ["agent.pem", "agent.key", "ca.pem"] {
        std::fs::copy(original.join(file), clone.join(file)).unwrap();
    }
    let older = start_agent_with(&original, collector.quic, &[], collector.dir.path());
    assert!(collector.wait_host("twin", 2, Duration::from_secs(20)).is_some());
    let newer = start_agent_with(&clone, collector.quic, &[], collector.dir.path());
    let logged = wait_for(Duration::from_secs(20), || {
        let log = collector.process.stderr_text();
        log.lines()
            .find(|line| line.contains("second connection with the same identity") && line.contains("twin"))
            .map(str::to_string)
    });
    assert!(logged.is_some(), "{}", collector.process.stderr_text());
    // The older connection was the one closed, and it was told why.
    let told = wait_for(Duration::from_secs(10), || {
        older
            .stderr_text()
            .contains("replaced by a newer connection with the same identity")
            .then_some(())
    });
    assert!(
        told.is_some(),
        "older agent: {}\nnewer agent: {}",
        older.stderr_text(),
        newer.stderr_text()
    );
}

#[test]
fn every_private_file_is_readable_by_its_owner_only() {
    let _suite = headroom_tests::shared();
    let collector = Collector::start();
    let enrolled = enroll(&collector, "modes-1");
    let issued = collector.issue("modes-2");
    collector_cli(&collector, &["cert", "revoke", "--host", "modes-2"]);
    collector_cli(&collector, &["cert", "server"]);
    let pki = collector.pki_dir();
    let mut private: Vec<PathBuf> = [
        "ca.key",
        "server.key",
        "tokens.json",
        "certs.json",
        "revoked.json",
    ]
    .iter()
    .map(|name| pki.join(name))
    .collect();
    private.extend([enrolled.join("agent.key"), issued.join("agent.key")]);
    for path in &private {
        assert_eq!(mode_of(path), 0o600, "{}", path.display());
    }
    for dir in [&pki, &enrolled, &issued] {
        assert_eq!(mode_of(dir), 0o700, "{}", dir.display());
    }
    // Lock files beside the identity files say nothing, but are private too.
    for entry in std::fs::read_dir(&pki).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "lock") {
            assert_eq!(mode_of(&path), 0o600, "{}", path.display());
        }
    }
    // Certificates are public.
    for path in [
        pki.join("ca.pem"),
        pki.join("server.pem"),
        enrolled.join("agent.pem"),
    ] {
        assert_eq!(mode_of(&path), 0o644, "{}", path.display());
    }
    // The revocation by host found the hand-issued certificate.
    let revoked = std::fs::read_to_string(pki.join("revoked.json")).unwrap();
    assert!(
        revoked.contains(&serial_of_pem(&issued.join("agent.pem"))),
        "{revoked}"
    );
}
