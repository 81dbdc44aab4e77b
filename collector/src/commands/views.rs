//! The read commands: `fleet`, `hosts`, `outliers` and `alarms` through the collector's HTTP API; `sizing` and
//! `report` from a database file or a Prometheus-compatible source.

use super::support::{load_config, Failure};
use crate::cli::{DatabaseArgs, ReportArgs, ReportKind, SizingArgs, ViewArgs, WhatIfArgs};
use anyhow::Context;
use headroom_collector::config;
use headroom_collector::live::summary::FleetSummary;
use headroom_collector::sizing::{self, ReportFormat};
use headroom_collector::views::client;
use headroom_collector::views::end::EndAt;
use headroom_collector::views::render::{self, render_fleet, render_hosts, Format};
use headroom_collector::views::report_cli;
use std::net::SocketAddr;
use std::time::Duration;

/// `fleet`: the live summary, a windowed view (`--by`, `--window`), or several collectors' hosts merged.
pub(crate) fn fleet(
    args: ViewArgs,
    by: Option<String>,
    window: Option<String>,
    stat: Option<String>,
    end: EndAt,
) -> Result<(), Failure> {
    if by.is_some() || window.is_some() {
        let window = window.as_deref().unwrap_or("live");
        let mut query: Vec<(&str, String)> = vec![("window", window.to_string())];
        if let Some(by) = &by {
            query.push(("by", by.clone()));
        }
        if window != "live" {
            // Sketches exist for rolled-up minutes; windows of an hour or less read raw rows (means)
            // unless a statistic is asked for.
            let short = headroom_collector::views::parse_window(window)
                .ok()
                .flatten()
                .is_some_and(|ms| ms <= headroom_collector::views::RAW_WINDOW_MAX_MS);
            let stat = stat.as_deref().unwrap_or(if short { "mean" } else { "p99" });
            stat.parse::<headroom_collector::views::Stat>()
                .map_err(|message| Failure::Usage(format!("--stat: {message}")))?;
            query.push(("stat", stat.to_string()));
            if let Some(end) = end.query_value() {
                query.push(("end", end.to_string()));
            }
        }
        let query: Vec<(&str, &str)> = query.iter().map(|(key, value)| (*key, value.as_str())).collect();
        let body = client::get_with_query(&api_of(&args)?, "/api/v1/fleet", &query)?;
        let view: headroom_collector::views::FleetView =
            serde_json::from_str(&body).context("decoding the fleet view")?;
        print!("{}", render::render_fleet_view(&view, args.output()));
    } else if args.api.len() > 1 {
        // Each collector's host list, merged (a host that moved shows on both; the newest view wins), then
        // summarised as one fleet.
        let mut lists = Vec::new();
        for base in &args.api {
            let api = api_for(&args, Some(base))?;
            let body = client::get(&api, "/api/v1/hosts")?;
            let hosts: Vec<headroom_collector::live::fleet::HostView> =
                serde_json::from_str(&body).with_context(|| format!("decoding the host list of {base}"))?;
            lists.push(hosts);
        }
        let hosts = headroom_collector::live::summary::merge_hosts(lists);
        let summary = headroom_collector::live::summary::summarize(&hosts, headroom_common::clock::now_ms());
        print!("{}", render_fleet(&summary, args.output()));
    } else {
        let body = client::get(&api_of(&args)?, "/api/v1/fleet")?;
        let summary: FleetSummary = serde_json::from_str(&body).context("decoding the fleet summary")?;
        print!("{}", render_fleet(&summary, args.output()));
    }
    Ok(())
}

pub(crate) fn sizing(args: SizingArgs) -> Result<(), Failure> {
    let report = sizing_report(&args.database, &args.what_if, args.window)?;
    let header = !args.output.no_header;
    let text = match args.output.format {
        Format::Table => report_cli::render_table(&report, header),
        Format::Json => sizing::render(&report, ReportFormat::Json),
        // The sizing CSV has exactly one header line: the column names.
        Format::Csv if header => sizing::render(&report, ReportFormat::Csv),
        Format::Csv => sizing::render(&report, ReportFormat::Csv)
            .split_once('\n')
            .map(|(_, rows)| rows.to_string())
            .unwrap_or_default(),
    };
    print!("{text}");
    Ok(())
}

