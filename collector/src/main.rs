//! `headroom-collector`: parse the command line, load the config, call the library, map errors to exit codes.

use anyhow::Context;
use clap::{CommandFactory, Parser};
use headroom_collector::app::{demo, serve};
use headroom_collector::config;
use headroom_collector::identity::{self, pki_cli};
use headroom_collector::live::summary::FleetSummary;
use headroom_collector::sizing::{self, ReportFormat};
use headroom_collector::views::admin::{render_certs, render_tokens};
use headroom_collector::views::client;
use headroom_collector::views::render::{self, render_fleet, render_hosts, Format};
use headroom_collector::views::report_cli;
use headroom_common::effective::render_document;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

mod cli;

use cli::{
    CaCommand, CertCommand, Cli, Command, DatabaseArgs, DocumentedCli, Invocation, PlaceArgs, ReportArgs,
    ReportKind, TokenCommand, ViewArgs, WhatIfArgs,
};

enum Failure {
    Usage(String),
    Runtime(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure::Runtime(error.into())
    }
}

fn main() -> ExitCode {
    let command = match Cli::parse().command {
        Invocation::Documented(command) => command,
        Invocation::GenerateDocs { out } => {
            return match headroom_agent::cli_docs::write(DocumentedCli::command(), &out) {
                Ok(files) => {
                    for file in files {
                        println!("{}", file.display());
                    }
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!(
                        "headroom-collector: writing man pages and completions into {}: {error}",
                        out.display()
                    );
                    ExitCode::from(1)
                }
            };
        }
    };
    if !matches!(command, Command::Serve { .. } | Command::Demo { .. }) {
        exit_quietly_on_closed_pipe();
    }
    // The demo prints its own summary; routine connection logs would bury it.
    let quiet = matches!(command, Command::Demo { .. });
    init_logging(if quiet { "warn" } else { "info" });
    match dispatch(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("headroom-collector: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(error)) => {
            eprintln!("headroom-collector: {error:#}");
            ExitCode::from(1)
        }
    }
}

/// A command whose output goes into `head` or `grep -q` ends silently when the reader goes away, as Unix tools
/// do, instead of panicking in `println!`. The service keeps Rust's default (SIGPIPE ignored) so that a peer
/// closing a socket is an error to handle, never a reason to die.
fn exit_quietly_on_closed_pipe() {
    // SAFETY: restoring the default disposition of one signal before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn load_config(path: &std::path::Path) -> Result<config::Config, Failure> {
    config::load(path).map_err(|e| Failure::Usage(e.to_string()))
}

/// The state directory: `--state-dir`, else the config's (the config file may be absent: defaults apply).
fn state_dir(place: &PlaceArgs) -> Result<PathBuf, Failure> {
    if let Some(dir) = &place.state_dir {
        return Ok(dir.clone());
    }
    if place.config.exists() {
        return Ok(load_config(&place.config)?.state_dir);
    }
    Ok(config::Config::default().state_dir)
}

