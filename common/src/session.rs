//! The protocol session as plain state machines: bytes and time go in, frames and events come out.
//!
//! A session is one bidirectional QUIC stream. The agent sends `Hello`; the collector answers `Welcome` (or
//! `Refuse`); then the agent sends `Batch`es of samples in sequence order and the collector answers `Ack`s once
//! the samples are applied. Neither side may send anything else, and a frame that does not decode, is too large
//! or comes out of turn ends that session (and only that one) with a `SessionError` naming what was wrong.
//!
//! From protocol 2 on, the collector also sends a `TimeProbe` right after the welcome and then every
//! `PROBE_INTERVAL_MS`; the agent answers each at once with a `TimeReply`, and the collector estimates the
//! agent's clock offset from them (`crate::clock_offset`). From protocol 3 on, it also tells the agent how far
//! to spread its first reconnect attempt when it loses the collector (`Spread`, `crate::spread`).
//!
//! `Outbox` holds the agent's unacknowledged samples so that a reconnect resumes where the collector left off.

/// Time between two clock probes on one connection.
pub const PROBE_INTERVAL_MS: u64 = 30_000;

/// A probe unanswered for this long is given up, and the next one may go.
pub const PROBE_TIMEOUT_MS: u64 = 10_000;

fn speaks(version: u16) -> bool {
    (MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&version)
}

use crate::clock_offset::{ClockEstimator, ClockExchange};
use crate::spread;
use crate::wire::{
    encode_frame, encode_frame_into, Ack, AgentMessage, Batch, CollectorMessage, FrameDecoder, FrameError,
    GapReport, Hello, Refuse, Sample, Spread, TimeProbe, TimeReply, Welcome, MAX_BATCH_SAMPLES,
    MIN_PROTOCOL_VERSION, PROTOCOL_VERSION,
};
use std::collections::VecDeque;

/// Why a session ended.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("refused by the collector: {0}")]
    Refused(String),
    #[error("protocol version {theirs} is not supported (this side speaks {ours}); upgrade the older side")]
    Version { theirs: u16, ours: u16 },
}

/// The next whole message in the decoder, if one has arrived.
fn next_message<T: serde::de::DeserializeOwned>(
    decoder: &mut FrameDecoder,
    what: &'static str,
) -> Result<Option<T>, SessionError> {
    Ok(decoder.next_message(what)?)
}

