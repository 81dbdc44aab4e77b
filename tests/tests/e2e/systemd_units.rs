//! Checks the systemd units in systemd/: the directives the binaries and operators rely on, and that
//! `systemd-analyze security` rates each unit's exposure at 2.0 or better.

use std::path::PathBuf;
use std::process::Command;

/// Highest acceptable "Overall exposure level" (0.0 is fully locked down, 10.0 fully exposed).
const MAX_EXPOSURE: f64 = 2.0;

fn unit_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("systemd")
        .join(name)
}

fn unit_text(name: &str) -> String {
    let path = unit_path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
}

/// Every value the unit gives `key`, in order (a directive may appear several times).
fn values(text: &str, key: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#') && !line.starts_with(';'))
        .filter_map(|line| line.split_once('='))
        .filter(|(name, _)| name.trim() == key)
        .map(|(_, value)| value.trim().to_string())
        .collect()
}

fn assert_directive(unit: &str, text: &str, key: &str, expected: &str) {
    assert_eq!(values(text, key), vec![expected.to_string()], "{unit}: {key}");
}

fn assert_common_directives(unit: &str, text: &str) {
    for (key, expected) in [
        ("Type", "notify"),
        ("WatchdogSec", "30"),
        ("Restart", "on-failure"),
        ("RestartSec", "2"),
        ("RestartPreventExitStatus", "2"),
        ("StateDirectoryMode", "0700"),
        ("ConfigurationDirectory", "headroom"),
        ("DynamicUser", "yes"),
        ("CapabilityBoundingSet", ""),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
    ] {
        assert_directive(unit, text, key, expected);
    }
}

/// Reads "Overall exposure level for x.service: 1.3 OK" from `systemd-analyze security` output.
fn overall_exposure(output: &str) -> Option<f64> {
    let line = output
        .lines()
        .find(|line| line.contains("Overall exposure level for"))?;
    let (_, after) = line.rsplit_once(".service:")?;
    after.split_whitespace().next()?.parse().ok()
}

/// Whether systemd-analyze can run here; when it cannot, the security tests skip, unless HEADROOM_E2E=1 asks
/// for every end-to-end check to run.
fn systemd_analyze_available() -> bool {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        assert!(
            std::env::var("HEADROOM_E2E").as_deref() != Ok("1"),
            "systemd-analyze is missing and HEADROOM_E2E=1 (install it with: apt-get install -y systemd)"
        );
        eprintln!(
            "skipping: systemd-analyze is not installed (apt-get install -y systemd to run this check)"
        );
    }
    found
}

fn assert_exposure_at_most_limit(name: &str) {
    if !systemd_analyze_available() {
        return;
    }
    // --threshold is in tenths: 20 makes the command fail above an exposure of 2.0.
    let threshold = format!("--threshold={}", (MAX_EXPOSURE * 10.0) as u32);
    let output = Command::new("systemd-analyze")
        .args(["security", "--offline=true", &threshold])
        .arg(unit_path(name))
        .output()
        .expect("run systemd-analyze security");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let exposure = overall_exposure(&stdout)
        .unwrap_or_else(|| panic!("{name}: no overall exposure in the output:\n{stdout}\n{stderr}"));
    // The lines marked ✗ say which settings cost points, which is what one needs when this fails.
    let open: Vec<&str> = stdout.lines().filter(|line| line.starts_with('✗')).collect();
    assert!(
        exposure <= MAX_EXPOSURE,
        "{name}: exposure {exposure} > {MAX_EXPOSURE}:\n{}",
        open.join("\n")
    );
    assert!(
        output.status.success(),
        "{name}: systemd-analyze failed the threshold:\n{stdout}\n{stderr}"
    );
    eprintln!("{name}: exposure {exposure}");
}

#[test]
fn agent_unit_runs_the_agent_with_the_access_it_needs() {
    let _suite = headroom_tests::shared();
    let unit = "headroom-agent.service";
    let text = unit_text(unit);
    assert_common_directives(unit, &text);
    assert_directive(
        unit,
        &text,
        "ExecStart",
        "/usr/bin/headroom-agent run --config /etc/headroom/agent.toml",
    );
    assert_directive(unit, &text, "StateDirectory", "headroom-agent");
    // sock_diag needs netlink, QUIC needs INET/INET6, sd_notify needs a Unix socket; /proc must show the host.
    assert_directive(
        unit,
        &text,
        "RestrictAddressFamilies",
        "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
    );
    assert_directive(unit, &text, "ProtectProc", "default");
    assert_directive(unit, &text, "ProcSubset", "all");
}

