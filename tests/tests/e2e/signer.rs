//! Issue 11 point 6: the CA key stays out of the network-facing `serve` process. Without enrollment `serve`
//! runs with no `ca.key` at all; with enrollment a signer child holds the key, hosts enroll through it, and the
//! key is found in the signer's memory but nowhere in `serve`'s.

use headroom_tests::{
    api_get, binary, collector_ok, free_tcp_port, free_udp_port, start_agent_with, wait_for, Collector,
    Process,
};
use std::os::unix::fs::FileExt;
use std::process::Command;
use std::time::Duration;

#[test]
fn issue_11_serve_runs_without_the_ca_key_when_enrollment_is_off() {
    let _suite = headroom_tests::shared();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("collector");
    let agent = dir.path().join("web-1");
    let run = collector_ok;
    run(&["ca", "init", "--state-dir", state.to_str().unwrap()]);
    run(&[
        "cert",
        "issue",
        "--host",
        "web-1",
        "--state-dir",
        state.to_str().unwrap(),
        "--out",
        agent.to_str().unwrap(),
    ]);
    std::fs::remove_file(state.join("pki/ca.key")).unwrap();
    let quic = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let http = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\nlisten = \"{quic}\"\nenroll_listen = \"off\"\nhttp_listen = \"{http}\"\n",
            state.display()
        ),
    )
    .unwrap();
    let mut collector = Process::start(
        "collector",
        &binary("headroom-collector"),
        &["serve", "--config", config.to_str().unwrap()],
        dir.path(),
    );
    let _agent = start_agent_with(&agent, quic, &[("group", "web")], dir.path());
    let streamed = wait_for(Duration::from_secs(60), || {
        api_get(http, "/api/v1/hosts")?
            .as_array()?
            .iter()
            .find(|h| h["host"] == "web-1" && h["seq"].as_u64().unwrap_or(0) >= 2)
            .cloned()
    });
    assert!(
        streamed.is_some(),
        "no samples without ca.key: {}",
        collector.stderr_text()
    );
    collector.stop_cleanly();
}

/// The longest line of the PEM body of `path`: text that is in a process's memory when it read the key.
fn pem_needle(path: &std::path::Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path).unwrap();
    let line = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .max_by_key(|l| l.len())
        .unwrap();
    assert!(line.len() >= 40, "{line}");
    line.as_bytes().to_vec()
}

/// Whether `needle` occurs in the anonymous memory (heap, stacks, anonymous maps) of process `pid`; `None`
/// when that memory cannot be read (no permission to trace it).
fn in_memory(pid: i32, needle: &[u8]) -> Option<bool> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).ok()?;
    let mut read_any = false;
    for line in maps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (range, perms) = (fields[0], fields[1]);
        let anonymous = fields.len() < 6 || fields[5].starts_with('[');
        if !perms.starts_with('r') || !anonymous || fields.get(5) == Some(&"[vvar]") {
            continue;
        }
        let (start, end) = range.split_once('-').unwrap();
        let start = u64::from_str_radix(start, 16).unwrap();
        let end = u64::from_str_radix(end, 16).unwrap();
        let mut offset = start;
        let chunk = 4 << 20;
        while offset < end {
            let length = ((end - offset) as usize).min(chunk);
            let mut buffer = vec![0u8; length];
            if mem.read_exact_at(&mut buffer, offset).is_ok() {
                read_any = true;
                if buffer.windows(needle.len()).any(|w| w == needle) {
                    return Some(true);
                }
            }
            // Overlap chunks so a needle across a boundary is still found.
            offset += (length.saturating_sub(needle.len())).max(1) as u64;
            if length < chunk {
                break;
            }
        }
    }
    read_any.then_some(false)
}

/// The children of `pid`.
fn children(pid: i32) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        // The parent PID is the second field after the parenthesised command name.
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1));
        if parent == Some(pid.to_string().as_str()) {
            found.push(child);
        }
    }
    found
}

