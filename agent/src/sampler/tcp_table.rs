//! Tallies of TCP sockets shared by both sources (netlink and /proc/net/tcp): listeners merged by port, and
//! per-state counts with per-listening-port ESTABLISHED counts. Buffers are reused; nothing is allocated per
//! socket.

use headroom_common::wire::{Listener, TcpState, TcpStates, MAX_LISTENERS};

/// The listening sockets of one tick, merged by port (addresses, IPv4 and IPv6, and SO_REUSEPORT groups on
/// one port are one listener: their queue lengths and limits add up, as each socket has its own queue).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ListenerSet {
    /// Sorted by port.
    listeners: Vec<Listener>,
    /// Listening sockets seen, before merging.
    pub sockets: u32,
}

impl ListenerSet {
    pub fn clear(&mut self) {
        self.listeners.clear();
        self.sockets = 0;
    }

    pub fn add(&mut self, port: u16, accept_queue: u32, accept_queue_limit: u32) {
        self.sockets = self.sockets.saturating_add(1);
        match self
            .listeners
            .binary_search_by_key(&port, |listener| listener.port)
        {
            Ok(found) => {
                let listener = &mut self.listeners[found];
                listener.accept_queue = listener.accept_queue.saturating_add(accept_queue);
                listener.accept_queue_limit = listener.accept_queue_limit.saturating_add(accept_queue_limit);
            }
            Err(slot) => self.listeners.insert(
                slot,
                Listener {
                    port,
                    established: 0,
                    accept_queue,
                    accept_queue_limit,
                },
            ),
        }
    }

    /// Sorted by port; `established` is 0 here (it comes from a `ConnectionTally`).
    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
    }
}

/// The non-listening sockets of one full pass over the tables.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConnectionTally {
    /// Per-state counts; LISTEN stays 0 here (listeners are counted every tick by `ListenerSet`).
    pub states: TcpStates,
    /// (listening port, ESTABLISHED sockets whose local port it is), sorted by port.
    established_by_port: Vec<(u16, u32)>,
    /// Sockets seen, of every state.
    pub sockets: u64,
}

impl ConnectionTally {
    /// Starts a pass that counts ESTABLISHED sockets on the ports `listeners` listen on.
    pub fn start(&mut self, listeners: &ListenerSet) {
        self.states = TcpStates::default();
        self.sockets = 0;
        self.established_by_port.clear();
        self.established_by_port
            .extend(listeners.listeners().iter().map(|listener| (listener.port, 0)));
    }

    /// One socket. LISTEN sockets are ignored: they are counted by `ListenerSet`.
    pub fn add(&mut self, state: TcpState, local_port: u16) {
        if state == TcpState::Listen {
            return;
        }
        self.sockets += 1;
        self.states.add(state, 1);
        if state == TcpState::Established {
            if let Ok(found) = self
                .established_by_port
                .binary_search_by_key(&local_port, |&(port, _)| port)
            {
                let count = &mut self.established_by_port[found].1;
                *count = count.saturating_add(1);
            }
        }
    }

    /// Ends a pass that was given only the ESTABLISHED sockets on listening ports: the ESTABLISHED total
    /// becomes `curr_estab` (/proc/net/snmp's CurrEstab: ESTABLISHED plus CLOSE_WAIT) less this pass's
    /// CLOSE_WAIT count, and never less than the sockets the pass saw on listening ports.
    pub fn established_total(&mut self, curr_estab: u64) {
        let counted = u64::from(self.states.get(TcpState::Established));
        let close_wait = u64::from(self.states.get(TcpState::CloseWait));
        let total = curr_estab.saturating_sub(close_wait).max(counted);
        self.sockets = self.sockets - counted + total;
        self.states.counts[TcpState::Established as usize - 1] = u32::try_from(total).unwrap_or(u32::MAX);
    }

    /// ESTABLISHED sockets on no port that was listening when this pass started.
    pub fn established_off_listeners(&self) -> u64 {
        let on_listeners: u64 = self
            .established_by_port
            .iter()
            .map(|&(_, count)| u64::from(count))
            .sum();
        u64::from(self.states.get(TcpState::Established)).saturating_sub(on_listeners)
    }

    /// ESTABLISHED sockets on a port that was listening when this pass started.
    pub fn established_on(&self, port: u16) -> Option<u32> {
        self.established_by_port
            .binary_search_by_key(&port, |&(listening, _)| listening)
            .ok()
            .map(|found| self.established_by_port[found].1)
    }
}

/// Per-state counts and listeners as one full read of the tables gives them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TcpTable {
    pub states: TcpStates,
    /// Sorted by port, at most `MAX_LISTENERS`.
    pub listeners: Vec<Listener>,
}

/// Listeners of this tick with ESTABLISHED counts from `connections` (which may be from an earlier pass: a
/// port that was not listening then gets 0), and per-state counts with this tick's LISTEN count.
pub fn combine(listeners: &ListenerSet, connections: &ConnectionTally) -> TcpTable {
    let mut states = connections.states;
    states.counts[TcpState::Listen as usize - 1] = listeners.sockets;
    TcpTable {
        states,
        listeners: listeners_with_established(listeners, connections),
    }
}

