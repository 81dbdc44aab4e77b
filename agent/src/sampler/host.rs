//! Host facts and capacity, read once at start-up through the injected proc root, like every sampler: the
//! logical cores and boot time from `stat`, total memory from `meminfo`, the host name and kernel release from
//! `sys/kernel`, and the OS name from `etc/os-release` beside the proc root (`/etc/os-release` for `/proc`).
//! Each `parse_*` is pure; a file that cannot be read leaves its fact unknown (0 or empty).

use headroom_common::wire::{Capacity, HostFacts};
use std::path::Path;

/// The host's logical cores and total memory, and descriptive facts, read through `proc_root`.
pub fn host_facts(proc_root: &Path) -> (Capacity, HostFacts) {
    let read = |path: &Path| std::fs::read_to_string(path).ok();
    let stat = read(&proc_root.join("stat")).unwrap_or_default();
    let meminfo = read(&proc_root.join("meminfo")).unwrap_or_default();
    let line = |name: &str| {
        read(&proc_root.join("sys/kernel").join(name))
            .map(|text| text.trim().to_string())
            .unwrap_or_default()
    };
    let os_release = proc_root
        .parent()
        .and_then(|root| read(&root.join("etc/os-release")))
        .unwrap_or_default();
    let capacity = Capacity {
        cores: parse_cores(&stat),
        memory_bytes: parse_mem_total_bytes(&meminfo),
    };
    let facts = HostFacts {
        hostname: line("hostname"),
        os: parse_os_name(&os_release),
        kernel: line("osrelease"),
        boot_time_s: parse_boot_time_s(&stat),
    };
    (capacity, facts)
}

/// Logical cores: the `cpuN` lines of `/proc/stat`.
pub fn parse_cores(stat: &str) -> u32 {
    let count = stat
        .lines()
        .filter(|line| {
            // `cpu0 …`, `cpu1 …`; the aggregate `cpu  …` line has no index right after the name.
            line.strip_prefix("cpu")
                .and_then(|rest| rest.split(' ').next())
                .is_some_and(|index| !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))
        })
        .count();
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// `btime` of `/proc/stat`: the boot time in Unix seconds; 0 when absent.
pub fn parse_boot_time_s(stat: &str) -> u64 {
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

/// `MemTotal` of `/proc/meminfo` in bytes; 0 when absent.
pub fn parse_mem_total_bytes(meminfo: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib.saturating_mul(1024))
}

/// "NAME VERSION_ID" from os-release (either alone when the other is missing), quotes removed.
pub fn parse_os_name(os_release: &str) -> String {
    let value = |key: &str| {
        os_release.lines().find_map(|line| {
            let (name, value) = line.split_once('=')?;
            (name.trim() == key).then(|| value.trim().trim_matches(['"', '\'']).to_string())
        })
    };
    [value("NAME"), value("VERSION_ID")]
        .into_iter()
        .flatten()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_parse_from_proc_text() {
        let stat = "cpu  1 2 3 4\ncpu0 1 1 1 1\ncpu1 0 1 2 3\ncpu12 0 0 0 0\nintr 5\nbtime 1795722831\n";
        assert_eq!(parse_cores(stat), 3);
        assert_eq!(parse_boot_time_s(stat), 1_795_722_831);
        assert_eq!(parse_boot_time_s("cpu 1\n"), 0);
        assert_eq!(
            parse_mem_total_bytes("MemTotal:       16318256 kB\nMemFree: 1 kB\n"),
            16_318_256 * 1024
        );
        assert_eq!(parse_mem_total_bytes(""), 0);
        assert_eq!(
            parse_os_name("PRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"13\"\n"),
            "Debian GNU/Linux 13"
        );
        assert_eq!(parse_os_name("NAME=Arch Linux\n"), "Arch Linux");
        assert_eq!(parse_os_name(""), "");
    }

    #[test]
    fn facts_are_read_through_the_given_proc_root_only() {
        let dir = tempfile::tempdir().unwrap();
        let proc_root = dir.path().join("proc");
        std::fs::create_dir_all(proc_root.join("sys/kernel")).unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            proc_root.join("stat"),
            "cpu  1 1 1 1\ncpu0 1 1 1 1\nbtime 1700000000\n",
        )
        .unwrap();
        std::fs::write(proc_root.join("meminfo"), "MemTotal: 2048 kB\n").unwrap();
        std::fs::write(proc_root.join("sys/kernel/hostname"), "fixture-host\n").unwrap();
        std::fs::write(proc_root.join("sys/kernel/osrelease"), "6.18.0-test\n").unwrap();
        std::fs::write(
            dir.path().join("etc/os-release"),
            "NAME=\"Fixture OS\"\nVERSION_ID=1\n",
        )
        .unwrap();
        let (capacity, facts) = host_facts(&proc_root);
        assert_eq!((capacity.cores, capacity.memory_bytes), (1, 2048 * 1024));
        assert_eq!(facts.hostname, "fixture-host");
        assert_eq!(facts.kernel, "6.18.0-test");
        assert_eq!(facts.os, "Fixture OS 1");
        assert_eq!(facts.boot_time_s, 1_700_000_000);
        // A root without those files gives unknown facts, not the real host's.
        let (capacity, facts) = host_facts(&dir.path().join("nowhere/proc"));
        assert_eq!((capacity.cores, capacity.memory_bytes), (0, 0));
        assert_eq!(facts, HostFacts::default());
    }
}
