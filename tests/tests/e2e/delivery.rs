//! Nothing lost: real processes, real mutual TLS, real SQLite. The collector and agents are killed with
//! SIGKILL mid-stream; afterwards the database holds every sequence number of every agent exactly once.

use headroom_tests::{binary, wait_for, Collector, Process};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Sampling fast so that a few seconds hold many batches.
const FAST: &str = "[sampling]\ninterval = \"200ms\"\n";

#[derive(Debug, PartialEq, Eq)]
struct Stored {
    rows: u64,
    distinct: u64,
    min_seq: u64,
    max_seq: u64,
}

fn stored(db: &Path) -> BTreeMap<String, Stored> {
    let connection =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut statement = connection
        .prepare(
            "SELECT h.name, COUNT(*), COUNT(DISTINCT s.seq), MIN(s.seq), MAX(s.seq)
             FROM samples s JOIN hosts h ON h.id = s.host_id GROUP BY h.name",
        )
        .unwrap();
    statement
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                Stored {
                    rows: row.get(1)?,
                    distinct: row.get(2)?,
                    min_seq: row.get(3)?,
                    max_seq: row.get(4)?,
                },
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The last sequence number the agent used, from the state it writes on a clean stop.
fn last_seq_of(agent_state: &Path) -> u64 {
    let text = std::fs::read_to_string(agent_state.join("next-seq")).unwrap();
    text.trim().parse::<u64>().unwrap() - 1
}

fn assert_complete(db: &Path, host: &str, last_seq: u64) {
    let all = stored(db);
    let got = all
        .get(host)
        .unwrap_or_else(|| panic!("{host} has no rows: {all:?}"));
    assert_eq!(
        *got,
        Stored {
            rows: last_seq,
            distinct: last_seq,
            min_seq: 1,
            max_seq: last_seq
        },
        "{host}: every sequence 1..={last_seq} exactly once"
    );
}

/// Every process log in the test's directory, for failure messages.
fn all_logs(dir: &Path) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "stderr") {
            out.push_str(&format!(
                "--- {}\n{}\n",
                path.display(),
                std::fs::read_to_string(&path).unwrap_or_default()
            ));
        }
    }
    out
}

/// Waits until each host has reported `samples` more than it had: more than `reached` (the sequence number it
/// last got to, kept across collector restarts, whose live view starts empty) and than the collector shows now.
fn advance_all(collector: &Collector, hosts: &[&str], reached: &mut [u64], samples: u64) {
    for (host, reached) in hosts.iter().zip(reached) {
        let now = collector
            .hosts()
            .into_iter()
            .find(|h| h["host"] == *host)
            .and_then(|h| h["seq"].as_u64())
            .unwrap_or(0);
        let from = now.max(*reached);
        let seen = collector
            .wait_host(host, from + samples, Duration::from_secs(60))
            .unwrap_or_else(|| panic!("{host} did not stream on past {from}"));
        *reached = seen["seq"].as_u64().unwrap_or(from + samples);
    }
}

/// Starts an agent for each host (group "web", sampling every 200 ms) and waits until each has reported
/// `samples` samples.
fn start_streaming(collector: &Collector, hosts: &[&str], samples: u64) -> Vec<Process> {
    let agents = hosts
        .iter()
        .map(|h| collector.start_agent_extra(h, &[("group", "web")], FAST))
        .collect();
    for host in hosts {
        assert!(
            collector
                .wait_host(host, samples, Duration::from_secs(30))
                .is_some(),
            "{host} never reported"
        );
    }
    agents
}

/// Stops every agent with SIGTERM; each must exit 0 (it writes its state on the way out).
fn stop_all(agents: &mut [Process]) {
    for agent in agents {
        assert_eq!(
            agent.terminate(Duration::from_secs(15)),
            Some(0),
            "{}",
            agent.stderr_text()
        );
    }
}

fn restart_agent(collector: &Collector, host: &str) -> Process {
    let state = collector.dir.path().join("agents").join(host);
    Process::start(
        &format!("agent-{host}-again"),
        &binary("headroom-agent"),
        &["run", "--config", state.join("agent.toml").to_str().unwrap()],
        collector.dir.path(),
    )
}

