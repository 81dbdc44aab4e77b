//! The `meta` table: one integer per key, holding the store's durable progress marks. Every key is a
//! constant here, so a mark is spelled once; `get_meta` and `set_meta` are the only SQL that touches it.

use super::query_i64;
use rusqlite::{params, Connection};

/// When the database was created (Unix ms).
pub(crate) const META_CREATED: &str = "created_ms";
/// Highest `samples.id` whose host's last seq has been written to `hosts`.
pub(crate) const META_HOSTS_SYNCED_ROWID: &str = "hosts_synced_rowid";
/// Highest `samples.id` the rollup has finished with.
pub(crate) const META_RAW_ROWID: &str = "rollup_raw_rowid";
/// The rowid a rollup pass in progress runs to (0: no pass in progress).
pub(crate) const META_PASS_END: &str = "rollup_pass_end_rowid";
/// The minute boundary a rollup pass in progress rolls up to.
pub(crate) const META_PASS_CUTOFF: &str = "rollup_pass_cutoff_ms";
/// Every minute before this instant is rolled up.
pub(crate) const META_RAW_CUTOFF: &str = "rollup_raw_cutoff_ms";
/// First minute whose rollup kept per-port sums (set by the schema step that added them).
pub(crate) const META_PORT_MINUTES_FROM: &str = "port_minutes_from_ms";
/// Hourly rollups are built for every hour before this instant.
pub(crate) const META_HOUR_BUILT: &str = "rollup_hour_built_through_ms";
/// The next host id of the hour being built, a chunk of hosts at a time.
pub(crate) const META_HOUR_NEXT_HOST: &str = "rollup_hour_next_host";
/// Last `samples.id` the remote_write receiver acknowledged; absent while export was never enabled.
pub(crate) const META_EXPORT_CURSOR: &str = "export_cursor";
/// Rows retention deleted before the exporter sent them, and the time span they covered.
pub(crate) const META_EXPORT_GAP_ROWS: &str = "export_gap_rows";
pub(crate) const META_EXPORT_GAP_FROM: &str = "export_gap_from_ms";
pub(crate) const META_EXPORT_GAP_TO: &str = "export_gap_to_ms";
/// Rows in batches the remote refused for good (a 4xx that must not be retried).
pub(crate) const META_EXPORT_DROPPED_ROWS: &str = "export_dropped_rows";

/// The value of `key`, 0 when it was never set.
pub(crate) fn get_meta(conn: &Connection, key: &str) -> rusqlite::Result<i64> {
    Ok(query_i64(conn, "SELECT value FROM meta WHERE key = ?1", [key])?.unwrap_or(0))
}

/// The value of `key`, `None` when it was never set.
pub(crate) fn find_meta(conn: &Connection, key: &str) -> rusqlite::Result<Option<i64>> {
    query_i64(conn, "SELECT value FROM meta WHERE key = ?1", [key])
}

pub(crate) fn set_meta(conn: &Connection, key: &str, value: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
    )?
    .execute(params![key, value])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_9_the_migration_that_sets_a_meta_key_spells_it_as_its_constant() {
        let quoted = format!("'{META_PORT_MINUTES_FROM}'");
        assert!(
            super::super::schema::MIGRATIONS
                .iter()
                .any(|step| step.contains(&quoted)),
            "a schema step sets {quoted}"
        );
    }
}