/// This tick's listeners, at most `MAX_LISTENERS` (the lowest ports, where services live), with their
/// ESTABLISHED counts taken from `connections`.
pub fn listeners_with_established(listeners: &ListenerSet, connections: &ConnectionTally) -> Vec<Listener> {
    listeners
        .listeners()
        .iter()
        .take(MAX_LISTENERS)
        .map(|listener| Listener {
            established: connections.established_on(listener.port).unwrap_or(0),
            ..listener.clone()
        })
        .collect()
}

/// Per-state counts of a tick between full passes: ESTABLISHED and TIME_WAIT, the two states that move most,
/// refreshed from the kernel's own counters, which cost nothing to read. `curr_estab` is /proc/net/snmp's
/// CurrEstab (ESTABLISHED plus CLOSE_WAIT, both families); `time_wait` is /proc/net/sockstat's `tw` (both
/// families). CLOSE_WAIT and the rarer states keep the last pass's counts, and per-port ESTABLISHED counts
/// keep their age: they need the full pass.
pub fn refresh(last_pass: TcpStates, curr_estab: u64, time_wait: u64) -> TcpStates {
    let mut states = last_pass;
    let close_wait = u64::from(last_pass.get(TcpState::CloseWait));
    let established = curr_estab.saturating_sub(close_wait);
    states.counts[TcpState::Established as usize - 1] = u32::try_from(established).unwrap_or(u32::MAX);
    states.counts[TcpState::TimeWait as usize - 1] = u32::try_from(time_wait).unwrap_or(u32::MAX);
    states
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_takes_established_and_time_wait_from_the_counters() {
        let mut last = TcpStates::default();
        last.add(TcpState::Established, 10);
        last.add(TcpState::CloseWait, 3);
        last.add(TcpState::TimeWait, 7);
        last.add(TcpState::FinWait2, 2);
        let states = refresh(last, 40, 1);
        assert_eq!(states.get(TcpState::Established), 37);
        assert_eq!(states.get(TcpState::CloseWait), 3);
        assert_eq!(states.get(TcpState::TimeWait), 1);
        assert_eq!(states.get(TcpState::FinWait2), 2);
        // CurrEstab below the last CLOSE_WAIT count (they closed since) gives 0, not a wrap.
        assert_eq!(refresh(last, 2, 0).get(TcpState::Established), 0);
    }

    #[test]
    fn listeners_on_one_port_merge_and_stay_sorted() {
        let mut set = ListenerSet::default();
        set.add(8080, 1, 128);
        set.add(22, 0, 128);
        set.add(8080, 2, 128);
        assert_eq!(set.sockets, 3);
        let ports: Vec<u16> = set.listeners().iter().map(|l| l.port).collect();
        assert_eq!(ports, [22, 8080]);
        assert_eq!(set.listeners()[1].accept_queue, 3);
        assert_eq!(set.listeners()[1].accept_queue_limit, 256);
    }

    #[test]
    fn established_counts_only_on_listening_ports_and_listen_comes_from_the_set() {
        let mut set = ListenerSet::default();
        set.add(80, 0, 0);
        let mut tally = ConnectionTally::default();
        tally.start(&set);
        tally.add(TcpState::Established, 80);
        tally.add(TcpState::Established, 80);
        tally.add(TcpState::Established, 40000);
        tally.add(TcpState::TimeWait, 80);
        tally.add(TcpState::Listen, 80);
        let table = combine(&set, &tally);
        assert_eq!(table.listeners[0].established, 2);
        assert_eq!(table.states.get(TcpState::Established), 3);
        assert_eq!(table.states.get(TcpState::TimeWait), 1);
        assert_eq!(table.states.get(TcpState::Listen), 1);
        assert_eq!(tally.sockets, 4);
    }

    #[test]
    fn issue_12_a_pass_over_listening_ports_takes_the_established_total_from_curr_estab() {
        let mut set = ListenerSet::default();
        set.add(443, 0, 0);
        let mut tally = ConnectionTally::default();
        tally.start(&set);
        tally.add(TcpState::CloseWait, 50000);
        tally.add(TcpState::TimeWait, 50001);
        tally.add(TcpState::Established, 443);
        tally.add(TcpState::Established, 443);
        // 2 sockets on the listener; CurrEstab says 10 ESTABLISHED or CLOSE_WAIT in all, one of them CLOSE_WAIT.
        tally.established_total(10);
        assert_eq!(tally.states.get(TcpState::Established), 9);
        assert_eq!(tally.sockets, 11);
        assert_eq!(combine(&set, &tally).listeners[0].established, 2);
        assert_eq!(tally.established_off_listeners(), 7);
        // A CurrEstab read before sockets opened is never below what the pass saw on listeners.
        let mut tally = ConnectionTally::default();
        tally.start(&set);
        tally.add(TcpState::Established, 443);
        tally.add(TcpState::Established, 443);
        tally.established_total(1);
        assert_eq!(tally.states.get(TcpState::Established), 2);
        assert_eq!(tally.sockets, 2);
    }

    #[test]
    fn a_port_that_started_listening_after_the_pass_reports_zero() {
        let mut tally = ConnectionTally::default();
        tally.start(&ListenerSet::default());
        tally.add(TcpState::Established, 9000);
        let mut set = ListenerSet::default();
        set.add(9000, 0, 0);
        assert_eq!(combine(&set, &tally).listeners[0].established, 0);
    }
}
