//! The collector's own health, counted where it happens (ingest, the store writer) and read by `/metrics`.
//!
//! One process-wide set of counters and histograms, like a Prometheus client's default registry: ingest and
//! the store writer record into it with a relaxed atomic add, and nothing on their paths allocates or locks.
//! Values that already live elsewhere (connected agents, database size, rollup progress, alarm deliveries,
//! UDP drops of the QUIC socket) are read when `/metrics` is scraped, in `views::metrics`.
//!
//! Every metric the collector exports about itself is declared here, once: its name, help and labels.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::OnceLock;
use std::time::Duration;

/// A `reason` label (refusals, rejected samples).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: &'static str,
}

/// Why a connection was refused, as the `reason` label of `headroom_collector_connections_refused_total`.
pub mod refusal {
    /// Too many handshakes in progress at once.
    pub const BUSY: &str = "handshakes_busy";
    /// Too many handshakes in progress from one source address.
    pub const PER_SOURCE: &str = "handshakes_per_source";
    /// The handshake did not finish within the handshake timeout.
    pub const TIMEOUT: &str = "handshake_timeout";
    /// `fleet.max_connections` reached.
    pub const FULL: &str = "max_connections";
    /// The TLS handshake failed (no client certificate, another CA, a revoked certificate, a timeout).
    pub const HANDSHAKE: &str = "handshake_failed";
    /// The certificate carries no usable host identity.
    pub const IDENTITY: &str = "no_identity";
    /// The hello failed validation.
    pub const HELLO: &str = "bad_hello";
    /// The enrollment listener's per-source-address rate of new connections was exceeded.
    pub const ENROLL_RATE: &str = "enrollment_rate";
}

/// A `listener` label: `streaming` (`listen`) or `enrollment` (`enroll_listen`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabel {
    pub listener: &'static str,
}

/// Buckets for latencies from a millisecond to ten seconds.
fn latency_buckets() -> impl Iterator<Item = f64> {
    [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ]
    .into_iter()
}

/// The counters and histograms recorded on the collector's hot paths.
#[derive(Debug)]
pub struct Telemetry {
    /// TLS handshakes that completed (streaming and enrollment).
    pub handshakes: Counter,
    /// QUIC Retry packets sent to unvalidated source addresses while handshakes were busy.
    pub handshake_retries: Counter,
    pub refusals: Family<Reason, Counter>,
    /// QUIC handshakes holding a slot right now, by listener.
    pub handshakes_in_progress: Family<ListenerLabel, Gauge>,
    /// Validated connections of the streaming listener waiting in line for a handshake slot.
    pub handshakes_waiting: Gauge,
    pub samples_ingested: Counter,
    pub samples_rejected: Family<Reason, Counter>,
    /// Fresh samples an agent sent beyond its share of the store writer, stored after a wait.
    pub samples_held_back: Counter,
    /// From a batch's arrival to its acknowledgement being written (validation, commit, live update).
    pub ack_latency: Histogram,
    /// One group commit of the store writer.
    pub store_commit: Histogram,
    /// Batches waiting for the store writer, set by each `commit` call.
    pub store_queue_depth: Gauge,
    /// Connections whose last read waits, not yet decoded, for a place in the store writer's queue.
    pub store_reads_waiting: Gauge,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry {
            handshakes: Counter::default(),
            handshake_retries: Counter::default(),
            refusals: Family::default(),
            handshakes_in_progress: Family::default(),
            handshakes_waiting: Gauge::default(),
            samples_ingested: Counter::default(),
            samples_rejected: Family::default(),
            samples_held_back: Counter::default(),
            ack_latency: Histogram::new(latency_buckets()),
            store_commit: Histogram::new(latency_buckets()),
            store_queue_depth: Gauge::default(),
            store_reads_waiting: Gauge::default(),
        }
    }
}