pub(crate) fn report(args: ReportArgs) -> Result<(), Failure> {
    if args.kind == ReportKind::Review {
        let review = review_report(&args)?;
        let text = headroom_collector::views::review::render(&review, args.format).map_err(report_failure)?;
        report_cli::write_atomically(&args.out, &text).map_err(report_failure)?;
        for note in &review.notes {
            println!("{note}");
        }
        println!(
            "wrote {} (review of {} alarm firings, {} groups)",
            args.out.display(),
            review.alarms.rows.iter().map(|r| r.fired).sum::<u32>(),
            review.headroom.rows.len()
        );
    } else {
        let report = sizing_report(&args.database, &args.what_if, args.window)?;
        report_cli::write_atomically(&args.out, &sizing::render(&report, args.format))
            .map_err(report_failure)?;
        for note in &report.notes {
            println!("{note}");
        }
        println!("wrote {} ({} groups)", args.out.display(), report.groups.len());
    }
    Ok(())
}

pub(crate) fn hosts(args: ViewArgs) -> Result<(), Failure> {
    let body = client::get(&api_of(&args)?, "/api/v1/hosts")?;
    let hosts: Vec<headroom_collector::live::fleet::HostView> =
        serde_json::from_str(&body).context("decoding the host list")?;
    // Gap counts come from the database; a collector without them still lists its hosts.
    match client::get(&api_of(&args)?, "/api/v1/gaps")
        .ok()
        .and_then(|body| serde_json::from_str(&body).ok())
    {
        Some(gaps) => print!("{}", render::render_hosts_with_gaps(&hosts, &gaps, args.output())),
        None => print!("{}", render_hosts(&hosts, args.output())),
    }
    // Export losses are never silent; on stderr so JSON and CSV on stdout stay parseable.
    let export = client::get(&api_of(&args)?, "/api/v1/health")
        .ok()
        .and_then(|body| serde_json::from_str::<headroom_collector::views::http::Health>(&body).ok())
        .and_then(|health| health.export);
    if let Some(line) = export.as_ref().and_then(|e| e.loss_line()) {
        eprintln!("{line}");
    }
    Ok(())
}

pub(crate) fn outliers(args: ViewArgs, group: Option<String>) -> Result<(), Failure> {
    let query: Vec<(&str, &str)> = group.iter().map(|group| ("group", group.as_str())).collect();
    let body = client::get_with_query(&api_of(&args)?, "/api/v1/outliers", &query)?;
    let report: headroom_collector::analytics::OutlierReport =
        serde_json::from_str(&body).context("decoding the outliers")?;
    print!("{}", render::render_outliers(&report, args.output()));
    Ok(())
}

pub(crate) fn alarms(args: ViewArgs) -> Result<(), Failure> {
    let body = client::get(&api_of(&args)?, "/api/v1/alarms")?;
    let report: headroom_collector::analytics::AlarmReport =
        serde_json::from_str(&body).context("decoding the alarms")?;
    print!("{}", render::render_alarms(&report, args.output()));
    Ok(())
}

/// Reads the config (defaults when absent) and builds the weekly review from the database.
fn review_report(args: &ReportArgs) -> Result<headroom_collector::views::review::Review, Failure> {
    use headroom_collector::views::review;
    if args.database.source.is_some() {
        return Err(Failure::Usage(
            "report --kind review reads a collector's database (alarm and outlier history are not exported); \
             pass --db FILE instead of --source"
                .to_string(),
        ));
    }
    if !args.what_if.scenarios().is_empty() {
        return Err(Failure::Usage(
            "report --kind review takes no what-if options (--growth, --target, --lose, --lose-hosts, --add, --scenario); \
             use report --kind sizing for those"
                .to_string(),
        ));
    }
    let config = if args.database.config.exists() {
        load_config(&args.database.config)?
    } else {
        config::Config::default()
    };
    let window = args.window.unwrap_or(review::DEFAULT_WINDOW);
    if window < Duration::from_secs(3_600) {
        return Err(Failure::Usage(format!(
            "--window {}: too short for a review (use at least 1h, like 7d)",
            humantime::format_duration(window)
        )));
    }
    let options = review::ReviewOptions {
        db: args
            .database
            .db
            .clone()
            .unwrap_or_else(|| config.state_dir.join("headroom.db")),
        window,
        now_ms: headroom_common::clock::now_ms(),
        end: args.database.end,
    };
    review::build_review(&options, &config.sizing).map_err(report_failure)
}

