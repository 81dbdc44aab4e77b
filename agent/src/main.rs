//! `headroom-agent`: parse the command line, load the config, call the library, map errors to exit codes.

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use headroom_agent::{config, run, sample_view, sampler};
use headroom_common::cli_docs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "headroom-agent",
    version,
    about = "headroom host agent: samples this host and streams it to the collector"
)]
struct Cli {
    #[command(subcommand)]
    command: Invocation,
}

/// The command line as the man pages and completions show it: every command but the hidden `generate-docs`,
/// which clap would otherwise still list in completions (it cannot remove a subcommand once declared).
#[derive(Parser)]
#[command(
    name = "headroom-agent",
    version,
    about = "headroom host agent: samples this host and streams it to the collector"
)]
struct DocumentedCli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Invocation {
    #[command(flatten)]
    Documented(Command),
    /// Write man pages and shell completions into a directory (used when packaging).
    #[command(hide = true)]
    GenerateDocs {
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (systemd runs this).
    Run {
        #[arg(long, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Take one sample of this host and print it; no network.
    Sample {
        /// table (human units), json (the raw sample with schema_version, docs/API.md) or csv (raw numbers with their unit).
        #[arg(long, value_enum, default_value_t = SampleFormat::Table)]
        format: SampleFormat,
        /// Leave out the header row of the table or CSV.
        #[arg(long)]
        no_header: bool,
        /// Read this proc root instead of /proc (for captured trees).
        #[arg(long, default_value = "/proc")]
        proc_root: PathBuf,
    },
    /// Get this host's certificate from the collector with a one-time token.
    Enroll(EnrollArgs),
    /// Check a config file and print the effective configuration (defaults filled in, paths resolved).
    CheckConfig {
        #[arg(long, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
        /// toml (reads back as the same configuration) or json.
        #[arg(long, value_enum, default_value_t = headroom_common::effective::DocumentFormat::Toml)]
        format: headroom_common::effective::DocumentFormat,
    },
}

#[derive(clap::Args)]
struct EnrollArgs {
    /// The collector's enrollment address, HOST[:PORT]; the port is its enroll_listen (UDP, 9602 when
    /// left out), not the streaming port.
    #[arg(long)]
    collector: String,
    /// The one-time token from "headroom-collector token create". A command line shows in `ps`: prefer
    /// --token-file or the HEADROOM_TOKEN environment variable.
    #[arg(long, conflicts_with = "token_file")]
    token: Option<String>,
    /// Read the one-time token from this file (its first line); without --token or --token-file the token
    /// comes from the HEADROOM_TOKEN environment variable.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// The CA fingerprint "headroom-collector ca init" printed (SHA256:...).
    #[arg(long)]
    ca_fingerprint: String,
    /// Agent config whose state_dir and tls paths receive the files (used when it exists).
    #[arg(long, default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    /// State directory to write into instead of the config's.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Identity to ask for (default: this machine's host name).
    #[arg(long)]
    host: Option<String>,
    /// Name the collector's certificate must carry (default: the host part of --collector).
    #[arg(long)]
    server_name: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum SampleFormat {
    Table,
    Json,
    Csv,
}

fn main() -> ExitCode {
    let command = match Cli::parse().command {
        Invocation::Documented(command) => command,
        Invocation::GenerateDocs { out } => return generate_docs(&out),
    };
    if !matches!(command, Command::Run { .. }) {
        exit_quietly_on_closed_pipe();
    }
    init_logging();
    match command {
        Command::Run { config: path } => {
            let config = match config::load(&path) {
                Ok(config) => config,
                Err(e) => return usage_error(e),
            };
            if let Err(e) = config.require_collector(&path.display().to_string()) {
                return usage_error(e);
            }
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(e) => return runtime_error(anyhow::anyhow!("cannot start the runtime: {e}")),
            };
            match runtime.block_on(run_service(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => runtime_error(e),
            }
        }
        Command::Sample {
            format,
            no_header,
            proc_root,
        } => match sample_once(format, !no_header, proc_root) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => runtime_error(e),
        },
        Command::Enroll(args) => enroll_host(args),
        Command::CheckConfig { config: path, format } => match config::load(&path) {
            Ok(config) => {
                let origin = path.display().to_string();
                print!(
                    "{}",
                    headroom_common::effective::render_document(&config.effective(), &origin, format)
                );
                ExitCode::SUCCESS
            }
            Err(e) => usage_error(e),
        },
    }
}

fn generate_docs(out: &std::path::Path) -> ExitCode {
    match cli_docs::write(DocumentedCli::command(), out) {
        Ok(files) => {
            for file in files {
                println!("{}", file.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => runtime_error(anyhow::anyhow!(
            "writing man pages and completions into {}: {e}",
            out.display()
        )),
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

async fn run_service(config: config::Config) -> anyhow::Result<()> {
    let cancel = CancellationToken::new();
    let signals = cancel.clone();
    tokio::spawn(async move {
        wait_for_stop_signal().await;
        tracing::info!("stop signal received; flushing");
        signals.cancel();
    });
    let report = run::run(config, cancel).await?;
    tracing::info!(acked_through = ?report.acked_through, unacked = report.unacked, "stopped");
    Ok(())
}

async fn wait_for_stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn sample_once(format: SampleFormat, header: bool, proc_root: PathBuf) -> anyhow::Result<()> {
    let mut sampler = sampler::Sampler::new(sampler::SamplerConfig {
        proc_root,
        ..Default::default()
    });
    let now_ms = headroom_common::clock::now_ms;
    let before = sampler.sample(1, now_ms(), Instant::now());
    // CPU time is cumulative since boot: a busy share needs a second reading a moment later.
    std::thread::sleep(Duration::from_millis(250));
    let after = sampler.sample(2, now_ms(), Instant::now());
    match format {
        SampleFormat::Json => {
            let text = serde_json::to_string_pretty(&headroom_common::schema::versioned(&after))
                .context("encoding the sample as JSON")?;
            println!("{text}");
        }
        SampleFormat::Table => print!(
            "{}",
            sample_view::render_table(&sample_view::readings(&before, &after), header)
        ),
        SampleFormat::Csv => print!(
            "{}",
            sample_view::render_csv(&sample_view::readings(&before, &after), header)
        ),
    }
    Ok(())
}

fn enroll_host(args: EnrollArgs) -> ExitCode {
    use headroom_agent::enroll::{self, EnrollError};
    let paths = match (&args.state_dir, args.config.exists()) {
        (Some(dir), _) => enroll::default_paths(dir),
        (None, true) => match config::load(&args.config) {
            Ok(config) => config.tls,
            Err(e) => return usage_error(e),
        },
        (None, false) => enroll::default_paths(std::path::Path::new(config::DEFAULT_STATE_DIR)),
    };
    let host = match args
        .host
        .or_else(|| enroll::local_host_name(std::path::Path::new("/proc")))
    {
        Some(host) => host,
        None => return usage_error("cannot read this machine's host name (pass --host NAME)"),
    };
    let token = match enrollment_token(
        args.token,
        args.token_file.as_deref(),
        std::env::var("HEADROOM_TOKEN").ok(),
    ) {
        Ok(token) => token,
        Err(message) => return usage_error(message),
    };
    let collector = enroll::with_default_enroll_port(&args.collector);
    let options = enroll::EnrollOptions {
        server_name: args
            .server_name
            .unwrap_or_else(|| enroll::server_name_of(&collector)),
        collector,
        token,
        ca_fingerprint: args.ca_fingerprint,
        host,
        paths,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return runtime_error(anyhow::anyhow!("cannot start the runtime: {e}")),
    };
    match runtime.block_on(enroll::enroll(&options)) {
        Ok(issued) => {
            let labels: Vec<String> = issued.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!(
                "enrolled as {} (labels: {}); wrote {}, {} and {}",
                issued.host,
                if labels.is_empty() {
                    "none".to_string()
                } else {
                    labels.join(",")
                },
                options.paths.cert.display(),
                options.paths.key.display(),
                options.paths.ca.display()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            let line = match &error {
                EnrollError::Refused(refusal) => enroll::refusal_line(refusal),
                other => other.to_string(),
            };
            eprintln!("headroom-agent: {line}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// The enrollment token: `--token`, else the first line of `--token-file`, else `HEADROOM_TOKEN`.
fn enrollment_token(
    argument: Option<String>,
    file: Option<&std::path::Path>,
    environment: Option<String>,
) -> Result<String, String> {
    let (token, origin) = match (argument, file) {
        (Some(token), _) => (token, "--token".to_string()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!("--token-file {}: {e} (write the token from 'headroom-collector token create' there)", path.display())
            })?;
            (
                text.lines().next().unwrap_or_default().to_string(),
                format!("--token-file {}", path.display()),
            )
        }
        (None, None) => match environment {
            Some(token) => (token, "HEADROOM_TOKEN".to_string()),
            None => {
                return Err(
                    "no enrollment token: pass --token-file FILE or set HEADROOM_TOKEN (from 'headroom-collector token create')"
                        .to_string(),
                )
            }
        },
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err(format!(
            "{origin}: the enrollment token is empty (from 'headroom-collector token create')"
        ));
    }
    Ok(token)
}

/// Logs at the level HEADROOM_LOG names (error, warn, info, debug, trace; default info). The agent takes a
/// level only, not per-module directives: the directive parser is a regular-expression engine the agent
/// would otherwise carry on every host.
fn init_logging() {
    let level = std::env::var("HEADROOM_LOG")
        .ok()
        .and_then(|text| {
            text.trim()
                .parse::<tracing_subscriber::filter::LevelFilter>()
                .ok()
        })
        .unwrap_or(tracing_subscriber::filter::LevelFilter::INFO);
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        // Colours for a person at a terminal only: the journal and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

fn usage_error(error: impl std::fmt::Display) -> ExitCode {
    eprintln!("headroom-agent: {error}");
    ExitCode::from(2)
}

fn runtime_error(error: anyhow::Error) -> ExitCode {
    eprintln!("headroom-agent: {error:#}");
    ExitCode::from(1)
}

#[cfg(test)]
mod tests {
    use super::enrollment_token;

    #[test]
    fn issue_15_the_token_comes_from_the_argument_a_file_or_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "abc.def\n").unwrap();
        let env = Some("env.token".to_string());
        assert_eq!(
            enrollment_token(Some("arg.t".into()), None, env.clone()).unwrap(),
            "arg.t"
        );
        assert_eq!(
            enrollment_token(None, Some(&file), env.clone()).unwrap(),
            "abc.def"
        );
        assert_eq!(enrollment_token(None, None, env).unwrap(), "env.token");
        let missing = enrollment_token(None, None, None).unwrap_err();
        assert!(
            missing.contains("--token-file") && missing.contains("HEADROOM_TOKEN"),
            "{missing}"
        );
        std::fs::write(&file, "\n").unwrap();
        assert!(enrollment_token(None, Some(&file), None)
            .unwrap_err()
            .contains("empty"));
        let absent = enrollment_token(None, Some(&dir.path().join("nope")), None).unwrap_err();
        assert!(absent.contains("nope"), "{absent}");
    }
}
