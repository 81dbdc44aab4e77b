//! Issue 11, end to end on loopback: floods of stalled QUIC handshakes from 127.0.0.2 (Initial packets of new
//! connections that are never continued) against both listeners at once, the streaming port and the
//! enrollment port, while from 127.0.0.1 a new host enrolls, twenty agents connect and stream, and one of them
//! renews its certificate and comes back with it. The per-source cap, the Retry threshold, the handshake
//! timeout and the enrollment listener's per-source rate keep the flooder to a few slots, so the agents get
//! theirs.

use headroom_common::enroll::ENROLL_ALPN;
use headroom_common::pki::cert_info;
use headroom_common::wire::ALPN;
use headroom_tests::flood::{Flood, FloodSpec};
use headroom_tests::{http_get, scraped_value, start_agent_with, stored_rows_per_host, wait_for, Collector};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Agents streaming through the flood, the renewing one included (the issue's figure).
const AGENTS: usize = 20;

/// Enrolled certificates live 12 s, so the enrolled agent renews 8 s after enrolling (two thirds of the
/// lifetime) and its first certificate's expiry cuts its connection 4 s later: it must come back through the
/// flood with the new one. The other agents hold hand-issued 30-day certificates.
const SHORT_CERTS: &str = "[identity]\ncert_validity = \"12s\"\n";

/// Stalled handshakes per second on each port. Without the limits, 256 of them (half a second of this) would
/// fill every streaming slot until the 30 s idle timeout, and 64 every enrollment slot.
const FLOOD_PER_S: f64 = 500.0;

const RENEWER: &str = "renew-1";

fn unix_now_s() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn cert_of(state: &Path) -> headroom_common::pki::CertInfo {
    cert_info(&std::fs::read_to_string(state.join("agent.pem")).unwrap()).unwrap()
}

/// Every host in `hosts` has more than `floor[host]` rows stored.
fn all_above(db: &Path, hosts: &[String], floor: &BTreeMap<String, u64>) -> Option<BTreeMap<String, u64>> {
    let rows = stored_rows_per_host(db);
    hosts
        .iter()
        .all(|host| rows.get(host).copied().unwrap_or(0) > floor.get(host).copied().unwrap_or(0))
        .then_some(rows)
}

#[test]
fn issue_11_a_flood_of_stalled_handshakes_from_one_address_does_not_lock_out_agents() {
    let _suite = headroom_tests::exclusive();
    let collector = Collector::start_with(SHORT_CERTS);
    let db = collector.db_path();
    let ca_pem = std::fs::read_to_string(collector.pki_dir().join("ca.pem")).unwrap();
    let issued: Vec<(String, std::path::PathBuf)> = (1..AGENTS)
        .map(|i| format!("calm-{i:02}"))
        .map(|host| {
            let state = collector.issue(&host);
            (host, state)
        })
        .collect();
    let token = collector.create_token(&[]);

    let flooder = "127.0.0.2".parse().unwrap();
    let streaming_flood = Flood::start(FloodSpec {
        target: collector.quic,
        sources: vec![flooder],
        per_s: FLOOD_PER_S,
        alpn: ALPN.to_vec(),
        ca_pem: ca_pem.clone(),
    });
    let enrollment_flood = Flood::start(FloodSpec {
        target: collector.enroll,
        sources: vec![flooder],
        per_s: FLOOD_PER_S,
        alpn: ENROLL_ALPN.to_vec(),
        ca_pem,
    });
    let flooding = wait_for(Duration::from_secs(30), || {
        (streaming_flood.sent() >= 600 && enrollment_flood.sent() >= 600).then_some(())
    });
    assert!(flooding.is_some(), "the flooders did not get going");
    let flood_started = (streaming_flood.sent(), enrollment_flood.sent());
    let started = std::time::Instant::now();

    // A new host enrolls through the flooded enrollment port with a valid token.
    let renewer_state = collector.dir.path().join("agents").join(RENEWER);
    let out = collector.enroll_into(&renewer_state, RENEWER, &token);
    assert!(
        out.status.success(),
        "enrollment during the flood failed: {}\ncollector log: {}",
        String::from_utf8_lossy(&out.stderr),
        collector.process.stderr_text()
    );
    let first_cert = cert_of(&renewer_state);
    assert!(
        first_cert.not_after_s - first_cert.not_before_s <= 30,
        "identity.cert_validity not applied: {first_cert:?}"
    );

    // Twenty agents connect through the flooded streaming port.
    let renewer = start_agent_with(&renewer_state, collector.quic, &[], collector.dir.path());
    let _agents: Vec<_> = issued
        .iter()
        .map(|(_, state)| start_agent_with(state, collector.quic, &[], collector.dir.path()))
        .collect();
    let hosts: Vec<String> = issued
        .iter()
        .map(|(host, _)| host.clone())
        .chain([RENEWER.to_string()])
        .collect();
    let connected = wait_for(Duration::from_secs(60), || {
        all_above(&db, &hosts, &BTreeMap::new())
    })
    .unwrap_or_else(|| {
        panic!(
            "not every agent streamed during the flood: stored {:?}\ncollector log: {}",
            stored_rows_per_host(&db),
            collector.process.stderr_text()
        )
    });
    // ... and keeps streaming: every host's stored count rises while the flood goes on.
    let rising = wait_for(Duration::from_secs(30), || all_above(&db, &hosts, &connected));
    assert!(
        rising.is_some(),
        "stored counts stopped rising during the flood: before {connected:?}, now {:?}",
        stored_rows_per_host(&db)
    );

    // The enrolled agent renews during the flood, its first certificate's expiry cuts its connection, and it
    // is back streaming with the renewed one.
    let renewed = wait_for(Duration::from_secs(40), || {
        let now = cert_of(&renewer_state);
        (now.serial_hex != first_cert.serial_hex).then_some(now)
    })
    .unwrap_or_else(|| {
        panic!(
            "no renewal during the flood; agent log: {}",
            renewer.stderr_text()
        )
    });
    assert!(renewed.not_after_s > first_cert.not_after_s);
    let expired = wait_for(Duration::from_secs(30), || {
        (unix_now_s() > first_cert.not_after_s + 1).then(|| stored_rows_per_host(&db))
    })
    .unwrap();
    let back = wait_for(Duration::from_secs(40), || {
        let rows = stored_rows_per_host(&db);
        (rows.get(RENEWER).copied().unwrap_or(0) >= expired.get(RENEWER).copied().unwrap_or(0) + 3)
            .then_some(())
    });
    assert!(
        back.is_some(),
        "{RENEWER} did not stream with its renewed certificate after the first expired: stored {:?}\n\
         agent log: {}",
        stored_rows_per_host(&db),
        renewer.stderr_text()
    );

    // The floods were on all along: at least half the intended rate over the whole test.
    let elapsed_s = started.elapsed().as_secs_f64();
    let streaming_sent = streaming_flood.stop() - flood_started.0;
    let enrollment_sent = enrollment_flood.stop() - flood_started.1;
    for (port, sent) in [("streaming", streaming_sent), ("enrollment", enrollment_sent)] {
        assert!(
            sent as f64 >= FLOOD_PER_S / 2.0 * elapsed_s,
            "the {port} flood slowed down: {sent} Initials in {elapsed_s:.0} s"
        );
    }

    let scrape = http_get(collector.http, "/metrics", &[])
        .expect("GET /metrics")
        .body;
    let refused = |reason: &str| {
        scraped_value(
            &scrape,
            &format!("headroom_collector_connections_refused_total{{reason=\"{reason}\"}}"),
        )
    };
    let retries = scraped_value(&scrape, "headroom_collector_handshake_retries_total");
    assert!(
        refused("handshakes_per_source") + retries >= 100.0,
        "the streaming flood was not capped:\n{scrape}"
    );
    assert!(
        refused("enrollment_rate") >= 100.0,
        "the enrollment flood was not rate limited:\n{scrape}"
    );
    eprintln!(
        "flood of {streaming_sent} + {enrollment_sent} Initials over {elapsed_s:.0} s: per-source refusals {}, \
         retries {retries}, enrollment rate refusals {}, handshake timeouts {}",
        refused("handshakes_per_source"),
        refused("enrollment_rate"),
        refused("handshake_timeout")
    );
}