#[test]
fn issue_11_only_the_signer_holds_the_ca_key_and_hosts_enroll_through_it() {
    let _suite = headroom_tests::shared();
    let collector = Collector::start();
    let token = collector.create_token(&[]);
    let state = collector.dir.path().join("enrolled");
    let out = collector.enroll_into(&state, "web-7", &token);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(state.join("agent.pem").exists());

    let serve = collector.process.pid();
    let signers: Vec<i32> = children(serve)
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| cmdline.split(|b| *b == 0).any(|arg| arg == b"signer"))
        })
        .collect();
    assert_eq!(signers.len(), 1, "one signer child of serve: {signers:?}");
    let needle = pem_needle(&collector.pki_dir().join("ca.key"));
    // The scan works where the key is: the signer holds it (readable only with the right to trace it, as the
    // signer makes itself non-dumpable).
    match in_memory(signers[0], &needle) {
        Some(found) => assert!(found, "the scan did not find the key in the signer"),
        None => eprintln!("signer memory not readable here (not root); checking serve only"),
    }
    let in_serve = in_memory(serve, &needle).expect("serve's memory is readable by its parent");
    assert!(!in_serve, "the CA key is in serve's memory");
    // Nor does serve hold the key file open.
    let open: Vec<_> = std::fs::read_dir(format!("/proc/{serve}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter(|target| target.ends_with("ca.key"))
        .collect();
    assert!(open.is_empty(), "{open:?}");
}

#[test]
fn issue_11_a_signer_on_its_own_socket_signs_for_a_collector_without_the_key() {
    let _suite = headroom_tests::shared();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("collector");
    let signer_state = dir.path().join("signer");
    let cli = collector_ok;
    cli(&["ca", "init", "--state-dir", state.to_str().unwrap()]);
    // The key moves to the signer's own directory; the collector keeps only the certificate.
    std::fs::create_dir_all(signer_state.join("pki")).unwrap();
    std::fs::rename(state.join("pki/ca.key"), signer_state.join("pki/ca.key")).unwrap();
    std::fs::copy(state.join("pki/ca.pem"), signer_state.join("pki/ca.pem")).unwrap();
    let socket = dir.path().join("signer.sock");
    let _signer = Process::start(
        "signer",
        &binary("headroom-collector"),
        &[
            "signer",
            "--state-dir",
            signer_state.to_str().unwrap(),
            "--socket",
            socket.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(wait_for(Duration::from_secs(30), || socket.exists().then_some(())).is_some());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777,
        0o660
    );

    let enroll: std::net::SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let http = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\nlisten = \"127.0.0.1:{}\"\nenroll_listen = \"{enroll}\"\nhttp_listen = \"{http}\"\n\
             [identity]\nsigner_socket = \"{}\"\n",
            state.display(),
            free_udp_port(),
            socket.display()
        ),
    )
    .unwrap();
    let mut collector = Process::start(
        "collector",
        &binary("headroom-collector"),
        &["serve", "--config", config.to_str().unwrap()],
        dir.path(),
    );
    assert!(
        wait_for(Duration::from_secs(60), || api_get(http, "/api/v1/health")).is_some(),
        "{}",
        collector.stderr_text()
    );
    let token = cli(&["token", "create", "--state-dir", state.to_str().unwrap()]);
    let token = token.lines().next().unwrap().trim();
    let pin =
        headroom_common::pki::fingerprint_sha256(&std::fs::read_to_string(state.join("pki/ca.pem")).unwrap())
            .unwrap();
    let agent = dir.path().join("web-9");
    let out = Command::new(binary("headroom-agent"))
        .args(["enroll", "--collector", &enroll.to_string(), "--token", token])
        .args([
            "--ca-fingerprint",
            &pin,
            "--host",
            "web-9",
            "--server-name",
            "localhost",
            "--state-dir",
        ])
        .arg(&agent)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        collector.stderr_text()
    );
    assert!(agent.join("agent.pem").exists());
    assert!(!state.join("pki/ca.key").exists());
    let listed = cli(&["cert", "list", "--state-dir", state.to_str().unwrap()]);
    assert!(listed.contains("web-9"), "{listed}");
    collector.stop_cleanly();
}
