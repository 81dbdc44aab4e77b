//! Socket counts and TCP memory from /proc/net/sockstat and /proc/net/sockstat6.

use super::ParseError;
use headroom_common::wire::Sockstat;

const SOCKSTAT: &str = "net/sockstat";
const SOCKSTAT6: &str = "net/sockstat6";

/// Both files into one `Sockstat`. `sockstat6` is `None` on hosts without IPv6; its counts are then 0.
pub fn parse_sockstat(sockstat: &str, sockstat6: Option<&str>) -> Result<Sockstat, ParseError> {
    let mut out = Sockstat::default();
    let mut saw_tcp = false;
    for_each_value(sockstat, SOCKSTAT, |protocol, key, value| match (protocol, key) {
        ("sockets", "used") => out.sockets_used = value,
        ("TCP", "inuse") => {
            out.tcp_inuse = value;
            saw_tcp = true;
        }
        ("TCP", "orphan") => out.tcp_orphan = value,
        ("TCP", "tw") => out.tcp_time_wait = value,
        ("TCP", "alloc") => out.tcp_alloc = value,
        ("TCP", "mem") => out.tcp_mem_pages = value,
        ("UDP", "inuse") => out.udp_inuse = value,
        _ => {}
    })?;
    if !saw_tcp {
        return Err(ParseError::whole(SOCKSTAT, "no \"TCP: inuse\" line"));
    }
    if let Some(sockstat6) = sockstat6 {
        for_each_value(sockstat6, SOCKSTAT6, |protocol, key, value| {
            match (protocol, key) {
                ("TCP6", "inuse") => out.tcp6_inuse = value,
                ("UDP6", "inuse") => out.udp6_inuse = value,
                _ => {}
            }
        })?;
    }
    Ok(out)
}

/// Calls `visit(protocol, key, value)` for every "PROTO: key value key value" pair.
fn for_each_value(
    text: &str,
    file: &'static str,
    mut visit: impl FnMut(&str, &str, u64),
) -> Result<(), ParseError> {
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((protocol, pairs)) = line.split_once(':') else {
            return Err(ParseError::at(
                file,
                index + 1,
                format!("line \"{line}\" has no \"PROTO:\""),
            ));
        };
        let mut words = pairs.split_whitespace();
        while let Some(key) = words.next() {
            let Some(value) = words.next() else {
                return Err(ParseError::at(
                    file,
                    index + 1,
                    format!("{protocol} {key} has no value"),
                ));
            };
            let value = value.parse().map_err(|_| {
                ParseError::at(
                    file,
                    index + 1,
                    format!("{protocol} {key} \"{value}\" is not a number"),
                )
            })?;
            visit(protocol, key, value);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_value_names_file_and_line() {
        let error = parse_sockstat("sockets: used 3\nTCP: inuse x\n", None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "net/sockstat: line 2: TCP inuse \"x\" is not a number"
        );
        let error = parse_sockstat("TCP: inuse 1\n", Some("TCP6: inuse\n")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "net/sockstat6: line 1: TCP6 inuse has no value"
        );
    }

    #[test]
    fn missing_sockstat6_leaves_ipv6_counts_at_zero() {
        let stat = parse_sockstat("TCP: inuse 4 orphan 1 tw 2 alloc 9 mem 3\n", None).unwrap();
        assert_eq!(stat.tcp_inuse, 4);
        assert_eq!(stat.tcp_mem_pages, 3);
        assert_eq!(stat.tcp6_inuse, 0);
    }
}