/// Reads the config (defaults when absent) and builds the sizing report from the database.
fn sizing_report(
    database: &DatabaseArgs,
    what_if: &WhatIfArgs,
    window: Option<Duration>,
) -> Result<headroom_collector::sizing::SizingReport, Failure> {
    let config = if database.config.exists() {
        load_config(&database.config)?
    } else {
        config::Config::default()
    };
    let window = window.unwrap_or(config.sizing.window);
    if window < Duration::from_secs(60) {
        return Err(Failure::Usage(format!(
            "--window {}: too short (use at least 1m, like 14d)",
            humantime::format_duration(window)
        )));
    }
    if let Some(url) = &database.source {
        let options = headroom_collector::views::promql::PromOptions {
            url: url.clone(),
            window,
            now_ms: headroom_common::clock::now_ms(),
            end: database.end,
            scenarios: what_if.scenarios(),
        };
        return headroom_collector::views::promql::build_report(&options, &config.sizing)
            .map_err(report_failure);
    }
    let options = report_cli::ReportOptions {
        db: database
            .db
            .clone()
            .unwrap_or_else(|| config.state_dir.join("headroom.db")),
        window,
        now_ms: headroom_common::clock::now_ms(),
        end: database.end,
        scenarios: what_if.scenarios(),
        progress: true,
        rolled_up_only: false,
    };
    report_cli::build_report(&options, &config.sizing).map_err(report_failure)
}

fn report_failure(error: report_cli::ReportError) -> Failure {
    match error {
        report_cli::ReportError::Usage(message) => Failure::Usage(message),
        other => Failure::Runtime(other.into()),
    }
}

/// The one API a view reads (`--api` at most once).
fn api_of(args: &ViewArgs) -> Result<client::Api, Failure> {
    if args.api.len() > 1 {
        return Err(Failure::Usage(format!(
            "--api given {} times: only the live `fleet` view merges several collectors (give one --api)",
            args.api.len()
        )));
    }
    api_for(args, args.api.first().map(String::as_str))
}

/// Where the API is and how to authenticate: `base` (from `--api`), `--token-file` and `--api-ca`, else the
/// config's `http_listen`, `http.token_file` and (for HTTPS) `tls.ca`.
fn api_for(args: &ViewArgs, base: Option<&str>) -> Result<client::Api, Failure> {
    let config = if args.config.exists() {
        Some(load_config(&args.config)?)
    } else {
        None
    };
    let base = match base {
        None => {
            let config = config.clone().unwrap_or_default();
            let scheme = if config.http.tls.is_some() {
                "https"
            } else {
                "http"
            };
            // A listener on every address is reached on loopback; its certificate must name that address.
            let address = match config.http_listen.ip() {
                std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
                    SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, config.http_listen.port()))
                }
                std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
                    SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, config.http_listen.port()))
                }
                _ => config.http_listen,
            };
            format!("{scheme}://{address}")
        }
        Some(base) => base.to_string(),
    };
    let token_file = args
        .token_file
        .clone()
        .or_else(|| config.as_ref().and_then(|c| c.http.token_file.clone()));
    let token = match token_file {
        None => None,
        Some(path) => Some(
            headroom_collector::views::access::read_token(&path).map_err(|message| {
                Failure::Usage(format!(
                    "{message}; pass --token-file FILE with a copy you can read"
                ))
            })?,
        ),
    };
    let ca_file = args.api_ca.clone().or_else(|| {
        config
            .as_ref()
            .filter(|_| base.starts_with("https://"))
            .map(|c| c.tls.ca.clone())
    });
    let extra_roots_pem = match ca_file {
        None => None,
        Some(path) => Some(std::fs::read(&path).map_err(|error| {
            Failure::Usage(format!(
                "--api-ca {}: {error} (pass the PEM file of the CA that signed the API's certificate)",
                path.display()
            ))
        })?),
    };
    Ok(client::Api {
        base,
        token,
        extra_roots_pem,
    })
}