impl Telemetry {
    pub fn refused(&self, reason: &'static str) {
        self.refusals.get_or_create(&Reason { reason }).inc();
    }

    pub fn rejected(&self, reason: &'static str) {
        self.samples_rejected.get_or_create(&Reason { reason }).inc();
    }

    pub fn observe_ack(&self, elapsed: Duration) {
        self.ack_latency.observe(elapsed.as_secs_f64());
    }

    pub fn observe_commit(&self, elapsed: Duration) {
        self.store_commit.observe(elapsed.as_secs_f64());
    }

    /// Registers every recorded metric under the `headroom_collector_` prefix (the registry keeps clones that
    /// share the same atomics).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "handshakes",
            "TLS handshakes completed (agents streaming or enrolling)",
            self.handshakes.clone(),
        );
        registry.register(
            "handshake_retries",
            "QUIC Retry packets sent to make a source address prove itself while many handshakes were in progress",
            self.handshake_retries.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections refused, by reason",
            self.refusals.clone(),
        );
        registry.register(
            "handshakes_in_progress",
            "QUIC handshakes started and not yet finished, failed or timed out, by listener",
            self.handshakes_in_progress.clone(),
        );
        registry.register(
            "handshakes_waiting",
            "Connections of the streaming listener waiting in line for a handshake slot (every slot taken)",
            self.handshakes_waiting.clone(),
        );
        registry.register(
            "samples_ingested",
            "Samples validated and committed to the database",
            self.samples_ingested.clone(),
        );
        registry.register(
            "samples_rejected",
            "Samples that failed validation (acknowledged and dropped), by reason",
            self.samples_rejected.clone(),
        );
        registry.register(
            "samples_held_back",
            "Samples beyond an agent's share of the store writer, stored after a wait (the agent is slowed)",
            self.samples_held_back.clone(),
        );
        registry.register_with_unit(
            "ack_latency",
            "Time from a batch's arrival to its acknowledgement",
            Unit::Seconds,
            self.ack_latency.clone(),
        );
        registry.register_with_unit(
            "store_commit",
            "Duration of one group commit of the store writer",
            Unit::Seconds,
            self.store_commit.clone(),
        );
        registry.register(
            "store_queue_depth",
            "Batches waiting for the store writer",
            self.store_queue_depth.clone(),
        );
        registry.register(
            "store_reads_waiting",
            "Connections whose received samples wait, not yet decoded, for a place in the store writer's queue",
            self.store_reads_waiting.clone(),
        );
    }
}

/// The process's telemetry.
pub fn global() -> &'static Telemetry {
    static TELEMETRY: OnceLock<Telemetry> = OnceLock::new();
    TELEMETRY.get_or_init(Telemetry::default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_values_appear_in_the_text_format() {
        let telemetry = Telemetry::default();
        telemetry.refused(refusal::BUSY);
        telemetry.refused(refusal::BUSY);
        telemetry.rejected("duplicate");
        telemetry.samples_ingested.inc_by(5);
        telemetry
            .handshakes_in_progress
            .get_or_create(&ListenerLabel {
                listener: "enrollment",
            })
            .set(3);
        telemetry.handshakes_waiting.set(7);
        telemetry.observe_ack(Duration::from_millis(3));
        let mut registry = Registry::with_prefix("headroom_collector");
        telemetry.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("headroom_collector_connections_refused_total{reason=\"handshakes_busy\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("headroom_collector_handshakes_in_progress{listener=\"enrollment\"} 3"),
            "{text}"
        );
        assert!(text.contains("headroom_collector_handshakes_waiting 7"), "{text}");
        assert!(
            text.contains("headroom_collector_samples_ingested_total 5"),
            "{text}"
        );
        assert!(
            text.contains("headroom_collector_samples_rejected_total{reason=\"duplicate\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("headroom_collector_ack_latency_seconds_bucket{le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("headroom_collector_ack_latency_seconds_count 1"),
            "{text}"
        );
    }
}
