//! End to end on loopback with real mutual TLS: agents stream to a collector; bad clients are refused or cut
//! off one connection at a time while the others keep reporting.

use headroom_common::pki::{create_ca, issue_client_cert};
use headroom_common::tls::client_config;
use headroom_common::wire::ALPN;
use headroom_tests::{binary, start_agent_configured, start_agent_with, wait_for, Collector};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

fn labels_of(host: &serde_json::Value) -> (String, String) {
    (
        host["labels"]["group"].as_str().unwrap_or_default().to_string(),
        host["labels"]["zone"].as_str().unwrap_or_default().to_string(),
    )
}

#[test]
fn three_agents_show_up_as_three_hosts_with_their_labels_and_stop_cleanly() {
    let _suite = headroom_tests::shared();
    let collector = Collector::start();
    let mut agents = vec![
        collector.start_agent("web-1", &[("group", "web"), ("zone", "zone-a")]),
        collector.start_agent("web-2", &[("group", "web"), ("zone", "zone-b")]),
        collector.start_agent("db-1", &[("group", "db"), ("zone", "zone-c")]),
    ];
    for (host, group, zone) in [
        ("web-1", "web", "zone-a"),
        ("web-2", "web", "zone-b"),
        ("db-1", "db", "zone-c"),
    ] {
        let entry = collector
            .wait_host(host, 3, Duration::from_secs(30))
            .unwrap_or_else(|| {
                panic!(
                    "{host} never reported 3 samples; agent log:\n{}",
                    agents[0].stderr_text()
                )
            });
        assert_eq!(
            labels_of(&entry),
            (group.to_string(), zone.to_string()),
            "{entry}"
        );
        assert_eq!(entry["status"], "up", "{entry}");
        // Two samples give rates: CPU busy of the real host is a percentage.
        let busy = entry["cpu_busy_pct"]
            .as_f64()
            .expect("cpu_busy_pct after 3 samples");
        assert!((0.0..=100.0).contains(&busy), "{busy}");
    }
    assert_eq!(collector.hosts().len(), 3);

    // The fleet command reads the running collector; JSON and CSV carry the same groups.
    let fleet = std::process::Command::new(binary("headroom-collector"))
        .args(["fleet", "--format", "json", "--api", &collector.http.to_string()])
        .output()
        .unwrap();
    assert!(
        fleet.status.success(),
        "{}",
        String::from_utf8_lossy(&fleet.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&fleet.stdout).unwrap();
    assert_eq!(summary["hosts_up"], 3, "{summary}");
    let groups: Vec<(String, String)> = summary["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["group"].as_str().unwrap().into(),
                g["zone"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(groups.contains(&("web".into(), "zone-a".into())), "{groups:?}");
    assert!(groups.contains(&("db".into(), "zone-c".into())), "{groups:?}");
    let csv = std::process::Command::new(binary("headroom-collector"))
        .args(["fleet", "--format", "csv", "--api", &collector.http.to_string()])
        .output()
        .unwrap();
    let csv = String::from_utf8(csv.stdout).unwrap();
    assert_eq!(csv.lines().count(), 1 + groups.len(), "{csv}");

    // SIGTERM: the agent flushes, says goodbye and exits 0.
    for agent in &mut agents {
        let code = agent.terminate(Duration::from_secs(10));
        assert_eq!(
            code,
            Some(0),
            "{} exit; log:\n{}",
            agent.name,
            agent.stderr_text()
        );
    }
    let log = collector.process.stderr_text();
    assert!(log.contains("agent said goodbye"), "{log}");
}

/// A raw QUIC client, for clients no real agent would be.
fn raw_client(tls: rustls::ClientConfig) -> (tokio::runtime::Runtime, quinn::Endpoint, quinn::ClientConfig) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let endpoint =
        runtime.block_on(async { quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap() });
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(Arc::new(tls)).unwrap();
    (runtime, endpoint, quinn::ClientConfig::new(Arc::new(crypto)))
}

/// Connect, open a stream, send `bytes`, and return how the collector ended the connection.
fn send_and_get_closed(tls: rustls::ClientConfig, collector: SocketAddr, bytes: Vec<u8>) -> String {
    let (runtime, endpoint, config) = raw_client(tls);
    runtime.block_on(async move {
        let connection = match endpoint
            .connect_with(config, collector, "localhost")
            .unwrap()
            .await
        {
            Ok(connection) => connection,
            Err(e) => return format!("handshake: {e}"),
        };
        let result = async {
            let (mut send, mut recv) = connection.open_bi().await?;
            send.write_all(&bytes).await?;
            let mut buffer = vec![0u8; 4096];
            // Read until the collector ends the connection; a refusal frame may come first.
            loop {
                match tokio::time::timeout(Duration::from_secs(10), recv.read(&mut buffer)).await {
                    Ok(Ok(Some(_))) => continue,
                    Ok(Ok(None)) => continue,
                    Ok(Err(e)) => return Ok::<String, anyhow::Error>(e.to_string()),
                    Err(_) => return Ok("still open after 10 s".to_string()),
                }
            }
        }
        .await;
        let reason = match result {
            Ok(text) => text,
            Err(e) => e.to_string(),
        };
        format!("{reason} / {:?}", connection.close_reason())
    })
}

/// Issue 12: the collector asks each agent, with an ACK_FREQUENCY frame, to acknowledge its packets at
/// once, so that the acknowledgement an agent owes for each of the collector's does not cost it a wake-up of
/// its own 25 ms later.
#[test]
fn issue_12_the_collector_asks_agents_to_acknowledge_at_once() {
    let _suite = headroom_tests::shared();
    let collector = Collector::start();
    let agent = collector.issue("prompt");
    let ca_pem = read(collector.pki_dir().join("ca.pem"));
    let tls = client_config(
        &ca_pem,
        Some((&read(agent.join("agent.pem")), &read(agent.join("agent.key")))),
        &[ALPN],
    )
    .unwrap();
    let (runtime, endpoint, config) = raw_client(tls);
    let frames = runtime.block_on(async move {
        let connection = endpoint
            .connect_with(config, collector.quic, "localhost")
            .unwrap()
            .await
            .expect("handshake");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while connection.stats().frame_rx.ack_frequency == 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        connection.stats().frame_rx.ack_frequency
    });
    assert!(frames >= 1, "no ACK_FREQUENCY frame from the collector");
}

fn read(path: std::path::PathBuf) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn bad_clients_are_refused_and_cut_off_while_a_good_agent_keeps_reporting() {
    let _suite = headroom_tests::shared();
    let collector = Collector::start();
    let mut good = collector.start_agent("steady-1", &[("group", "web"), ("zone", "zone-a")]);
    let first = collector
        .wait_host("steady-1", 2, Duration::from_secs(30))
        .expect("steady agent reports");
    let ca_pem = read(collector.pki_dir().join("ca.pem"));

    // 1. No client certificate: refused during the handshake.
    let tls = client_config(&ca_pem, None, &[ALPN]).unwrap();
    let outcome = send_and_get_closed(tls, collector.quic, vec![0, 0, 0, 1, 0]);
    assert!(!outcome.contains("still open"), "{outcome}");
    assert!(
        outcome.to_lowercase().contains("certificate") || outcome.contains("116"),
        "{outcome}"
    );

    // 2. A certificate from another CA: refused.
    let now = SystemTime::now();
    let other_ca = create_ca("some other CA", now, 1).unwrap();
    let stranger = issue_client_cert(&other_ca, "stranger", now, Duration::from_secs(600)).unwrap();
    let tls = client_config(&ca_pem, Some((&stranger.cert_pem, &stranger.key_pem)), &[ALPN]).unwrap();
    let outcome = send_and_get_closed(tls, collector.quic, vec![0, 0, 0, 1, 0]);
    assert!(!outcome.contains("still open"), "{outcome}");

    // 3. Valid certificate, garbage bytes: that connection is closed with a reason.
    let garbler = collector.issue("garbler");
    let tls = client_config(
        &ca_pem,
        Some((&read(garbler.join("agent.pem")), &read(garbler.join("agent.key")))),
        &[ALPN],
    )
    .unwrap();
    let outcome = send_and_get_closed(
        tls.clone(),
        collector.quic,
        vec![0, 0, 0, 8, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4],
    );
    assert!(
        outcome.contains("ApplicationClosed") && outcome.contains("does not decode"),
        "{outcome}"
    );

    // 4. A frame over the size limit: closed before the collector buffers it.
    let outcome = send_and_get_closed(tls, collector.quic, (64u32 << 20).to_be_bytes().to_vec());
    assert!(
        outcome.contains("ApplicationClosed") && outcome.contains("over the limit"),
        "{outcome}"
    );

    // The collector logged each reason and is still serving: the steady agent keeps reporting.
    let log = collector.process.stderr_text();
    assert!(log.contains("does not decode"), "{log}");
    assert!(log.contains("over the limit"), "{log}");
    let seq_before = first["seq"].as_u64().unwrap();
    let later = collector.wait_host("steady-1", seq_before + 3, Duration::from_secs(20));
    assert!(
        later.is_some(),
        "steady agent stopped reporting after the bad clients"
    );
    assert_eq!(collector.process.child.id(), collector.process.pid() as u32);
    assert_eq!(good.terminate(Duration::from_secs(10)), Some(0));
}

#[test]
fn an_agent_with_a_certificate_from_another_ca_prints_one_clear_line() {
    let _suite = headroom_tests::shared();
    let collector = Collector::start();
    let dir = collector.dir.path().join("agents/impostor");
    std::fs::create_dir_all(&dir).unwrap();
    let now = SystemTime::now();
    let other_ca = create_ca("another fleet CA", now, 1).unwrap();
    let cert = issue_client_cert(&other_ca, "impostor", now, Duration::from_secs(600)).unwrap();
    std::fs::write(dir.join("agent.pem"), &cert.cert_pem).unwrap();
    headroom_common::pki::write_private_pem(&dir.join("agent.key"), &cert.key_pem).unwrap();
    // It trusts the right collector CA, so only its own certificate is wrong.
    std::fs::copy(collector.pki_dir().join("ca.pem"), dir.join("ca.pem")).unwrap();
    let agent = start_agent_with(&dir, collector.quic, &[("group", "web")], collector.dir.path());
    let line = wait_for(Duration::from_secs(20), || {
        agent
            .stderr_text()
            .lines()
            .find(|l| l.contains("refused our certificate"))
            .map(str::to_string)
    });
    let line = line.unwrap_or_else(|| panic!("no clear refusal line; agent log:\n{}", agent.stderr_text()));
    assert!(line.contains("not issued by the collector's CA"), "{line}");
    assert!(
        collector.hosts().is_empty(),
        "the impostor must not appear as a host"
    );
}

#[test]
fn the_first_sample_stored_after_a_reconnect_has_its_cpu_percent_issue_9() {
    let _suite = headroom_tests::shared();
    let collector = Collector::start();
    let state = collector.issue("web-1");
    let quic = collector.quic.to_string();
    let labels = [("group", "web")];
    let start = || start_agent_configured(&state, &quic, &labels, "", collector.dir.path());
    let mut agent = start();
    collector
        .wait_host("web-1", 3, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no samples; agent log:\n{}", agent.stderr_text()));
    agent.terminate(Duration::from_secs(20));
    // The agent flushed on stop: its last sample is stored and in the live view.
    let stopped_at = collector
        .wait_host("web-1", 3, Duration::from_secs(5))
        .and_then(|h| h["seq"].as_u64())
        .unwrap();
    let mut agent = start();
    collector
        .wait_host("web-1", stopped_at + 3, Duration::from_secs(30))
        .unwrap_or_else(|| {
            panic!(
                "no samples after the restart; agent log:\n{}",
                agent.stderr_text()
            )
        });
    agent.terminate(Duration::from_secs(20));
    // Every stored row but the very first (which has no sample before it) has CPU %.
    let db = rusqlite::Connection::open_with_flags(
        collector.db_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let rows: Vec<(i64, Option<f64>)> = db
        .prepare("SELECT seq, cpu_busy_pct FROM samples ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(rows.len() as u64 > stopped_at + 2, "{rows:?}");
    let without: Vec<i64> = rows.iter().filter(|r| r.1.is_none()).map(|r| r.0).collect();
    assert_eq!(without, [rows[0].0], "rows without CPU %: {rows:?}");
}

/// Issue 9 (ARCHITECTURE.md, "A collector that vanishes"): a collector that goes silent (stopped: its socket
/// is there but nothing answers) is given up by the agent on its ack deadline, 5 s without any answer while
/// samples wait for their acknowledgement, not after QUIC's 30 s idle timeout; once the collector answers again the agent reconnects and streams on.
#[test]
fn issue_9_a_silent_collector_is_given_up_on_the_ack_deadline_not_the_idle_timeout() {
    let _suite = headroom_tests::shared();
    let collector = Collector::start();
    let agent = collector.start_agent("quiet-1", &[("group", "web"), ("zone", "zone-a")]);
    let before = collector
        .wait_host("quiet-1", 3, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("quiet-1 never reported; agent log:\n{}", agent.stderr_text()));
    let seq_before = before["seq"].as_u64().unwrap();
    let pid = collector.process.pid();
    // SAFETY: signals to the collector this test started; SIGCONT below (or the drop's SIGKILL) ends the stop.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let stopped = std::time::Instant::now();
    let given_up = wait_for(Duration::from_secs(28), || {
        agent
            .stderr_text()
            .contains("sent nothing for 5s with samples in flight")
            .then(std::time::Instant::now)
    });
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let given_up = given_up.unwrap_or_else(|| {
        panic!(
            "the agent did not give up the silent collector within 28 s; agent log:\n{}",
            agent.stderr_text()
        )
    });
    let after = given_up - stopped;
    assert!(
        after >= Duration::from_secs(5),
        "given up after {after:?}, before its 5 s ack deadline"
    );
    assert!(
        after < Duration::from_secs(25),
        "given up after {after:?}: that is the idle timeout's doing, not the ack deadline's"
    );
    let resumed = collector.wait_host("quiet-1", seq_before + 5, Duration::from_secs(60));
    assert!(
        resumed.is_some(),
        "the agent did not stream again after the collector came back; agent log:\n{}",
        agent.stderr_text()
    );
}

/// Issue 9 (ARCHITECTURE.md, "A collector that vanishes"): the stateless-reset key and the connection-ID
/// key are derived from the server key, so they survive a crash. An agent whose collector was killed and
/// started again learns from the next sample it sends to the new process that its connection is gone ("reset
/// by peer") and reconnects, without waiting for its ack deadline or the idle timeout. (A reset must be
/// smaller than the packet that incites it, so a bare keep-alive may get none; a sample's packet does.)
#[test]
fn issue_9_a_restarted_collector_resets_the_old_connection_at_once() {
    let _suite = headroom_tests::shared();
    let mut collector = Collector::start();
    let agent = collector.start_agent_extra(
        "reset-1",
        &[("group", "web"), ("zone", "zone-a")],
        "[sampling]\ninterval = \"6s\"\n",
    );
    // The first sample is stored and acknowledged, so nothing waits for an ack when the collector dies.
    let first = collector
        .wait_host("reset-1", 1, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("reset-1 never reported; agent log:\n{}", agent.stderr_text()));
    let seq = first["seq"].as_u64().unwrap_or(1);
    collector.kill9();
    collector.restart();
    // The agent's next sample (within 6 s) reaches the new process.
    let reset = wait_for(Duration::from_secs(25), || {
        let log = agent.stderr_text();
        log.contains("reset by peer").then_some(log)
    });
    let log = reset.unwrap_or_else(|| {
        panic!(
            "no stateless reset reached the agent after the restart; agent log:\n{}",
            agent.stderr_text()
        )
    });
    assert!(
        !log.contains("acknowledged nothing") && !log.contains("did not answer"),
        "the agent waited out a deadline instead of taking the reset:\n{log}"
    );
    let back = collector.wait_host("reset-1", seq + 1, Duration::from_secs(60));
    assert!(
        back.is_some(),
        "the agent did not stream to the restarted collector; agent log:\n{}",
        agent.stderr_text()
    );
}
