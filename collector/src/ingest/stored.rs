//! The ordered, stored path of one connection: validate, derive rates, commit, then apply to the live view;
//! clock estimates; gaps trimmed to what is not stored yet.

use super::clock::{HostClock, SkewChange};
use super::context::{lock_fleet, IngestContext};
use super::validate::{validate_sample, SampleError};
use crate::store::{HostInfo, QueueSlot, SampleRow};
use crate::telemetry;
use headroom_common::clock::now_ms;
use headroom_common::derive::derive_metrics_into;
use headroom_common::wire::{GapReport, Sample};
use std::sync::Arc;
use tracing::{info, warn};

/// Per-connection state of the ordered (stored) path.
pub(super) struct Stream {
    pub(super) host: String,
    pub(super) instance_id: u64,
    /// The hello until it went to the database with a batch; not kept afterwards (issue 12: memory per
    /// connected host).
    pub(super) hello: Option<HostInfo>,
    /// The last stored sample, to derive rates for the next one; the live view shares it.
    pub(super) previous: Option<Arc<Sample>>,
    pub(super) last_seq: Option<u64>,
    pub(super) rejected: u64,
    /// The hello's sampling interval.
    pub(super) interval_ms: u32,
    /// When the last `Live` sample was applied.
    pub(super) last_live_ms: Option<u64>,
    pub(super) clock: HostClock,
    /// The host's analytics state, bound at the hello: `Some` from the hello on.
    pub(super) analytics: Option<crate::analytics::HostSlot>,
    /// When this connection's last batch was stored (the batch's arrival, as the store records it).
    pub(super) last_stored_ms: Option<u64>,
}

impl Stream {
    /// Whether the hello was received (the agent streams samples from then on).
    pub(super) fn past_hello(&self) -> bool {
        self.analytics.is_some()
    }
}

/// Validate, derive rates, commit (in `slot` when one was reserved), then apply to the live view. Returns the
/// sequence to acknowledge.
pub(super) async fn store_samples(
    context: &IngestContext,
    state: &mut Stream,
    samples: Vec<Sample>,
    slot: Option<QueueSlot>,
) -> Result<Option<u64>, String> {
    let now = now_ms();
    let mut batch = context.batches.take();
    // Room for exactly this batch: rows grown by doubling hold up to twice what a backlog needs while it
    // waits for the writer.
    batch
        .rows
        .reserve_exact(samples.len().saturating_sub(batch.rows.len()));
    let mut used = 0;
    // The newest accepted sample of this batch, the one the next derives its rates from.
    let mut newest: Option<Sample> = None;
    for mut sample in samples {
        let seq = sample.seq;
        // Onto the collector's clock, whatever the host's clock says: a sample is never refused for its time.
        let clock_offset_ms = state.clock.place_stored(&mut sample, now);
        match validate_sample(&sample, state.last_seq) {
            Ok(()) => {
                if used == batch.rows.len() {
                    batch.rows.push(SampleRow::default());
                }
                let row = &mut batch.rows[used];
                used += 1;
                // Rates come from the sample before: the previous one of this batch, or the last one stored.
                let previous = newest.as_ref().or(state.previous.as_deref());
                derive_metrics_into(previous, &sample, &mut row.metrics);
                if let Some(slot) = &state.analytics {
                    context
                        .analytics
                        .observe_slot(slot, &row.metrics, sample.timestamp_ms, now);
                }
                row.fill_from(&sample, clock_offset_ms);
                newest = Some(sample);
            }
            Err(error) => {
                state.rejected += 1;
                telemetry::global().rejected(rejection_reason(&error));
                // Log the first and then every hundredth, so a broken agent cannot flood the log.
                if state.rejected == 1 || state.rejected % 100 == 0 {
                    warn!(host = %state.host, seq, %error, rejected = state.rejected, "sample rejected");
                }
            }
        }
        // The session hands over only sequence numbers above the last one; a rejected sample is acknowledged
        // too, or the agent would resend it forever.
        state.last_seq = state.last_seq.max(Some(seq));
    }
    batch.rows.truncate(used);
    let Some(newest) = newest else {
        context.batches.give(batch);
        return Ok(state.last_seq);
    };
    let stored_count = used as u64;
    if batch.host != state.host {
        batch.host.clone_from(&state.host);
    }
    batch.instance_id = state.instance_id;
    batch.received_ms = now;
    // The host's row needs the hello once per connection, not with every batch. A failed commit ends the
    // connection, so the hello is not needed again.
    batch.hello = state.hello.take();
    batch.gaps.clear();
    match context.store.commit_in(slot, batch).await {
        Ok((_outcome, batch)) => {
            telemetry::global().samples_ingested.inc_by(stored_count);
            state.last_stored_ms = Some(now);
            let newest = Arc::new(newest);
            state.previous = Some(Arc::clone(&newest));
            // The live view needs only the newest sample of the batch, with the metrics already derived for
            // it in the batch's last row.
            if let Some(row) = batch.rows.last() {
                lock_fleet(&context.fleet).on_stored(&state.host, newest, &row.metrics, now);
            }
            context.batches.give(batch);
            Ok(state.last_seq)
        }
        Err(error) => Err(format!("storage unavailable, not acknowledging: {error}")),
    }
}

