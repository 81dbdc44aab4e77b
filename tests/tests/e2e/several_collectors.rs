//! Issue 13: three collectors sharing one CA, twenty agents listing all three. Killing one collector moves
//! its hosts to the others within 30 s, and counted in the engine (VictoriaMetrics, fed by all three
//! collectors over remote_write) nothing is lost.

use headroom_tests::{
    api_get, binary, wait_export_caught_up, wait_for, Collector, Engine, EngineKind, Process,
};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const AGENTS: usize = 20;

/// No per-collector label: a sample two collectors stored (an acknowledgement lost in the move) must land in
/// the same series to collapse into one.
fn export_config(engine: &Engine) -> String {
    format!(
        "[export.remote_write]\nurl = \"{}\"\nbatch_size = 500\nbatch_wait = \"200ms\"\n\
         min_backoff = \"100ms\"\nmax_backoff = \"2s\"\n",
        engine.write_url()
    )
}

/// Host name → last seq, of the hosts a collector has heard from within the last seconds.
fn live_hosts(collector: &Collector) -> BTreeMap<String, u64> {
    api_get(collector.http, "/api/v1/hosts")
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|h| h["status"] == "up")
        .filter_map(|h| Some((h["host"].as_str()?.to_string(), h["seq"].as_u64()?)))
        .collect()
}

/// Every (seq, ts_ms) stored for each host in one collector's database.
fn stored(collector: &Collector) -> BTreeMap<String, BTreeSet<(u64, i64)>> {
    let conn = rusqlite::Connection::open_with_flags(
        collector.db_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut statement = conn
        .prepare("SELECT h.name, s.seq, s.ts_ms FROM samples s JOIN hosts h ON h.id = s.host_id")
        .unwrap();
    let rows = statement
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)?,
            ))
        })
        .unwrap();
    let mut out: BTreeMap<String, BTreeSet<(u64, i64)>> = BTreeMap::new();
    for row in rows {
        let (host, seq, ts) = row.unwrap();
        out.entry(host).or_default().insert((seq, ts));
    }
    out
}

#[test]
fn issue_13_three_collectors_twenty_agents_one_killed_hosts_move_and_nothing_is_lost() {
    let _suite = headroom_tests::exclusive();
    let Some(engine) = Engine::start(EngineKind::VictoriaMetrics) else {
        return;
    };
    let mut first = Collector::start_with(&export_config(&engine));
    let names: Vec<String> = (1..=AGENTS).map(|i| format!("multi-{i:02}")).collect();
    // Certificates first, so the registry the other two copy knows every agent.
    let states: Vec<_> = names.iter().map(|host| first.issue(host)).collect();
    let second = Collector::start_sharing_pki(&first, &export_config(&engine));
    let third = Collector::start_sharing_pki(&first, &export_config(&engine));
    let addresses = [first.quic, second.quic, third.quic]
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut agents: Vec<Process> = names
        .iter()
        .zip(&states)
        .map(|(host, state)| {
            let config = state.join("agent.toml");
            std::fs::write(
                &config,
                format!(
                    "state_dir = \"{}\"\n[collector]\naddresses = [{addresses}]\nserver_name = \"localhost\"\n\
                     [sampling]\ninterval = \"200ms\"\n[labels]\ngroup = \"web\"\nzone = \"z1\"\n",
                    state.display()
                ),
            )
            .unwrap();
            Process::start(
                &format!("agent-{host}"),
                &binary("headroom-agent"),
                &["run", "--config", config.to_str().unwrap()],
                first.dir.path(),
            )
        })
        .collect();
    let all = |collectors: &[&Collector]| {
        let mut seen = BTreeMap::new();
        for collector in collectors {
            seen.extend(live_hosts(collector));
        }
        seen
    };
    let spread = wait_for(Duration::from_secs(90), || {
        let on_first = live_hosts(&first);
        let seen = all(&[&first, &second, &third]);
        (seen.len() == AGENTS && !on_first.is_empty()).then_some(on_first)
    })
    .unwrap_or_else(|| {
        panic!(
            "not every host reported, or none chose the first collector: {:?}",
            all(&[&first, &second, &third]).keys()
        )
    });
    for collector in [&second, &third] {
        assert!(
            !live_hosts(collector).is_empty(),
            "rendezvous hashing left a collector without hosts"
        );
    }

    // The first collector dies: its hosts must reappear, with new samples, on the other two within 30 s.
    first.kill9();
    let killed_at = Instant::now();
    let moved = wait_for(Duration::from_secs(30), || {
        let seen = all(&[&second, &third]);
        spread
            .iter()
            .all(|(host, seq)| seen.get(host).is_some_and(|now| now > seq))
            .then_some(())
    });
    assert!(
        moved.is_some(),
        "hosts of the killed collector did not move within 30 s: {:?} of {:?}",
        all(&[&second, &third])
            .keys()
            .filter(|h| spread.contains_key(*h))
            .collect::<Vec<_>>(),
        spread.keys()
    );
    eprintln!("{} hosts moved in {:?}", spread.len(), killed_at.elapsed());

    // It comes back (its exporter sends what it stored before the kill), then the agents stop cleanly.
    first.restart();
    for agent in &mut agents {
        assert_eq!(agent.terminate(Duration::from_secs(30)), Some(0));
    }
    for collector in [&first, &second, &third] {
        assert!(
            wait_export_caught_up(collector, Duration::from_secs(120)).is_some(),
            "export did not catch up: {}",
            collector.process.stderr_text()
        );
    }
    let mut union: BTreeMap<String, BTreeSet<(u64, i64)>> = BTreeMap::new();
    for collector in [&first, &second, &third] {
        for (host, rows) in stored(collector) {
            union.entry(host).or_default().extend(rows);
        }
    }
    assert_eq!(union.len(), AGENTS);
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        + 1.0;
    for (host, rows) in &union {
        // Nothing lost: the sequence numbers stored across the collectors leave no hole.
        let seqs: Vec<u64> = rows.iter().map(|(seq, _)| *seq).collect();
        let (low, high) = (seqs[0], *seqs.last().unwrap());
        let distinct: BTreeSet<u64> = seqs.iter().copied().collect();
        assert_eq!(
            distinct.len() as u64,
            high - low + 1,
            "{host}: a hole in seqs {low}..={high}"
        );
        // And the engine holds each sample once (a sample stored by two collectors has one timestamp).
        let timestamps: BTreeSet<i64> = rows.iter().map(|(_, ts)| *ts).collect();
        let counted = wait_for(Duration::from_secs(30), || {
            let count = engine
                .query(
                    &format!("count_over_time(headroom_host_cpu_cores{{host=\"{host}\"}}[1h])"),
                    now_s,
                )
                .and_then(|r| {
                    r.first()
                        .and_then(|s| s["value"][1].as_str()?.parse::<f64>().ok())
                })
                .unwrap_or(0.0) as usize;
            (count == timestamps.len()).then_some(count)
        });
        assert!(
            counted.is_some(),
            "{host}: the engine does not hold {} samples",
            timestamps.len()
        );
    }
}
