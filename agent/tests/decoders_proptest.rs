//! Property tests for the agent's parsers of untrusted bytes: every /proc parser, the netlink dump parser, spool
//! record scanning and the config file. None may panic on any input, a record scan always moves forward, and a
//! record read back is the sample that was written.

use headroom_agent::sampler::network::InterfaceFilter;
use headroom_agent::sampler::{cpu, memory, misc, netlink, network, pressure, procnet, snmp, sockstat};
use headroom_agent::spool::record::{encode_record, find_next_record, parse_record, Parsed};
use headroom_common::wire::Sample;
use proptest::collection::vec;
use proptest::prelude::*;

/// Text shaped like /proc files (words, numbers, colons, newlines) so the parsers get past their first line.
fn proc_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "([a-zA-Z0-9_]{1,12}[: ]{1,3}([0-9]{1,20} ?){0,12}\n){0,12}",
        "(sl +local_address.*\n)?( *[0-9]{1,4}: [0-9A-F]{8,32}:[0-9A-F]{4} [0-9A-F]{8,32}:[0-9A-F]{4} [0-9A-F]{2} [0-9A-F]{8}:[0-9A-F]{8}.*\n){0,6}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn proc_parsers_never_panic(a in proc_text(), b in proc_text()) {
        let _ = cpu::parse_stat(&a);
        let _ = cpu::parse_loadavg(&a);
        let _ = memory::parse_meminfo(&a);
        let _ = misc::parse_conntrack(&a, &b);
        let _ = misc::parse_port_range(&a);
        let _ = network::parse_net_dev(&a, &InterfaceFilter::default());
        let _ = pressure::parse_pressure(&a, "cpu");
        let _ = procnet::parse_tcp(&a, Some(&b));
        let _ = procnet::parse_tcp(&a, None);
        let _ = snmp::parse_tcp_counters(&a, &b);
        let _ = sockstat::parse_sockstat(&a, Some(&b));
    }

    #[test]
    fn netlink_datagrams_never_panic(bytes in vec(any::<u8>(), 0..512), seq in any::<u32>()) {
        let mut sockets = 0usize;
        let _ = netlink::parse_datagram(&bytes, seq, &mut |_| sockets += 1);
    }

    #[test]
    fn record_scanning_never_panics_and_always_moves_forward(
        bytes in vec(any::<u8>(), 0..2048),
        from in 0usize..2100,
        after in proptest::option::of(any::<u64>()),
    ) {
        let _ = parse_record(&bytes);
        if let Some(next) = find_next_record(&bytes, from, after) {
            prop_assert!(next >= from && next < bytes.len());
        }
    }

    #[test]
    fn a_record_reads_back_as_the_sample_even_amid_garbage(
        seq in 1u64.., timestamp_ms in any::<u64>(), before in vec(any::<u8>(), 0..64),
    ) {
        let sample = Sample { seq, timestamp_ms, ..Default::default() };
        let record = encode_record(&sample).unwrap();
        match parse_record(&record) {
            Parsed::Record { sample: read, len_bytes } => {
                prop_assert_eq!(read, sample.clone());
                prop_assert_eq!(len_bytes, record.len());
            }
            _ => prop_assert!(false, "a whole record did not parse"),
        }
        // Behind garbage, a scan finds it (or an earlier false start that fails its checksum and is skipped).
        let mut bytes = before.clone();
        bytes.extend_from_slice(&record);
        let mut offset = 0;
        let mut found = false;
        while let Some(next) = find_next_record(&bytes, offset, None) {
            if let Parsed::Record { sample: read, .. } = parse_record(&bytes[next..]) {
                if read == sample {
                    found = true;
                    break;
                }
            }
            offset = next + 1;
        }
        prop_assert!(found);
    }

    #[test]
    fn the_config_parser_never_panics(text in any::<String>(), toml_ish in "([a-z_\\[\\]]{1,16} ?= ?\"?[a-z0-9/:.]{0,20}\"?\n){0,8}") {
        let _ = headroom_agent::config::parse(&text, "agent.toml");
        let _ = headroom_agent::config::parse(&toml_ish, "agent.toml");
    }
}
