//! End to end: agents whose clocks run ten minutes ahead and behind (under libfaketime) lose nothing: their
//! samples are stored in the right minutes with the correction recorded, `hosts` shows the offset, and the
//! clock-skew alarm fires for them and not for an agent whose clock is right.

use headroom_tests::{agent_config_text, api_get, binary, e2e_required, wait_for, Collector, Process};
use std::path::{Path, PathBuf};
use std::time::Duration;

const FAST: &str = "[sampling]\ninterval = \"200ms\"\n";
const TEN_MINUTES_MS: i64 = 600_000;
/// How far an estimate may be from the shift faketime applies: the loopback round trip on a loaded machine.
const TOLERANCE_MS: i64 = 5_000;

/// Debian's multithreaded libfaketime, whichever multiarch directory holds it.
fn libfaketime() -> Option<PathBuf> {
    std::fs::read_dir("/usr/lib")
        .ok()?
        .flatten()
        .map(|entry| entry.path().join("faketime/libfaketimeMT.so.1"))
        .find(|path| path.exists())
}

fn now_ms() -> i64 {
    headroom_common::clock::now_ms() as i64
}

/// Start an agent for `host` whose clock is shifted by `shift` (a libfaketime offset like "+600s").
fn start_agent(collector: &Collector, host: &str, lib: &Path, shift: Option<&str>) -> Process {
    let state = collector.issue(host);
    let config = state.join("agent.toml");
    let text = agent_config_text(&state, &collector.quic.to_string(), &[("group", "web")], FAST);
    std::fs::write(&config, text).unwrap();
    let lib = lib.to_string_lossy();
    let env: Vec<(&str, &str)> = match shift {
        // Only the wall clock moves: timers and timeouts run on the monotonic clock, as on a real host.
        Some(shift) => vec![
            ("LD_PRELOAD", lib.as_ref()),
            ("FAKETIME", shift),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
        None => Vec::new(),
    };
    Process::start_with_env(
        &format!("agent-{host}"),
        &binary("headroom-agent"),
        &["run", "--config", config.to_str().unwrap()],
        &env,
        collector.dir.path(),
    )
}

/// (min ts_ms, max ts_ms, min clock_offset_ms, max clock_offset_ms, rows) of a host's stored samples.
fn stored(db: &Path, host: &str) -> (i64, i64, i64, i64, i64) {
    let connection =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    connection
        .query_row(
            "SELECT MIN(s.ts_ms), MAX(s.ts_ms), MIN(s.clock_offset_ms), MAX(s.clock_offset_ms), COUNT(*)
             FROM samples s JOIN hosts h ON h.id = s.host_id WHERE h.name = ?1",
            [host],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)),
        )
        .unwrap()
}

#[test]
fn issue_11_agents_ten_minutes_ahead_and_behind_are_stored_in_the_right_minutes_and_flagged() {
    let _suite = headroom_tests::shared();
    let Some(lib) = libfaketime() else {
        assert!(
            !e2e_required(),
            "libfaketime is missing: apt-get install faketime"
        );
        eprintln!("skipped: libfaketime is missing (apt-get install faketime)");
        return;
    };
    let rules_dir = tempfile::tempdir().unwrap();
    let rules = rules_dir.path().join("alarms.toml");
    std::fs::write(
        &rules,
        r#"
[[rule]]
name = "clock-wrong"
kind = "clock_skew"
severity = "warning"
for = "0s"
limit = "5m"
runbook = "fix the host's clock: check chronyd or systemd-timesyncd"
"#,
    )
    .unwrap();
    let started_ms = now_ms();
    let mut collector = Collector::start_with(&format!(
        "[alarms]\nrules = \"{}\"\ninterval = \"200ms\"\n",
        rules.display()
    ));
    let hosts = [
        ("ahead-1", Some("+600s"), TEN_MINUTES_MS),
        ("behind-1", Some("-600s"), -TEN_MINUTES_MS),
        ("right-1", None, 0),
    ];
    let mut agents: Vec<Process> = hosts
        .iter()
        .map(|(host, shift, _)| start_agent(&collector, host, &lib, *shift))
        .collect();
    for ((host, _, _), agent) in hosts.iter().zip(&agents) {
        assert!(
            collector.wait_host(host, 10, Duration::from_secs(60)).is_some(),
            "{host} never got samples stored:\n{}",
            agent.stderr_text()
        );
    }

    // `hosts` shows each offset, flagging the two past fleet.max_clock_skew (5m by default).
    for (host, _, expected_ms) in hosts {
        let view = collector.hosts().into_iter().find(|h| h["host"] == host).unwrap();
        let offset_ms = view["clock_offset_ms"].as_i64().unwrap_or(i64::MAX);
        assert!((offset_ms - expected_ms).abs() < TOLERANCE_MS, "{host}: {view}");
        assert_eq!(view["clock_skewed"], expected_ms != 0, "{host}: {view}");
    }
    let table = std::process::Command::new(binary("headroom-collector"))
        .args(["hosts", "--api", &collector.http.to_string()])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout).to_string();
    let ahead_row = table
        .lines()
        .find(|l| l.contains("ahead-1"))
        .unwrap_or_else(|| panic!("no ahead-1 row in:\n{table}"));
    assert!(ahead_row.contains("+60") && ahead_row.contains("s!"), "{table}");

    // The clock-skew alarm fires for both wrong clocks, and only for them.
    let firing = wait_for(Duration::from_secs(30), || {
        let report = api_get(collector.http, "/api/v1/alarms")?;
        let mut subjects: Vec<String> = report["alarms"]
            .as_array()?
            .iter()
            .filter(|a| a["rule"] == "clock-wrong" && a["status"] == "firing")
            .map(|a| a["subject"].as_str().unwrap_or_default().to_string())
            .collect();
        subjects.sort();
        (subjects == ["ahead-1", "behind-1"]).then_some(())
    });
    assert!(
        firing.is_some(),
        "clock-skew alarms: {:?}",
        api_get(collector.http, "/api/v1/alarms")
    );

    for agent in &mut agents {
        agent.stop_cleanly();
    }
    collector.process.stop_cleanly();
    let ended_ms = now_ms();
    // Every sample sits between the start and the end of this test on the collector's clock, in the minute it
    // was taken, with the correction that put it there recorded beside it.
    for (host, _, expected_ms) in hosts {
        let (first_ms, last_ms, least_offset, most_offset, rows) = stored(&collector.db_path(), host);
        assert!(rows >= 10, "{host}: {rows} samples stored");
        assert!(
            first_ms >= started_ms - TOLERANCE_MS && last_ms <= ended_ms + TOLERANCE_MS,
            "{host}: samples stored from {first_ms} to {last_ms}, test ran {started_ms}..{ended_ms}"
        );
        assert!(
            (least_offset - expected_ms).abs() < TOLERANCE_MS
                && (most_offset - expected_ms).abs() < TOLERANCE_MS,
            "{host}: offsets {least_offset}..{most_offset}"
        );
    }
}
