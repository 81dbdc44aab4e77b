//! Per-interface counters from /proc/net/dev, and the filter that picks which interfaces are reported.
//!
//! /proc/net/dev is read directly: it costs a fraction of what a general system-information crate spends
//! walking /sys/class/net for the same numbers.

use super::ParseError;
use headroom_common::wire::{InterfaceCounters, MAX_INTERFACES};

const NET_DEV: &str = "net/dev";

/// Which interfaces to report, by glob patterns where `*` matches any run of characters and `?` one.
///
/// An interface is reported when it matches some `include` pattern (or `include` is empty) and no
/// `exclude` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceFilter {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

impl Default for InterfaceFilter {
    /// Loopback and the virtual plumbing of containers, whose traffic is also counted on the real interface.
    fn default() -> Self {
        InterfaceFilter {
            include: Vec::new(),
            exclude: ["lo", "veth*", "docker*", "br-*", "cni*", "flannel*"]
                .into_iter()
                .map(String::from)
                .collect(),
        }
    }
}

impl InterfaceFilter {
    pub fn allows(&self, name: &str) -> bool {
        let included =
            self.include.is_empty() || self.include.iter().any(|pattern| glob_matches(pattern, name));
        included && !self.exclude.iter().any(|pattern| glob_matches(pattern, name))
    }
}

/// Matches `name` against `pattern`, where `*` stands for any run of characters (including none), `?` for
/// exactly one, and every other character for itself.
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    let (mut p, mut n) = (0, 0);
    // Where to resume after the most recent `*`: the pattern position after it and the name position it
    // has swallowed up to. Backtracking only to the last star keeps this linear in practice, with no
    // recursion on a hostile pattern.
    let mut resume: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && pattern[p] == '*' {
            resume = Some((p + 1, n));
            p += 1;
        } else if p < pattern.len() && (pattern[p] == '?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if let Some((star_p, star_n)) = resume {
            p = star_p;
            n = star_n + 1;
            resume = Some((star_p, star_n + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// /proc/net/dev: the interfaces `filter` allows, in file order, at most `MAX_INTERFACES` of them.
pub fn parse_net_dev(text: &str, filter: &InterfaceFilter) -> Result<Vec<InterfaceCounters>, ParseError> {
    let mut interfaces = Vec::new();
    // Two header lines, then "  name: 16 numbers".
    for (index, line) in text.lines().enumerate().skip(2) {
        let line_number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        // Interface names cannot contain ':' (the kernel refuses them), so the first one ends the name.
        // Old kernels print no space after it ("eth0:1234 ...").
        let Some((name, counters)) = line.split_once(':') else {
            return Err(ParseError::at(
                NET_DEV,
                line_number,
                format!("line \"{line}\" has no \"name:\""),
            ));
        };
        let name = name.trim();
        if !filter.allows(name) {
            continue;
        }
        let mut values = [0u64; 16];
        let mut count = 0;
        for (slot, word) in values.iter_mut().zip(counters.split_whitespace()) {
            *slot = word.parse().map_err(|_| {
                ParseError::at(
                    NET_DEV,
                    line_number,
                    format!("{name}: counter {} is \"{word}\"", count + 1),
                )
            })?;
            count += 1;
        }
        if count < 16 {
            return Err(ParseError::at(
                NET_DEV,
                line_number,
                format!("{name}: {count} counters, expected 16"),
            ));
        }
        if interfaces.len() == MAX_INTERFACES {
            continue;
        }
        interfaces.push(InterfaceCounters {
            name: name.to_string(),
            rx_bytes: values[0],
            rx_packets: values[1],
            rx_errors: values[2],
            rx_drops: values[3],
            tx_bytes: values[8],
            tx_packets: values[9],
            tx_errors: values[10],
            tx_drops: values[11],
        });
    }
    Ok(interfaces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_wildcards() {
        assert!(glob_matches("lo", "lo"));
        assert!(!glob_matches("lo", "lo0"));
        assert!(glob_matches("veth*", "veth"));
        assert!(glob_matches("veth*", "vethf345468"));
        assert!(!glob_matches("veth*", "eth0"));
        assert!(glob_matches("*", ""));
        assert!(glob_matches("e*0", "eth0"));
        assert!(glob_matches("e*0", "eth0.100"));
        assert!(!glob_matches("e*0", "eth1"));
        assert!(glob_matches("*a*b", "xaxxab"));
        assert!(!glob_matches("*a*b", "xaxxba"));
        assert!(glob_matches("br-*", "br-1234abcd"));
        assert!(!glob_matches("br-*", "bridge0"));
        assert!(glob_matches("eth?", "eth1"));
        assert!(!glob_matches("eth?", "eth10"));
    }

    #[test]
    fn default_filter_drops_loopback_and_container_plumbing() {
        let filter = InterfaceFilter::default();
        for name in ["lo", "veth1a2b", "docker0", "br-4f2e", "cni0", "flannel.1"] {
            assert!(!filter.allows(name), "{name} should be excluded");
        }
        for name in ["eth0", "ens3", "bond0", "wlan0", "lo0"] {
            assert!(filter.allows(name), "{name} should be allowed");
        }
    }

    #[test]
    fn include_list_restricts_and_exclude_wins() {
        let filter = InterfaceFilter {
            include: vec!["eth*".into(), "bond0".into()],
            exclude: vec!["eth9".into()],
        };
        assert!(filter.allows("eth0"));
        assert!(filter.allows("bond0"));
        assert!(!filter.allows("eth9"));
        assert!(!filter.allows("ens3"));
    }

    #[test]
    fn short_line_names_file_line_and_interface() {
        let text = "h1\nh2\n  eth0: 1 2 3\n";
        let error = parse_net_dev(text, &InterfaceFilter::default()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "net/dev: line 3: eth0: 3 counters, expected 16"
        );
    }

    #[test]
    fn interfaces_are_capped() {
        let mut text = String::from("h1\nh2\n");
        for i in 0..MAX_INTERFACES + 10 {
            text.push_str(&format!("eth{i}: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"));
        }
        let interfaces = parse_net_dev(&text, &InterfaceFilter::default()).unwrap();
        assert_eq!(interfaces.len(), MAX_INTERFACES);
        assert_eq!(interfaces[0].tx_bytes, 9);
        assert_eq!(interfaces[0].tx_drops, 12);
    }
}
