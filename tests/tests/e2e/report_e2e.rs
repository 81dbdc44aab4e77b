//! End to end: real agents stream to a real collector, the collector stops, and `headroom-collector report`
//! reads a copy of its database file with nothing running, in every format; the HTML is well-formed and the
//! CSV carries the same numbers as the JSON; headless Chromium shows the HTML fits a 1280 px screen and
//! prints on A4.
//!
//! Rollups cover only minutes that ended 10 s ago, so after ~15 s most or all of the data is still raw; the
//! report reads raw rows past the rollup watermark for that part, which this test relies on.

use headroom_tests::{binary, chromium, e2e_required, wait_for, Collector, CHROMIUM};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const FAST: &str = "[sampling]\ninterval = \"200ms\"\n";

/// Runs `report` on `db` and returns the file it wrote.
fn report(db: &Path, dir: &Path, format: &str) -> String {
    let out = dir.join(format!("report.{format}"));
    let output = Command::new(binary("headroom-collector"))
        .args(["report", "--window", "1h", "--format", format, "--db"])
        .arg(db)
        .arg("--out")
        .arg(&out)
        // No config file there: the defaults apply, and --db names the database.
        .args(["--config", dir.join("absent.toml").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "report --format {format}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Not a terminal: no progress bar, nothing on stderr.
    assert_eq!(String::from_utf8_lossy(&output.stderr), "", "{format}");
    std::fs::read_to_string(&out).unwrap()
}

/// `sizing --format json` over `db` (the live database is fine: the command opens it read-only).
fn sizing_json(db: &Path, dir: &Path) -> Option<serde_json::Value> {
    let output = Command::new(binary("headroom-collector"))
        .args(["sizing", "--window", "1h", "--format", "json", "--db"])
        .arg(db)
        .args(["--config", dir.join("absent.toml").to_str().unwrap()])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    serde_json::from_slice(&output.stdout).ok()
}

/// Checks that every element opened is closed in order; returns the tag names seen.
fn balanced_tags(html: &str) -> Vec<String> {
    const VOID: &[&str] = &[
        "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr",
    ];
    let mut stack: Vec<String> = Vec::new();
    let mut seen = Vec::new();
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        let close = rest.find('>').expect("a tag that never ends");
        let tag = &rest[..close];
        rest = &rest[close + 1..];
        if tag.starts_with('!') || tag.starts_with('?') {
            continue;
        }
        let self_closing = tag.ends_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect::<String>()
            .to_ascii_lowercase();
        if name == "style" || name == "script" {
            if !tag.starts_with('/') {
                // Raw text: skip to its end tag.
                let end = rest.find(&format!("</{name}>")).expect("raw-text element closed");
                rest = &rest[end + name.len() + 3..];
                seen.push(name);
            }
            continue;
        }
        if tag.starts_with('/') {
            let top = stack.pop().unwrap_or_else(|| panic!("</{name}> closes nothing"));
            assert_eq!(top, name, "</{name}> closes <{top}>");
        } else if !self_closing && !VOID.contains(&name.as_str()) {
            stack.push(name.clone());
            seen.push(name);
        } else {
            seen.push(name);
        }
    }
    assert!(stack.is_empty(), "unclosed elements: {stack:?}");
    seen
}

/// Issue 15: the HTML report fits a 1280 px laptop screen (the page never scrolls sideways and the summary
/// table needs no scrolling of its own) and prints on A4. Headless Chromium renders the report; a copy of it
/// gets one inline script that writes the measured widths into the DOM, which `--dump-dom` then prints.
fn check_layout_in_chromium(html: &str, dir: &Path) {
    if !Path::new(CHROMIUM).exists() {
        assert!(
            !e2e_required(),
            "{CHROMIUM} is required (apt-get install chromium)"
        );
        eprintln!("layout not checked: Debian package chromium is not installed");
        return;
    }
    let page = dir.join("report.html");
    std::fs::write(&page, html).unwrap();
    let url = format!("file://{}", page.display());
    let measure = "<script>const s=document.getElementById('summary');document.body.setAttribute('data-widths',\
                   [document.documentElement.scrollWidth,s.scrollWidth,s.clientWidth].join(' '))</script></body>";
    let measured = dir.join("measured.html");
    std::fs::write(&measured, html.replacen("</body>", measure, 1)).unwrap();
    let run = chromium(
        &format!("file://{}", measured.display()),
        &["--window-size=1280,900", "--dump-dom"],
    );
    assert!(run.success, "chromium --dump-dom failed: {:?}", run.console);
    let widths: Vec<u32> = run
        .stdout
        .split("data-widths=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no widths in the DOM: {}", run.stdout))
        .split(' ')
        .map(|w| w.parse().unwrap())
        .collect();
    let (page_width, summary_width, summary_visible) = (widths[0], widths[1], widths[2]);
    assert!(
        page_width <= 1280,
        "the page scrolls sideways at 1280 px: {page_width} px wide"
    );
    assert!(
        summary_width <= summary_visible,
        "the summary scrolls at 1280 px: {summary_width} px in {summary_visible} px"
    );

    let pdf = dir.join("report.pdf");
    let run = chromium(&url, &[&format!("--print-to-pdf={}", pdf.display())]);
    assert!(
        run.success && pdf.exists(),
        "chromium --print-to-pdf failed: {:?}",
        run.console
    );
    let bytes = std::fs::read(&pdf).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    let boxes: Vec<Vec<f64>> = text
        .split("/MediaBox [")
        .skip(1)
        .map(|rest| {
            rest.split(']')
                .next()
                .unwrap()
                .split_whitespace()
                .map(|n| n.parse().unwrap())
                .collect()
        })
        .collect();
    assert!(!boxes.is_empty(), "no page in the PDF");
    for media in boxes {
        // A4 is 595 x 842 pt; Chromium writes it as 594.96 x 841.92.
        assert!(
            (media[2] - media[0] - 595.0).abs() < 1.0 && (media[3] - media[1] - 842.0).abs() < 1.0,
            "a page is not A4: MediaBox {media:?}"
        );
    }
}

