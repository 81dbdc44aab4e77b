//! Retention: deletes expired raw rows, rollups, group sums and gaps a chunk at a time, on the writer's
//! connection between batches like the rest of maintenance.

use super::meta::{get_meta, META_HOSTS_SYNCED_ROWID, META_RAW_ROWID};
use super::rollup::{MaintainReport, Retention};
use super::{query_i64, Store, StoreError};
use rusqlite::params;

/// Rows each delete statement removes at most, so ingest waits at most one chunk.
const DELETE_CHUNK_ROWS: i64 = 5_000;

impl Store {
    /// Delete one chunk of each kind of expired data; `true` if anything was deleted.
    ///
    /// Raw rows and hourly rows are deleted from the head of rowid order (the order they were written):
    /// no time index is needed, and a row stored late for an old time (catch-up) is deleted once the head
    /// reaches it. Raw rows are never deleted before they are rolled up and their host's seq is synced.
    pub(super) fn retention_chunk(
        &mut self,
        now_ms: u64,
        retention: &Retention,
        report: &mut MaintainReport,
    ) -> Result<bool, StoreError> {
        let err = self.sql_error("delete expired data");
        let raw_before = now_ms.saturating_sub(retention.raw_ms) as i64;
        let minute_before = now_ms.saturating_sub(retention.minute_rollups_ms) as i64;
        let hour_before = now_ms.saturating_sub(retention.hour_rollups_ms) as i64;
        let tx = self.conn.unchecked_transaction().map_err(&err)?;
        let limit = get_meta(&tx, META_RAW_ROWID)
            .map_err(&err)?
            .min(get_meta(&tx, META_HOSTS_SYNCED_ROWID).map_err(&err)?);
        let head = query_i64(
            &tx,
            "SELECT MAX(id) FROM (SELECT id FROM samples WHERE id <= ?1 ORDER BY id LIMIT ?2)",
            params![limit, DELETE_CHUNK_ROWS],
        )
        .map_err(&err)?;
        let mut raw = 0;
        if let Some(head) = head {
            super::export::record_retention_gap(&tx, head, raw_before).map_err(&err)?;
            raw = tx
                .execute(
                    "DELETE FROM samples WHERE id <= ?1 AND ts_ms < ?2",
                    params![head, raw_before],
                )
                .map_err(&err)?;
        }
        let mut rollups = tx
            .execute(
                "DELETE FROM rollup_minute WHERE id IN \
                 (SELECT id FROM rollup_minute WHERE bucket_ms < ?1 LIMIT ?2)",
                params![minute_before, DELETE_CHUNK_ROWS],
            )
            .map_err(&err)?;
        let hour_head = query_i64(
            &tx,
            "SELECT MAX(id) FROM (SELECT id FROM rollup_hour ORDER BY id LIMIT ?1)",
            [DELETE_CHUNK_ROWS],
        )
        .map_err(&err)?;
        if let Some(head) = hour_head {
            rollups += tx
                .execute(
                    "DELETE FROM rollup_hour WHERE id <= ?1 AND bucket_ms < ?2",
                    params![head, hour_before],
                )
                .map_err(&err)?;
        }
        rollups += tx
            .execute("DELETE FROM group_minutes WHERE minute_ms < ?1", [hour_before])
            .map_err(&err)?;
        rollups += tx
            .execute(
                "DELETE FROM group_port_minutes WHERE minute_ms < ?1",
                [hour_before],
            )
            .map_err(&err)?;
        rollups += tx
            .execute("DELETE FROM gaps WHERE to_ms < ?1", [hour_before])
            .map_err(&err)?;
        tx.commit().map_err(&err)?;
        report.raw_rows_deleted += raw as u64;
        report.rollup_rows_deleted += rollups as u64;
        Ok(raw + rollups > 0)
    }
}
