//! Issue 12: what the live view keeps per connected host, counted by an allocator that records the bytes
//! asked for (so the figure does not depend on an allocator's size classes). A test binary of its own, since
//! the count is process-wide.

use headroom_collector::live::fleet::{FleetSettings, FleetState};
use headroom_common::wire::{Capacity, Hello, HostFacts};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn hello() -> Hello {
    Hello {
        protocol_version: 1,
        agent_version: "0.1.0".into(),
        instance_id: 1,
        interval_ms: 1_000,
        labels: Default::default(),
        capacity: Capacity {
            cores: 4,
            memory_bytes: 8 << 30,
        },
        facts: HostFacts::default(),
    }
}

/// Hosts arriving in name order (as a load generator's do) leave the map's nodes about half full; an entry
/// kept in place in the nodes (over 700 bytes) then cost about twice its size per host. Boxed, a host costs
/// its entry and a share of nodes of pointers.
#[test]
fn issue_12_a_hosts_live_entry_costs_about_its_own_size() {
    let hosts: Vec<String> = (0..10_000).map(|i| format!("host-{i:05}")).collect();
    let hello = hello();
    let mut fleet = FleetState::new(FleetSettings::default());
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    for host in &hosts {
        fleet.on_hello(host, &hello, 1_000);
    }
    let per_host = (LIVE_BYTES.load(Ordering::Relaxed) - before) / hosts.len() as isize;
    eprintln!("the live view keeps {per_host} bytes per host");
    assert!(per_host <= 1_000, "the live view keeps {per_host} bytes per host");
    assert_eq!(fleet.len(), hosts.len());
}