/// A new estimate of the host's clock offset: kept for placing its samples, shown in the fleet view, watched
/// by the clock-skew alarms, and logged when it crosses `fleet.max_clock_skew`.
pub(super) fn on_clock(context: &IngestContext, host: &str, state: &mut Stream, offset_ms: i64, now: u64) {
    let max_skew_ms = context.settings.limits.max_clock_skew_ms;
    match state.clock.set_offset(offset_ms, max_skew_ms) {
        Some(SkewChange::Became { offset_ms }) => warn!(
            %host, offset_ms, max_skew_ms,
            "host clock is off; its samples are stored at corrected times (fix the host's clock: NTP)"
        ),
        Some(SkewChange::Recovered { offset_ms }) => info!(%host, offset_ms, "host clock is right again"),
        None => {}
    }
    lock_fleet(&context.fleet).on_clock(host, offset_ms, now);
    if let Some(slot) = &state.analytics {
        context.analytics.observe_clock(slot, offset_ms);
    }
}

/// The `reason` label of a rejected sample in `/metrics`.
fn rejection_reason(error: &SampleError) -> &'static str {
    match error {
        SampleError::Duplicate { .. } => "duplicate",
        SampleError::OutOfOrder { .. } => "out_of_order",
        SampleError::ZeroSeq => "zero_seq",
        SampleError::TooMany { .. } => "too_many_entries",
        SampleError::OutOfRange { .. }
        | SampleError::NotNonNegative { .. }
        | SampleError::OverTotal { .. } => "value_out_of_range",
        SampleError::BadInterfaceName { .. } => "bad_interface_name",
        _ => "invalid",
    }
}

/// The part of a contiguous gap above `last_stored`, with its start time interpolated; None if all of it is
/// stored. A gap that merged several runs (count below its span) cannot be split and is kept as reported.
pub(super) fn trim_gap(mut gap: GapReport, last_stored: Option<u64>) -> Option<GapReport> {
    let Some(last) = last_stored else { return Some(gap) };
    if gap.to_seq <= last {
        return None;
    }
    let span = gap.to_seq - gap.from_seq + 1;
    if gap.from_seq <= last && gap.count == span {
        let trimmed = last + 1 - gap.from_seq;
        let step_ms = (gap.to_ms.saturating_sub(gap.from_ms)) / (span - 1).max(1);
        gap.from_seq = last + 1;
        gap.from_ms += step_ms * trimmed;
        gap.count -= trimmed;
    }
    Some(gap)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(from_seq: u64, to_seq: u64, count: u64) -> GapReport {
        GapReport {
            from_seq,
            to_seq,
            from_ms: from_seq * 100,
            to_ms: to_seq * 100,
            count,
            reason: headroom_common::wire::GapReason::SpoolFull,
        }
    }

    #[test]
    fn a_gap_is_trimmed_to_what_is_not_stored() {
        assert_eq!(trim_gap(gap(6, 153, 148), None), Some(gap(6, 153, 148)));
        assert_eq!(trim_gap(gap(6, 153, 148), Some(3)), Some(gap(6, 153, 148)));
        // Sample 6 was stored but its acknowledgement never reached the agent.
        assert_eq!(trim_gap(gap(6, 153, 148), Some(6)), Some(gap(7, 153, 147)));
        assert_eq!(trim_gap(gap(6, 153, 148), Some(200)), None);
        // Merged runs cannot be split: kept as reported.
        assert_eq!(trim_gap(gap(6, 153, 100), Some(6)), Some(gap(6, 153, 100)));
    }
}