#[test]
fn collector_unit_runs_the_collector_with_the_access_it_needs() {
    let _suite = headroom_tests::shared();
    let unit = "headroom-collector.service";
    let text = unit_text(unit);
    assert_common_directives(unit, &text);
    assert_directive(
        unit,
        &text,
        "ExecStart",
        "/usr/bin/headroom-collector serve --config /etc/headroom/collector.toml",
    );
    assert_directive(unit, &text, "StateDirectory", "headroom-collector");
    assert_directive(unit, &text, "RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6");
    // Issue 11: resource limits, so a runaway collector cannot take the machine down with it.
    assert_directive(unit, &text, "MemoryMax", "4G");
    assert_directive(unit, &text, "TasksMax", "1024");
}

#[test]
fn issue_11_signer_unit_holds_the_key_with_no_network() {
    let _suite = headroom_tests::shared();
    let unit = "headroom-collector-signer.service";
    let text = unit_text(unit);
    assert_directive(
        unit,
        &text,
        "ExecStart",
        "/usr/bin/headroom-collector signer --state-dir /var/lib/headroom-collector-signer --socket \
         /run/headroom-collector-signer/signer.sock",
    );
    for (key, expected) in [
        ("Type", "notify"),
        ("Restart", "on-failure"),
        ("RestartPreventExitStatus", "2"),
        ("DynamicUser", "yes"),
        ("User", "headroom-collector-signer"),
        // The socket is 0660 for the collector's group.
        ("Group", "headroom-collector"),
        ("StateDirectoryMode", "0700"),
        ("RuntimeDirectory", "headroom-collector-signer"),
        ("PrivateNetwork", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX"),
        ("CapabilityBoundingSet", ""),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
    ] {
        assert_directive(unit, &text, key, expected);
    }
    assert_exposure_at_most_limit(unit);
}

#[test]
fn agent_unit_exposure_is_at_most_two() {
    let _suite = headroom_tests::shared();
    assert_exposure_at_most_limit("headroom-agent.service");
}

#[test]
fn collector_unit_exposure_is_at_most_two() {
    let _suite = headroom_tests::shared();
    assert_exposure_at_most_limit("headroom-collector.service");
}

#[test]
fn exposure_line_is_read() {
    let _suite = headroom_tests::shared();
    let output = "  ✗ PrivateNetwork=   Service has access   0.5\n\n\
                  → Overall exposure level for headroom-agent.service: 1.3 OK 🙂\n";
    assert_eq!(overall_exposure(output), Some(1.3));
    assert_eq!(overall_exposure("no summary here"), None);
}

/// Issue 12: under systemd (WatchdogSec= in the unit), the agent says READY after its first sample and pings
/// the watchdog at half its timeout, not on every tick: each ping is a socket, a datagram and a wake-up of
/// the service manager. systemd's side is played by a datagram socket; `exec` keeps the shell's PID, which
/// WATCHDOG_PID must name.
#[test]
fn issue_12_the_agent_pings_the_watchdog_at_half_its_timeout() {
    let _suite = headroom_tests::shared();
    use std::os::unix::net::UnixDatagram;
    use std::time::{Duration, Instant};
    let collector = headroom_tests::Collector::start();
    let state = collector.issue("watched");
    let config = state.join("agent.toml");
    let text = headroom_tests::agent_config_text(&state, &collector.quic.to_string(), &[], "");
    std::fs::write(&config, text).unwrap();
    let socket_path = state.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut agent = Command::new("sh")
        .arg("-c")
        .arg("WATCHDOG_PID=$$ exec \"$0\" run --config \"$1\"")
        .arg(headroom_tests::binary("headroom-agent"))
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "4000000")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(state.join("agent.stderr")).unwrap())
        .spawn()
        .unwrap();

    let mut ready_at = None;
    let mut pings = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buffer = [0u8; 256];
    while Instant::now() < deadline
        && ready_at.is_none_or(|at: Instant| at.elapsed() < Duration::from_secs(7))
    {
        let Ok(len) = socket.recv(&mut buffer) else {
            continue;
        };
        let message = String::from_utf8_lossy(&buffer[..len]).to_string();
        if message.contains("READY=1") {
            ready_at.get_or_insert_with(Instant::now);
        }
        if message.contains("WATCHDOG=1") {
            pings.push(Instant::now());
        }
    }
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(
        ready_at.is_some(),
        "no READY=1: {}",
        std::fs::read_to_string(state.join("agent.stderr")).unwrap_or_default()
    );
    // Seven seconds at one sample a second: a ping every 2 s gives 3 or 4, one a tick would give 7.
    assert!((2..=4).contains(&pings.len()), "{} pings in 7 s", pings.len());
    for pair in pings.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= Duration::from_millis(1500), "pings {gap:?} apart");
    }
}