fn dispatch(command: Command) -> Result<(), Failure> {
    match command {
        Command::Serve { config } => {
            let config = load_config(&config)?;
            // A broken rules file is a configuration error: exit 2 before anything starts.
            if let Some(rules) = &config.alarms.rules {
                headroom_collector::analytics::alarms::load(rules)
                    .map_err(|e| Failure::Usage(e.to_string()))?;
            }
            // So is a token or HTTPS file that cannot be read: exit 2 with the key and the fix.
            headroom_collector::views::access::Access::load(config.http_listen, &config.http)
                .map_err(Failure::Usage)?;
            runtime()?.block_on(async {
                let cancel = CancellationToken::new();
                spawn_stop_on_signal(cancel.clone());
                serve::serve(config, cancel, None, true).await
            })?;
        }
        Command::Demo {
            simulated_hosts,
            print_every,
            duration,
        } => {
            let options = demo::DemoOptions {
                simulated_hosts,
                interval: Duration::from_secs(1),
                print_every,
                duration,
            };
            runtime()?.block_on(async {
                let cancel = CancellationToken::new();
                spawn_stop_on_signal(cancel.clone());
                demo::run(options, cancel).await
            })?;
        }
        Command::Ca {
            command:
                CaCommand::Init {
                    place,
                    server_names,
                    force,
                },
        } => {
            let dir = pki_cli::pki_dir(&state_dir(&place)?);
            let outcome =
                pki_cli::ca_init(&dir, &server_names, force, SystemTime::now()).map_err(|e| match e {
                    pki_cli::PkiCommandError::Exists(_) => Failure::Usage(e.to_string()),
                    other => Failure::Runtime(other.into()),
                })?;
            println!(
                "created CA and server certificate ({}) in {}",
                server_names.join(", "),
                outcome.dir.display()
            );
            println!("CA fingerprint: {}", outcome.fingerprint);
        }
        Command::Cert {
            command:
                CertCommand::Issue {
                    place,
                    host,
                    out,
                    days,
                },
        } => {
            if let Err(error) = headroom_common::pki::validate_host_name(&host) {
                return Err(Failure::Usage(error.to_string()));
            }
            // Capped like certificates issued at enrollment: a certificate nobody renews should not outlive
            // the longest identity.cert_validity.
            let max_days = config::CERT_VALIDITY_MAX.as_secs() / 86_400;
            if days == 0 || u64::from(days) > max_days {
                return Err(Failure::Usage(format!(
                    "cert issue: --days {days} is outside 1..={max_days} (the longest identity.cert_validity); \
                     issue a shorter certificate and renew it"
                )));
            }
            let dir = pki_cli::pki_dir(&state_dir(&place)?);
            let ca = pki_cli::load_ca(&dir)?;
            let out = out.unwrap_or_else(|| PathBuf::from(&host));
            let validity = Duration::from_secs(u64::from(days) * 86_400);
            pki_cli::cert_issue_recorded(&dir, &ca, &host, &out, validity, SystemTime::now())?;
            println!(
                "issued a certificate for {host} valid {days} days: {}/agent.pem, agent.key, ca.pem",
                out.display()
            );
            println!(
                "copy the three files into the agent's state directory (/var/lib/headroom-agent/) over a"
            );
            println!("secure channel; agent.key is the host's private key (mode 0600).");
        }
        Command::Token {
            command:
                TokenCommand::Create {
                    place,
                    ttl,
                    uses,
                    labels,
                    host,
                },
        } => {
            let labels = identity::admin::parse_labels(&labels).map_err(admin_failure)?;
            let dir = pki_cli::pki_dir(&state_dir(&place)?);
            let ttl_s = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
            let text = identity::admin::token_create(&dir, ttl_s, uses, labels, host, now_s())
                .map_err(admin_failure)?;
            print!("{text}");
        }
        Command::Token {
            command: TokenCommand::List { place, output },
        } => {
            let dir = pki_cli::pki_dir(&state_dir(&place)?);
            let tokens = identity::admin::token_rows(&dir, now_s()).map_err(admin_failure)?;
            print!("{}", render_tokens(&tokens, output.output()));
        }
        Command::Cert {
            command:
                CertCommand::Server {
                    place,
                    server_names,
                    days,
                },
        } => {
            if days == 0 {
                return Err(Failure::Usage("--days must be at least 1".to_string()));
            }
            let dir = pki_cli::pki_dir(&state_dir(&place)?);
            let validity = Duration::from_secs(u64::from(days) * 86_400);
            let serial = pki_cli::server_cert_renew(&dir, &server_names, validity, SystemTime::now())
                .map_err(|e| match e {
                    pki_cli::PkiCommandError::Pki(headroom_common::pki::PkiError::InvalidHostName {
                        ..
                    }) => Failure::Usage(e.to_string()),
                    other => Failure::Runtime(other.into()),
                })?;
            println!(
                "new server certificate {serial} ({}) valid {days} days in {}",
                server_names.join(", "),
                dir.display()
            );
            println!("a running collector loads it within seconds, or at once on SIGHUP; agent connections stay up");
        }
        Command::Cert {
            command: CertCommand::List { place, output },
        } => {
            let dir = pki_cli::pki_dir(&state_dir(&place)?);
            let certs = identity::admin::cert_rows(&dir, now_s()).map_err(admin_failure)?;
            print!("{}", render_certs(&certs, output.output()));
        }
        Command::Cert {
            command: CertCommand::Revoke { place, host, serial },
        } => {
            let dir = pki_cli::pki_dir(&state_dir(&place)?);
            let text = identity::admin::cert_revoke(&dir, host.as_deref(), serial.as_deref(), now_s())
                .map_err(admin_failure)?;
            print!("{text}");
        }
        Command::Signer { place, socket } => {
            let dir = pki_cli::pki_dir(&state_dir(&place)?);
            headroom_collector::identity::signer::run_signer(&dir, socket.as_deref())?;
        }
        Command::CheckConfig { config: path, format } => {
            let config = load_config(&path)?;
            let origin = path.display().to_string();
            print!("{}", render_document(&config.effective(), &origin, format));
        }
        Command::Fleet {
            view: args,
            by,
            window,
            stat,
            end,
        } if by.is_some() || window.is_some() => {
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
        }
        Command::Fleet { view: args, .. } if args.api.len() > 1 => {
            // Each collector's host list, merged (a host that moved shows on both; the newest view wins), then
            // summarised as one fleet.
            let mut lists = Vec::new();
            for base in &args.api {
                let api = api_for(&args, Some(base))?;
                let body = client::get(&api, "/api/v1/hosts")?;
                let hosts: Vec<headroom_collector::live::fleet::HostView> = serde_json::from_str(&body)
                    .with_context(|| format!("decoding the host list of {base}"))?;
                lists.push(hosts);
            }
            let hosts = headroom_collector::live::summary::merge_hosts(lists);
            let summary =
                headroom_collector::live::summary::summarize(&hosts, headroom_common::clock::now_ms());
            print!("{}", render_fleet(&summary, args.output()));
        }
        Command::Fleet { view: args, .. } => {
            let body = client::get(&api_of(&args)?, "/api/v1/fleet")?;
            let summary: FleetSummary = serde_json::from_str(&body).context("decoding the fleet summary")?;
            print!("{}", render_fleet(&summary, args.output()));
        }
        Command::Sizing(args) => {
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
        }
        Command::Report(args) if args.kind == ReportKind::Review => {
            let review = review_report(&args)?;
            let text =
                headroom_collector::views::review::render(&review, args.format).map_err(report_failure)?;
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
        }
        Command::Report(args) => {
            let report = sizing_report(&args.database, &args.what_if, args.window)?;
            report_cli::write_atomically(&args.out, &sizing::render(&report, args.format))
                .map_err(report_failure)?;
            for note in &report.notes {
                println!("{note}");
            }
            println!("wrote {} ({} groups)", args.out.display(), report.groups.len());
        }
        Command::Hosts(args) => {
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
        }
        Command::Outliers { view: args, group } => {
            let query: Vec<(&str, &str)> = group.iter().map(|group| ("group", group.as_str())).collect();
            let body = client::get_with_query(&api_of(&args)?, "/api/v1/outliers", &query)?;
            let report: headroom_collector::analytics::OutlierReport =
                serde_json::from_str(&body).context("decoding the outliers")?;
            print!("{}", render::render_outliers(&report, args.output()));
        }
        Command::Alarms(args) => {
            let body = client::get(&api_of(&args)?, "/api/v1/alarms")?;
            let report: headroom_collector::analytics::AlarmReport =
                serde_json::from_str(&body).context("decoding the alarms")?;
            print!("{}", render::render_alarms(&report, args.output()));
        }
    }
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
    };
    report_cli::build_report(&options, &config.sizing).map_err(report_failure)
}

fn report_failure(error: report_cli::ReportError) -> Failure {
    match error {
        report_cli::ReportError::Usage(message) => Failure::Usage(message),
        other => Failure::Runtime(other.into()),
    }
}

fn admin_failure(error: headroom_collector::identity::admin::AdminError) -> Failure {
    match error {
        headroom_collector::identity::admin::AdminError::Usage(message) => Failure::Usage(message),
        other => Failure::Runtime(other.into()),
    }
}

fn now_s() -> i64 {
    headroom_collector::identity::unix_s(SystemTime::now())
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

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot start the runtime: {e}")))
}

fn spawn_stop_on_signal(cancel: CancellationToken) {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("stop signal received");
        cancel.cancel();
    });
}

fn init_logging(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HEADROOM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
