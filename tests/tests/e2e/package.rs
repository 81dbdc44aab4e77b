//! Issue 15: the Debian packages as a sysadmin meets them. Builds both packages with deploy/package.sh from the
//! binaries the workspace build made (lintian checks them), installs them on this machine (the agent through
//! deploy/install-agent.sh), checks files, owners and modes (the collector's signer unit shipped, not
//! enabled), runs the installed binaries, upgrades to a rebuilt package with a higher version and checks
//! nothing was lost, then removes and purges them.
//! Needs root, dpkg, cargo-deb and lintian: skipped with a reason otherwise, failed when HEADROOM_E2E=1.

use headroom_tests::{binary, e2e_required};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PACKAGES: [&str; 2] = ["headroom-agent", "headroom-collector"];

fn repo_file(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn ok(program: &str, args: &[&str]) -> String {
    let output = run(program, args);
    assert!(output.status.success(), "{program} {args:?}: {}", text(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn tool_exists(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|out| out.status.success())
}

/// The state of a package in dpkg's database: "installed 0.1.0-1", "config-files 0.1.0-1" or "" (unknown).
fn package_state(package: &str) -> String {
    let output = run(
        "dpkg-query",
        &[
            "--show",
            "--showformat",
            "${db:Status-Status} ${Version}",
            package,
        ],
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The lock file runs of this test on one machine take turns on (dpkg's database is the machine's).
const MACHINE_LOCK: &str = "/run/lock/headroom-package-test.lock";

/// Waits for an exclusive `flock` on `path`, held until the file is dropped.
fn machine_lock(path: &Path) -> std::fs::File {
    use std::os::fd::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // SAFETY: flock(2) on a descriptor this function owns; the lock goes with the file.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(
        locked,
        0,
        "flock {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    file
}

/// Purges both packages when the test ends, passed or not, so the machine is left as it was found.
struct PurgeOnDrop;

impl Drop for PurgeOnDrop {
    fn drop(&mut self) {
        for package in PACKAGES {
            let _ = Command::new("dpkg").args(["--purge", package]).output();
        }
    }
}

/// Builds both packages with `version` into `out` from the binaries next to the test's, checked with lintian
/// when `lintian` is set (the upgrade's rebuild differs from the first build only in its version).
fn build_packages(out: &Path, version: &str, lintian: bool) -> (PathBuf, PathBuf) {
    // target/debug/headroom-agent → target
    let target_dir = binary("headroom-agent")
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let output = Command::new("sh")
        .arg(repo_file("deploy/package.sh"))
        .args([
            "--profile",
            "dev",
            "--no-build",
            "--fast",
            "--deb-version",
            version,
            "--out",
        ])
        .arg(out)
        .args((!lintian).then_some("--no-lintian"))
        .env("CARGO_TARGET_DIR", &target_dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "package.sh: {}", text(&output));
    let printed = text(&output);
    assert!(
        !lintian || !printed.contains("packages not checked"),
        "lintian did not check the packages: {printed}"
    );
    let deb = |name: &str| out.join(format!("{name}_{version}_amd64.deb"));
    (deb("headroom-agent"), deb("headroom-collector"))
}

/// Owner uid, gid and permission bits of a path.
fn owner_and_mode(path: &str) -> (u32, u32, u32) {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    (meta.uid(), meta.gid(), meta.mode() & 0o7777)
}

/// SHA-256 of each file below `dir`, by path, to compare before and after an upgrade.
fn digest_tree(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let sum = ok("sha256sum", &[path.to_str().unwrap()]);
                files.push((path, sum.split(' ').next().unwrap().to_string()));
            }
        }
    }
    files.sort();
    files
}

/// Whether a process runs the installed agent binary.
fn agent_running() -> bool {
    std::fs::read_dir("/proc").unwrap().any(|entry| {
        std::fs::read_link(entry.unwrap().path().join("exe"))
            .is_ok_and(|exe| exe == Path::new("/usr/bin/headroom-agent"))
    })
}

#[test]
fn issue_15_packages_install_upgrade_keep_state_and_purge() {
    let _suite = headroom_tests::long_shared();
    let root = unsafe { libc::geteuid() } == 0;
    let tools = [
        ("dpkg", tool_exists("dpkg", &["--version"])),
        ("cargo-deb", tool_exists("cargo", &["deb", "--version"])),
        ("lintian", tool_exists("lintian", &["--version"])),
    ];
    let missing: Vec<&str> = tools
        .iter()
        .filter(|(_, found)| !found)
        .map(|(name, _)| *name)
        .collect();
    if !root || !missing.is_empty() {
        let reason = if root {
            format!("missing {missing:?} (.ci/run installs them)")
        } else {
            "not root (dpkg -i needs it)".to_string()
        };
        assert!(!e2e_required(), "the package test cannot run: {reason}");
        println!("skipped: {reason}");
        return;
    }
    // Another run of this test on the machine (another checkout, another CI job) installs the same packages:
    // wait for it to purge them rather than refuse to start.
    let _machine = machine_lock(Path::new(MACHINE_LOCK));
    for package in PACKAGES {
        let state = package_state(package);
        assert!(
            state.is_empty() || state.starts_with("not-installed"),
            "{package} is already on this machine ({state}); this test installs and purges it: remove it first"
        );
    }
    let _purge = PurgeOnDrop;

    let work = tempfile::tempdir().unwrap();
    let (agent_deb, collector_deb) = build_packages(&work.path().join("v1"), "0.1.0-1", true);
    for deb in [&agent_deb, &collector_deb] {
        let size = std::fs::metadata(deb).unwrap().len();
        println!("{}: {size} bytes", deb.display());
    }

    // The agent through the install script (its dpkg path, checked against the SHA256SUMS package.sh wrote),
    // the collector with dpkg itself.
    let script = repo_file("deploy/install-agent.sh");
    let script = script.to_str().unwrap();
    let installed = ok("sh", &[script, "--package", agent_deb.to_str().unwrap()]);
    assert!(
        installed.contains("headroom-agent is installed but not started"),
        "{installed}"
    );
    assert!(
        installed.contains("checked") && installed.contains("SHA-256"),
        "{installed}"
    );
    let again = ok("sh", &[script, "--package", agent_deb.to_str().unwrap()]);
    assert!(
        again.contains("already installed") && again.contains("nothing to do"),
        "{again}"
    );
    let collector_out = ok("dpkg", &["--install", collector_deb.to_str().unwrap()]);
    assert!(collector_out.contains("not started"), "{collector_out}");
    assert_eq!(package_state("headroom-agent"), "installed 0.1.0-1");

    // Files, owners and modes.
    for (path, mode) in [
        ("/usr/bin/headroom-agent", 0o755),
        ("/usr/bin/headroom-collector", 0o755),
        ("/etc/headroom/agent.toml", 0o644),
        ("/etc/headroom/collector.toml", 0o644),
        ("/usr/share/man/man1/headroom-agent.1.gz", 0o644),
        ("/usr/share/man/man1/headroom-collector-fleet.1.gz", 0o644),
        ("/usr/share/bash-completion/completions/headroom-agent", 0o644),
        ("/usr/share/zsh/vendor-completions/_headroom-collector", 0o644),
        ("/usr/share/fish/vendor_completions.d/headroom-agent.fish", 0o644),
    ] {
        assert_eq!(owner_and_mode(path), (0, 0, mode), "{path}");
    }
    let units = ok("dpkg", &["--listfiles", "headroom-agent"]);
    let unit = units
        .lines()
        .find(|line| line.ends_with("/systemd/system/headroom-agent.service"))
        .unwrap_or_else(|| panic!("no unit in the package:\n{units}"));
    assert_eq!(owner_and_mode(unit), (0, 0, 0o644), "{unit}");
    assert_eq!(
        std::fs::read(unit).unwrap(),
        std::fs::read(repo_file("systemd/headroom-agent.service")).unwrap()
    );
    // The collector's units: the service and the signer (the CA key under its own user), neither enabled,
    // and the postinst names the signer's unit.
    let collector_files = ok("dpkg", &["--listfiles", "headroom-collector"]);
    for name in ["headroom-collector.service", "headroom-collector-signer.service"] {
        let unit = collector_files
            .lines()
            .find(|line| line.ends_with(&format!("/systemd/system/{name}")))
            .unwrap_or_else(|| panic!("no {name} in the package:\n{collector_files}"));
        assert_eq!(owner_and_mode(unit), (0, 0, 0o644), "{unit}");
        assert_eq!(
            std::fs::read(unit).unwrap(),
            std::fs::read(repo_file(&format!("systemd/{name}"))).unwrap(),
            "{unit}"
        );
        let enabled = run("systemctl", &["is-enabled", name]);
        assert_eq!(
            String::from_utf8_lossy(&enabled.stdout).trim(),
            "disabled",
            "{name}: {}",
            text(&enabled)
        );
    }
    assert!(
        collector_out.contains("headroom-collector-signer.service"),
        "{collector_out}"
    );
    for package in PACKAGES {
        let conffiles = std::fs::read_to_string(format!("/var/lib/dpkg/info/{package}.conffiles")).unwrap();
        let name = package.trim_start_matches("headroom-");
        assert!(
            conffiles
                .lines()
                .any(|l| l == format!("/etc/headroom/{name}.toml")),
            "{conffiles}"
        );
    }

    // The installed binaries work from their installed paths, and the agent is not started: it has no
    // certificate yet, so the unit is neither enabled nor running.
    let sample: serde_json::Value =
        serde_json::from_str(&ok("/usr/bin/headroom-agent", &["sample", "--format", "json"])).unwrap();
    assert!(sample["memory"]["total_bytes"].as_u64().unwrap() > 0, "{sample}");
    let checked = ok("/usr/bin/headroom-collector", &["check-config"]);
    assert!(
        checked.starts_with("# /etc/headroom/collector.toml: ok"),
        "{checked}"
    );
    ok("/usr/bin/headroom-agent", &["check-config"]);
    let enabled = run("systemctl", &["is-enabled", "headroom-agent.service"]);
    assert_eq!(
        String::from_utf8_lossy(&enabled.stdout).trim(),
        "disabled",
        "{}",
        text(&enabled)
    );
    assert!(!agent_running(), "the agent runs before enrollment");

    // State a running fleet would have: an edited config, the collector's PKI and database, the agent's
    // certificate and spool.
    let mut config = std::fs::read_to_string("/etc/headroom/agent.toml").unwrap();
    config.push_str("\n# edited by the operator\n[labels]\ngroup = \"web\"\n");
    std::fs::write("/etc/headroom/agent.toml", &config).unwrap();
    ok("/usr/bin/headroom-collector", &["ca", "init"]);
    std::fs::write("/var/lib/headroom-collector/headroom.db", b"database pages").unwrap();
    ok(
        "/usr/bin/headroom-collector",
        &[
            "cert",
            "issue",
            "--host",
            "web-1",
            "--out",
            "/var/lib/headroom-agent",
        ],
    );
    std::fs::create_dir_all("/var/lib/headroom-agent/spool").unwrap();
    std::fs::write("/var/lib/headroom-agent/spool/00000001.seg", b"spooled samples").unwrap();
    let agent_state = digest_tree(Path::new("/var/lib/headroom-agent"));
    let collector_state = digest_tree(Path::new("/var/lib/headroom-collector"));
    assert!(agent_state.len() >= 4 && collector_state.len() >= 3);

    // Upgrade to a rebuilt package with a higher version: everything above is still there.
    let (agent_v2, collector_v2) = build_packages(&work.path().join("v2"), "0.1.0-2", false);
    ok(
        "dpkg",
        &[
            "--install",
            agent_v2.to_str().unwrap(),
            collector_v2.to_str().unwrap(),
        ],
    );
    assert_eq!(package_state("headroom-agent"), "installed 0.1.0-2");
    assert_eq!(package_state("headroom-collector"), "installed 0.1.0-2");
    assert_eq!(
        std::fs::read_to_string("/etc/headroom/agent.toml").unwrap(),
        config
    );
    assert_eq!(digest_tree(Path::new("/var/lib/headroom-agent")), agent_state);
    assert_eq!(
        digest_tree(Path::new("/var/lib/headroom-collector")),
        collector_state
    );
    assert!(
        !agent_running(),
        "the upgrade started an agent that was not running"
    );

    // Remove keeps configuration and state; purge removes both.
    ok("dpkg", &["--remove", "headroom-agent", "headroom-collector"]);
    assert!(!Path::new("/usr/bin/headroom-agent").exists());
    assert!(Path::new("/etc/headroom/agent.toml").exists());
    assert!(Path::new("/var/lib/headroom-agent/agent.pem").exists());
    assert!(Path::new("/var/lib/headroom-collector/headroom.db").exists());
    ok("dpkg", &["--purge", "headroom-agent", "headroom-collector"]);
    for gone in [
        "/etc/headroom/agent.toml",
        "/etc/headroom/collector.toml",
        "/var/lib/headroom-agent",
        "/var/lib/headroom-collector",
    ] {
        assert!(!Path::new(gone).exists(), "{gone} survived the purge");
    }
    // Purged: dpkg knows neither package any more.
    for package in PACKAGES {
        let state = package_state(package);
        assert!(
            state.is_empty() || state.starts_with("not-installed"),
            "{package}: {state}"
        );
    }
}
