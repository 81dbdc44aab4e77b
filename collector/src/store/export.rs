//! The store's side of remote_write export: the raw table is the export queue. Rows are read in `samples.id`
//! order after a cursor kept in `meta`; the exporter persists the cursor through the writer once the remote
//! acknowledged the rows, and retention records, as a gap, rows it deletes before the exporter reached them.
//!
//! The exporter reads on its own read-only connection, so a slow remote never holds the writer.

use super::meta::{
    find_meta, get_meta, set_meta, META_EXPORT_CURSOR, META_EXPORT_DROPPED_ROWS, META_EXPORT_GAP_FROM,
    META_EXPORT_GAP_ROWS, META_EXPORT_GAP_TO,
};
use super::schema::metric_columns;
use super::{SampleDetail, Store, StoreError};
use crate::metrics::{Metric, Storage};
use headroom_common::wire::Listener;
use rusqlite::{params, Connection};
use std::collections::BTreeMap;

/// One stored sample as the exporter needs it: which host, when, every scalar metric and the listeners.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRow {
    /// `samples.id`: the queue position.
    pub id: i64,
    pub host_id: i64,
    pub ts_ms: u64,
    /// In `Metric::ALL` order; `None` where the sample did not measure it.
    pub values: Vec<Option<f64>>,
    pub listeners: Vec<Listener>,
}

/// What the exporter labels a host's series with, from `hosts`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportHost {
    pub name: String,
    pub group: String,
    pub zone: String,
    pub labels: BTreeMap<String, String>,
    pub cores: u32,
    pub memory_bytes: u64,
}

/// The export's durable progress and losses, from `meta`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExportProgress {
    /// Last row acknowledged by the remote (0: none yet).
    pub cursor: i64,
    /// Rows deleted by raw retention before they were sent: they never reach the remote.
    pub gap_rows: u64,
    pub gap_from_ms: u64,
    pub gap_to_ms: u64,
    /// Rows the remote refused for good.
    pub dropped_rows: u64,
}

impl Store {
    /// Up to `limit` rows after `cursor`, in id order (the order they were committed, so in seq order per host).
    pub fn export_rows_after(&self, cursor: i64, limit: usize) -> Result<Vec<ExportRow>, StoreError> {
        let err = self.sql_error("read rows to export");
        let sql = format!(
            "SELECT id, host_id, ts_ms, detail, {} FROM samples WHERE id > ?1 ORDER BY id LIMIT ?2",
            metric_columns()
        );
        let mut statement = self.conn.prepare_cached(&sql).map_err(&err)?;
        let mut rows = statement.query(params![cursor, limit as i64]).map_err(&err)?;
        let mut out = Vec::with_capacity(limit.min(4096));
        while let Some(row) = rows.next().map_err(&err)? {
            let detail: Option<Vec<u8>> = row.get(3).map_err(&err)?;
            let listeners = match detail {
                Some(bytes) if !bytes.is_empty() => {
                    SampleDetail::decode(&bytes)
                        .map_err(|e| StoreError::BadBlob {
                            path: self.path.clone(),
                            what: "sample detail",
                            detail: e.to_string(),
                        })?
                        .listeners
                }
                _ => Vec::new(),
            };
            let mut values = Vec::with_capacity(Metric::ALL.len());
            for (i, metric) in Metric::ALL.iter().enumerate() {
                let value = if metric.def().storage == Storage::Integer {
                    row.get::<_, Option<i64>>(4 + i).map_err(&err)?.map(|v| v as f64)
                } else {
                    row.get::<_, Option<f64>>(4 + i).map_err(&err)?
                };
                values.push(value);
            }
            out.push(ExportRow {
                id: row.get(0).map_err(&err)?,
                host_id: row.get(1).map_err(&err)?,
                ts_ms: row.get::<_, i64>(2).map_err(&err)? as u64,
                values,
                listeners,
            });
        }
        Ok(out)
    }

