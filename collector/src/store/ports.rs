//! Established connections per listening port: each host's per-minute sums (`rollup_minute.ports`) and
//! the per group, zone and minute totals in `group_port_minutes`, which connection sizing reads.
//!
//! Why a per-host part at all: a late sample merged into a minute must replace the host's contribution to
//! the group total, not add to it, and that needs the host's old per-port sums for the minute. They ride
//! in the host's minute row (a few bytes per port) rather than in a table of their own, which would add a
//! B-tree entry per host, port and minute.

use super::{Store, StoreError};
use headroom_common::wire::Listener;
use rusqlite::{params, Transaction};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One host's established connections per listening port over the samples of one bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSums {
    /// Port → (sum of `established` over the samples that listed the port, those samples).
    ports: BTreeMap<u16, (u64, u32)>,
}

impl PortSums {
    /// Counts one sample's listeners.
    pub fn add_listeners(&mut self, listeners: &[Listener]) {
        for listener in listeners {
            let (sum, samples) = self.ports.entry(listener.port).or_default();
            *sum += u64::from(listener.established);
            *samples += 1;
        }
    }

    /// Port sums from (port, (sum of `established`, samples)) pairs, as [`PortSums::get`] gives them back; a
    /// port given twice keeps its last pair.
    pub(crate) fn from_ports(ports: impl IntoIterator<Item = (u16, (u64, u32))>) -> PortSums {
        PortSums {
            ports: ports.into_iter().collect(),
        }
    }

    pub fn merge(&mut self, other: &PortSums) {
        for (port, (sum, samples)) in &other.ports {
            let (total, count) = self.ports.entry(*port).or_default();
            *total += sum;
            *count += samples;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }

    /// (sum, samples) of `port`, zeros when no sample listed it.
    pub fn get(&self, port: u16) -> (u64, u32) {
        self.ports.get(&port).copied().unwrap_or_default()
    }

    /// Per port, the mean established count over the samples that listed it, by port.
    pub fn means(&self) -> impl Iterator<Item = (u16, f64)> + '_ {
        self.ports
            .iter()
            .filter(|(_, (_, samples))| *samples > 0)
            .map(|(port, (sum, samples))| (*port, *sum as f64 / f64::from(*samples)))
    }

    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("postcard encodes plain structs")
    }

    pub fn decode(bytes: &[u8]) -> Result<PortSums, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}

#[cfg(test)]
impl PortSums {
    /// Bytes the map holds on the heap: one B-tree leaf node (std's `LeafNode`: parent pointer, parent index
    /// and length, then room for 11 keys and 11 values) while it has at most 11 ports, none while empty.
    pub(crate) fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        assert!(
            self.ports.len() <= 11,
            "more than one B-tree node is not counted here"
        );
        if self.ports.is_empty() {
            return 0;
        }
        let node =
            size_of::<usize>() + 2 * size_of::<u16>() + 11 * (size_of::<u16>() + size_of::<(u64, u32)>());
        node.next_multiple_of(std::mem::align_of::<usize>().max(std::mem::align_of::<(u64, u32)>()))
    }
}

/// Decodes a `rollup_minute.ports` value; NULL (a row written before the column existed) is empty.
pub(crate) fn read_ports(path: &str, blob: Option<Vec<u8>>) -> Result<PortSums, StoreError> {
    match blob {
        None => Ok(PortSums::default()),
        Some(bytes) => PortSums::decode(&bytes).map_err(|e| StoreError::BadBlob {
            path: path.to_string(),
            what: "rollup port sums",
            detail: e.to_string(),
        }),
    }
}

/// One row of `group_port_minutes`.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupPortMinute {
    pub minute_ms: u64,
    pub group: String,
    pub zone: String,
    pub port: u16,
    /// Σ over hosts of the host's mean established count on `port` in the minute.
    pub established: f64,
    /// Hosts that listed `port` in the minute.
    pub hosts: u64,
}

/// Changes to `group_port_minutes` gathered over one flush: (minute, group, zone, port) → (hosts, established).
#[derive(Debug, Default)]
pub(crate) struct PortContributions {
    rows: BTreeMap<(u64, String, String, u16), (i64, f64)>,
}

impl PortContributions {
    /// Replaces a host's contribution to one minute: adds `merged`, takes away `old`.
    pub(crate) fn replace(
        &mut self,
        minute_ms: u64,
        group: &str,
        zone: &str,
        old: &PortSums,
        merged: &PortSums,
    ) {
        for (sums, sign) in [(merged, 1), (old, -1)] {
            for (port, mean) in sums.means() {
                let (hosts, established) = self
                    .rows
                    .entry((minute_ms, group.to_string(), zone.to_string(), port))
                    .or_default();
                *hosts += sign;
                *established += f64::from(sign as i32) * mean;
            }
        }
    }