/// What the agent learns from the collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEvent {
    /// The collector accepted us; resume after `last_stored_seq`.
    Welcomed {
        host: String,
        last_stored_seq: Option<u64>,
        max_batch_samples: u32,
    },
    /// Everything up to and including this sequence number is stored.
    Acked(u64),
    /// The collector asks for our clock: answer with `time_reply_frame`, stamped with when the bytes were read.
    TimeProbe(TimeProbe),
    /// Protocol 3: on losing this collector, wait a random time up to this many milliseconds (at most
    /// `spread::MAX_WINDOW_MS`) before the first reconnect attempt (`spread::first_delay`).
    Spread(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum AgentState {
    AwaitingWelcome,
    Streaming,
    Closed,
}

/// The agent's side of one session.
#[derive(Debug)]
pub struct AgentSession {
    state: AgentState,
    decoder: FrameDecoder,
    max_batch_samples: usize,
}

impl Default for AgentSession {
    fn default() -> Self {
        Self::new()
    }
}

impl AgentSession {
    pub fn new() -> Self {
        AgentSession {
            state: AgentState::AwaitingWelcome,
            decoder: FrameDecoder::default(),
            max_batch_samples: MAX_BATCH_SAMPLES,
        }
    }

    /// The first frame to send.
    pub fn hello_frame(&self, hello: &Hello) -> Result<Vec<u8>, SessionError> {
        Ok(encode_frame(&AgentMessage::Hello(hello.clone()))?)
    }

    /// True once the collector has welcomed us: only then may batches go out.
    pub fn is_streaming(&self) -> bool {
        self.state == AgentState::Streaming
    }

    /// Most samples the collector takes in one batch.
    pub fn max_batch_samples(&self) -> usize {
        self.max_batch_samples
    }

    /// Feed bytes read from the stream; returns what they meant.
    pub fn on_bytes(&mut self, bytes: &[u8]) -> Result<Vec<AgentEvent>, SessionError> {
        self.decoder.push(bytes);
        let mut events = Vec::new();
        loop {
            let message: CollectorMessage = match next_message(&mut self.decoder, "collector message") {
                Ok(Some(message)) => message,
                Ok(None) => return Ok(events),
                Err(e) => return Err(self.close(e)),
            };
            match (&self.state, message) {
                (_, CollectorMessage::Refuse(Refuse { reason })) => {
                    return Err(self.close(SessionError::Refused(reason)))
                }
                (AgentState::AwaitingWelcome, CollectorMessage::Welcome(welcome)) => {
                    if !speaks(welcome.protocol_version) {
                        return Err(self.close(SessionError::Version {
                            theirs: welcome.protocol_version,
                            ours: PROTOCOL_VERSION,
                        }));
                    }
                    self.state = AgentState::Streaming;
                    self.max_batch_samples = (welcome.max_batch_samples as usize).clamp(1, MAX_BATCH_SAMPLES);
                    events.push(AgentEvent::Welcomed {
                        host: welcome.host,
                        last_stored_seq: welcome.last_stored_seq,
                        max_batch_samples: welcome.max_batch_samples,
                    });
                }
                (AgentState::Streaming, CollectorMessage::Ack(Ack { through_seq })) => {
                    events.push(AgentEvent::Acked(through_seq))
                }
                (AgentState::Streaming, CollectorMessage::TimeProbe(probe)) => {
                    events.push(AgentEvent::TimeProbe(probe))
                }
                (AgentState::Streaming, CollectorMessage::Spread(Spread { window_ms })) => {
                    events.push(AgentEvent::Spread(window_ms.min(spread::MAX_WINDOW_MS)))
                }
                (state, message) => {
                    let what = match message {
                        CollectorMessage::Welcome(_) => "welcome",
                        CollectorMessage::Ack(_) => "ack",
                        CollectorMessage::Refuse(_) => "refuse",
                        CollectorMessage::TimeProbe(_) => "time probe",
                        CollectorMessage::Spread(_) => "spread",
                    };
                    let detail = format!("unexpected {what} in state {state:?}");
                    return Err(self.close(SessionError::Protocol(detail)));
                }
            }
        }
    }

    /// A frame carrying these samples; only valid while streaming.
    pub fn batch_frame(&self, samples: &[Sample]) -> Result<Vec<u8>, SessionError> {
        if self.state != AgentState::Streaming {
            return Err(SessionError::Protocol("batch before welcome".into()));
        }
        Ok(encode_frame(&AgentMessage::Batch(Batch {
            samples: samples.to_vec(),
        }))?)
    }

    /// The answer to a clock probe: `received_ms` is our clock when its bytes were read, `now_ms` as it leaves.
    pub fn time_reply_frame(
        &self,
        probe: &TimeProbe,
        received_ms: u64,
        now_ms: u64,
    ) -> Result<Vec<u8>, SessionError> {
        Ok(encode_frame(&AgentMessage::TimeReply(TimeReply {
            id: probe.id,
            collector_sent_ms: probe.collector_sent_ms,
            agent_received_ms: received_ms,
            agent_sent_ms: now_ms.max(received_ms),
        }))?)
    }

    pub fn goodbye_frame(&self) -> Result<Vec<u8>, SessionError> {
        Ok(encode_frame(&AgentMessage::Goodbye)?)
    }

    /// Report samples that could not be delivered; only valid while streaming.
    pub fn gap_frame(&self, gap: &GapReport) -> Result<Vec<u8>, SessionError> {
        if self.state != AgentState::Streaming {
            return Err(SessionError::Protocol("gap before welcome".into()));
        }
        Ok(encode_frame(&AgentMessage::Gap(gap.clone()))?)
    }

    /// The newest sample for the live view, ahead of a backlog; only valid while streaming.
    pub fn live_frame(&self, sample: &Sample) -> Result<Vec<u8>, SessionError> {
        if self.state != AgentState::Streaming {
            return Err(SessionError::Protocol("live sample before welcome".into()));
        }
        Ok(encode_frame(&AgentMessage::Live(sample.clone()))?)
    }

    fn close(&mut self, error: SessionError) -> SessionError {
        self.state = AgentState::Closed;
        error
    }
}

/// What the collector learns from an agent.
#[derive(Debug, Clone, PartialEq)]
pub enum CollectorEvent {
    /// The agent said hello; answer with `welcome_frame` (or `refuse_frame`).
    Hello(Box<Hello>),
    /// New samples in sequence order; duplicates (sequence numbers already seen) are already removed.
    Samples(Vec<Sample>),
    /// The agent is leaving cleanly.
    Goodbye,
    /// The agent dropped these samples; record the gap.
    Gap(GapReport),
    /// The newest sample, for the live view only (it is stored when the ordered batches reach it).
    Live(Box<Sample>),
    /// The answer to a clock probe: hand it to `on_time_reply` with the time it arrived.
    TimeReply(TimeReply),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CollectorState {
    AwaitingHello,
    AwaitingWelcome,
    Streaming,
    Closed,
}

/// The collector's side of one session with one authenticated host.
#[derive(Debug)]
pub struct CollectorSession {
    host: String,
    state: CollectorState,
    decoder: FrameDecoder,
    /// Highest sequence number handed to the caller in this session or stored before it.
    last_seq: Option<u64>,
    /// Highest sequence number of a `Live` sample handed to the caller; a repeated or older one is dropped.
    last_live_seq: Option<u64>,
    duplicates_dropped: u64,
    /// Version the agent said it speaks.
    peer_version: u16,
    /// The probe waiting for its reply: (id, collector clock when it left).
    probe_outstanding: Option<(u32, u64)>,
    last_probe_ms: Option<u64>,
    next_probe_id: u32,
    clock: ClockEstimator,
    /// The reconnect spread: when this session was first asked for it while streaming, when it last looked,
    /// and the window the agent was last told (0 until told, as an agent assumes).
    spread_since_ms: Option<u64>,
    spread_checked_ms: Option<u64>,
    spread_told_ms: u64,
}

impl CollectorSession {
    /// `host` is the identity taken from the client certificate.
    pub fn new(host: String) -> Self {
        CollectorSession {
            host,
            state: CollectorState::AwaitingHello,
            decoder: FrameDecoder::default(),
            last_seq: None,
            last_live_seq: None,
            duplicates_dropped: 0,
            peer_version: PROTOCOL_VERSION,
            probe_outstanding: None,
            last_probe_ms: None,
            next_probe_id: 1,
            clock: ClockEstimator::default(),
            spread_since_ms: None,
            spread_checked_ms: None,
            spread_told_ms: 0,
        }
    }

    /// A `Spread` to send now, if one is due: to agents that speak protocol 3, `spread::FIRST_AFTER_MS` after
    /// the session first asked while streaming, then looked at every `spread::CHECK_INTERVAL_MS`, and only
    /// when `window_ms` (the collector's current window, `spread::window_ms`) moved from what the agent was
    /// told (`spread::worth_telling`). `window_ms` is called only when it is looked at.
    pub fn spread_frame(&mut self, now_ms: u64, window_ms: impl FnOnce() -> u64) -> Option<Vec<u8>> {
        if self.state != CollectorState::Streaming || self.peer_version < 3 {
            return None;
        }
        let since = *self.spread_since_ms.get_or_insert(now_ms);
        if now_ms.saturating_sub(since) < spread::FIRST_AFTER_MS {
            return None;
        }
        if self
            .spread_checked_ms
            .is_some_and(|checked| now_ms.saturating_sub(checked) < spread::CHECK_INTERVAL_MS)
        {
            return None;
        }
        self.spread_checked_ms = Some(now_ms);
        let window_ms = window_ms().min(spread::MAX_WINDOW_MS);
        if !spread::worth_telling(self.spread_told_ms, window_ms) {
            return None;
        }
        let frame = encode_frame(&CollectorMessage::Spread(Spread { window_ms })).ok()?;
        self.spread_told_ms = window_ms;
        Some(frame)
    }

    /// How far the agent's clock is ahead of ours (negative: behind), once a probe was answered.
    pub fn clock_offset_ms(&self) -> Option<i64> {
        self.clock.offset_ms()
    }

    /// A clock probe to send now, if one is due: right after the welcome, then every `PROBE_INTERVAL_MS`, one
    /// at a time, and only to agents that speak protocol 2.
    pub fn probe_frame(&mut self, now_ms: u64) -> Option<Vec<u8>> {
        if self.state != CollectorState::Streaming || self.peer_version < 2 {
            return None;
        }
        if let Some((_, sent_ms)) = self.probe_outstanding {
            if now_ms.saturating_sub(sent_ms) < PROBE_TIMEOUT_MS {
                return None;
            }
        }
        if self
            .last_probe_ms
            .is_some_and(|last| now_ms.saturating_sub(last) < PROBE_INTERVAL_MS)
        {
            return None;
        }
        let id = self.next_probe_id;
        self.next_probe_id = self.next_probe_id.wrapping_add(1);
        let frame = encode_frame(&CollectorMessage::TimeProbe(TimeProbe {
            id,
            collector_sent_ms: now_ms,
        }))
        .ok()?;
        self.probe_outstanding = Some((id, now_ms));
        self.last_probe_ms = Some(now_ms);
        Some(frame)
    }

    /// A reply arrived at `now_ms`: the exchange it completes, if it answers the probe outstanding. A reply
    /// to no probe, or with stamps no clock produces, is ignored.
    pub fn on_time_reply(&mut self, reply: &TimeReply, now_ms: u64) -> Option<ClockExchange> {
        let (id, sent_ms) = self.probe_outstanding?;
        if reply.id != id || reply.collector_sent_ms != sent_ms {
            return None;
        }
        self.probe_outstanding = None;
        let exchange =
            ClockExchange::from_timestamps(sent_ms, reply.agent_received_ms, reply.agent_sent_ms, now_ms)?;
        self.clock.add(exchange);
        Some(exchange)
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn duplicates_dropped(&self) -> u64 {
        self.duplicates_dropped
    }

    /// Feed bytes read from the stream.
    pub fn on_bytes(&mut self, bytes: &[u8]) -> Result<Vec<CollectorEvent>, SessionError> {
        self.decoder.push(bytes);
        let mut events = Vec::new();
        loop {
            let message: AgentMessage = match next_message(&mut self.decoder, "agent message") {
                Ok(Some(message)) => message,
                Ok(None) => return Ok(events),
                Err(e) => return Err(self.close(e)),
            };
            match (self.state, message) {
                (CollectorState::AwaitingHello, AgentMessage::Hello(hello)) => {
                    if !speaks(hello.protocol_version) {
                        return Err(self.close(SessionError::Version {
                            theirs: hello.protocol_version,
                            ours: PROTOCOL_VERSION,
                        }));
                    }
                    self.peer_version = hello.protocol_version;
                    self.state = CollectorState::AwaitingWelcome;
                    events.push(CollectorEvent::Hello(Box::new(hello)));
                }
                (CollectorState::Streaming, AgentMessage::Batch(batch)) => {
                    if batch.samples.len() > MAX_BATCH_SAMPLES {
                        let detail = format!(
                            "batch of {} samples is over the limit of {MAX_BATCH_SAMPLES}",
                            batch.samples.len()
                        );
                        return Err(self.close(SessionError::Protocol(detail)));
                    }
                    // Filtered in place: the decoded list is the one handed on.
                    let mut fresh = batch.samples;
                    fresh.retain(|sample| {
                        if self.last_seq.is_some_and(|last| sample.seq <= last) {
                            self.duplicates_dropped += 1;
                            return false;
                        }
                        self.last_seq = Some(sample.seq);
                        true
                    });
                    if !fresh.is_empty() {
                        events.push(CollectorEvent::Samples(fresh));
                    }
                }
                (CollectorState::Streaming, AgentMessage::Gap(gap)) => {
                    if gap.from_seq > gap.to_seq || gap.count == 0 {
                        let detail = format!(
                            "gap {}..={} of {} samples is inconsistent",
                            gap.from_seq, gap.to_seq, gap.count
                        );
                        return Err(self.close(SessionError::Protocol(detail)));
                    }
                    events.push(CollectorEvent::Gap(gap));
                }
                (CollectorState::Streaming, AgentMessage::Live(sample)) => {
                    // Only a sample newer than everything stored, and than the last live one, can update the
                    // live view: a repeated `Live` is dropped here, at no cost to the fleet view.
                    let newest = self.last_seq.max(self.last_live_seq);
                    if newest.is_none_or(|last| sample.seq > last) {
                        self.last_live_seq = Some(sample.seq);
                        events.push(CollectorEvent::Live(Box::new(sample)));
                    }
                }
                (CollectorState::Streaming, AgentMessage::TimeReply(reply)) => {
                    events.push(CollectorEvent::TimeReply(reply));
                }
                (CollectorState::Streaming, AgentMessage::Goodbye) => {
                    self.state = CollectorState::Closed;
                    events.push(CollectorEvent::Goodbye);
                    return Ok(events);
                }
                (state, message) => {
                    let what = match message {
                        AgentMessage::Hello(_) => "hello",
                        AgentMessage::Batch(_) => "batch",
                        AgentMessage::Goodbye => "goodbye",
                        AgentMessage::Gap(_) => "gap",
                        AgentMessage::Live(_) => "live sample",
                        AgentMessage::TimeReply(_) => "time reply",
                    };
                    let detail = format!("unexpected {what} in state {state:?}");
                    return Err(self.close(SessionError::Protocol(detail)));
                }
            }
        }
    }

    /// Accept the agent. `last_stored_seq` is what the collector already holds for this host.
    pub fn welcome_frame(&mut self, last_stored_seq: Option<u64>) -> Result<Vec<u8>, SessionError> {
        if self.state != CollectorState::AwaitingWelcome {
            return Err(SessionError::Protocol("welcome before hello".into()));
        }
        self.state = CollectorState::Streaming;
        self.last_seq = last_stored_seq;
        Ok(encode_frame(&CollectorMessage::Welcome(Welcome {
            // An older agent checks for its own version: answer in the lower of the two.
            protocol_version: self.peer_version.min(PROTOCOL_VERSION),
            host: self.host.clone(),
            last_stored_seq,
            max_batch_samples: MAX_BATCH_SAMPLES as u32,
        }))?)
    }

    /// Acknowledge everything through `seq`, once it is applied.
    pub fn ack_frame(&self, through_seq: u64) -> Result<Vec<u8>, SessionError> {
        Ok(encode_frame(&CollectorMessage::Ack(Ack { through_seq }))?)
    }

    /// `ack_frame` appended to `out`, the bytes about to be written, without a buffer of its own.
    pub fn push_ack_frame(&self, through_seq: u64, out: &mut Vec<u8>) -> Result<(), SessionError> {
        Ok(encode_frame_into(
            &CollectorMessage::Ack(Ack { through_seq }),
            out,
        )?)
    }

    /// A refusal to send before closing; the reason is one line for the agent's log.
    pub fn refuse_frame(&mut self, reason: &str) -> Vec<u8> {
        self.state = CollectorState::Closed;
        // A one-line string always encodes well under the frame limit.
        encode_frame(&CollectorMessage::Refuse(Refuse {
            reason: reason.to_string(),
        }))
        .unwrap_or_default()
    }

    fn close(&mut self, error: SessionError) -> SessionError {
        self.state = CollectorState::Closed;
        error
    }
}

/// The agent's unacknowledged samples, oldest first, bounded.
///
/// When full, the oldest sample is dropped and counted: a gap that could not be avoided is reported, never
/// hidden. `sent_through` remembers what went out in this session so that only new samples are sent again
/// until a reconnect rewinds it.
#[derive(Debug)]
pub struct Outbox {
    samples: VecDeque<Sample>,
    capacity: usize,
    sent_through: Option<u64>,
    acked_through: Option<u64>,
    dropped: u64,
    pending_gap: Option<GapReport>,
}

impl Outbox {
    pub fn new(capacity: usize) -> Self {
        Outbox {
            samples: VecDeque::new(),
            capacity: capacity.max(1),
            sent_through: None,
            acked_through: None,
            dropped: 0,
            pending_gap: None,
        }
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Samples dropped because the outbox was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn push(&mut self, sample: Sample) {
        if self.samples.len() == self.capacity {
            if let Some(oldest) = self.samples.pop_front() {
                self.dropped += 1;
                self.note_dropped(&oldest);
            }
        }
        self.samples.push_back(sample);
    }

    fn note_dropped(&mut self, sample: &Sample) {
        // Drops happen oldest first, so one pending gap grows until it is reported. Samples already acked or
        // sent in between cannot fall out (they left the outbox), so the run only ever widens.
        match &mut self.pending_gap {
            Some(gap) => {
                gap.to_seq = sample.seq;
                gap.to_ms = sample.timestamp_ms;
                gap.count += 1;
            }
            None => {
                self.pending_gap = Some(GapReport {
                    from_seq: sample.seq,
                    to_seq: sample.seq,
                    from_ms: sample.timestamp_ms,
                    to_ms: sample.timestamp_ms,
                    count: 1,
                    reason: crate::wire::GapReason::OutboxFull,
                })
            }
        }
    }

    /// Gaps not yet reported to the collector.
    pub fn take_gaps(&mut self) -> Vec<GapReport> {
        self.pending_gap.take().into_iter().collect()
    }

    /// The collector stored everything through `seq`: forget it.
    pub fn ack(&mut self, seq: u64) {
        self.acked_through = self.acked_through.max(Some(seq));
        while self.samples.front().is_some_and(|s| s.seq <= seq) {
            self.samples.pop_front();
        }
    }

    /// A new session starts: the collector holds everything through `last_stored_seq`, and nothing after it
    /// has been sent in this session yet.
    pub fn resume(&mut self, last_stored_seq: Option<u64>) {
        if let Some(seq) = last_stored_seq {
            self.ack(seq);
        }
        self.sent_through = last_stored_seq;
    }

    /// Samples sent in this session and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        match self.sent_through {
            Some(sent) => self.samples.iter().take_while(|s| s.seq <= sent).count(),
            None => 0,
        }
    }

    /// Samples not yet sent in this session.
    pub fn unsent(&self) -> usize {
        self.samples.len() - self.in_flight()
    }

    /// The newest sample held, if any.
    pub fn newest(&self) -> Option<&Sample> {
        self.samples.back()
    }

    /// Up to `max` samples not yet sent in this session, oldest first; marks them sent.
    pub fn next_batch(&mut self, max: usize) -> Vec<Sample> {
        let batch: Vec<Sample> = self
            .samples
            .iter()
            .filter(|s| self.sent_through.is_none_or(|sent| s.seq > sent))
            .take(max)
            .cloned()
            .collect();
        if let Some(last) = batch.last() {
            self.sent_through = Some(last.seq);
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{decode_payload, Capacity, GapReport, HostFacts};

    #[test]
    fn issue_12_acks_appended_to_a_reply_are_the_ack_frames() {
        let collector = CollectorSession::new("web-1".into());
        let mut reply = b"earlier".to_vec();
        collector.push_ack_frame(7, &mut reply).unwrap();
        collector.push_ack_frame(1 << 40, &mut reply).unwrap();
        let mut expected = b"earlier".to_vec();
        expected.extend(collector.ack_frame(7).unwrap());
        expected.extend(collector.ack_frame(1 << 40).unwrap());
        assert_eq!(reply, expected);
        let mut decoder = FrameDecoder::default();
        decoder.push(&reply[7..]);
        for seq in [7, 1 << 40] {
            let ack: CollectorMessage = decoder.next_message("ack").unwrap().unwrap();
            assert_eq!(ack, CollectorMessage::Ack(Ack { through_seq: seq }));
        }
        assert_eq!(decoder.next_message::<CollectorMessage>("ack"), Ok(None));
    }

    /// A collector session that has received the hello of an agent speaking protocol `version`.
    fn greeted_by_version(version: u16) -> CollectorSession {
        let mut old_agent = hello();
        old_agent.protocol_version = version;
        let mut collector = CollectorSession::new("web-2".into());
        collector
            .on_bytes(&AgentSession::new().hello_frame(&old_agent).unwrap())
            .unwrap();
        collector
    }

    fn hello() -> Hello {
        Hello {
            protocol_version: PROTOCOL_VERSION,
            agent_version: "0.1.0".into(),
            instance_id: 7,
            interval_ms: 1000,
            labels: [("group".to_string(), "web".to_string())].into(),
            capacity: Capacity {
                cores: 2,
                memory_bytes: 1 << 30,
            },
            facts: HostFacts::default(),
        }
    }

    fn sample(seq: u64) -> Sample {
        Sample {
            seq,
            timestamp_ms: seq * 1000,
            ..Default::default()
        }
    }

    /// Runs both sides in memory: every frame one side writes is fed to the other.
    #[test]
    fn hello_welcome_batches_and_acks_in_memory() {
        let mut agent = AgentSession::new();
        let mut collector = CollectorSession::new("web-1".into());
        let events = collector.on_bytes(&agent.hello_frame(&hello()).unwrap()).unwrap();
        assert!(matches!(&events[..], [CollectorEvent::Hello(h)] if h.labels["group"] == "web"));
        assert!(!agent.is_streaming());
        assert!(
            agent.batch_frame(&[sample(1)]).is_err(),
            "no batch may leave before the welcome"
        );

        let events = agent
            .on_bytes(&collector.welcome_frame(Some(2)).unwrap())
            .unwrap();
        assert_eq!(
            events,
            vec![AgentEvent::Welcomed {
                host: "web-1".into(),
                last_stored_seq: Some(2),
                max_batch_samples: MAX_BATCH_SAMPLES as u32
            }]
        );
        assert!(agent.is_streaming());

        // Samples 1 and 2 are already stored: a resend of them is dropped as duplicates.
        let frame = agent
            .batch_frame(&[sample(1), sample(2), sample(3), sample(4)])
            .unwrap();
        let events = collector.on_bytes(&frame).unwrap();
        assert_eq!(events, vec![CollectorEvent::Samples(vec![sample(3), sample(4)])]);
        assert_eq!(collector.duplicates_dropped(), 2);

        let events = agent.on_bytes(&collector.ack_frame(4).unwrap()).unwrap();
        assert_eq!(events, vec![AgentEvent::Acked(4)]);

        let events = collector.on_bytes(&agent.goodbye_frame().unwrap()).unwrap();
        assert_eq!(events, vec![CollectorEvent::Goodbye]);
    }

    #[test]
    fn gaps_and_live_samples_reach_the_collector_and_stale_live_samples_do_not() {
        let mut agent = AgentSession::new();
        let mut collector = CollectorSession::new("web-1".into());
        collector.on_bytes(&agent.hello_frame(&hello()).unwrap()).unwrap();
        agent
            .on_bytes(&collector.welcome_frame(Some(10)).unwrap())
            .unwrap();
        let gap = GapReport {
            from_seq: 3,
            to_seq: 5,
            from_ms: 3000,
            to_ms: 5000,
            count: 3,
            reason: crate::wire::GapReason::SpoolFull,
        };
        let events = collector.on_bytes(&agent.gap_frame(&gap).unwrap()).unwrap();
        assert_eq!(events, vec![CollectorEvent::Gap(gap)]);
        let events = collector
            .on_bytes(&agent.live_frame(&sample(50)).unwrap())
            .unwrap();
        assert_eq!(events, vec![CollectorEvent::Live(Box::new(sample(50)))]);
        // Issue 11: the same live sample again, or an older one, is dropped.
        for repeated in [50, 49] {
            assert!(collector
                .on_bytes(&agent.live_frame(&sample(repeated)).unwrap())
                .unwrap()
                .is_empty());
        }
        // A live sample older than what is stored would move the live view backwards: dropped.
        assert!(collector
            .on_bytes(&agent.live_frame(&sample(9)).unwrap())
            .unwrap()
            .is_empty());
        // The live sample does not count as stored: the ordered batch still delivers 11..=50.
        let events = collector
            .on_bytes(&agent.batch_frame(&[sample(11), sample(50)]).unwrap())
            .unwrap();
        assert_eq!(
            events,
            vec![CollectorEvent::Samples(vec![sample(11), sample(50)])]
        );
        let bad = GapReport {
            from_seq: 9,
            to_seq: 3,
            from_ms: 0,
            to_ms: 0,
            count: 1,
            reason: crate::wire::GapReason::Corrupt,
        };
        assert!(collector.on_bytes(&agent.gap_frame(&bad).unwrap()).is_err());
    }

    #[test]
    fn batch_before_hello_is_a_protocol_violation() {
        let mut collector = CollectorSession::new("web-1".into());
        let frame = encode_frame(&AgentMessage::Batch(Batch::default())).unwrap();
        let err = collector.on_bytes(&frame).unwrap_err();
        assert!(err.to_string().contains("unexpected batch"), "{err}");
    }

    #[test]
    fn garbage_ends_the_session_with_a_frame_error() {
        let mut collector = CollectorSession::new("web-1".into());
        let err = collector.on_bytes(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).unwrap_err();
        assert!(
            matches!(err, SessionError::Frame(FrameError::Malformed { .. })),
            "{err}"
        );
        let mut collector = CollectorSession::new("web-1".into());
        let err = collector.on_bytes(&u32::MAX.to_be_bytes()).unwrap_err();
        assert!(
            matches!(err, SessionError::Frame(FrameError::TooLarge { .. })),
            "{err}"
        );
    }

    #[test]
    fn other_protocol_version_is_refused_with_both_versions_named() {
        let mut collector = CollectorSession::new("web-1".into());
        let mut old = hello();
        old.protocol_version = 9;
        let err = collector
            .on_bytes(&AgentSession::new().hello_frame(&old).unwrap())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "protocol version 9 is not supported (this side speaks 3); upgrade the older side"
        );
    }

    /// Issue 11 (point 10): the collector probes the agent's clock right after the welcome and estimates how
    /// far ahead it is; a version-1 agent is welcomed in version 1 and never probed.
    #[test]
    fn issue_11_clock_probes_estimate_the_agent_offset_and_spare_version_1_agents() {
        let mut agent = AgentSession::new();
        let mut collector = CollectorSession::new("web-1".into());
        collector.on_bytes(&agent.hello_frame(&hello()).unwrap()).unwrap();
        assert_eq!(collector.probe_frame(1_000), None, "no probe before the welcome");
        let welcome = collector.welcome_frame(None).unwrap();
        let probe = collector
            .probe_frame(1_000_000)
            .expect("a probe right after the welcome");
        assert_eq!(collector.probe_frame(1_000_001), None, "one probe at a time");
        let mut bytes = welcome;
        bytes.extend_from_slice(&probe);
        let events = agent.on_bytes(&bytes).unwrap();
        let AgentEvent::TimeProbe(probe) = events[1] else {
            panic!("{events:?}")
        };
        // The agent's clock is 10 minutes ahead; 15 ms each way.
        let reply = agent
            .time_reply_frame(&probe, 1_000_015 + 600_000, 1_000_016 + 600_000)
            .unwrap();
        let events = collector.on_bytes(&reply).unwrap();
        let [CollectorEvent::TimeReply(reply)] = events[..] else {
            panic!("{events:?}")
        };
        let exchange = collector.on_time_reply(&reply, 1_000_031).unwrap();
        assert_eq!((exchange.offset_ms, exchange.delay_ms), (600_000, 30));
        assert_eq!(collector.clock_offset_ms(), Some(600_000));
        assert_eq!(collector.on_time_reply(&reply, 1_000_040), None, "answered once");
        assert_eq!(collector.probe_frame(1_000_000 + PROBE_INTERVAL_MS - 1), None);
        assert!(collector.probe_frame(1_000_000 + PROBE_INTERVAL_MS).is_some());

        let mut collector = greeted_by_version(1);
        let welcome = collector.welcome_frame(None).unwrap();
        let decoded: CollectorMessage = decode_payload(&welcome[4..], "welcome").unwrap();
        assert!(
            matches!(
                decoded,
                CollectorMessage::Welcome(Welcome {
                    protocol_version: 1,
                    ..
                })
            ),
            "{decoded:?}"
        );
        assert_eq!(
            collector.probe_frame(1_000_000),
            None,
            "a version-1 agent has no TimeReply"
        );
    }

    #[test]
    fn issue_12_the_spread_reaches_a_version_3_agent_after_10_s_and_again_only_when_it_moved() {
        let mut agent = AgentSession::new();
        let mut collector = CollectorSession::new("web-1".into());
        collector.on_bytes(&agent.hello_frame(&hello()).unwrap()).unwrap();
        assert_eq!(
            collector.spread_frame(0, || 20_000),
            None,
            "nothing before the welcome"
        );
        agent.on_bytes(&collector.welcome_frame(None).unwrap()).unwrap();
        let t0 = 5_000_000;
        assert_eq!(
            collector.spread_frame(t0, || 20_000),
            None,
            "not in the storm that brought it back"
        );
        assert_eq!(
            collector.spread_frame(t0 + spread::FIRST_AFTER_MS - 1, || 20_000),
            None
        );
        let frame = collector
            .spread_frame(t0 + spread::FIRST_AFTER_MS, || 20_000)
            .expect("told 10 s after the welcome");
        assert_eq!(agent.on_bytes(&frame).unwrap(), vec![AgentEvent::Spread(20_000)]);
        // Looked at once a minute, and sent only when the window moved by more than a quarter.
        let next = t0 + spread::FIRST_AFTER_MS + spread::CHECK_INTERVAL_MS;
        assert_eq!(
            collector.spread_frame(next - 1, || 40_000),
            None,
            "within the minute"
        );
        assert_eq!(
            collector.spread_frame(next, || 24_000),
            None,
            "20 % more is not news"
        );
        assert_eq!(
            collector.spread_frame(next + 1, || 40_000),
            None,
            "looked at a moment ago"
        );
        let later = next + spread::CHECK_INTERVAL_MS;
        let frame = collector.spread_frame(later, || 40_000).expect("doubled");
        assert_eq!(agent.on_bytes(&frame).unwrap(), vec![AgentEvent::Spread(40_000)]);
        // A collector asking for more than the cap is held to it, on both sides.
        let frame = collector
            .spread_frame(later + spread::CHECK_INTERVAL_MS, || u64::MAX)
            .expect("moved");
        assert_eq!(
            agent.on_bytes(&frame).unwrap(),
            vec![AgentEvent::Spread(spread::MAX_WINDOW_MS)]
        );
        let forged = encode_frame(&CollectorMessage::Spread(Spread { window_ms: u64::MAX })).unwrap();
        assert_eq!(
            agent.on_bytes(&forged).unwrap(),
            vec![AgentEvent::Spread(spread::MAX_WINDOW_MS)]
        );

        // A small fleet is never told: its agents come back at once.
        let mut collector = CollectorSession::new("web-3".into());
        collector.on_bytes(&agent.hello_frame(&hello()).unwrap()).unwrap();
        collector.welcome_frame(None).unwrap();
        collector.spread_frame(t0, || 800);
        assert_eq!(collector.spread_frame(t0 + spread::FIRST_AFTER_MS, || 800), None);

        // An agent of protocol 2 has no `Spread` and is never sent one.
        let mut collector = greeted_by_version(2);
        collector.welcome_frame(None).unwrap();
        collector.spread_frame(t0, || 20_000);
        assert_eq!(
            collector.spread_frame(t0 + spread::FIRST_AFTER_MS, || 20_000),
            None
        );

        // Before the welcome, a spread is out of turn.
        let mut fresh = AgentSession::new();
        let error = fresh.on_bytes(&forged).unwrap_err();
        assert!(error.to_string().contains("unexpected spread"), "{error}");
    }

    #[test]
    fn refuse_reaches_the_agent_as_an_error_with_the_reason() {
        let mut agent = AgentSession::new();
        let mut collector = CollectorSession::new("web-1".into());
        collector.on_bytes(&agent.hello_frame(&hello()).unwrap()).unwrap();
        let err = agent
            .on_bytes(&collector.refuse_frame("certificate revoked"))
            .unwrap_err();
        assert_eq!(err, SessionError::Refused("certificate revoked".into()));
    }

    #[test]
    fn outbox_resends_only_what_is_not_stored_and_counts_overflow() {
        let mut outbox = Outbox::new(5);
        for seq in 1..=7 {
            outbox.push(sample(seq));
        }
        assert_eq!(
            outbox.dropped(),
            2,
            "two oldest samples fell out of a 5-sample outbox"
        );
        outbox.resume(None);
        let seqs = |b: Vec<Sample>| b.iter().map(|s| s.seq).collect::<Vec<_>>();
        assert_eq!(seqs(outbox.next_batch(2)), vec![3, 4]);
        assert_eq!((outbox.in_flight(), outbox.unsent()), (2, 3));
        assert_eq!(seqs(outbox.next_batch(10)), vec![5, 6, 7]);
        assert!(
            outbox.next_batch(10).is_empty(),
            "nothing is sent twice in one session"
        );
        outbox.ack(4);
        assert_eq!(outbox.len(), 3);
        // Reconnect: the collector had stored through 5, so only 6 and 7 go out again.
        outbox.resume(Some(5));
        assert_eq!(seqs(outbox.next_batch(10)), vec![6, 7]);
    }
}
