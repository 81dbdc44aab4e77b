//! The operator's web view, driven by headless Chromium (Debian `chromium`) against `headroom-collector
//! demo`: a real local agent and simulated hosts on loopback, the hot simulated host flagged as an outlier
//! and alarming within the first minute, sizing per group. Every page loads without console messages,
//! names the real host and the hot host, renders a non-empty screenshot on a laptop and a phone screen, links
//! to pages that answer, answers as JSON from the same URL, and passes a structural accessibility check
//! (language, landmarks, one h1, captioned tables with column headers; contrast is checked on the
//! stylesheet in `views::web::html`).

use headroom_tests::{chromium, e2e_required, http_get, wait_for, Demo, HttpResponse, CHROMIUM};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

const HOT: &str = "sim-web-4";

fn chromium_present() -> bool {
    let present = Path::new(CHROMIUM).exists();
    if !present {
        assert!(
            !e2e_required(),
            "{CHROMIUM} is required (apt-get install chromium)"
        );
        eprintln!("skipped: Debian package chromium is not installed");
    }
    present
}

fn json(addr: SocketAddr, path: &str, headers: &[&str]) -> serde_json::Value {
    let response: HttpResponse = http_get(addr, path, headers).unwrap_or_else(|| panic!("GET {path}"));
    assert_eq!(response.status, 200, "GET {path}: {}", response.body);
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "GET {path}: {}",
        response.head
    );
    serde_json::from_str(&response.body).unwrap_or_else(|e| panic!("GET {path}: {e}: {}", response.body))
}

/// Structural accessibility: language, landmarks, one h1, captioned tables whose headers have a scope.
fn check_accessibility(page: &str, dom: &str) {
    assert!(dom.contains("<html lang=\"en\""), "{page}: no lang");
    for landmark in ["<header", "<nav", "<main", "<footer"] {
        assert!(dom.contains(landmark), "{page}: no {landmark}>");
    }
    assert_eq!(dom.matches("<h1").count(), 1, "{page}: not exactly one h1");
    let tables = dom.matches("<table").count();
    assert_eq!(
        dom.matches("<caption").count(),
        tables,
        "{page}: a table without caption"
    );
    if tables > 0 {
        assert!(
            dom.contains("<th scope=\"col\""),
            "{page}: tables without column headers"
        );
    }
    // Every chart says what it shows in words.
    assert_eq!(
        dom.matches("<svg").count(),
        dom.matches("role=\"img\"").count(),
        "{page}: an svg without role=img"
    );
}

/// Internal links of a page (`href="/…"`), without fragments, deduplicated.
fn links(dom: &str) -> Vec<String> {
    let mut found: Vec<String> = dom
        .split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|href| href.starts_with('/'))
        .map(|href| href.replace("&amp;", "&"))
        .collect();
    found.sort();
    found.dedup();
    found
}