    /// Every host's labels, by `hosts.id`.
    pub fn export_hosts(&self) -> Result<BTreeMap<i64, ExportHost>, StoreError> {
        let err = self.sql_error("read hosts to export");
        let mut statement = self
            .conn
            .prepare_cached("SELECT id, name, labels, group_name, zone, cores, memory_bytes FROM hosts")
            .map_err(&err)?;
        let rows = statement
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    ExportHost {
                        name: r.get(1)?,
                        labels: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default(),
                        group: r.get(3)?,
                        zone: r.get(4)?,
                        cores: r.get::<_, i64>(5)? as u32,
                        memory_bytes: r.get::<_, i64>(6)? as u64,
                    },
                ))
            })
            .and_then(|rows| rows.collect::<Result<BTreeMap<_, _>, _>>())
            .map_err(&err)?;
        Ok(rows)
    }

    /// The export's progress as last persisted; `None` when export never ran on this database.
    pub fn export_progress(&self) -> Result<Option<ExportProgress>, StoreError> {
        read_progress(&self.conn).map_err(self.sql_error("read export progress"))
    }

    /// Highest `samples.id` stored, 0 when empty: how far behind the cursor is.
    pub fn last_row_id(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("SELECT COALESCE(MAX(id), 0) FROM samples", [], |r| r.get(0))
            .map_err(self.sql_error("read the last row id"))
    }

    /// Record the remote's acknowledgement up to `cursor` and rows refused for good (writer connection).
    pub(crate) fn save_export_progress(&mut self, cursor: i64, dropped_rows: u64) -> Result<(), StoreError> {
        let err = self.sql_error("save export progress");
        let tx = self.conn.unchecked_transaction().map_err(&err)?;
        // The cursor only moves forward: a late save never rewinds an earlier one.
        let current = get_meta(&tx, META_EXPORT_CURSOR).map_err(&err)?;
        set_meta(&tx, META_EXPORT_CURSOR, cursor.max(current)).map_err(&err)?;
        if dropped_rows > 0 {
            let dropped = get_meta(&tx, META_EXPORT_DROPPED_ROWS).map_err(&err)?;
            set_meta(&tx, META_EXPORT_DROPPED_ROWS, dropped + dropped_rows as i64).map_err(&err)?;
        }
        tx.commit().map_err(&err)
    }
}

fn read_progress(conn: &Connection) -> rusqlite::Result<Option<ExportProgress>> {
    let Some(cursor) = find_meta(conn, META_EXPORT_CURSOR)? else {
        return Ok(None);
    };
    Ok(Some(ExportProgress {
        cursor,
        gap_rows: get_meta(conn, META_EXPORT_GAP_ROWS)? as u64,
        gap_from_ms: get_meta(conn, META_EXPORT_GAP_FROM)? as u64,
        gap_to_ms: get_meta(conn, META_EXPORT_GAP_TO)? as u64,
        dropped_rows: get_meta(conn, META_EXPORT_DROPPED_ROWS)? as u64,
    }))
}

/// Called by retention inside its transaction before it deletes raw rows up to `head` older than
/// `before_ms`: rows among them the exporter has not sent are counted as an export gap, with their span.
pub(crate) fn record_retention_gap(conn: &Connection, head: i64, before_ms: i64) -> rusqlite::Result<()> {
    let Some(progress) = read_progress(conn)? else {
        return Ok(());
    };
    let (count, from, to): (i64, Option<i64>, Option<i64>) = conn.query_row(
        "SELECT COUNT(*), MIN(ts_ms), MAX(ts_ms) FROM samples WHERE id > ?1 AND id <= ?2 AND ts_ms < ?3",
        params![progress.cursor, head, before_ms],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    if count == 0 {
        return Ok(());
    }
    let (from, to) = (from.unwrap_or(0), to.unwrap_or(0));
    set_meta(conn, META_EXPORT_GAP_ROWS, progress.gap_rows as i64 + count)?;
    let first_from = if progress.gap_rows == 0 {
        from
    } else {
        (progress.gap_from_ms as i64).min(from)
    };
    set_meta(conn, META_EXPORT_GAP_FROM, first_from)?;
    set_meta(conn, META_EXPORT_GAP_TO, (progress.gap_to_ms as i64).max(to))?;
    tracing::warn!(
        rows = count,
        from_ms = from,
        to_ms = to,
        "remote_write export fell behind raw retention: rows deleted before they were sent are recorded as an export gap"
    );
    Ok(())
}
