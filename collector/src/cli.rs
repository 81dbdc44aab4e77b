//! The command line of `headroom-collector`: every command and its options (clap), kept apart from the
//! dispatch in `main.rs`; `generate-docs` builds the man page and completions from it.

use clap::{Parser, Subcommand};
use headroom_collector::config;
use headroom_collector::sizing::{self, ReportFormat};
use headroom_collector::views::client;
use headroom_collector::views::end::EndAt;
use headroom_collector::views::render::{Format, Output};
use headroom_common::effective::DocumentFormat;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "headroom-collector",
    version,
    about = "headroom collector: fleet ingest, views and PKI"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Invocation,
}

/// The command line as the man pages and completions show it: every command but the hidden `generate-docs`,
/// which clap would otherwise still list in completions (it cannot remove a subcommand once declared).
#[derive(Parser)]
#[command(
    name = "headroom-collector",
    version,
    about = "headroom collector: fleet ingest, views and PKI"
)]
pub(crate) struct DocumentedCli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

// Parsed once per run, so the size difference between the variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub(crate) enum Invocation {
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
pub(crate) enum Command {
    /// Run the service (systemd runs this).
    Serve {
        #[arg(long, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Quickstart: throwaway PKI and state, a collector, a real local agent and simulated hosts.
    Demo {
        /// How many simulated hosts (named sim-…) to start.
        #[arg(long, default_value_t = 9)]
        simulated_hosts: usize,
        /// Print the fleet summary this often.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        print_every: Duration,
        /// Stop by itself after this long instead of waiting for Ctrl-C.
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
    },
    /// Certificate authority.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
    /// Agent certificates.
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
    /// One-time enrollment tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The CA key's only reader: signs agent certificates for `serve`. Started by `serve` as a child on
    /// its stdin/stdout, or with --socket by its own unit (then set identity.signer_socket).
    Signer {
        #[command(flatten)]
        place: PlaceArgs,
        /// Listen on this Unix socket (made 0660) instead of stdin/stdout.
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// Check a config file and print the effective configuration (defaults filled in, paths resolved).
    CheckConfig {
        #[arg(long, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
        /// toml (reads back as the same configuration) or json.
        #[arg(long, value_enum, default_value_t = DocumentFormat::Toml)]
        format: DocumentFormat,
    },
    /// Fleet summary per group and zone, from a running collector; with --by or --window, percentiles
    /// across hosts of each host's mean over the window, grouped by any labels.
    Fleet {
        #[command(flatten)]
        view: ViewArgs,
        /// Labels to group by, comma-separated, like group,zone (default group,zone with --window).
        #[arg(long)]
        by: Option<String>,
        /// live, or a window like 5m, 1h, 1d, 7d, 30d (raw rows up to 1h, rollups beyond).
        #[arg(long)]
        window: Option<String>,
        /// Per-host statistic over the window: mean, p50, p90, p99, p99.9 or max, from the rollup sketches
        /// (default p99 beyond 1h, mean of raw rows up to 1h); adds a pooled row per group (every sample,
        /// merged sketches).
        #[arg(long)]
        stat: Option<String>,
        /// Where the window ends: an RFC 3339 time, or latest (the newest sample); default now.
        #[arg(long, default_value = "now")]
        end: EndAt,
    },
    /// Hosts flagged as outliers among their peers, each explained.
    Outliers {
        #[command(flatten)]
        view: ViewArgs,
        /// Only this group.
        #[arg(long)]
        group: Option<String>,
    },
    /// Pending and firing alarms with their runbooks.
    Alarms(ViewArgs),
    /// One row per host, from a running collector.
    Hosts(ViewArgs),
    /// Failover sizing per service group, read from the database file (no collector needs to run).
    Sizing(SizingArgs),
    /// Write a sizing and capacity report to a file, read from the database file (a copy works).
    Report(ReportArgs),
}

#[derive(Subcommand)]
pub(crate) enum CaCommand {
    /// Create the CA and the collector's server certificate in <state_dir>/pki.
    Init {
        #[command(flatten)]
        place: PlaceArgs,
        /// Names agents use to reach the collector (DNS names or IPs); repeat for several.
        #[arg(long = "server-name", default_values_t = ["localhost".to_string(), "127.0.0.1".to_string()])]
        server_names: Vec<String>,
        /// Replace an existing CA (every agent certificate must then be issued again).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum CertCommand {
    /// Issue a certificate for a host that cannot enroll; the private key then travels by hand.
    Issue {
        #[command(flatten)]
        place: PlaceArgs,
        /// The host's identity (lowercase DNS name).
        #[arg(long)]
        host: String,
        /// Where to write agent.pem, agent.key and ca.pem (default: ./<host>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Validity in days, 1 to 365 (the longest `identity.cert_validity` enrollment may use).
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
    /// Replace the collector's own server certificate (same CA); a running collector picks it up within
    /// seconds, or at once on SIGHUP, and keeps its agent connections.
    Server {
        #[command(flatten)]
        place: PlaceArgs,
        /// Names agents use to reach the collector (DNS names or IPs); repeat for several.
        #[arg(long = "server-name", default_values_t = ["localhost".to_string(), "127.0.0.1".to_string()])]
        server_names: Vec<String>,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// List issued certificates: host, serial, labels, not-after, last seen.
    List {
        #[command(flatten)]
        place: PlaceArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Revoke a host's certificates or one serial; a connected host is cut off within seconds.
    Revoke {
        #[command(flatten)]
        place: PlaceArgs,
        /// Revoke every unexpired certificate of this host.
        #[arg(long, conflicts_with = "serial", required_unless_present = "serial")]
        host: Option<String>,
        /// Revoke this serial (hex, as "cert list" shows it).
        #[arg(long)]
        serial: Option<String>,
    },
}

#[derive(Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a token and print it (shown only this once).
    Create {
        #[command(flatten)]
        place: PlaceArgs,
        /// How long the token stays valid.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// How many hosts may enroll with it.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// Label written into every certificate enrolled with it, KEY=VALUE; repeat for several.
        #[arg(long = "label")]
        labels: Vec<String>,
        /// Enroll only this host, even while it holds a valid certificate (a re-imaged host); its older
        /// certificates are revoked when it enrolls.
        #[arg(long)]
        host: Option<String>,
    },
    /// List tokens: id, uses left, expiry, labels (never the secret).
    List {
        #[command(flatten)]
        place: PlaceArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(clap::Args)]
pub(crate) struct PlaceArgs {
    /// Collector config whose state_dir holds the PKI.
    #[arg(long, default_value = config::DEFAULT_PATH)]
    pub(crate) config: PathBuf,
    /// State directory to use instead of the config's.
    #[arg(long)]
    pub(crate) state_dir: Option<PathBuf>,
}

/// Where `sizing` and `report` read from.
#[derive(clap::Args)]
pub(crate) struct DatabaseArgs {
    /// The database file, or a copy of it (default: <state_dir>/headroom.db from the config).
    #[arg(long)]
    pub(crate) db: Option<PathBuf>,
    /// Read a Prometheus-compatible query API instead of a database, like prometheus=http://127.0.0.1:9090:
    /// the same per-minute group sums with PromQL from the series the collectors export (one report for a
    /// fleet spread over many collectors).
    #[arg(long, conflicts_with = "db", value_parser = headroom_collector::views::promql::parse_source)]
    pub(crate) source: Option<String>,
    /// Collector config: its state_dir and [sizing] section (defaults apply when the file is absent).
    #[arg(long, default_value = config::DEFAULT_PATH)]
    pub(crate) config: PathBuf,
    /// Where the window ends: an RFC 3339 time, or latest (the newest sample in the database); default now.
    #[arg(long, default_value = "now")]
    pub(crate) end: EndAt,
}

/// What-if options of `sizing` and `report`: each one given is a scenario of its own, sized as a row
/// beside the baseline; `--scenario` combines several into one row.
#[derive(clap::Args)]
pub(crate) struct WhatIfArgs {
    /// Scenario: load grows by this much, like 20% (repeatable, one row each).
    #[arg(long, value_parser = sizing::Scenario::parse_growth, allow_hyphen_values = true)]
    pub(crate) growth: Vec<f64>,
    /// Scenario: another target, like cpu=70% (cpu, memory, connections; repeatable, one row each).
    #[arg(long, value_parser = sizing::Scenario::parse_target)]
    pub(crate) target: Vec<(sizing::scenario::TargetKind, f64)>,
    /// Scenario: lose this zone, like zone=eu-1a (the only loss the row sizes; repeatable, one row each).
    #[arg(long, value_parser = sizing::Scenario::parse_lose)]
    pub(crate) lose: Vec<String>,
    /// Scenario: lose this many hosts at once (N+k, the only loss the row sizes; repeatable, one row each).
    #[arg(long)]
    pub(crate) lose_hosts: Vec<u32>,
    /// Scenario: add hosts to a group, like group=web,hosts=3, placed to keep zones balanced (repeatable,
    /// one row each).
    #[arg(long, value_parser = sizing::Scenario::parse_add)]
    pub(crate) add: Vec<(String, u32)>,
    /// One scenario combining several options, like "growth=20%,lose=zone=eu-1a,add=group=web,hosts=3"
    /// (OPTION=VALUE items as the options above; repeatable, one row each).
    #[arg(long, value_parser = sizing::Scenario::parse_combined)]
    pub(crate) scenario: Vec<sizing::Scenario>,
}

impl WhatIfArgs {
    pub(crate) fn scenarios(&self) -> Vec<sizing::Scenario> {
        sizing::WhatIfOptions {
            growth: self.growth.clone(),
            targets: self.target.clone(),
            lose_zones: self.lose.clone(),
            lose_hosts: self.lose_hosts.clone(),
            add: self.add.clone(),
            combined: self.scenario.clone(),
        }
        .scenarios()
    }
}

#[derive(clap::Args)]
pub(crate) struct SizingArgs {
    /// Window ending now, like "14d" (default: sizing.window from the config).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) window: Option<Duration>,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    #[command(flatten)]
    pub(crate) database: DatabaseArgs,
    #[command(flatten)]
    pub(crate) what_if: WhatIfArgs,
}

/// What `report` writes.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ReportKind {
    /// Failover sizing and capacity per group.
    Sizing,
    /// The weekly operational review: alarms, time to resolve, noisy rules, outliers, gaps, headroom now
    /// and a window earlier, hosts added and removed.
    Review,
}

#[derive(clap::Args)]
pub(crate) struct ReportArgs {
    /// sizing, or review (the weekly operational review; html, md or json).
    #[arg(long, value_enum, default_value_t = ReportKind::Sizing)]
    pub(crate) kind: ReportKind,
    /// Window ending now, like "30d" (default: sizing.window from the config; 7d for a review).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) window: Option<Duration>,
    /// html, csv, json or md.
    #[arg(long, default_value = "html")]
    pub(crate) format: ReportFormat,
    /// The file to write.
    #[arg(long)]
    pub(crate) out: PathBuf,
    #[command(flatten)]
    pub(crate) database: DatabaseArgs,
    #[command(flatten)]
    pub(crate) what_if: WhatIfArgs,
}

/// How every table command prints: `--format table|json|csv` and `--no-header`.
#[derive(clap::Args)]
pub(crate) struct OutputArgs {
    /// table (human units), json (documented in docs/API.md, with schema_version) or csv (raw numbers).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
    /// Leave out the header row and summary lines of the table or CSV.
    #[arg(long)]
    pub(crate) no_header: bool,
}

impl OutputArgs {
    pub(crate) fn output(&self) -> Output {
        Output {
            format: self.format,
            header: !self.no_header,
        }
    }
}

#[derive(clap::Args)]
pub(crate) struct ViewArgs {
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// The collector's HTTP API: IP:port (plain HTTP) or an https:// URL (default: http_listen from the
    /// config, else 127.0.0.1:9601). `fleet` takes it several times and merges the collectors' live views.
    #[arg(long, value_parser = client::Api::parse_base)]
    pub(crate) api: Vec<String>,
    /// File holding the API's bearer token (default: http.token_file from the config, when set).
    #[arg(long)]
    pub(crate) token_file: Option<PathBuf>,
    /// PEM CA certificates trusted for an https:// API besides the system's store (default: the config's
    /// tls.ca, the fleet CA, when the API is HTTPS).
    #[arg(long)]
    pub(crate) api_ca: Option<PathBuf>,
    #[arg(long, default_value = config::DEFAULT_PATH)]
    pub(crate) config: PathBuf,
}

impl ViewArgs {
    pub(crate) fn output(&self) -> Output {
        self.output.output()
    }
}