/// RFC 4180 CSV: quoted fields may hold commas, quotes (doubled) and newlines.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, '\r') => {}
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

fn number(cell: &str) -> f64 {
    cell.parse()
        .unwrap_or_else(|_| panic!("{cell:?} is not a number"))
}

#[test]
fn report_from_a_copied_database_in_every_format_with_matching_numbers() {
    let _suite = headroom_tests::shared();
    let mut collector = Collector::start();
    let mut agents = vec![
        collector.start_agent_extra("web-1", &[("group", "web"), ("zone", "zone-a")], FAST),
        collector.start_agent_extra("web-2", &[("group", "web"), ("zone", "zone-b")], FAST),
        collector.start_agent_extra("web-3", &[("group", "web"), ("zone", "zone-c")], FAST),
        collector.start_agent_extra("db-1", &[("group", "db"), ("zone", "zone-a")], FAST),
    ];
    for host in ["web-1", "web-2", "web-3", "db-1"] {
        assert!(
            collector.wait_host(host, 5, Duration::from_secs(30)).is_some(),
            "{host} never reported"
        );
    }
    // Run until the live database already gives every group a measured CPU peak over all its hosts, which is
    // what the report from the copy is checked for below.
    let measured = wait_for(Duration::from_secs(90), || {
        let json = sizing_json(&collector.db_path(), collector.dir.path())?;
        let groups = json["groups"].as_array()?;
        let ready = |name: &str, hosts: u64| {
            groups.iter().any(|group| {
                group["name"] == name
                    && group["hosts"] == hosts
                    && group["resources"][0]["resource"]["kind"] == "cpu"
                    && group["resources"][0]["peak"]
                        .as_f64()
                        .is_some_and(|peak| peak > 0.0)
            })
        };
        (ready("web", 3) && ready("db", 1)).then_some(())
    });
    assert!(
        measured.is_some(),
        "no CPU peak for every group: {:?}",
        sizing_json(&collector.db_path(), collector.dir.path())
    );
    for agent in &mut agents {
        assert_eq!(
            agent.terminate(Duration::from_secs(10)),
            Some(0),
            "{}",
            agent.name
        );
    }
    assert_eq!(
        collector.process.terminate(Duration::from_secs(20)),
        Some(0),
        "{}",
        collector.process.stderr_text()
    );

    // A copy of the file: the collector is stopped, so its WAL is checkpointed into the main file.
    let work = tempfile::tempdir().unwrap();
    let copy = work.path().join("copy.db");
    std::fs::copy(collector.db_path(), &copy).unwrap();
    for suffix in ["-wal", "-shm"] {
        let side = collector.db_path().with_extension(format!("db{suffix}"));
        if side.exists() {
            std::fs::copy(&side, work.path().join(format!("copy.db{suffix}"))).unwrap();
        }
    }

    let json: serde_json::Value = serde_json::from_str(&report(&copy, work.path(), "json")).unwrap();
    assert_eq!(json["schema_version"], 2, "{json}");
    assert_eq!(json["peak_statistic"], "p99.9", "{json}");
    let groups = json["groups"].as_array().unwrap();
    let names: Vec<&str> = groups.iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["db", "web"], "{json}");
    let web = &groups[1];
    assert_eq!(web["hosts"], 3, "{web}");
    assert_eq!(web["domains"].as_array().unwrap().len(), 3, "{web}");
    // Three equal zones: losing one leaves two thirds of the capacity; the CPU peak is measured (the agents
    // really ran), and the mostly empty hour is stated, not hidden.
    let cpu = &web["resources"][0];
    assert_eq!(cpu["resource"]["kind"], "cpu", "{web}");
    assert!(cpu["peak"].as_f64().unwrap() > 0.0, "{cpu}");
    assert!(web["gaps"]["missing_minutes"].as_u64().unwrap() >= 50, "{web}");
    assert!(
        web["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|note| note.as_str().unwrap().contains("minutes have no data")),
        "{web}"
    );
    // db-1 is alone in its zone: the group cannot survive losing it, and the report says so.
    assert_eq!(groups[0]["status"], "single_domain", "{}", groups[0]);

    let csv = parse_csv(&report(&copy, work.path(), "csv"));
    let header = &csv[0];
    assert_eq!(csv.len(), 3, "{csv:?}");
    for (row, group) in csv[1..].iter().zip(groups) {
        assert_eq!(row.len(), header.len());
        let cells: BTreeMap<&str, &str> = header
            .iter()
            .map(String::as_str)
            .zip(row.iter().map(String::as_str))
            .collect();
        assert_eq!(cells["group"], group["name"].as_str().unwrap());
        assert_eq!(cells["status"], group["status"].as_str().unwrap());
        assert_eq!(number(cells["hosts"]), group["hosts"].as_f64().unwrap());
        assert_eq!(
            number(cells["missing_minutes"]),
            group["gaps"]["missing_minutes"].as_f64().unwrap()
        );
        let by_kind = |kind: &str| {
            group["resources"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["resource"]["kind"] == kind)
                .cloned()
        };
        for kind in ["cpu", "memory"] {
            let Some(resource) = by_kind(kind) else {
                assert_eq!(cells[format!("{kind}_peak").as_str()], "");
                continue;
            };
            for field in [
                "peak",
                "capacity",
                "target",
                "current_utilisation",
                "safe_steady_state",
            ] {
                let cell = cells[format!("{kind}_{field}").as_str()];
                // Both files hold shortest round-trip numbers; serde_json's default float parser may
                // land one unit in the last place away, so equality is to 1e-15 relative.
                let (from_csv, from_json) = (number(cell), resource[field].as_f64().unwrap());
                assert!(
                    (from_csv - from_json).abs() <= from_json.abs() * 1e-15,
                    "{kind}_{field}: csv {from_csv}, json {from_json}"
                );
            }
            assert_eq!(
                cells[format!("{kind}_safe").as_str()],
                resource["safe"].as_bool().unwrap().to_string()
            );
        }
    }

    let html = report(&copy, work.path(), "html");
    assert!(html
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("<!doctype html>"));
    let tags = balanced_tags(&html);
    assert!(tags.iter().any(|t| t == "svg"), "inline charts expected");
    // Self-contained: nothing is loaded from elsewhere.
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "external asset"
    );
    assert!(html.contains("web") && html.contains("db"));
    check_layout_in_chromium(&html, work.path());

    let md = report(&copy, work.path(), "md");
    assert!(md.starts_with("# Failover sizing report"), "{md}");
    assert!(md.contains("| web |") && md.contains("| db |"), "{md}");

    // The quick look reads the same copy; a missing file is a usage error naming it.
    let table = Command::new(binary("headroom-collector"))
        .args(["sizing", "--window", "1h", "--db"])
        .arg(&copy)
        .args(["--config", work.path().join("absent.toml").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        table.status.success(),
        "{}",
        String::from_utf8_lossy(&table.stderr)
    );
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(
        table.contains("web") && table.contains("cannot survive a zone loss"),
        "{table}"
    );

    // Issue 10: the same copy analysed "later" (the window ending 30 minutes after the data) says so in its
    // first line, and --end latest gives the answer as of the newest sample, with every web host present.
    let sizing = |end: &str, format: &str| {
        let output = Command::new(binary("headroom-collector"))
            .args([
                "sizing", "--window", "1h", "--format", format, "--end", end, "--db",
            ])
            .arg(&copy)
            .args(["--config", work.path().join("absent.toml").to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let later =
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() + Duration::from_secs(30 * 60))
            .to_string();
    let stale = sizing(&later, "table");
    assert!(
        stale
            .lines()
            .next()
            .unwrap()
            .starts_with("stale data: the newest sample is from")
            && stale.lines().next().unwrap().contains("pass --end latest"),
        "{stale}"
    );
    let latest: serde_json::Value = serde_json::from_str(&sizing("latest", "json")).unwrap();
    assert_eq!(latest["notes"], serde_json::json!([]), "{latest}");
    let web = latest["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "web")
        .unwrap();
    assert_eq!(
        (web["hosts"].as_u64(), web["left"].as_array().map(Vec::len)),
        (Some(3), Some(0)),
        "{web}"
    );
    // Issue 10: each what-if option is a scenario of its own, and --scenario combines several into one row;
    // a malformed one is a usage error naming it.
    let what_if = Command::new(binary("headroom-collector"))
        .args([
            "sizing",
            "--window",
            "1h",
            "--end",
            "latest",
            "--format",
            "json",
            "--growth",
            "20%",
            "--lose-hosts",
            "1",
            "--scenario",
            "growth=20%,add=group=web,hosts=2",
            "--db",
        ])
        .arg(&copy)
        .args(["--config", work.path().join("absent.toml").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        what_if.status.success(),
        "{}",
        String::from_utf8_lossy(&what_if.stderr)
    );
    let what_if: serde_json::Value = serde_json::from_slice(&what_if.stdout).unwrap();
    let names: Vec<&str> = what_if["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["growth +20 %", "lose 1 host", "growth +20 %, add 2 to web"]
    );
    let bad_scenario = Command::new(binary("headroom-collector"))
        .args(["sizing", "--scenario", "grow=20%", "--db"])
        .arg(&copy)
        .output()
        .unwrap();
    assert_eq!(bad_scenario.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_scenario.stderr).contains("--scenario"));

    let bad_end = Command::new(binary("headroom-collector"))
        .args(["sizing", "--end", "yesterday", "--db"])
        .arg(&copy)
        .output()
        .unwrap();
    assert_eq!(bad_end.status.code(), Some(2));

    let missing = Command::new(binary("headroom-collector"))
        .args([
            "sizing",
            "--db",
            "/nonexistent/headroom.db",
            "--config",
            "/nonexistent/c.toml",
        ])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/headroom.db: file not found"));

    // Issue 14, point 3: the weekly review of the same copy. Every host joined inside the window, no alarm
    // rules were loaded, and both groups are sized now and a week ago (when they did not exist yet).
    let review_of = |format: &str| {
        let out = work.path().join(format!("review.{format}"));
        let output = Command::new(binary("headroom-collector"))
            .args([
                "report", "--kind", "review", "--window", "7d", "--format", format, "--db",
            ])
            .arg(&copy)
            .arg("--out")
            .arg(&out)
            .args(["--config", work.path().join("absent.toml").to_str().unwrap()])
            .output()
            .unwrap();
        (output, out)
    };
    let (output, out) = review_of("json");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let review: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    let mut added: Vec<&str> = review["hosts_added"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["host"].as_str().unwrap())
        .collect();
    added.sort_unstable();
    assert_eq!(added, vec!["db-1", "web-1", "web-2", "web-3"], "{review}");
    let headroom = review["headroom"]["rows"].as_array().unwrap();
    assert_eq!(headroom.len(), 2, "{review}");
    assert!(headroom.iter().all(|g| g["status_before"].is_null()), "{review}");
    assert_eq!(review["alarms"]["look_at"], "No alarm fired in the window.");
    let (output, out) = review_of("md");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(std::fs::read_to_string(out)
        .unwrap()
        .starts_with("# Weekly operational review"));
    let (output, _) = review_of("csv");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("use html, md or json"));
}
