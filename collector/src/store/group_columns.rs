//! The per-minute group sums sizing reads, summed over each group's zones into one compact column per
//! field. A 30-day report over 60 groups × zones reads millions of `group_minutes` and
//! `group_port_minutes` rows; this reads each table in one ordered pass (its primary key's order, so no
//! sort), takes only the columns sizing needs, borrows each row's group name instead of copying it, and
//! appends to per-group vectors: nothing is allocated per row.

use super::{Store, StoreError};
use rusqlite::params;
use std::collections::HashMap;

/// One group's per-minute sums over its zones, in minute order. The port columns hold, per minute that
/// has any, one entry per port in port order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupColumns {
    /// Minute starts of the `group_minutes` rows.
    pub minute_ms: Vec<u64>,
    /// Σ busy cores over the group's zones, per minute.
    pub cpu_busy_cores: Vec<f64>,
    /// Σ used memory over the group's zones, per minute.
    pub mem_used_bytes: Vec<f64>,
    /// Σ hosts over the group's zones, per minute.
    pub hosts: Vec<u32>,
    /// Minute starts of the `group_port_minutes` entries.
    pub port_minute_ms: Vec<u64>,
    pub port: Vec<u16>,
    /// Σ over the group's zones of the hosts' mean established connections on `port`.
    pub established: Vec<f64>,
}

impl GroupColumns {
    fn add_minute(&mut self, minute_ms: u64, hosts: u32, cpu_busy_cores: f64, mem_used_bytes: f64) {
        if self.minute_ms.last() == Some(&minute_ms) {
            let last = self.minute_ms.len() - 1;
            self.cpu_busy_cores[last] += cpu_busy_cores;
            self.mem_used_bytes[last] += mem_used_bytes;
            self.hosts[last] += hosts;
        } else {
            // Sums start from 0.0 as a fresh accumulator would, so a lone -0.0 reads as 0.0 both ways.
            self.minute_ms.push(minute_ms);
            self.cpu_busy_cores.push(0.0 + cpu_busy_cores);
            self.mem_used_bytes.push(0.0 + mem_used_bytes);
            self.hosts.push(hosts);
        }
    }

    fn add_port(&mut self, minute_ms: u64, port: u16, established: f64) {
        // This minute's entries are the tail of the columns (rows come in minute order); a port already
        // there (from another zone) is added to, a new one goes in port order.
        let tail_start = self.port_minute_ms.len()
            - self
                .port_minute_ms
                .iter()
                .rev()
                .take_while(|&&m| m == minute_ms)
                .count();
        let tail = &self.port[tail_start..];
        match tail.binary_search(&port) {
            Ok(at) => self.established[tail_start + at] += established,
            Err(at) => {
                self.port_minute_ms.insert(tail_start + at, minute_ms);
                self.port.insert(tail_start + at, port);
                self.established.insert(tail_start + at, 0.0 + established);
            }
        }
    }
}

/// Per-minute sums of every group, keyed by the stored group name (`""` for hosts without a group
/// label), filled by [`Store::add_group_minutes`] and [`Store::add_group_port_minutes`] a range at a
/// time, ranges in time order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupMinuteSums {
    /// Groups in the order first met.
    pub groups: Vec<(String, GroupColumns)>,
    index: HashMap<String, usize>,
    /// The group of the previous row and the one after it: rows cycle through the groups minute after
    /// minute, so most lookups compare one name instead of hashing it.
    hint: usize,
}

impl GroupMinuteSums {
    fn group(&mut self, name: &str) -> &mut GroupColumns {
        let count = self.groups.len();
        let next = if self.hint + 1 < count { self.hint + 1 } else { 0 };
        let found = [self.hint, next]
            .into_iter()
            .find(|&at| at < count && self.groups[at].0 == name)
            .or_else(|| self.index.get(name).copied());
        let at = match found {
            Some(at) => at,
            None => {
                self.index.insert(name.to_string(), count);
                self.groups.push((name.to_string(), GroupColumns::default()));
                count
            }
        };
        self.hint = at;
        &mut self.groups[at].1
    }
}

