//! Every /proc parser on arbitrary text; the input is split at the first NUL into two files where a parser
//! reads two (snmp and netstat, tcp and tcp6, sockstat and sockstat6, conntrack count and max).
#![no_main]
use headroom_agent::sampler::network::InterfaceFilter;
use headroom_agent::sampler::{cpu, memory, misc, network, pressure, procnet, snmp, sockstat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (a, b) = text.split_once('\0').unwrap_or((&text, ""));
    let _ = cpu::parse_stat(a);
    let _ = cpu::parse_loadavg(a);
    let _ = memory::parse_meminfo(a);
    let _ = misc::parse_conntrack(a, b);
    let _ = misc::parse_port_range(a);
    let _ = network::parse_net_dev(a, &InterfaceFilter::default());
    let _ = pressure::parse_pressure(a, "cpu");
    let _ = procnet::parse_tcp(a, Some(b));
    let _ = snmp::parse_tcp_counters(a, b);
    let _ = sockstat::parse_sockstat(a, Some(b));
});
