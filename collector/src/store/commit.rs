//! The write path: a group commit of many hosts' batches in one transaction, with duplicates dropped by
//! (host, seq) and each host's last seq kept in memory.

use super::*;

impl Store {
    /// Store batches in ONE transaction (group commit); nothing of any batch is stored if it fails.
    ///
    /// Rows at or below a host's last stored seq are dropped as duplicates (retransmissions after a lost
    /// acknowledgement). A new instance id (a reinstall) restarts the host's sequence.
    pub fn commit_batches(&mut self, batches: &[HostBatch]) -> Result<Vec<CommitOutcome>, StoreError> {
        let path = self.path.clone();
        let err = |context| {
            let path = path.clone();
            move |e| StoreError::from_sqlite(&path, context, e)
        };
        let mut staged: HashMap<String, HostRecord> = HashMap::new();
        let mut outcomes = Vec::with_capacity(batches.len());
        let tx = self.conn.transaction().map_err(err("begin"))?;
        for batch in batches {
            let record = match staged.get_mut(&batch.host) {
                Some(record) => record,
                None => {
                    let record = match self.hosts.get(&batch.host) {
                        Some(record) => record.clone(),
                        None => insert_host(&tx, batch).map_err(err("insert host"))?,
                    };
                    staged.entry(batch.host.clone()).or_insert(record)
                }
            };
            if record.instance_id != batch.instance_id {
                // A reinstall: sequence numbers start over. Rows already stored stay; recovery after a crash
                // must only look at this instance's rows, hence instance_since_rowid.
                tx.execute(
                    "UPDATE hosts SET instance_id = ?1, last_seq = NULL, \
                     instance_since_rowid = (SELECT COALESCE(MAX(id), 0) FROM samples) WHERE id = ?2",
                    params![batch.instance_id as i64, record.id],
                )
                .map_err(err("record new instance"))?;
                record.instance_id = batch.instance_id;
                record.last_seq = None;
            }
            if let Some(info) = &batch.hello {
                let labels = serde_json::to_string(&info.labels).expect("labels serialize as JSON");
                tx.prepare_cached(
                    "UPDATE hosts SET labels = ?1, group_name = ?2, zone = ?3, cores = ?4, memory_bytes = ?5, \
                     interval_ms = ?6, agent_version = ?7 WHERE id = ?8",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        labels,
                        info.label("group"),
                        info.label("zone"),
                        info.cores,
                        info.memory_bytes as i64,
                        info.interval_ms,
                        info.agent_version,
                        record.id
                    ])
                })
                .map_err(err("update host"))?;
                record.group = info.label("group");
                record.zone = info.label("zone");
                record.cores = info.cores;
                record.memory_bytes = info.memory_bytes;
            }
            let mut order: Vec<&SampleRow> = batch.rows.iter().collect();
            order.sort_by_key(|r| r.seq);
            let mut outcome = CommitOutcome::default();
            let mut insert = tx
                .prepare_cached(&format!(
                    "INSERT INTO samples (ts_ms, host_id, seq, {}, detail, clock_offset_ms) \
                     VALUES (?1, ?2, ?3, {}, ?{}, ?{})",
                    schema::metric_columns(),
                    (4..4 + Metric::ALL.len())
                        .map(|i| format!("?{i}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    4 + Metric::ALL.len(),
                    5 + Metric::ALL.len()
                ))
                .map_err(err("prepare insert"))?;
            for row in order {
                if record.last_seq.is_some_and(|last| row.seq <= last) {
                    outcome.duplicates += 1;
                    continue;
                }
                bind_sample(&mut insert, record.id, row).map_err(err("insert sample"))?;
                insert.raw_execute().map_err(err("insert sample"))?;
                record.last_seq = Some(row.seq);
                outcome.stored += 1;
            }
            drop(insert);
            for gap in &batch.gaps {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO gaps (host_id, instance_id, from_seq, to_seq, from_ms, to_ms, count, \
                     reason, recorded_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        record.id,
                        batch.instance_id as i64,
                        gap.from_seq as i64,
                        gap.to_seq as i64,
                        gap.from_ms as i64,
                        gap.to_ms as i64,
                        gap.count as i64,
                        gap.reason,
                        batch.received_ms as i64
                    ])
                })
                .map_err(err("insert gap"))?;
            }
            record.last_seen_ms = record.last_seen_ms.max(batch.received_ms);
            record.dirty = true;
            outcome.last_seq = record.last_seq;
            outcomes.push(outcome);
        }
        tx.commit().map_err(err("commit"))?;
        let mut progress = self.progress.write().unwrap_or_else(|p| p.into_inner());
        for (name, record) in staged {
            progress.insert(
                name.clone(),
                HostProgress {
                    instance_id: record.instance_id,
                    last_seq: record.last_seq,
                    last_seen_ms: record.last_seen_ms,
                },
            );
            self.names_by_id.insert(record.id, name.clone());
            self.hosts.insert(name, record);
        }
        Ok(outcomes)
    }
}

fn insert_host(tx: &rusqlite::Transaction<'_>, batch: &HostBatch) -> rusqlite::Result<HostRecord> {
    tx.execute(
        "INSERT INTO hosts (name, instance_id, first_seen_ms, last_seen_ms, \
         instance_since_rowid) VALUES (?1, ?2, ?3, ?3, (SELECT COALESCE(MAX(id), 0) FROM samples))",
        params![batch.host, batch.instance_id as i64, batch.received_ms as i64],
    )?;
    Ok(HostRecord {
        id: tx.last_insert_rowid(),
        instance_id: batch.instance_id,
        last_seq: None,
        last_seen_ms: batch.received_ms,
        group: String::new(),
        zone: String::new(),
        cores: 0,
        memory_bytes: 0,
        dirty: true,
    })
}

fn bind_sample(
    insert: &mut rusqlite::CachedStatement<'_>,
    host_id: i64,
    row: &SampleRow,
) -> rusqlite::Result<()> {
    insert.raw_bind_parameter(1, row.ts_ms as i64)?;
    insert.raw_bind_parameter(2, host_id)?;
    insert.raw_bind_parameter(3, row.seq as i64)?;
    for (i, metric) in Metric::ALL.iter().enumerate() {
        let value = metric.value(&row.metrics).filter(|v| v.is_finite());
        if metric.def().storage == crate::metrics::Storage::Integer {
            insert.raw_bind_parameter(4 + i, value.map(|v| v as i64))?;
        } else {
            insert.raw_bind_parameter(4 + i, value)?;
        }
    }
    let detail = (!row.detail.is_empty()).then_some(row.detail.as_slice());
    insert.raw_bind_parameter(4 + Metric::ALL.len(), detail)?;
    insert.raw_bind_parameter(5 + Metric::ALL.len(), row.clock_offset_ms)?;
    Ok(())
}