impl Store {
    /// Adds the `group_minutes` rows with `from_ms <= minute_ms < to_ms` to `sums`, each group's zones
    /// summed in zone order.
    pub fn add_group_minutes(
        &self,
        from_ms: u64,
        to_ms: u64,
        sums: &mut GroupMinuteSums,
    ) -> Result<(), StoreError> {
        let sql = "SELECT minute_ms, group_name, hosts, cpu_busy_cores, mem_used_bytes FROM group_minutes \
                   WHERE minute_ms >= ?1 AND minute_ms < ?2 ORDER BY minute_ms, group_name, zone";
        self.each_minute_row(
            "read group_minutes",
            sql,
            from_ms,
            to_ms,
            |minute_ms, group, row| {
                let hosts = row.get::<_, i64>(2)? as u32;
                sums.group(group)
                    .add_minute(minute_ms, hosts, row.get(3)?, row.get(4)?);
                Ok(())
            },
        )
    }

    /// Adds the `group_port_minutes` rows with `from_ms <= minute_ms < to_ms` to `sums`, each group's
    /// zones summed per port in zone order.
    pub fn add_group_port_minutes(
        &self,
        from_ms: u64,
        to_ms: u64,
        sums: &mut GroupMinuteSums,
    ) -> Result<(), StoreError> {
        let sql = "SELECT minute_ms, group_name, port, established FROM group_port_minutes \
                   WHERE minute_ms >= ?1 AND minute_ms < ?2 ORDER BY minute_ms, group_name, zone, port";
        self.each_minute_row(
            "read group_port_minutes",
            sql,
            from_ms,
            to_ms,
            |minute_ms, group, row| {
                sums.group(group).add_port(minute_ms, row.get(2)?, row.get(3)?);
                Ok(())
            },
        )
    }

    /// Runs `sql` (whose first two columns are `minute_ms` and `group_name`) over `[from_ms, to_ms)` and
    /// hands each row to `add` with its minute and its group name borrowed from the row.
    fn each_minute_row(
        &self,
        what: &'static str,
        sql: &str,
        from_ms: u64,
        to_ms: u64,
        mut add: impl FnMut(u64, &str, &rusqlite::Row<'_>) -> rusqlite::Result<()>,
    ) -> Result<(), StoreError> {
        let err = self.sql_error(what);
        let mut statement = self.conn.prepare_cached(sql).map_err(&err)?;
        let mut rows = statement
            .query(params![from_ms as i64, to_ms as i64])
            .map_err(&err)?;
        while let Some(row) = rows.next().map_err(&err)? {
            let minute_ms = row.get::<_, i64>(0).map_err(&err)? as u64;
            let group = row.get_ref(1).and_then(|v| Ok(v.as_str()?)).map_err(&err)?;
            add(minute_ms, group, row).map_err(&err)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_are_summed_per_minute_and_ports_kept_in_port_order() {
        let mut sums = GroupMinuteSums::default();
        for (minute, group, hosts, cpu) in [
            (0, "web", 2, 1.5),
            (0, "web", 1, 2.0),
            (0, "db", 1, 4.0),
            (60_000, "web", 3, 1.0),
        ] {
            sums.group(group).add_minute(minute, hosts, cpu, 10.0);
        }
        for (minute, group, port, established) in [
            (0, "web", 443, 5.0),
            (0, "web", 80, 1.0),
            (0, "web", 443, 2.5),
            (60_000, "web", 443, 7.0),
        ] {
            sums.group(group).add_port(minute, port, established);
        }
        let web = &sums.groups[0];
        assert_eq!(web.0, "web");
        assert_eq!(web.1.minute_ms, vec![0, 60_000]);
        assert_eq!(web.1.hosts, vec![3, 3]);
        assert_eq!(web.1.cpu_busy_cores, vec![3.5, 1.0]);
        assert_eq!(web.1.mem_used_bytes, vec![20.0, 10.0]);
        assert_eq!(web.1.port_minute_ms, vec![0, 0, 60_000]);
        assert_eq!(web.1.port, vec![80, 443, 443]);
        assert_eq!(web.1.established, vec![1.0, 7.5, 7.0]);
        assert_eq!(sums.groups[1].0, "db");
        assert_eq!(sums.groups[1].1.cpu_busy_cores, vec![4.0]);
    }
}