    /// The changes gathered: (minute, group, zone, port) → (hosts, established).
    pub(crate) fn rows(&self) -> impl Iterator<Item = (&(u64, String, String, u16), &(i64, f64))> {
        self.rows.iter()
    }

    pub(crate) fn write(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        let mut upsert = tx.prepare_cached(
            "INSERT INTO group_port_minutes (minute_ms, group_name, zone, port, established, hosts) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(minute_ms, group_name, zone, port) DO UPDATE SET \
             established = established + excluded.established, hosts = hosts + excluded.hosts",
        )?;
        for ((minute_ms, group, zone, port), (hosts, established)) in &self.rows {
            if *hosts == 0 && *established == 0.0 {
                continue;
            }
            upsert.execute(params![*minute_ms as i64, group, zone, port, established, hosts])?;
        }
        Ok(())
    }
}

impl Store {
    /// Leaves the database as the upgrade step that added per-port sums leaves one whose minutes before
    /// `from_ms` were rolled up earlier: no port sums for them, and the mark saying so.
    #[cfg(test)]
    pub(crate) fn forget_port_sums_before(&self, from_ms: u64) -> rusqlite::Result<()> {
        self.conn
            .execute_batch("DELETE FROM group_port_minutes; UPDATE rollup_minute SET ports = NULL;")?;
        super::meta::set_meta(&self.conn, super::meta::META_PORT_MINUTES_FROM, from_ms as i64)
    }

    /// `group_port_minutes` rows with `from_ms <= minute_ms < to_ms`, in time, group, zone, port order.
    pub fn group_port_minutes(&self, from_ms: u64, to_ms: u64) -> Result<Vec<GroupPortMinute>, StoreError> {
        self.rows_between(
            "read group_port_minutes",
            "SELECT minute_ms, group_name, zone, port, established, hosts FROM group_port_minutes \
                 WHERE minute_ms >= ?1 AND minute_ms < ?2 ORDER BY minute_ms, group_name, zone, port",
            from_ms,
            to_ms,
            |r| {
                Ok(GroupPortMinute {
                    minute_ms: r.get::<_, i64>(0)? as u64,
                    group: r.get(1)?,
                    zone: r.get(2)?,
                    port: r.get(3)?,
                    established: r.get(4)?,
                    hosts: r.get::<_, i64>(5)? as u64,
                })
            },
        )
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A listener on `port` with `established` connections (also for the pass's entry tests).
    pub(in crate::store) fn listener(port: u16, established: u32) -> Listener {
        Listener {
            port,
            established,
            accept_queue: 0,
            accept_queue_limit: 128,
        }
    }

    #[test]
    fn means_count_only_samples_that_listed_the_port_and_survive_encoding() {
        let mut sums = PortSums::default();
        sums.add_listeners(&[listener(80, 10), listener(443, 100)]);
        sums.add_listeners(&[listener(443, 300)]);
        let mut late = PortSums::default();
        late.add_listeners(&[listener(80, 40)]);
        sums.merge(&late);
        // 80: (10 + 40) / 2; 443: (100 + 300) / 2.
        assert_eq!(sums.means().collect::<Vec<_>>(), vec![(80, 25.0), (443, 200.0)]);
        assert_eq!(sums.get(443), (400, 2));
        assert_eq!(PortSums::decode(&sums.encode()).unwrap(), sums);
        assert!(read_ports("x.db", Some(vec![0xff, 0xff, 0xff])).is_err());
        assert!(read_ports("x.db", None).unwrap().is_empty());
    }

    #[test]
    fn replacing_a_contribution_adds_the_new_mean_and_takes_away_the_old() {
        let (mut old, mut merged) = (PortSums::default(), PortSums::default());
        old.add_listeners(&[listener(443, 100)]);
        merged.add_listeners(&[listener(443, 100), listener(80, 6)]);
        merged.add_listeners(&[listener(443, 300)]);
        let mut contributions = PortContributions::default();
        contributions.replace(0, "web", "a", &old, &merged);
        let rows: Vec<_> = contributions.rows.into_iter().collect();
        // 443 stays one host, 100 → 200; 80 is new: one more host, 6 connections.
        assert_eq!(
            rows,
            vec![
                ((0, "web".into(), "a".into(), 80), (1, 6.0)),
                ((0, "web".into(), "a".into(), 443), (0, 100.0)),
            ]
        );
    }
}
