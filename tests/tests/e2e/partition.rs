//! A network partition between an agent and its collector, each in a network namespace this test creates
//! and removes itself (linked by a veth pair, addressed only inside those namespaces). The link is cut for
//! minutes' worth of samples and healed: every sample arrives, exactly once, in order.

use headroom_agent::spool::record::{parse_record, Parsed};
use headroom_tests::{agent_config_text, binary, e2e_required, wait_for, Process};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The two namespaces and the veth pair, removed on drop.
struct Link {
    collector_ns: String,
    agent_ns: String,
    agent_if: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Link {
    fn create() -> Result<Link, String> {
        let id = std::process::id() % 100_000;
        let link = Link {
            collector_ns: format!("hr-col-{id}"),
            agent_ns: format!("hr-agt-{id}"),
            agent_if: format!("hra{id}"),
        };
        let collector_if = format!("hrc{id}");
        ip(&["netns", "add", &link.collector_ns])?;
        ip(&["netns", "add", &link.agent_ns])?;
        ip(&[
            "link",
            "add",
            &collector_if,
            "netns",
            &link.collector_ns,
            "type",
            "veth",
            "peer",
            "name",
            &link.agent_if,
            "netns",
            &link.agent_ns,
        ])?;
        for (ns, interface, address) in [
            (&link.collector_ns, &collector_if, "10.251.0.1/30"),
            (&link.agent_ns, &link.agent_if, "10.251.0.2/30"),
        ] {
            ip(&["-n", ns, "addr", "add", address, "dev", interface])?;
            ip(&["-n", ns, "link", "set", interface, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(link)
    }

    fn set_agent_link(&self, up: bool) {
        ip(&[
            "-n",
            &self.agent_ns,
            "link",
            "set",
            &self.agent_if,
            if up { "up" } else { "down" },
        ])
        .unwrap();
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth pair with it.
        let _ = ip(&["netns", "del", &self.agent_ns]);
        let _ = ip(&["netns", "del", &self.collector_ns]);
    }
}

fn in_namespace(name: &str, ns: &str, bin: &str, args: &[&str], logs: &Path) -> Process {
    let mut full = vec!["netns", "exec", ns, bin];
    full.extend_from_slice(args);
    // `ip netns exec` execs the binary in place, so the PID is the binary's and stopping it by PID works.
    Process::start(name, Path::new("ip"), &full, logs)
}

/// (rows, distinct seqs, min, max, out-of-order rows) for one host, read from the collector's database.
fn stored(db: &Path, host: &str) -> Option<(u64, u64, u64, u64, u64)> {
    let connection =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    connection
        .query_row(
            "WITH mine AS (SELECT s.rowid AS r, s.seq AS seq FROM samples s JOIN hosts h ON h.id = s.host_id
                           WHERE h.name = ?1),
                  ordered AS (SELECT seq, LAG(seq) OVER (ORDER BY r) AS previous FROM mine)
             SELECT COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq),
                    (SELECT COUNT(*) FROM ordered WHERE previous IS NOT NULL AND seq <= previous)
             FROM mine",
            [host],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)),
        )
        .ok()
        .filter(|stored: &(u64, u64, u64, u64, u64)| stored.0 > 0)
}

/// The newest sample in the agent's spool segments, read as they are (a record being written is not yet
/// counted) and never modified.
fn newest_spooled(spool: &Path) -> Option<u64> {
    let mut newest = None;
    for entry in std::fs::read_dir(spool).ok()?.flatten() {
        if entry.path().extension().and_then(|e| e.to_str()) != Some("seg") {
            continue;
        }
        let Ok(bytes) = std::fs::read(entry.path()) else {
            continue;
        };
        let mut at = 0;
        while let Parsed::Record { sample, len_bytes } = parse_record(&bytes[at..]) {
            newest = newest.max(Some(sample.seq));
            at += len_bytes;
        }
    }
    newest
}

