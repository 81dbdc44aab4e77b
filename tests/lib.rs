//! Helpers shared by the end-to-end tests: start the real binaries on loopback in temp dirs, wait for
//! conditions, read the collector's HTTP API, and stop processes by PID.

pub mod api_doc;
pub mod flood;
pub mod source;

use headroom_common::http::{BlockingClient, ClientOptions};
use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Path of a workspace binary, built next to the test executable (`cargo build --bins` first).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` before the tests",
        path.display()
    );
    path
}

/// How many tests holding the shared suite lock run at once. Most end-to-end tests wait on real binaries,
/// peers and deadlines rather than compute, so six at once finish far sooner than one per core on a 2-core
/// machine, while the CPU-heavy and timing-sensitive ones run alone (`exclusive`).
pub const MAX_SHARED: usize = 6;

/// How many tests may take `long_shared()`: the slots and two more, so that the last of them starts when
/// one of the first ends, about half a minute in, and the suite's shared part does not end on it alone.
pub const MAX_LONG: usize = MAX_SHARED + 2;

/// Test threads of the end-to-end binary: more than it has tests, so that every test starts at once and
/// waits on the suite lock, and the lock, not the harness's name order, decides what runs. The harness
/// hands tests to threads in name order; with fewer threads than tests, a long test late in that order
/// (`web_view`) started only when earlier ones were done and then ran on alone at the end. A waiting test's
/// thread sleeps on the lock's condition variable and costs nothing but its stack.
pub const HARNESS_THREADS: usize = 256;

/// The suite lock every end-to-end test takes first (`shared` or `exclusive`).
struct SuiteLock {
    state: Mutex<SuiteState>,
    changed: Condvar,
}

struct SuiteState {
    shared: usize,
    exclusive: bool,
    /// Long shared tests waiting for a slot: while there are any, a free slot goes to one of them.
    long_waiting: usize,
}

static SUITE: SuiteLock = SuiteLock {
    state: Mutex::new(SuiteState {
        shared: 0,
        exclusive: false,
        long_waiting: 0,
    }),
    changed: Condvar::new(),
};

impl SuiteLock {
    /// Lets `queue` note the waiting test, waits until `free(state)` holds, then lets `take` change the
    /// state. A test that panicked while holding the lock does not stop the rest.
    fn acquire(
        &self,
        queue: impl FnOnce(&mut SuiteState),
        free: impl Fn(&SuiteState) -> bool,
        take: impl FnOnce(&mut SuiteState),
    ) {
        trace("wait");
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        queue(&mut state);
        let mut state = self
            .changed
            .wait_while(state, |state| !free(state))
            .unwrap_or_else(PoisonError::into_inner);
        take(&mut state);
        trace("run");
    }

    fn release(&self, give_back: impl FnOnce(&mut SuiteState)) {
        trace("done");
        give_back(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner));
        self.changed.notify_all();
    }
}

/// With `HEADROOM_SUITE_TRACE` set, each test's wait for the suite lock, its start and its end go to stderr
/// with the milliseconds since the first test asked, to see where the suite's wall time goes.
fn trace(event: &str) {
    static FIRST: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    if std::env::var_os("HEADROOM_SUITE_TRACE").is_some() {
        let at = FIRST.get_or_init(Instant::now).elapsed().as_millis();
        let thread = std::thread::current();
        eprintln!("suite {at} {event} {}", thread.name().unwrap_or("?"));
    }
}

/// Held by a test that runs beside others (`shared`).
pub struct SharedTest(());

impl Drop for SharedTest {
    fn drop(&mut self) {
        SUITE.release(|state| state.shared -= 1);
    }
}

/// Held by a test that runs alone (`exclusive`).
pub struct ExclusiveTest(());

impl Drop for ExclusiveTest {
    fn drop(&mut self) {
        SUITE.release(|state| state.exclusive = false);
    }
}

/// Take at the start of a test that can run beside others: it waits while an exclusive test runs,
/// `MAX_SHARED` shared ones do, or a long shared test waits for a slot.
pub fn shared() -> SharedTest {
    SUITE.acquire(
        |_| {},
        |state| !state.exclusive && state.shared < MAX_SHARED && state.long_waiting == 0,
        |state| state.shared += 1,
    );
    SharedTest(())
}

/// Take at the start of a shared test that runs for twenty seconds or more of wall time (it waits for a
/// minute boundary, an outage or a certificate's lifetime, or builds packages): it gets the next free slot
/// before the short tests, so that it starts early and the suite does not end waiting on it alone, the
/// short ones filling the slots around it. At most `MAX_LONG` tests take it.
pub fn long_shared() -> SharedTest {
    SUITE.acquire(
        |state| state.long_waiting += 1,
        |state| !state.exclusive && state.shared < MAX_SHARED,
        |state| {
            state.long_waiting -= 1;
            state.shared += 1;
        },
    );
    SharedTest(())
}

/// Take at the start of a test that must run alone in this process (it floods the listeners, measures
/// latency, or loads the machine with many agents): it waits until no other test holds the
/// lock. Shared tests are let in first, so the exclusive ones run one after another once the shared ones
/// are done, rather than each waiting for a different set of shared tests to drain.
pub fn exclusive() -> ExclusiveTest {
    SUITE.acquire(
        |_| {},
        |state| !state.exclusive && state.shared == 0,
        |state| state.exclusive = true,
    );
    ExclusiveTest(())
}

/// Every port handed out by `free_udp_port` and `free_tcp_port` in this process, so that two tests running at
/// once never get the same one, and where the next search starts.
static HANDED_OUT: Mutex<(BTreeSet<(bool, u16)>, u16)> = Mutex::new((BTreeSet::new(), 0));

/// The ports the tests hand out: the 12,000 below the kernel's ephemeral range. The kernel gives those to
/// nobody on its own (a socket bound to port 0, an agent's QUIC endpoint or an HTTP client's connection, gets
/// one from the ephemeral range), so a port chosen here cannot be taken by a concurrent test's process
/// between the moment it is chosen and the moment its server binds it, nor while a killed collector restarts.
pub fn port_range() -> std::ops::Range<u16> {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    ephemeral_low.saturating_sub(12_000).max(1_024)..ephemeral_low
}

/// A port of `port_range` that `can_bind` and that this process has not handed out before; the search starts
/// at a place given by the process ID, so that runs on one machine at the same time rarely meet. When the
/// range has none (a system with its ephemeral range set low), a port the kernel chooses.
fn unused_port(tcp: bool, can_bind: impl Fn(u16) -> bool, kernel_choice: impl Fn() -> u16) -> u16 {
    let mut guard = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let (handed_out, cursor) = &mut *guard;
    let range = port_range();
    let len = range.end.saturating_sub(range.start);
    if len > 0 {
        if *cursor == 0 {
            *cursor = (std::process::id() % u32::from(len)) as u16;
        }
        for _ in 0..len {
            let port = range.start + *cursor % len;
            *cursor = (*cursor + 1) % len;
            if !handed_out.contains(&(tcp, port)) && can_bind(port) {
                handed_out.insert((tcp, port));
                return port;
            }
        }
    }
    loop {
        let port = kernel_choice();
        if handed_out.insert((tcp, port)) {
            return port;
        }
    }
}

/// A free loopback UDP port (bound and released; this process never hands it out twice, and no process gets
/// it from the kernel by chance: `port_range`).
pub fn free_udp_port() -> u16 {
    unused_port(
        false,
        |port| UdpSocket::bind(("127.0.0.1", port)).is_ok(),
        || {
            UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        },
    )
}

/// A free loopback TCP port (as `free_udp_port`).
pub fn free_tcp_port() -> u16 {
    unused_port(
        true,
        |port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        },
    )
}

/// Poll `check` every 100 ms until it returns Some or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// GET a path of the collector's API and parse the JSON body; None when unreachable or not 200.
pub fn api_get(addr: SocketAddr, path: &str) -> Option<serde_json::Value> {
    let client = BlockingClient::new(&ClientOptions {
        timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    })
    .ok()?;
    let response = client.get(&format!("http://{addr}{path}"), &[]).ok()?;
    if response.status != 200 {
        return None;
    }
    serde_json::from_str(&response.body).ok()
}

/// A plain HTTP/1.1 response: status code, lowercased header lines, body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl HttpResponse {
    /// The value of header `name` (lowercase), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == name).then(|| value.trim())
        })
    }
}

/// GET `path` with extra request header lines (`"Accept: application/json"`); None when unreachable.
pub fn http_get(addr: SocketAddr, path: &str, headers: &[&str]) -> Option<HttpResponse> {
    url_get(&format!("http://{addr}{path}"), headers, None)
}

/// GET a full URL (`https://…` too) with extra header lines (`"Authorization: Bearer …"`), trusting `ca_pem`
/// besides the system's store; None when unreachable (refused, or the TLS handshake failed).
pub fn url_get(url: &str, headers: &[&str], ca_pem: Option<&[u8]>) -> Option<HttpResponse> {
    let client = BlockingClient::new(&ClientOptions {
        timeout: Duration::from_secs(10),
        extra_roots_pem: ca_pem.map(<[u8]>::to_vec),
        ..ClientOptions::default()
    })
    .ok()?;
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim(), value.trim()))
        .collect();
    let response = client.get_with_headers(url, &[], &headers).ok()?;
    let head = response
        .headers
        .iter()
        .map(|(name, value)| format!("{name}: {}", value.to_ascii_lowercase()))
        .collect::<Vec<_>>()
        .join("\r\n");
    Some(HttpResponse {
        status: response.status,
        head,
        body: response.body,
    })
}

