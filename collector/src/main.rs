//! `headroom-collector`: parse the command line, load the config, call the library, map errors to exit codes.
//!
//! `cli.rs` declares the command line; `commands/` holds the command bodies; this file dispatches them.

use clap::{CommandFactory, Parser};
use headroom_collector::app::{demo, serve};
use headroom_common::effective::render_document;
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

mod cli;
mod commands;

use cli::{Cli, Command, DocumentedCli, Invocation};
use commands::support::{load_config, Failure};

/// jemalloc for the whole process (the `unprefixed_malloc_on_supported_platforms` feature makes it the C
/// `malloc` too, so SQLite's page cache and ring share it): at the median of alternating runs with thousands
/// of connections, less CPU per sample and less memory per host than glibc's allocator (`bench/RESULTS.md`,
/// "jemalloc, ACK_FREQUENCY again").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let command = match Cli::parse().command {
        Invocation::Documented(command) => command,
        Invocation::GenerateDocs { out } => {
            return match headroom_common::cli_docs::write(DocumentedCli::command(), &out) {
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
        Command::Ca { command } => commands::identity::ca(command)?,
        Command::Cert { command } => commands::identity::cert(command)?,
        Command::Token { command } => commands::identity::token(command)?,
        Command::Signer { place, socket } => commands::identity::signer(place, socket)?,
        Command::CheckConfig { config: path, format } => {
            let config = load_config(&path)?;
            let origin = path.display().to_string();
            print!("{}", render_document(&config.effective(), &origin, format));
        }
        Command::Fleet {
            view,
            by,
            window,
            stat,
            end,
        } => commands::views::fleet(view, by, window, stat, end)?,
        Command::Sizing(args) => commands::views::sizing(args)?,
        Command::Report(args) => commands::views::report(args)?,
        Command::Hosts(args) => commands::views::hosts(args)?,
        Command::Outliers { view, group } => commands::views::outliers(view, group)?,
        Command::Alarms(args) => commands::views::alarms(args)?,
    }
    Ok(())
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
        // Colours for a person at a terminal only: the journal and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