/// Sequence numbers in 1..=last that are not stored, as ranges.
fn missing(db: &Path, host: &str, last: u64) -> Vec<(u64, u64)> {
    let connection =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut statement = connection
        .prepare(
            "SELECT s.seq FROM samples s JOIN hosts h ON h.id = s.host_id WHERE h.name = ?1 ORDER BY s.seq",
        )
        .unwrap();
    let stored: std::collections::BTreeSet<u64> = statement
        .query_map([host], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for seq in (1..=last).filter(|seq| !stored.contains(seq)) {
        match ranges.last_mut() {
            Some(range) if range.1 + 1 == seq => range.1 = seq,
            _ => ranges.push((seq, seq)),
        }
    }
    ranges
}

#[test]
fn a_partition_heals_and_every_sample_arrives_in_order() {
    let _suite = headroom_tests::long_shared();
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let has_ip = Command::new("ip").arg("-V").output().is_ok();
    if !root || !has_ip {
        let reason = format!("needs root and iproute2 (root: {root}, ip: {has_ip})");
        assert!(
            !e2e_required(),
            "HEADROOM_E2E=1 but the partition test cannot run: {reason}"
        );
        println!("skipped: {reason}");
        return;
    }
    let link = Link::create().expect("creating the test's network namespaces");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("collector");
    let collector_bin = binary("headroom-collector");
    let out = Command::new(&collector_bin)
        .args([
            "ca",
            "init",
            "--server-name",
            "localhost",
            "--server-name",
            "10.251.0.1",
            "--state-dir",
        ])
        .arg(&state)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\nlisten = \"10.251.0.1:9600\"\nhttp_listen = \"127.0.0.1:9601\"\n",
            state.display()
        ),
    )
    .unwrap();
    let collector = in_namespace(
        "collector",
        &link.collector_ns,
        collector_bin.to_str().unwrap(),
        &["serve", "--config", config.to_str().unwrap()],
        dir.path(),
    );
    let agent_state = dir.path().join("agents/island");
    let out = Command::new(&collector_bin)
        .args(["cert", "issue", "--host", "island", "--state-dir"])
        .arg(&state)
        .arg("--out")
        .arg(&agent_state)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // 100 ms sampling, so a cut of 250 samples takes about 25 s.
    let agent_config = agent_state.join("agent.toml");
    let mut text = agent_config_text(
        &agent_state,
        "10.251.0.1:9600",
        &[("group", "edge")],
        "[sampling]\ninterval = \"100ms\"\n",
    );
    text = text.replace("server_name = \"localhost\"", "server_name = \"10.251.0.1\"");
    std::fs::write(&agent_config, text).unwrap();
    let agent_bin = binary("headroom-agent");
    let mut agent = in_namespace(
        "agent",
        &link.agent_ns,
        agent_bin.to_str().unwrap(),
        &["run", "--config", agent_config.to_str().unwrap()],
        dir.path(),
    );
    let db = state.join("headroom.db");
    let before = wait_for(Duration::from_secs(30), || {
        stored(&db, "island").filter(|s| s.0 >= 10)
    });
    assert!(
        before.is_some(),
        "no samples stored before the cut; agent:\n{}\ncollector:\n{}",
        agent.stderr_text(),
        collector.stderr_text()
    );

    link.set_agent_link(false);
    // The cut lasts until the agent has spooled 250 samples past the last one stored when it began (four
    // minutes' worth at the default 1 Hz), however slowly a loaded machine runs it.
    let cut_at = stored(&db, "island").unwrap().3;
    let spool = agent_state.join(headroom_agent::spool::SPOOL_DIR_NAME);
    let spooled = wait_for(Duration::from_secs(180), || {
        newest_spooled(&spool).filter(|&seq| seq >= cut_at + 250)
    });
    let during = stored(&db, "island").unwrap();
    link.set_agent_link(true);
    assert!(
        spooled.is_some(),
        "the agent spooled no 250 samples during the cut; agent:\n{}",
        agent.stderr_text()
    );

    // After healing, the backlog catches up; then a clean stop flushes the rest.
    let caught_up = wait_for(Duration::from_secs(60), || {
        stored(&db, "island").filter(|s| s.3 >= during.3 + 250)
    });
    assert!(
        caught_up.is_some(),
        "backlog did not arrive; agent:\n{}",
        agent.stderr_text()
    );
    assert_eq!(
        agent.terminate(Duration::from_secs(20)),
        Some(0),
        "{}",
        agent.stderr_text()
    );
    let mut collector = collector;
    assert_eq!(
        collector.terminate(Duration::from_secs(20)),
        Some(0),
        "{}",
        collector.stderr_text()
    );
    let last = std::fs::read_to_string(agent_state.join("next-seq"))
        .unwrap()
        .trim()
        .parse::<u64>()
        .unwrap()
        - 1;
    let (rows, distinct, min, max, out_of_order) = stored(&db, "island").unwrap();
    assert_eq!(
        (rows, distinct, min, max),
        (last, last, 1, last),
        "every sample exactly once; missing {:?}; agent log:\n{}\ncollector log:\n{}",
        missing(&db, "island", last),
        agent.stderr_text(),
        collector.stderr_text()
    );
    assert_eq!(out_of_order, 0, "samples stored in sequence order");
    drop(link);
}
