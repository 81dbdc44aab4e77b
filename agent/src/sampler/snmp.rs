//! TCP counters from /proc/net/snmp (Tcp:) and /proc/net/netstat (TcpExt:).
//!
//! Both files are pairs of lines with the same prefix: a header line of names, then a line of values.
//! Fields are looked up by name, because their order and number change between kernel versions.

use super::ParseError;
use headroom_common::wire::TcpCounters;

const SNMP: &str = "net/snmp";
const NETSTAT: &str = "net/netstat";

/// ListenOverflows and ListenDrops from /proc/net/netstat's TcpExt lines.
pub fn parse_listen_counters(netstat: &str) -> Result<[u64; 2], ParseError> {
    lookup(netstat, NETSTAT, "TcpExt:", ["ListenOverflows", "ListenDrops"])
}

/// The Tcp counters of /proc/net/snmp, with ListenOverflows and ListenDrops from `listen` (see
/// `parse_listen_counters`).
pub fn parse_snmp_counters(snmp: &str, listen: [u64; 2]) -> Result<TcpCounters, ParseError> {
    let tcp = [
        "ActiveOpens",
        "PassiveOpens",
        "CurrEstab",
        "RetransSegs",
        "InErrs",
        "OutRsts",
    ];
    let [active_opens, passive_opens, curr_estab, retrans_segs, in_errs, out_rsts] =
        lookup(snmp, SNMP, "Tcp:", tcp)?;
    let [listen_overflows, listen_drops] = listen;
    Ok(TcpCounters {
        active_opens,
        passive_opens,
        curr_estab,
        retrans_segs,
        in_errs,
        out_rsts,
        listen_overflows,
        listen_drops,
    })
}

/// Both files at once.
pub fn parse_tcp_counters(snmp: &str, netstat: &str) -> Result<TcpCounters, ParseError> {
    parse_snmp_counters(snmp, parse_listen_counters(netstat)?)
}

/// The values of `names` in the `prefix` header/value line pair.
fn lookup<const N: usize>(
    text: &str,
    file: &'static str,
    prefix: &str,
    names: [&str; N],
) -> Result<[u64; N], ParseError> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, line)| line.starts_with(prefix));
    let (Some((_, header)), Some((index, values))) = (lines.next(), lines.next()) else {
        return Err(ParseError::whole(
            file,
            format!("no \"{prefix}\" header and value lines"),
        ));
    };
    let line_number = index + 1;
    // One pass over both lines (TcpExt has over a hundred fields); they must end together.
    let mut found = [None; N];
    let (mut header_words, mut value_words) = (header.split_whitespace(), values.split_whitespace());
    // Both lines start with `prefix`, which names no field.
    header_words.next();
    value_words.next();
    loop {
        let (name, value) = match (header_words.next(), value_words.next()) {
            (Some(name), Some(value)) => (name, value),
            (None, None) => break,
            _ => {
                let header_count = header.split_whitespace().count();
                let value_count = values.split_whitespace().count();
                return Err(ParseError::at(
                    file,
                    line_number,
                    format!("{prefix} has {value_count} values for {header_count} names"),
                ));
            }
        };
        let Some(slot) = names.iter().position(|wanted| *wanted == name) else {
            continue;
        };
        let parsed = value.parse::<u64>().map_err(|_| {
            ParseError::at(
                file,
                line_number,
                format!("{prefix} {name} \"{value}\" is not a number"),
            )
        })?;
        found[slot] = Some(parsed);
    }
    let mut out = [0u64; N];
    for ((slot, value), name) in out.iter_mut().zip(found).zip(names) {
        *slot = value
            .ok_or_else(|| ParseError::at(file, line_number, format!("{prefix} has no {name} field")))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NETSTAT_OK: &str = "TcpExt: ListenOverflows ListenDrops\nTcpExt: 1 2\n";

    #[test]
    fn header_and_value_lines_of_different_lengths_are_an_error() {
        let snmp = "Tcp: ActiveOpens PassiveOpens CurrEstab RetransSegs InErrs OutRsts\nTcp: 1 2 3 4 5 6\n";
        for netstat in [
            "TcpExt: ListenOverflows ListenDrops\nTcpExt: 1\n",
            "TcpExt: ListenOverflows ListenDrops\nTcpExt: 1 2 3\n",
        ] {
            let error = parse_tcp_counters(snmp, netstat).unwrap_err().to_string();
            assert!(error.starts_with("net/netstat: line 2: TcpExt: has "), "{error}");
            assert!(error.ends_with("values for 3 names"), "{error}");
        }
    }

    #[test]
    fn fields_are_found_by_name_whatever_their_order() {
        let snmp = "Tcp: OutRsts InErrs RetransSegs CurrEstab PassiveOpens ActiveOpens MaxConn\n\
                    Tcp: 6 5 4 3 2 1 -1\n";
        let counters = parse_tcp_counters(snmp, NETSTAT_OK).unwrap();
        assert_eq!(counters.active_opens, 1);
        assert_eq!(counters.out_rsts, 6);
        assert_eq!(counters.listen_drops, 2);
    }

    #[test]
    fn missing_field_and_bad_value_name_file_and_line() {
        let snmp = "Ip: Forwarding\nIp: 1\nTcp: ActiveOpens\nTcp: 1\n";
        let error = parse_tcp_counters(snmp, NETSTAT_OK).unwrap_err();
        assert_eq!(
            error.to_string(),
            "net/snmp: line 4: Tcp: has no PassiveOpens field"
        );
        let netstat = "TcpExt: ListenOverflows ListenDrops\nTcpExt: 1 x\n";
        let snmp = "Tcp: ActiveOpens PassiveOpens CurrEstab RetransSegs InErrs OutRsts\nTcp: 1 2 3 4 5 6\n";
        let error = parse_tcp_counters(snmp, netstat).unwrap_err();
        assert_eq!(
            error.to_string(),
            "net/netstat: line 2: TcpExt: ListenDrops \"x\" is not a number"
        );
    }

    #[test]
    fn header_without_values_is_an_error() {
        let error = parse_tcp_counters("Tcp: ActiveOpens\n", NETSTAT_OK).unwrap_err();
        assert_eq!(error.to_string(), "net/snmp: no \"Tcp:\" header and value lines");
    }
}
