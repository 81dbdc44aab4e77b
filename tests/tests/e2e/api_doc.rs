//! docs/API.md against the real thing: one `headroom-collector demo` (a real agent, simulated hosts, the hot
//! one flagged and alarming, every group sized), then every route and command the doc lists, each JSON
//! compared with its documented fields both ways, and the `Headroom-Schema` header on every JSON response.

use headroom_tests::api_doc::ApiDoc;
use headroom_tests::{binary, http_get, wait_for, Demo};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

const HOT: &str = "sim-web-4";

/// GET `path`: 200, a JSON body and the schema header.
fn get_json(addr: SocketAddr, path: &str) -> Value {
    let response = http_get(addr, path, &[]).unwrap_or_else(|| panic!("GET {path}"));
    assert_eq!(response.status, 200, "GET {path}: {}", response.body);
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "GET {path}: {}",
        response.head
    );
    assert_eq!(
        response.header("headroom-schema"),
        Some("1"),
        "GET {path}: {}",
        response.head
    );
    serde_json::from_str(&response.body).unwrap_or_else(|e| panic!("GET {path}: {e}: {}", response.body))
}

/// Runs `bin args`, which must succeed, and parses what it printed (or wrote to `out`) as JSON.
fn run_json(bin: &str, args: &[String], out: Option<&Path>) -> Value {
    let output = std::process::Command::new(binary(bin))
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{bin} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = match out {
        Some(file) => std::fs::read_to_string(file).unwrap(),
        None => String::from_utf8(output.stdout).unwrap(),
    };
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{bin} {args:?}: {e}: {text}"))
}

#[test]
fn issue_15_every_documented_route_and_command_prints_exactly_the_documented_fields() {
    let _suite = headroom_tests::long_shared();
    let doc = ApiDoc::load();
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Demo::start(dir.path(), "600s", "60s");
    let addr = demo.addr;
    // Wait until the arrays the doc describes have members: an outlier, a firing alarm, sized groups.
    let ready = wait_for(Duration::from_secs(240), || {
        let page = get_json(addr, "/fleet.json");
        let flagged = page["outliers"].as_array()?.iter().any(|o| o["host"] == HOT);
        let firing = page["alarms"].as_array()?.iter().any(|a| a["status"] == "firing");
        let sized = page["sizing"].as_array()?.len() >= 2;
        (flagged && firing && sized).then_some(())
    });
    assert!(
        ready.is_some(),
        "the demo never flagged, alarmed and sized: {}",
        demo.process.stdout_text()
    );

    let collector_state = demo.state.join("collector");
    let config = demo.state.join("collector.toml");
    let token = std::process::Command::new(binary("headroom-collector"))
        .args(["token", "create", "--state-dir"])
        .arg(&collector_state)
        .output()
        .unwrap();
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );

    let mut errors = Vec::new();
    let documents = doc.documents();
    assert!(documents.len() >= 20, "{documents:?}");
    for heading in &documents {
        let value = if let Some(route) = heading.strip_prefix("GET ") {
            get_json(addr, &route.replace("{host}", HOT).replace("{group}", "web"))
        } else {
            let mut words = heading.split_whitespace().map(str::to_string);
            let bin = words.next().unwrap();
            let mut args: Vec<String> = words.collect();
            let command = args[0].clone();
            let mut out = None;
            let state_dir = collector_state.to_str().unwrap().to_string();
            let config = config.to_str().unwrap().to_string();
            match command.as_str() {
                "fleet" | "hosts" | "outliers" | "alarms" => args.extend(["--api".into(), addr.to_string()]),
                "sizing" => args.extend(["--config".into(), config, "--end".into(), "latest".into()]),
                "report" => {
                    let file = dir.path().join(format!("report-{}.json", documents.len()));
                    args.extend(["--config".into(), config, "--end".into(), "latest".into()]);
                    args.extend(["--window".into(), "1h".into(), "--out".into()]);
                    args.push(file.to_str().unwrap().to_string());
                    out = Some(file);
                }
                "cert" | "token" => args.extend(["--state-dir".into(), state_dir]),
                "sample" => {}
                other => panic!("docs/API.md documents `{heading}`: teach this test to run {other}"),
            }
            let value = run_json(&bin, &args, out.as_deref());
            if let Some(file) = out {
                std::fs::remove_file(file).unwrap();
            }
            value
        };
        if let Err(found) = doc.check(heading, &value) {
            errors.extend(found);
        }
    }
    assert!(
        errors.is_empty(),
        "docs/API.md and the JSON differ:\n{}",
        errors.join("\n")
    );

    // Errors and refusals carry the header too.
    for (path, headers, status) in [
        ("/api/v1/hosts/nope", vec![], 404),
        ("/api/v1/health", vec!["Host: elsewhere.example"], 421),
    ] {
        let response = http_get(addr, path, &headers).unwrap();
        assert_eq!(response.status, status, "{path}: {}", response.body);
        assert_eq!(
            response.header("headroom-schema"),
            Some("1"),
            "{path}: {}",
            response.head
        );
        let body: Value = serde_json::from_str(&response.body).unwrap();
        assert!(body["error"].is_string(), "{body}");
    }
    assert_eq!(
        demo.process.terminate(Duration::from_secs(30)),
        Some(0),
        "{}",
        demo.process.stderr_text()
    );
}
