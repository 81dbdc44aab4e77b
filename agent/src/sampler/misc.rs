//! Small single-value files under /proc/sys: conntrack fill and the ephemeral port range.

use super::ParseError;
use headroom_common::wire::{Conntrack, PortRange};

const CONNTRACK_COUNT: &str = "sys/net/netfilter/nf_conntrack_count";
const CONNTRACK_MAX: &str = "sys/net/netfilter/nf_conntrack_max";
const PORT_RANGE: &str = "sys/net/ipv4/ip_local_port_range";

pub fn parse_conntrack(count: &str, max: &str) -> Result<Conntrack, ParseError> {
    Ok(Conntrack {
        count: parse_single(count, CONNTRACK_COUNT)?,
        max: parse_single(max, CONNTRACK_MAX)?,
    })
}

/// "32768\t60999".
pub fn parse_port_range(text: &str) -> Result<PortRange, ParseError> {
    let mut words = text.split_whitespace();
    let mut next = |name: &str| -> Result<u16, ParseError> {
        let word = words
            .next()
            .ok_or_else(|| ParseError::at(PORT_RANGE, 1, format!("missing the {name} port")))?;
        word.parse().map_err(|_| {
            ParseError::at(
                PORT_RANGE,
                1,
                format!("{name} port \"{word}\" is not a port number"),
            )
        })
    };
    let low = next("low")?;
    let high = next("high")?;
    Ok(PortRange { low, high })
}

fn parse_single(text: &str, file: &'static str) -> Result<u64, ParseError> {
    let word = text.trim();
    word.parse()
        .map_err(|_| ParseError::at(file, 1, format!("\"{word}\" is not a number")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_values_name_the_file() {
        let error = parse_conntrack("12\n", "many\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "sys/net/netfilter/nf_conntrack_max: line 1: \"many\" is not a number"
        );
        let error = parse_port_range("32768 70000\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "sys/net/ipv4/ip_local_port_range: line 1: high port \"70000\" is not a port number"
        );
    }
}
