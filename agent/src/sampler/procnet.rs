//! TCP sockets from /proc/net/tcp and /proc/net/tcp6: the fallback when netlink sock_diag is unavailable.
//!
//! These files show each socket's state, local port and, for a LISTEN socket, the accept-queue length in the
//! rx_queue column; they do not show the listen backlog, so `accept_queue_limit` is 0 from here.

use super::tcp_table::{ConnectionTally, ListenerSet, TcpTable};
use super::ParseError;
use headroom_common::wire::TcpState;

pub const TCP: &str = "net/tcp";
pub const TCP6: &str = "net/tcp6";

/// One socket line: "  1: 0100007F:822F 00000000:0000 0A 00000000:00000005 ...".
struct SocketLine {
    state: Option<TcpState>,
    local_port: u16,
    rx_queue: u32,
}

fn parse_line(line: &str) -> Result<SocketLine, String> {
    let mut fields = line.split_whitespace();
    let _slot = fields.next();
    let local = fields.next().ok_or("no local address column")?;
    let _remote = fields.next().ok_or("no remote address column")?;
    let state = fields.next().ok_or("no state column")?;
    let queues = fields.next().ok_or("no tx_queue:rx_queue column")?;
    let (_, port) = local
        .rsplit_once(':')
        .ok_or_else(|| format!("local address \"{local}\" has no \":port\""))?;
    let local_port =
        u16::from_str_radix(port, 16).map_err(|_| format!("local port \"{port}\" is not hex"))?;
    let state_number = u8::from_str_radix(state, 16).map_err(|_| format!("state \"{state}\" is not hex"))?;
    let (_, rx_queue) = queues
        .split_once(':')
        .ok_or_else(|| format!("queue column \"{queues}\" is not tx:rx"))?;
    let rx_queue =
        u32::from_str_radix(rx_queue, 16).map_err(|_| format!("rx_queue \"{rx_queue}\" is not hex"))?;
    Ok(SocketLine {
        // A state number this build does not know is skipped rather than failing the whole table.
        state: TcpState::from_kernel(state_number),
        local_port,
        rx_queue,
    })
}

/// Visits every socket line (the first line is the column header).
fn for_each_socket(
    text: &str,
    file: &'static str,
    mut visit: impl FnMut(SocketLine),
) -> Result<(), ParseError> {
    for (index, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let socket = parse_line(line).map_err(|detail| ParseError::at(file, index + 1, detail))?;
        visit(socket);
    }
    Ok(())
}

/// Adds the LISTEN sockets of one file to `into`.
pub fn parse_listeners(text: &str, file: &'static str, into: &mut ListenerSet) -> Result<(), ParseError> {
    for_each_socket(text, file, |socket| {
        if socket.state == Some(TcpState::Listen) {
            into.add(socket.local_port, socket.rx_queue, 0);
        }
    })
}

/// Adds the non-LISTEN sockets of one file to `into`.
pub fn parse_connections(
    text: &str,
    file: &'static str,
    into: &mut ConnectionTally,
) -> Result<(), ParseError> {
    for_each_socket(text, file, |socket| {
        if let Some(state) = socket.state {
            into.add(state, socket.local_port);
        }
    })
}

/// True once `text` (whole lines from the start of the file) has gone past the listening sockets, which
/// the kernel prints before all others. Lets a tick that needs only the listeners stop reading early.
pub fn past_listening_section(text: &str) -> bool {
    text.lines()
        .skip(1)
        .any(|line| matches!(parse_line(line), Ok(socket) if socket.state != Some(TcpState::Listen)))
}

/// Both files in full: per-state counts and listeners with their ESTABLISHED counts. `tcp6` is `None` on
/// hosts without IPv6.
///
/// Listeners are gathered from both files before connections are counted, because a dual-stack listener
/// in tcp6 accepts IPv4 connections that show in tcp6 too, and an IPv4 listener's connections in tcp.
pub fn parse_tcp(tcp: &str, tcp6: Option<&str>) -> Result<TcpTable, ParseError> {
    let mut listeners = ListenerSet::default();
    parse_listeners(tcp, TCP, &mut listeners)?;
    if let Some(tcp6) = tcp6 {
        parse_listeners(tcp6, TCP6, &mut listeners)?;
    }
    let mut connections = ConnectionTally::default();
    connections.start(&listeners);
    parse_connections(tcp, TCP, &mut connections)?;
    if let Some(tcp6) = tcp6 {
        parse_connections(tcp6, TCP6, &mut connections)?;
    }
    Ok(super::tcp_table::combine(&listeners, &connections))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt\n";

    #[test]
    fn malformed_line_names_file_and_line() {
        let text =
            format!("{HEADER}   0: 0100007F:0050 00000000:0000 0A 00000000:00000002\n   1: 0100007F:ZZ 0\n");
        let error = parse_tcp(&text, None).unwrap_err();
        assert_eq!(error.to_string(), "net/tcp: line 3: no state column");
        let text = format!("{HEADER}   0: 0100007F:0050 00000000:0000 QQ 00000000:00000002\n");
        let error = parse_tcp("h\n", Some(&text)).unwrap_err();
        assert_eq!(error.to_string(), "net/tcp6: line 2: state \"QQ\" is not hex");
    }

    #[test]
    fn dual_stack_listener_counts_connections_from_both_files() {
        let tcp = format!("{HEADER}   0: 0100007F:0050 0100007F:9C40 01 00000000:00000000\n");
        let tcp6 = format!(
            "{HEADER}   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A \
             00000000:00000003\n"
        );
        let table = parse_tcp(&tcp, Some(&tcp6)).unwrap();
        assert_eq!(table.listeners.len(), 1);
        assert_eq!(table.listeners[0].port, 80);
        assert_eq!(table.listeners[0].established, 1);
        assert_eq!(table.listeners[0].accept_queue, 3);
        assert_eq!(table.listeners[0].accept_queue_limit, 0);
    }

    #[test]
    fn unknown_state_is_skipped() {
        let tcp = format!("{HEADER}   0: 0100007F:0050 0100007F:9C40 0D 00000000:00000000\n");
        let table = parse_tcp(&tcp, None).unwrap();
        assert_eq!(table.states.total(), 0);
    }

    #[test]
    fn listening_section_ends_at_the_first_other_state() {
        let listen = "   0: 0100007F:0050 00000000:0000 0A 00000000:00000000\n";
        let established = "   1: 0100007F:0050 0100007F:9C40 01 00000000:00000000\n";
        assert!(!past_listening_section(&format!("{HEADER}{listen}")));
        assert!(past_listening_section(&format!("{HEADER}{listen}{established}")));
    }
}
