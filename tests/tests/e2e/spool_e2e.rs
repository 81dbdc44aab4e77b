//! The agent's spool end to end with the real binaries: a long outage with a tiny spool cap is reported as a
//! gap of exactly the samples dropped, a spool with a damaged tail is repaired with one warning, and a spool
//! volume that fills up loses nothing the agent could hold in memory and reports the rest.

use headroom_tests::{api_get, binary, e2e_required, wait_for, Collector, Process};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// 100 ms sampling and a 64 KiB spool: about 250 samples fit, so a 40 s outage overflows it.
const TINY: &str = "[sampling]\ninterval = \"100ms\"\n[spool]\nmax_size = \"64KiB\"\n";

fn stored_seqs(db: &Path, host: &str) -> BTreeSet<u64> {
    let connection =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut statement = connection
        .prepare("SELECT s.seq FROM samples s JOIN hosts h ON h.id = s.host_id WHERE h.name = ?1")
        .unwrap();
    statement
        .query_map([host], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// (from_seq, to_seq, count, reason) of every gap recorded for the host.
fn gaps(db: &Path, host: &str) -> Vec<(u64, u64, u64, String)> {
    let connection =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut statement = connection
        .prepare(
            "SELECT g.from_seq, g.to_seq, g.count, g.reason FROM gaps g JOIN hosts h ON h.id = g.host_id
             WHERE h.name = ?1 ORDER BY g.from_seq",
        )
        .unwrap();
    statement
        .query_map([host], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn last_seq_of(state: &Path) -> u64 {
    std::fs::read_to_string(state.join("next-seq"))
        .unwrap()
        .trim()
        .parse::<u64>()
        .unwrap()
        - 1
}

/// Stop the agent and then the collector cleanly, and check that every sequence number the agent used is
/// either stored or inside a reported gap with `reason`, and that the gaps count exactly the missing ones.
/// Returns the stored and the missing sequence numbers.
fn stop_and_check_gaps(
    agent: &mut Process,
    collector: &mut Collector,
    state: &Path,
    host: &str,
    reason: &str,
) -> (BTreeSet<u64>, Vec<u64>) {
    agent.stop_cleanly();
    collector.process.stop_cleanly();
    let last = last_seq_of(state);
    let stored = stored_seqs(&collector.db_path(), host);
    let missing: Vec<u64> = (1..=last).filter(|seq| !stored.contains(seq)).collect();
    let gaps = gaps(&collector.db_path(), host);
    let reported: u64 = gaps.iter().map(|g| g.2).sum();
    assert_eq!(
        reported,
        missing.len() as u64,
        "gaps {gaps:?} vs {} missing samples",
        missing.len()
    );
    for seq in &missing {
        assert!(
            gaps.iter().any(|g| g.0 <= *seq && *seq <= g.1),
            "missing {seq} is in no reported gap: {gaps:?}"
        );
    }
    assert!(gaps.iter().all(|g| g.3 == reason), "{gaps:?}");
    (stored, missing)
}

/// The newest segment file of a spool directory.
fn newest_segment(spool: &Path) -> Option<PathBuf> {
    std::fs::read_dir(spool)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .max()
}

/// Waits until the samples stored for `host` reach the live one the collector shows, less a second's worth:
/// the backlog has drained.
fn wait_until_caught_up(collector: &Collector, host: &str) {
    let caught_up = wait_for(Duration::from_secs(120), || {
        let live = collector.hosts().into_iter().find(|h| h["host"] == host)?["seq"].as_u64()?;
        let stored = stored_seqs(&collector.db_path(), host).last().copied()?;
        (stored + 10 >= live).then_some(())
    });
    assert!(caught_up.is_some(), "{host}: the backlog did not drain");
}

#[test]
fn a_full_spool_during_an_outage_is_reported_as_an_exact_gap() {
    let _suite = headroom_tests::long_shared();
    let mut collector = Collector::start();
    let mut agent = collector.start_agent_extra("outage-1", &[("group", "web")], TINY);
    assert!(collector
        .wait_host("outage-1", 5, Duration::from_secs(30))
        .is_some());
    collector.kill9();
    // The outage lasts until the spool has overflowed, as the agent says, rather than a fixed time.
    let overflowed = wait_for(Duration::from_secs(180), || {
        agent
            .stderr_text()
            .contains("spool is full; dropping its oldest unacknowledged samples")
            .then_some(())
    });
    assert!(
        overflowed.is_some(),
        "the spool never overflowed: {}",
        agent.stderr_text()
    );
    collector.restart();
    let state = collector.dir.path().join("agents/outage-1");
    // Let the backlog drain (everything up to the live sample stored), then stop cleanly so every sample the
    // agent still holds is delivered.
    wait_until_caught_up(&collector, "outage-1");
    let (_, missing) = stop_and_check_gaps(&mut agent, &mut collector, &state, "outage-1", "spool_full");
    assert!(
        !missing.is_empty(),
        "a 40 s outage at 10 samples/s must overflow a 64 KiB spool"
    );
    assert!(agent
        .stderr_text()
        .contains("reporting samples that could not be kept"));
}

#[test]
fn a_damaged_spool_tail_is_repaired_with_one_warning_and_the_agent_goes_on() {
    let _suite = headroom_tests::shared();
    let mut collector = Collector::start();
    let mut agent = collector.start_agent_extra(
        "torn-1",
        &[("group", "web")],
        "[sampling]\ninterval = \"100ms\"\n",
    );
    assert!(collector
        .wait_host("torn-1", 5, Duration::from_secs(30))
        .is_some());
    // With the collector gone the spool fills; then the agent stops and its newest segment gets a torn tail.
    collector.kill9();
    let spool = collector.dir.path().join("agents/torn-1/spool");
    let noticed = wait_for(Duration::from_secs(60), || {
        agent.stderr_text().contains("uplink failed").then_some(())
    });
    assert!(
        noticed.is_some(),
        "the agent never noticed: {}",
        agent.stderr_text()
    );
    // At least one more record after that, so the newest segment ends in a record to tear.
    let spool_bytes = || {
        newest_segment(&spool)
            .and_then(|p| std::fs::metadata(p).ok())
            .map_or(0, |m| m.len())
    };
    let at_failure = spool_bytes();
    assert!(wait_for(Duration::from_secs(30), || (spool_bytes() > at_failure)
        .then_some(()))
    .is_some());
    assert_eq!(agent.terminate(Duration::from_secs(20)), Some(0));
    let state = collector.dir.path().join("agents/torn-1");
    let newest = newest_segment(&spool).expect("a spool segment");
    let mut bytes = std::fs::read(&newest).unwrap();
    let cut = bytes.len() - 7;
    bytes.truncate(cut);
    bytes.extend_from_slice(b"\xff\x00garbage");
    std::fs::write(&newest, bytes).unwrap();

    collector.restart();
    let agent = Process::start(
        "agent-torn-again",
        &binary("headroom-agent"),
        &["run", "--config", state.join("agent.toml").to_str().unwrap()],
        collector.dir.path(),
    );
    let before = collector
        .hosts()
        .iter()
        .find(|h| h["host"] == "torn-1")
        .and_then(|h| h["seq"].as_u64());
    let moved = collector.wait_host("torn-1", before.unwrap_or(0) + 20, Duration::from_secs(30));
    assert!(
        moved.is_some(),
        "agent did not go on after repairing its spool:\n{}",
        agent.stderr_text()
    );
    let log = agent.stderr_text();
    let warnings = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("spool"))
        .count();
    assert_eq!(warnings, 1, "exactly one warning about the spool:\n{log}");
}

/// A small tmpfs mounted by the test, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// None when this process may not mount (not root, or no mount namespace rights).
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "headroom-test",
            ])
            .arg(path)
            .status()
            .ok()?;
        status.success().then(|| Tmpfs {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Write a file until the filesystem is full.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 4096];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
}

#[test]
fn issue_11_a_full_spool_disk_loses_nothing_held_in_memory_and_reports_the_rest() {
    let _suite = headroom_tests::shared();
    let mut collector = Collector::start();
    let state = collector.issue("diskfull-1");
    // The spool gets its own 1 MiB volume; a 20-sample in-memory queue stands in for it once it is full.
    let Some(_volume) = Tmpfs::mount(&state.join("spool"), "1m") else {
        assert!(
            !e2e_required(),
            "cannot mount a tmpfs for the spool (this test needs root)"
        );
        eprintln!("skipped: cannot mount a tmpfs for the spool (this test needs root)");
        return;
    };
    let mut agent = headroom_tests::start_agent_configured(
        &state,
        &collector.quic.to_string(),
        &[("group", "web")],
        "[sampling]\ninterval = \"100ms\"\n[spool]\nmemory_max_samples = 20\n",
        collector.dir.path(),
    );
    assert!(collector
        .wait_host("diskfull-1", 5, Duration::from_secs(30))
        .is_some());

    // The collector goes away and the volume fills while it is away.
    collector.kill9();
    fill(&state.join("spool/filler"));
    let overflowed = wait_for(Duration::from_secs(60), || {
        agent
            .stderr_text()
            .contains("in-memory queue is full")
            .then_some(())
    });
    assert!(
        overflowed.is_some(),
        "the agent never ran out of room in memory:\n{}",
        agent.stderr_text()
    );
    // The collector comes back while the volume is still full: the samples in memory go out from there.
    collector.restart();
    let gap_seen = wait_for(Duration::from_secs(60), || {
        let gaps = api_get(collector.http, "/api/v1/gaps")?;
        (gaps["diskfull-1"].as_u64()? > 0).then_some(())
    });
    assert!(
        gap_seen.is_some(),
        "no gap reached the collector:\n{}",
        agent.stderr_text()
    );
    let out = Command::new(binary("headroom-collector"))
        .args(["hosts", "--format", "json", "--api", &collector.http.to_string()])
        .output()
        .unwrap();
    let hosts: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let host = hosts
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "diskfull-1")
        .cloned()
        .unwrap();
    assert!(host["gaps"].as_u64().unwrap() > 0, "{host}");

    let (stored, missing) = stop_and_check_gaps(
        &mut agent,
        &mut collector,
        &state,
        "diskfull-1",
        "spool_write_failed",
    );
    let gaps = gaps(&collector.db_path(), "diskfull-1");
    assert!(!missing.is_empty() && !gaps.is_empty(), "{gaps:?}");
    // The 20 samples the queue held when the collector came back were delivered from memory.
    let held_from = gaps.last().unwrap().1 + 1;
    let held: Vec<u64> = (held_from..held_from + 20).collect();
    assert!(
        held.iter().all(|seq| stored.contains(seq)),
        "samples held in memory are missing: {held:?}"
    );
}