#[test]
fn collector_killed_three_times_loses_and_duplicates_nothing() {
    let _suite = headroom_tests::shared();
    let mut collector = Collector::start();
    let hosts = ["kill-a", "kill-b", "kill-c"];
    let mut agents = start_streaming(&collector, &hosts, 5);
    let mut reached = [0; 3];
    for _ in 0..3 {
        // Each host streams a few samples more to this collector before it is killed and started again.
        advance_all(&collector, &hosts, &mut reached, 5);
        collector.kill9();
        collector.restart();
    }
    // The backlogs drain into the last collector (stored up to each host's live sample, less a second's
    // worth) before the agents stop.
    let drained = wait_for(Duration::from_secs(120), || {
        let all = stored(&collector.db_path());
        let listed = collector.hosts();
        hosts
            .iter()
            .all(|host| {
                let live = listed
                    .iter()
                    .find(|h| h["host"] == *host)
                    .and_then(|h| h["seq"].as_u64());
                live.is_some_and(|live| all.get(*host).is_some_and(|s| s.max_seq + 5 >= live))
            })
            .then_some(())
    });
    assert!(
        drained.is_some(),
        "backlogs did not drain: {:?}",
        stored(&collector.db_path())
    );
    stop_all(&mut agents);
    assert_eq!(collector.process.terminate(Duration::from_secs(15)), Some(0));
    let logs = all_logs(collector.dir.path());
    for host in hosts {
        let last = last_seq_of(&collector.dir.path().join("agents").join(host));
        // 5 before the first kill and 5 more on each of the three collectors after it.
        assert!(last >= 20, "{host} sampled only {last} times");
        let stored = stored(&collector.db_path());
        assert!(
            stored.get(host).is_some_and(|s| s.max_seq == last),
            "{host}: {stored:?} last {last}\n{logs}"
        );
        assert_complete(&collector.db_path(), host, last);
    }
}

#[test]
fn agent_killed_mid_batch_resumes_without_loss_or_duplicates() {
    let _suite = headroom_tests::shared();
    let mut collector = Collector::start();
    let mut agent = collector.start_agent_extra("crashy", &[("group", "web")], FAST);
    assert!(collector
        .wait_host("crashy", 5, Duration::from_secs(30))
        .is_some());
    let mut reached = [0];
    for _ in 0..2 {
        // Killed while streaming: a few samples past where it is now.
        advance_all(&collector, &["crashy"], &mut reached, 5);
        let _ = agent.child.kill();
        let _ = agent.child.wait();
        agent = restart_agent(&collector, "crashy");
    }
    let before = collector
        .hosts()
        .iter()
        .find(|h| h["host"] == "crashy")
        .and_then(|h| h["seq"].as_u64());
    assert!(collector
        .wait_host("crashy", before.unwrap_or(0) + 5, Duration::from_secs(30))
        .is_some());
    assert_eq!(
        agent.terminate(Duration::from_secs(15)),
        Some(0),
        "{}",
        agent.stderr_text()
    );
    assert_eq!(collector.process.terminate(Duration::from_secs(15)), Some(0));
    let last = last_seq_of(&collector.dir.path().join("agents/crashy"));
    assert_complete(&collector.db_path(), "crashy", last);
}

#[test]
fn issue_12_a_collector_tells_its_agents_the_reconnect_spread_and_takes_them_back_after_kill_9() {
    let _suite = headroom_tests::shared();
    // A planned rate of one handshake a second: three agents need 3 s to come back, past the second below
    // which a collector does not bother its agents (`headroom_common::spread::worth_telling`).
    let mut collector = Collector::start_with("[fleet]\nreconnect_rate = 1\n");
    let hosts = ["spread-a", "spread-b", "spread-c"];
    let mut agents = start_streaming(&collector, &hosts, 2);
    // Told 10 s after each welcome, once all three are connected.
    let told = wait_for(Duration::from_secs(40), || {
        agents
            .iter()
            .all(|agent| {
                agent.stderr_text().lines().any(|line| {
                    line.contains("reconnects after losing this collector are spread over its window")
                        && line.contains("window_ms=3000")
                })
            })
            .then_some(())
    });
    assert!(told.is_some(), "{}", all_logs(collector.dir.path()));
    assert!(
        !all_logs(collector.dir.path()).contains('\x1b'),
        "logs to a file (or the journal) carry no terminal colour codes"
    );
    let mut reached = [0; 3];
    advance_all(&collector, &hosts, &mut reached, 3);
    collector.kill9();
    collector.restart();
    // Each agent's first attempt comes within its backoff plus the 3 s window; all stream on.
    advance_all(&collector, &hosts, &mut reached, 5);
    stop_all(&mut agents);
    assert_eq!(collector.process.terminate(Duration::from_secs(15)), Some(0));
    for host in hosts {
        let last = last_seq_of(&collector.dir.path().join("agents").join(host));
        assert_complete(&collector.db_path(), host, last);
    }
}
