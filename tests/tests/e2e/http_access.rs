//! Issue 11 point 8 / issue 14 access: the HTTP listener answers only to its own Host names (no DNS rebinding),
//! refuses to start off loopback without TLS and a token, and over HTTPS on 127.0.0.2 (loopback range, but
//! not one of the two addresses served without authentication) wants the bearer token.

use headroom_tests::{
    binary, collector_ok, free_tcp_port, free_udp_port, http_get, url_get, wait_for, Collector, Process,
};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn issue_14_a_request_naming_another_host_is_refused() {
    let _suite = headroom_tests::shared();
    let collector = Collector::start();
    let port = collector.http.port();
    for host in ["rebind.example", &format!("rebind.example:{port}"), "127.0.0.2"] {
        for path in ["/api/v1/health", "/fleet", "/metrics"] {
            let response = http_get(collector.http, path, &[&format!("Host: {host}")]).unwrap();
            assert_eq!(response.status, 421, "{host} {path}: {}", response.body);
            assert!(response.body.contains("http.host_names"), "{}", response.body);
        }
    }
    for host in [
        "localhost",
        &format!("localhost:{port}"),
        &format!("127.0.0.1:{port}"),
    ] {
        let response = http_get(collector.http, "/api/v1/health", &[&format!("Host: {host}")]).unwrap();
        assert_eq!(response.status, 200, "{host}: {}", response.body);
    }
}

/// Runs `serve` on `config_text` and returns its exit code and stderr; fails if it is still running after a
/// generous deadline (it should refuse before binding anything).
fn serve_refused(dir: &Path, config_text: &str) -> (Option<i32>, String) {
    let config = dir.join("refused.toml");
    std::fs::write(&config, config_text).unwrap();
    let mut process = Process::start(
        "refused",
        &binary("headroom-collector"),
        &["serve", "--config", config.to_str().unwrap()],
        dir,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = process.child.try_wait() {
            return (status.code(), process.stderr_text());
        }
        assert!(
            Instant::now() < deadline,
            "serve started: {}",
            process.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn issue_14_an_api_off_loopback_without_tls_and_token_does_not_start() {
    let _suite = headroom_tests::shared();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let head = format!(
        "state_dir = \"{}\"\nlisten = \"127.0.0.1:{}\"\nenroll_listen = \"off\"\n",
        state.display(),
        free_udp_port()
    );
    // Every address (never contacted: the config is refused before anything binds), then 127.0.0.2.
    for listen in ["0.0.0.0", "127.0.0.2"] {
        let (code, stderr) = serve_refused(
            dir.path(),
            &format!("{head}http_listen = \"{listen}:{}\"\n", free_tcp_port()),
        );
        assert_eq!(code, Some(2), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("http.tls_cert") && stderr.contains(listen),
            "{stderr}"
        );
    }
    // TLS without a token.
    let tls = format!(
        "[http]\ntls_cert = \"{0}/http.pem\"\ntls_key = \"{0}/http.key\"\n",
        dir.path().display()
    );
    let (code, stderr) = serve_refused(
        dir.path(),
        &format!("{head}http_listen = \"127.0.0.2:{}\"\n{tls}", free_tcp_port()),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("http.token_file") && stderr.contains("/dev/urandom"),
        "{stderr}"
    );
    // A token file that is not there.
    let (code, stderr) = serve_refused(
        dir.path(),
        &format!(
            "{head}http_listen = \"127.0.0.2:{}\"\n{tls}token_file = \"{}/missing.token\"\n",
            free_tcp_port(),
            dir.path().display()
        ),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("http.token_file") && stderr.contains("missing.token"),
        "{stderr}"
    );
}

#[test]
fn issue_14_https_with_a_bearer_token_on_127_0_0_2() {
    let _suite = headroom_tests::shared();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state_arg = state.to_str().unwrap();
    collector_ok(&["ca", "init", "--state-dir", state_arg]);
    // The server certificate, signed by the fleet CA, names the address the API is reached on.
    collector_ok(&[
        "cert",
        "server",
        "--state-dir",
        state_arg,
        "--server-name",
        "127.0.0.2",
    ]);
    let pki = state.join("pki");
    let token = "dGhpcy1pcy1hLXRlc3QtdG9rZW4tb2YtMzItYnl0ZXM";
    let token_file = dir.path().join("api.token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let http = format!("127.0.0.2:{}", free_tcp_port());
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\nlisten = \"127.0.0.1:{}\"\nenroll_listen = \"off\"\nhttp_listen = \"{http}\"\n\
             [http]\ntls_cert = \"{2}/server.pem\"\ntls_key = \"{2}/server.key\"\ntoken_file = \"{3}\"\n",
            state.display(),
            free_udp_port(),
            pki.display(),
            token_file.display()
        ),
    )
    .unwrap();
    let collector = Process::start(
        "collector",
        &binary("headroom-collector"),
        &["serve", "--config", config.to_str().unwrap()],
        dir.path(),
    );
    let ca = std::fs::read(pki.join("ca.pem")).unwrap();
    let url = format!("https://{http}/api/v1/health");
    let bearer = format!("Authorization: Bearer {token}");
    let up = wait_for(Duration::from_secs(60), || {
        url_get(&url, &[&bearer], Some(&ca)).filter(|r| r.status == 200)
    });
    let up = up.unwrap_or_else(|| panic!("collector did not answer over https: {}", collector.stderr_text()));
    assert!(up.body.contains("\"status\":\"ok\""), "{}", up.body);

    let without = url_get(&url, &[], Some(&ca)).unwrap();
    assert_eq!(without.status, 401, "{}", without.body);
    assert!(
        without
            .header("www-authenticate")
            .is_some_and(|v| v.contains("bearer")),
        "{}",
        without.head
    );
    let wrong = url_get(&url, &["Authorization: Bearer not-the-token-at-all"], Some(&ca)).unwrap();
    assert_eq!(wrong.status, 401);
    // The web view and /metrics sit behind the same check.
    assert_eq!(
        url_get(&format!("https://{http}/fleet"), &[], Some(&ca))
            .unwrap()
            .status,
        401
    );
    assert_eq!(
        url_get(&format!("https://{http}/metrics"), &[&bearer], Some(&ca))
            .unwrap()
            .status,
        200
    );
    // The Host check still applies, before the token.
    let rebound = url_get(&url, &[&bearer, "Host: rebind.example"], Some(&ca)).unwrap();
    assert_eq!(rebound.status, 421);
    // Plain HTTP on the TLS port gets no answer.
    assert!(
        url_get(&format!("http://{http}/api/v1/health"), &[&bearer], None).is_none_or(|r| r.status != 200)
    );

    // The command line: from the config (https, the token file, the fleet CA), then from flags.
    let cli = |args: &[&str]| {
        Command::new(binary("headroom-collector"))
            .args(args)
            .output()
            .unwrap()
    };
    let out = cli(&["hosts", "--format", "json", "--config", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
    let api = format!("https://{http}");
    let none = dir.path().join("none.toml");
    let ca_file = pki.join("ca.pem");
    let base = [
        "fleet",
        "--config",
        none.to_str().unwrap(),
        "--api",
        &api,
        "--api-ca",
        ca_file.to_str().unwrap(),
    ];
    let out = cli(&base);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("401") && stderr.contains("--token-file"),
        "{stderr}"
    );
    let mut with_token = base.to_vec();
    with_token.extend(["--token-file", token_file.to_str().unwrap()]);
    let out = cli(&with_token);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let mut collector = collector;
    collector.stop_cleanly();
}
