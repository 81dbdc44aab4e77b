//! Host facts and capacity, read once at start-up through `sysinfo`.
//!
//! sysinfo is used only here: these values are read once, and its per-tick refreshes cost far more than
//! reading the /proc files the samplers read directly.

use headroom_common::wire::{Capacity, HostFacts};
use sysinfo::{CpuRefreshKind, System};

/// The host's logical cores and total memory, and descriptive facts. Unknown text facts are empty.
pub fn host_facts() -> (Capacity, HostFacts) {
    let mut system = System::new();
    system.refresh_cpu_list(CpuRefreshKind::nothing());
    system.refresh_memory();
    let capacity = Capacity {
        cores: u32::try_from(system.cpus().len()).unwrap_or(u32::MAX),
        memory_bytes: system.total_memory(),
    };
    let os = match (System::name(), System::os_version()) {
        (Some(name), Some(version)) => format!("{name} {version}"),
        (Some(name), None) => name,
        (None, Some(version)) => version,
        (None, None) => String::new(),
    };
    let facts = HostFacts {
        hostname: System::host_name().unwrap_or_default(),
        os,
        kernel: System::kernel_version().unwrap_or_default(),
        boot_time_s: System::boot_time(),
    };
    (capacity, facts)
}