/// The value of the sample line `name` (with its labels, `name{reason="x"}`) in a Prometheus text scrape, 0
/// when absent.
pub fn scraped_value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Runs `headroom-collector ARGS`, asserts it succeeded and returns its stdout.
pub fn collector_ok(args: &[&str]) -> String {
    let out = Command::new(binary("headroom-collector"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A child process that is killed when dropped, with its output captured to files.
pub struct Process {
    pub child: Child,
    pub name: String,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Process {
    pub fn start(name: &str, binary: &Path, args: &[&str], dir: &Path) -> Process {
        Self::start_with_env(name, binary, args, &[], dir)
    }

    /// Like `start`, with extra environment variables (e.g. `LD_PRELOAD` of libfaketime).
    pub fn start_with_env(
        name: &str,
        binary: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        dir: &Path,
    ) -> Process {
        let stdout = dir.join(format!("{name}.stdout"));
        let stderr = dir.join(format!("{name}.stderr"));
        let child = Command::new(binary)
            .args(args)
            .envs(env.iter().copied())
            .env("HEADROOM_LOG", "info")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        Process {
            child,
            name: name.to_string(),
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Send SIGTERM and assert a clean exit (code 0) within 20 s, showing its log otherwise.
    pub fn stop_cleanly(&mut self) {
        let code = self.terminate(Duration::from_secs(20));
        assert_eq!(
            code,
            Some(0),
            "{} did not stop cleanly:\n{}",
            self.name,
            self.stderr_text()
        );
    }

    /// Send SIGTERM and wait up to `timeout` for the exit code.
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        // SAFETY: kill(2) on a PID this process spawned and has not reaped, so it cannot name another process.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A collector with its own CA in a temp dir, listening on loopback.
pub struct Collector {
    pub dir: tempfile::TempDir,
    pub quic: SocketAddr,
    /// The enrollment listener (`enroll_listen`).
    pub enroll: SocketAddr,
    pub http: SocketAddr,
    pub process: Process,
    restarts: u32,
}

impl Collector {
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("collector.toml")
    }

    /// The collector's SQLite database.
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("collector/headroom.db")
    }

    /// `kill -9` the collector.
    pub fn kill9(&mut self) {
        let _ = self.process.child.kill();
        let _ = self.process.child.wait();
    }

    /// Start the collector again on the same addresses and state (after `kill9` or a stop).
    pub fn restart(&mut self) {
        self.restarts += 1;
        let name = format!("collector-{}", self.restarts);
        self.process = Process::start(
            &name,
            &binary("headroom-collector"),
            &["serve", "--config", self.config_path().to_str().unwrap()],
            self.dir.path(),
        );
        let http = self.http;
        let up = wait_for(Duration::from_secs(30), || api_get(http, "/api/v1/health"));
        assert!(
            up.is_some(),
            "collector did not come back: {}",
            self.process.stderr_text()
        );
    }

    pub fn start() -> Collector {
        Self::start_with("")
    }

    /// Start with extra lines appended to the collector config.
    pub fn start_with(extra_config: &str) -> Collector {
        Self::start_in(extra_config, None)
    }

    /// Start another collector that shares `other`'s PKI (CA, server certificate, certificate registry),
    /// copied into its own state directory: agents enrolled with either are accepted by both.
    pub fn start_sharing_pki(other: &Collector, extra_config: &str) -> Collector {
        Self::start_in(extra_config, Some(&other.pki_dir()))
    }

    fn start_in(extra_config: &str, shared_pki: Option<&Path>) -> Collector {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("collector");
        if let Some(source) = shared_pki {
            let pki = state.join("pki");
            std::fs::create_dir_all(&pki).unwrap();
            for entry in std::fs::read_dir(source).unwrap() {
                let entry = entry.unwrap();
                if entry.file_type().unwrap().is_file() {
                    std::fs::copy(entry.path(), pki.join(entry.file_name())).unwrap();
                }
            }
        } else {
            let out = Command::new(binary("headroom-collector"))
                .args(["ca", "init", "--state-dir"])
                .arg(&state)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "ca init: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let quic: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
        let enroll: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
        let http: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
        let config = dir.path().join("collector.toml");
        std::fs::write(
            &config,
            format!(
                "state_dir = \"{}\"\nlisten = \"{quic}\"\nenroll_listen = \"{enroll}\"\nhttp_listen = \"{http}\"\n\
                 {extra_config}",
                state.display()
            ),
        )
        .unwrap();
        let process = Process::start(
            "collector",
            &binary("headroom-collector"),
            &["serve", "--config", config.to_str().unwrap()],
            dir.path(),
        );
        let up = wait_for(Duration::from_secs(20), || api_get(http, "/api/v1/health"));
        assert!(
            up.is_some(),
            "collector did not come up: {}",
            process.stderr_text()
        );
        Collector {
            dir,
            quic,
            enroll,
            http,
            process,
            restarts: 0,
        }
    }

    pub fn pki_dir(&self) -> PathBuf {
        self.dir.path().join("collector/pki")
    }

    /// Issue a certificate for `host` into a fresh agent state dir and return that dir.
    pub fn issue(&self, host: &str) -> PathBuf {
        let out_dir = self.dir.path().join("agents").join(host);
        let out = Command::new(binary("headroom-collector"))
            .args(["cert", "issue", "--host", host, "--state-dir"])
            .arg(self.dir.path().join("collector"))
            .arg("--out")
            .arg(&out_dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cert issue: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out_dir
    }

    /// Write an agent config for a state dir made by `issue`, with labels, and start the agent.
    pub fn start_agent(&self, host: &str, labels: &[(&str, &str)]) -> Process {
        self.start_agent_extra(host, labels, "")
    }

    /// Like `start_agent`, with extra TOML appended to the agent config (e.g. a `[sampling]` section).
    pub fn start_agent_extra(&self, host: &str, labels: &[(&str, &str)], extra: &str) -> Process {
        let state = self.issue(host);
        start_agent_configured(&state, &self.quic.to_string(), labels, extra, self.dir.path())
    }

    /// Runs `headroom-collector ARGS --state-dir <this collector's state>`.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(binary("headroom-collector"))
            .args(args)
            .arg("--state-dir")
            .arg(self.dir.path().join("collector"))
            .output()
            .unwrap()
    }

    /// `token create EXTRA...` and the token it printed (its first line).
    pub fn create_token(&self, extra: &[&str]) -> String {
        let mut args = vec!["token", "create"];
        args.extend_from_slice(extra);
        let out = self.cli(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .trim()
            .to_string()
    }

    /// The CA fingerprint agents pin.
    pub fn ca_pin(&self) -> String {
        headroom_common::pki::fingerprint_sha256(
            &std::fs::read_to_string(self.pki_dir().join("ca.pem")).unwrap(),
        )
        .unwrap()
    }

    /// `headroom-agent enroll` of `host` into `state` with `token`, against the enrollment listener.
    pub fn enroll_into(&self, state: &Path, host: &str, token: &str) -> std::process::Output {
        self.enroll_pinned(state, host, token, &self.ca_pin())
    }

    /// `enroll_into` pinning the CA fingerprint `pin` (a wrong one, to test the pin).
    pub fn enroll_pinned(&self, state: &Path, host: &str, token: &str, pin: &str) -> std::process::Output {
        Command::new(binary("headroom-agent"))
            .args([
                "enroll",
                "--collector",
                &self.enroll.to_string(),
                "--token",
                token,
            ])
            .args(["--ca-fingerprint", pin, "--host", host])
            .args(["--server-name", "localhost", "--state-dir"])
            .arg(state)
            .output()
            .unwrap()
    }

    pub fn hosts(&self) -> Vec<serde_json::Value> {
        api_get(self.http, "/api/v1/hosts")
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    /// The host entry once it has reported at least `min_seq`.
    pub fn wait_host(&self, host: &str, min_seq: u64, timeout: Duration) -> Option<serde_json::Value> {
        wait_for(timeout, || {
            self.hosts()
                .into_iter()
                .find(|h| h["host"] == host && h["seq"].as_u64().unwrap_or(0) >= min_seq)
        })
    }
}

/// Start an agent whose state dir holds agent.pem, agent.key and ca.pem.
pub fn start_agent_with(
    state: &Path,
    collector: SocketAddr,
    labels: &[(&str, &str)],
    logs: &Path,
) -> Process {
    start_agent_configured(state, &collector.to_string(), labels, "", logs)
}

/// The agent config for a state dir, collector address, labels and extra TOML sections.
pub fn agent_config_text(state: &Path, collector: &str, labels: &[(&str, &str)], extra: &str) -> String {
    let mut text = format!(
        "state_dir = \"{}\"\n[collector]\naddress = \"{collector}\"\nserver_name = \"localhost\"\n",
        state.display()
    );
    text.push_str(extra);
    text.push_str("\n[labels]\n");
    for (key, value) in labels {
        text.push_str(&format!("{key} = \"{value}\"\n"));
    }
    text
}

/// Write the agent config into the state dir and start `headroom-agent run` with it.
pub fn start_agent_configured(
    state: &Path,
    collector: &str,
    labels: &[(&str, &str)],
    extra: &str,
    logs: &Path,
) -> Process {
    let config = state.join("agent.toml");
    std::fs::write(&config, agent_config_text(state, collector, labels, extra)).unwrap();
    let name = state.file_name().unwrap().to_string_lossy().to_string();
    Process::start(
        &format!("agent-{name}"),
        &binary("headroom-agent"),
        &["run", "--config", config.to_str().unwrap()],
        logs,
    )
}

/// `headroom-collector demo` running in `dir`, with what it printed at start: the web view's (and API's)
/// address, its state directory and the real agent's host name.
pub struct Demo {
    pub process: Process,
    pub addr: SocketAddr,
    pub state: PathBuf,
    pub local_host: String,
}

impl Demo {
    /// Starts the demo with `--duration duration --print-every print_every` and waits for its start lines.
    pub fn start(dir: &Path, duration: &str, print_every: &str) -> Demo {
        let process = Process::start(
            "demo",
            &binary("headroom-collector"),
            &["demo", "--duration", duration, "--print-every", print_every],
            dir,
        );
        let word_after = |out: &str, prefix: &str| -> Option<String> {
            let rest = out.lines().find_map(|l| l.strip_prefix(prefix))?;
            rest.split([' ', '/']).next().map(str::to_string)
        };
        let (addr, state, local_host) = wait_for(Duration::from_secs(60), || {
            let out = process.stdout_text();
            let addr = word_after(&out, "web view: http://")?
                .parse::<SocketAddr>()
                .ok()?;
            let state = out
                .lines()
                .find_map(|l| l.strip_prefix("demo state in "))?
                .split(' ')
                .next()
                .map(PathBuf::from)?;
            Some((addr, state, word_after(&out, "real agent: ")?))
        })
        .unwrap_or_else(|| panic!("demo printed no web view address: {}", process.stderr_text()));
        Demo {
            process,
            addr,
            state,
            local_host,
        }
    }
}

/// True when end-to-end runs must not skip (CI sets HEADROOM_E2E=1).
pub fn e2e_required() -> bool {
    std::env::var("HEADROOM_E2E").is_ok_and(|v| v == "1")
}

/// Starts `bin args`, closes its standard output before reading anything, and returns what it wrote to
/// standard error once it ended (a command must end quietly when its reader goes away).
pub fn stderr_with_closed_stdout(bin: &str, args: &[&str]) -> String {
    let mut child = std::process::Command::new(binary(bin))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the command");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait for the command");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// GET `path` from a plain HTTP server on loopback: the status and the body (de-chunked), or None when
/// unreachable.
pub fn http_get_text(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let response = http_get(addr, path, &[])?;
    let body = if response.header("transfer-encoding") == Some("chunked") {
        dechunk(&response.body)
    } else {
        response.body
    };
    Some((response.status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

pub use headroom_common::names::percent_encode as url_encode;

/// Which Prometheus-compatible engine a test runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    /// Debian's `prometheus`, with its remote-write receiver on and out-of-order ingestion allowed for an
    /// hour (a batch re-sent after a crash then collapses into the samples already stored).
    Prometheus,
    /// Debian's `victoria-metrics`, deduplicating samples of a series that share a timestamp.
    VictoriaMetrics,
}

/// A real time-series engine started by the test on 127.0.0.1 in a temp dir, stopped by PID.
pub struct Engine {
    pub kind: EngineKind,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub process: Option<Process>,
    starts: u32,
}

impl Engine {
    fn binary_path(kind: EngineKind) -> &'static str {
        match kind {
            EngineKind::Prometheus => "/usr/bin/prometheus",
            EngineKind::VictoriaMetrics => "/usr/bin/victoria-metrics",
        }
    }

    /// Start the engine, or None (after printing why) when it is not installed and HEADROOM_E2E is not 1.
    pub fn start(kind: EngineKind) -> Option<Engine> {
        let binary = Self::binary_path(kind);
        if !Path::new(binary).exists() {
            assert!(
                !e2e_required(),
                "{binary} is missing and HEADROOM_E2E=1: install it (.ci/run does)"
            );
            eprintln!("skipping: {binary} is not installed (apt-get install it to run this test)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
        let mut engine = Engine {
            kind,
            addr,
            dir,
            process: None,
            starts: 0,
        };
        engine.restart();
        Some(engine)
    }

    /// (Re)start on the same address and data directory and wait until it answers.
    pub fn restart(&mut self) {
        self.starts += 1;
        let data = self.dir.path().join("data");
        let listen = self.addr.to_string();
        let args: Vec<String> = match self.kind {
            EngineKind::Prometheus => {
                let config = self.dir.path().join("prometheus.yml");
                std::fs::write(
                    &config,
                    "global: {}\nstorage:\n  tsdb:\n    out_of_order_time_window: 1h\n",
                )
                .unwrap();
                vec![
                    format!("--config.file={}", config.display()),
                    format!("--storage.tsdb.path={}", data.display()),
                    format!("--web.listen-address={listen}"),
                    "--web.enable-remote-write-receiver".into(),
                ]
            }
            EngineKind::VictoriaMetrics => vec![
                format!("-storageDataPath={}", data.display()),
                format!("-httpListenAddr={listen}"),
                "-dedup.minScrapeInterval=1ms".into(),
                "-search.latencyOffset=0s".into(),
                "-search.disableCache".into(),
                "-retentionPeriod=1y".into(),
            ],
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let name = format!("engine-{}", self.starts);
        self.process = Some(Process::start(
            &name,
            Path::new(Self::binary_path(self.kind)),
            &args,
            self.dir.path(),
        ));
        let ready_path = match self.kind {
            EngineKind::Prometheus => "/-/ready",
            EngineKind::VictoriaMetrics => "/health",
        };
        let addr = self.addr;
        let ready = wait_for(Duration::from_secs(60), || {
            http_get_text(addr, ready_path).filter(|(status, _)| *status == 200)
        });
        assert!(
            ready.is_some(),
            "{:?} did not become ready on {addr}: {}",
            self.kind,
            self.process.as_ref().unwrap().stderr_text()
        );
    }

    /// Stop it (SIGTERM, then kill) so a test can simulate an outage.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            if process.terminate(Duration::from_secs(30)).is_none() {
                let _ = process.child.kill();
                let _ = process.child.wait();
            }
        }
    }

    /// The remote_write URL for the collector config.
    pub fn write_url(&self) -> String {
        format!("http://{}/api/v1/write", self.addr)
    }

    /// The base URL of the query API (`/api/v1/query`, `/api/v1/query_range`).
    pub fn query_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An instant query at `time_s` (Unix seconds): the `data.result` array, or None on any failure.
    pub fn query(&self, promql: &str, time_s: f64) -> Option<Vec<serde_json::Value>> {
        let path = format!("/api/v1/query?query={}&time={time_s:.3}", url_encode(promql));
        let (status, body) = http_get_text(self.addr, &path)?;
        if status != 200 {
            eprintln!("query {promql}: HTTP {status}: {body}");
            return None;
        }
        let value: serde_json::Value = serde_json::from_str(&body).ok()?;
        value["data"]["result"].as_array().cloned()
    }
}

/// The collector's export status from `/api/v1/health`, once the exporter has caught up with every stored
/// row (backlog 0 and nothing newer stored), within `timeout`.
pub fn wait_export_caught_up(collector: &Collector, timeout: Duration) -> Option<serde_json::Value> {
    wait_for(timeout, || {
        let health = api_get(collector.http, "/api/v1/health")?;
        let export = health.get("export")?.clone();
        let cursor = export["cursor"].as_i64()?;
        let newest = export["newest_row"].as_i64()?;
        (newest > 0 && cursor >= newest && export["state"] == "idle").then_some(export)
    })
}

/// Stored rows per host name, read from the collector's database (read-only, while it runs).
pub fn stored_rows_per_host(db: &Path) -> std::collections::BTreeMap<String, u64> {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut statement = conn
        .prepare("SELECT h.name, COUNT(*) FROM samples s JOIN hosts h ON h.id = s.host_id GROUP BY h.name")
        .unwrap();
    let rows = statement
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))
        .unwrap();
    rows.map(|r| r.unwrap()).collect()
}

/// Debian's Chromium, run headless the way the tests need it.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// What one headless Chromium run printed.
#[derive(Debug, Clone)]
pub struct BrowserRun {
    /// Standard output (the DOM with `--dump-dom`).
    pub stdout: String,
    /// Console messages the page logged (errors, warnings, CSP refusals), one per line.
    pub console: Vec<String>,
    pub success: bool,
}

/// Runs headless Chromium once on `url` with `extra` arguments (`--dump-dom`, `--screenshot=FILE`), in a
/// fresh profile directory, with every background service off and console messages logged to stderr.
pub fn chromium(url: &str, extra: &[&str]) -> BrowserRun {
    let profile = tempfile::tempdir().unwrap();
    // A page that never finishes loading must not hang the test run.
    let mut command = Command::new("timeout");
    command
        .args(["120", CHROMIUM])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null());
    let out = command.output().expect("running chromium");
    let stderr = String::from_utf8_lossy(&out.stderr);
    BrowserRun {
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        console: stderr
            .lines()
            .filter(|line| line.contains(":CONSOLE"))
            .map(str::to_string)
            .collect(),
        success: out.status.success(),
    }
}

/// Debian's promtool (package `prometheus`).
pub const PROMTOOL: &str = "/usr/bin/promtool";

/// `promtool check metrics` over `text`; returns (success, output).
pub fn promtool_check_metrics(text: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running promtool");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let mut output = String::from_utf8_lossy(&out.stdout).to_string();
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), output)
}

#[cfg(test)]
mod port_tests {
    use super::*;

    /// The ports handed out lie below the ephemeral range (where no process gets one by chance), are free
    /// when handed out, and are never handed out twice, even with the port held by nobody afterwards.
    #[test]
    fn ports_come_from_below_the_ephemeral_range_once_each() {
        let range = port_range();
        let ephemeral_low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(range.end, ephemeral_low);
        let mut seen = BTreeSet::new();
        for _ in 0..50 {
            let udp = free_udp_port();
            let tcp = free_tcp_port();
            for port in [udp, tcp] {
                assert!(range.contains(&port), "{port} outside {range:?}");
            }
            assert!(seen.insert((false, udp)), "UDP port {udp} handed out twice");
            assert!(seen.insert((true, tcp)), "TCP port {tcp} handed out twice");
            UdpSocket::bind(("127.0.0.1", udp)).expect("a handed-out UDP port is free");
        }
        // A port someone holds is skipped.
        let held = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let held_port = held.local_addr().unwrap().port();
        let chosen = unused_port(
            true,
            |port| port != held_port && range.contains(&port),
            || held_port,
        );
        assert_ne!(chosen, held_port);
    }
}

#[cfg(test)]
mod suite_lock_tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn at_most_max_shared_run_at_once_and_an_exclusive_test_runs_alone() {
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let exclusive_saw = AtomicUsize::new(usize::MAX);
        std::thread::scope(|scope| {
            for i in 0..3 * MAX_SHARED {
                let (running, most, exclusive_saw) = (&running, &most, &exclusive_saw);
                scope.spawn(move || {
                    if i == MAX_SHARED {
                        let _test = exclusive();
                        exclusive_saw.store(running.load(Ordering::SeqCst), Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        return;
                    }
                    let _test = shared();
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        let most = most.load(Ordering::SeqCst);
        assert!((1..=MAX_SHARED).contains(&most), "{most} shared tests at once");
        assert_eq!(exclusive_saw.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_waiting_long_test_gets_the_next_slot_before_waiting_short_ones() {
        let order = Mutex::new(Vec::new());
        let long_queued = || (SUITE.state.lock().unwrap().long_waiting == 1).then_some(());
        std::thread::scope(|scope| {
            // Every slot taken; short tests and then a long one wait.
            let mut held: Vec<SharedTest> = (0..MAX_SHARED).map(|_| shared()).collect();
            let order = &order;
            for i in 0..3 {
                scope.spawn(move || {
                    let _test = shared();
                    order.lock().unwrap().push(format!("short {i}"));
                });
            }
            scope.spawn(move || {
                let _test = long_shared();
                order.lock().unwrap().push("long".to_string());
            });
            assert!(
                wait_for(Duration::from_secs(10), long_queued).is_some(),
                "the long test never queued"
            );
            // One slot comes free: the long test takes it; the short ones only get in once it is done.
            held.pop();
            assert!(
                wait_for(Duration::from_secs(10), || (!order.lock().unwrap().is_empty())
                    .then_some(()))
                .is_some(),
                "nothing got the free slot"
            );
            drop(held);
        });
        let order = order.into_inner().unwrap();
        assert_eq!(order.len(), 4, "{order:?}");
        assert_eq!(order[0], "long", "{order:?}");
    }
}