#[test]
fn every_page_loads_in_chromium_flags_the_hot_host_and_answers_as_json() {
    let _suite = headroom_tests::long_shared();
    if !chromium_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Demo {
        process: mut demo,
        addr,
        local_host: local,
        ..
    } = Demo::start(dir.path(), "400s", "2s");

    // Within the demo's first minute or so (generous: the machine is shared): the hot host is an outlier,
    // a demo rule fires on it with its runbook, and every group has a sizing verdict.
    let ready = wait_for(Duration::from_secs(180), || {
        let page = json(addr, "/fleet.json", &[]);
        let flagged = page["outliers"].as_array()?.iter().any(|o| o["host"] == HOT);
        let firing = page["alarms"].as_array()?.iter().any(|a| {
            a["subject"] == HOT && a["status"] == "firing" && !a["runbook"].as_str().unwrap_or("").is_empty()
        });
        let sized = page["sizing"].as_array()?.len() >= 2;
        (flagged && firing && sized).then_some(page)
    });
    let fleet = ready.unwrap_or_else(|| {
        panic!(
            "hot host never flagged, alarmed and sized: {}\n{}",
            json(addr, "/fleet.json", &[]),
            demo.stdout_text()
        )
    });
    assert!(fleet["notice"].as_str().unwrap_or("").contains("shortened"));
    // Sizing covers rolled-up minutes, so its window ends on a minute boundary, which the page states.
    let through = fleet["sizing_through"].as_str().unwrap_or("");
    assert!(through.ends_with(":00Z"), "sizing through {through:?}");
    // It starts on the hour, so the minute refresh reads only the rollups added since the last one.
    let from = fleet["sizing_from"].as_str().unwrap_or("");
    assert!(
        from.ends_with(":00:00Z") && *from < *through,
        "sizing from {from:?} through {through:?}"
    );
    // The terminal says the same at its next print.
    let printed = wait_for(Duration::from_secs(30), || {
        let stdout = demo.stdout_text();
        (stdout.contains(&format!("outlier: {HOT}"))
            && stdout.contains(&format!("alarm firing demo-cpu-hot on {HOT}"))
            && stdout.contains("sizing web over"))
        .then_some(())
    });
    assert!(printed.is_some(), "{}", demo.stdout_text());

    let pages = [
        (
            "/fleet".to_string(),
            vec![local.as_str(), HOT, "outlier", "Firing alarms"],
        ),
        (
            "/groups/web".to_string(),
            vec![HOT, "outlier", "vs group median", "Failover sizing"],
        ),
        (
            format!("/hosts/{HOT}"),
            vec![
                HOT,
                "Why it is flagged",
                "Last hour",
                "Listening ports",
                "Certificate",
            ],
        ),
        (
            format!("/hosts/{local}"),
            vec![local.as_str(), "Last hour", "Last 30 days", "Data gaps"],
        ),
        (
            "/alarms".to_string(),
            vec![HOT, "demo-cpu-hot", "Find the busiest processes"],
        ),
    ];
    let shots = dir.path().join("shots");
    std::fs::create_dir_all(&shots).unwrap();
    for (index, (path, expected)) in pages.iter().enumerate() {
        let url = format!("http://{addr}{path}");
        let run = chromium(&url, &["--dump-dom"]);
        assert!(run.success, "chromium failed on {url}");
        assert!(
            run.console.is_empty(),
            "{path}: console messages: {:?}",
            run.console
        );
        let dom = &run.stdout;
        for text in expected {
            assert!(
                dom.contains(text),
                "{path}: {text:?} missing from the page:\n{dom}"
            );
        }
        check_accessibility(path, dom);
        for link in links(dom) {
            let response = http_get(addr, &link, &[]).unwrap_or_else(|| panic!("{path}: GET {link}"));
            assert_eq!(
                response.status, 200,
                "{path} links to {link}, which answers {}",
                response.status
            );
        }
        // The same URL answers JSON, by suffix (except the fleet, whose JSON path is /fleet.json) and by Accept.
        let value = json(addr, path, &["Accept: application/json"]);
        assert!(value.is_object(), "{path}: {value}");
        let suffixed = json(addr, &format!("{path}.json"), &[]);
        assert_eq!(
            suffixed.as_object().map(|o| o.len()),
            value.as_object().map(|o| o.len())
        );
        // Screenshots on a laptop and a phone screen: real pixels, not an empty page.
        for (size, name) in [("1366,900", "laptop"), ("390,844", "phone")] {
            let file = shots.join(format!("{index}-{name}.png"));
            let run = chromium(
                &url,
                &[
                    &format!("--window-size={size}"),
                    &format!("--screenshot={}", file.display()),
                    "--hide-scrollbars",
                ],
            );
            assert!(run.success, "chromium screenshot of {url} failed");
            let bytes = std::fs::read(&file).unwrap_or_default();
            assert!(
                bytes.starts_with(b"\x89PNG"),
                "{path}: no PNG at {}",
                file.display()
            );
            // A blank page of that size compresses to well under 10 KB.
            assert!(
                bytes.len() > 10_000,
                "{path} ({name}): screenshot only {} bytes",
                bytes.len()
            );
        }
    }
    // The host page's JSON has its last hour at the sampling rate.
    let host = json(addr, &format!("/hosts/{HOT}.json"), &[]);
    assert!(
        host["last_hour"].as_array().is_some_and(|a| a.len() >= 10),
        "{host}"
    );
    assert_eq!(host["host"]["host"], HOT);
    // Sorting the group page by CPU puts the hot host first.
    let sorted = json(addr, "/groups/web.json?sort=cpu&order=desc", &[]);
    assert_eq!(sorted["hosts"][0]["host"], HOT, "{sorted}");
    if let Ok(keep) = std::env::var("HEADROOM_KEEP_SHOTS") {
        for entry in std::fs::read_dir(&shots).unwrap().flatten() {
            let _ = std::fs::copy(entry.path(), Path::new(&keep).join(entry.file_name()));
        }
    }
    assert_eq!(
        demo.terminate(Duration::from_secs(30)),
        Some(0),
        "{}",
        demo.stderr_text()
    );
}
