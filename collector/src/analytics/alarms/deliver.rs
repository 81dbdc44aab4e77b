//! Delivery of alarms: the Alertmanager v2 (`POST /api/v2/alerts`) and generic webhook JSON bodies (pure),
//! and an async sender with a bounded queue, retries with capped, jittered backoff, and POSTs through the
//! shared HTTP client ([`headroom_common::http`]), so a target may be `http://` or `https://`.

use super::eval::{AlarmEvent, AlarmStatus, Subject};
use headroom_common::backoff::Backoff;
use headroom_common::clock::now_ms;
use headroom_common::http::{Client, ClientOptions, HttpError};
use headroom_common::names::{label_name, percent_encode as encode_query_value};
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How often the caller should re-send firing alarms: Alertmanager expects active alerts to be repeated.
pub const RESEND_INTERVAL_MS: u64 = 60_000;

/// A firing alert is sent with an end time this far ahead, renewed by every re-send; if the collector stops
/// re-sending (crash, partition), Alertmanager resolves it by itself instead of paging forever. Four re-send
/// intervals tolerate three lost deliveries.
pub const FIRING_VALIDITY_MS: u64 = 4 * RESEND_INTERVAL_MS;

/// Unix milliseconds as an RFC 3339 UTC time with milliseconds, as Alertmanager expects.
pub use headroom_common::names::rfc3339_millis;

fn is_url(text: &str) -> bool {
    text.starts_with("https://") || text.starts_with("http://")
}

/// The body of `POST /api/v2/alerts`: firing and resolved alarms (pending ones are not news for whoever is
/// paged). `generator_url` is the collector's base URL; each alert links to its rule there.
///
/// startsAt is when the alarm fired; endsAt is the resolution time for a resolved alarm and
/// now + [`FIRING_VALIDITY_MS`] for a firing one.
pub fn alertmanager_body(events: &[AlarmEvent], now_ms: u64, generator_url: &str) -> Value {
    let alerts: Vec<Value> = events
        .iter()
        .filter(|e| e.status != AlarmStatus::Pending)
        .map(|event| {
            let labels: Map<String, Value> = event
                .labels
                .iter()
                .map(|(k, v)| (label_name(k), Value::String(v.clone())))
                .collect();
            let mut annotations = Map::new();
            annotations.insert("summary".into(), event.summary.clone().into());
            annotations.insert("description".into(), event.description.clone().into());
            annotations.insert("runbook".into(), event.runbook.clone().into());
            if is_url(&event.runbook) {
                annotations.insert("runbook_url".into(), event.runbook.clone().into());
            }
            if let Some(value) = event.value {
                annotations.insert("value".into(), format!("{value}").into());
            }
            let starts_ms = event.fired_ms.or(event.active_since_ms).unwrap_or(now_ms);
            let ends_ms = match event.status {
                AlarmStatus::Resolved => event.resolved_ms.unwrap_or(now_ms),
                _ => now_ms + FIRING_VALIDITY_MS,
            };
            json!({
                "labels": labels,
                "annotations": annotations,
                "startsAt": rfc3339_millis(starts_ms),
                "endsAt": rfc3339_millis(ends_ms),
                "generatorURL": generator_link(generator_url, &event.rule),
            })
        })
        .collect();
    Value::Array(alerts)
}

fn generator_link(base: &str, rule: &str) -> String {
    format!(
        "{}/alarms?rule={}",
        base.trim_end_matches('/'),
        encode_query_value(rule)
    )
}

/// A generic webhook body: every transition, pending included, with its times in RFC 3339.
pub fn webhook_body(events: &[AlarmEvent], now_ms: u64, generator_url: &str) -> Value {
    let time = |ms: Option<u64>| ms.map(rfc3339_millis);
    let alarms: Vec<Value> = events
        .iter()
        .map(|e| {
            let (subject_type, subject) = match &e.subject {
                Subject::Host(name) => ("host", name),
                Subject::Group(name) => ("group", name),
            };
            json!({
                "rule": e.rule,
                "kind": e.kind,
                "status": e.status,
                "severity": e.severity,
                "subject_type": subject_type,
                "subject": subject,
                "labels": e.labels,
                "summary": e.summary,
                "description": e.description,
                "runbook": e.runbook,
                "value": e.value,
                "active_since": time(e.active_since_ms),
                "fired_at": time(e.fired_ms),
                "resolved_at": time(e.resolved_ms),
                "link": generator_link(generator_url, &e.rule),
            })
        })
        .collect();
    json!({ "version": 1, "source": "headroom", "sent_at": rfc3339_millis(now_ms), "alarms": alarms })
}

/// Where alarms go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An Alertmanager at this base URL; the body goes to `<base>/api/v2/alerts`.
    Alertmanager { base_url: String },
    /// Any HTTP endpoint taking the webhook body, at this URL.
    Webhook { url: String },
}

impl Target {
    /// The URL the body is POSTed to.
    pub fn url(&self) -> String {
        match self {
            Target::Alertmanager { base_url } => {
                format!("{}/api/v2/alerts", base_url.trim_end_matches('/'))
            }
            Target::Webhook { url } => url.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SenderSettings {
    /// Batches waiting to be sent; more are dropped and counted.
    pub queue_capacity: usize,
    /// Attempts per batch, the first included.
    pub max_attempts: u32,
    pub backoff_base_ms: u64,
    pub backoff_cap_ms: u64,
    /// Connecting, and the whole request after it, each.
    pub timeout_ms: u64,
    /// PEM CA certificates trusted for https:// targets besides the system's store (`alarms.ca`).
    pub extra_roots_pem: Option<Vec<u8>>,
    /// The collector's base URL for generatorURL links.
    pub generator_url: String,
}

impl Default for SenderSettings {
    fn default() -> Self {
        SenderSettings {
            queue_capacity: 64,
            max_attempts: 5,
            backoff_base_ms: 500,
            backoff_cap_ms: 30_000,
            timeout_ms: 5_000,
            extra_roots_pem: None,
            generator_url: "http://127.0.0.1:9601".to_string(),
        }
    }
}

impl SenderSettings {
    /// Delay before retry `attempt` (1 for the first retry): the shared [`Backoff`], doubling from
    /// `backoff_base_ms` up to `backoff_cap_ms` with equal jitter, so many senders do not retry in step.
    /// `jitter_unit` is in [0, 1).
    pub fn retry_delay(&self, attempt: u32, jitter_unit: f64) -> Duration {
        let backoff = Backoff {
            initial: Duration::from_millis(self.backoff_base_ms),
            cap: Duration::from_millis(self.backoff_cap_ms),
        };
        backoff.delay(attempt.saturating_sub(1), jitter_unit)
    }
}

/// Counters of what happened to the batches offered.
#[derive(Debug, Default)]
pub struct DeliveryStats {
    pub sent: AtomicU64,
    /// Batches given up on after every attempt failed, or refused by the target.
    pub failed: AtomicU64,
    /// Batches dropped because the queue was full.
    pub dropped: AtomicU64,
    pub retries: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("alarm delivery to {url}: {detail} (is the receiver running and listening there?)")]
    Unreachable { url: String, detail: String },
    #[error("alarm delivery to {url}: status {status}: {body}")]
    Status { url: String, status: u16, body: String },
}

impl DeliveryError {
    /// Client errors other than 408 and 429 will fail the same way again.
    fn is_permanent(&self) -> bool {
        matches!(self, DeliveryError::Status { status, .. } if (400..500).contains(status) && *status != 408 && *status != 429)
    }
}

/// The client a sender uses: the settings' timeout and extra CA, and at most 64 KiB of a response read (only
/// the status and a short error text are of interest).
pub fn delivery_client(settings: &SenderSettings) -> Result<Client, HttpError> {
    Client::new(&ClientOptions {
        timeout: Duration::from_millis(settings.timeout_ms),
        extra_roots_pem: settings.extra_roots_pem.clone(),
        max_body_bytes: 64 * 1024,
    })
}

/// The producing side of the queue; cheap to clone.
#[derive(Debug, Clone)]
pub struct DeliveryHandle {
    tx: mpsc::Sender<Vec<AlarmEvent>>,
    stats: Arc<DeliveryStats>,
}

impl DeliveryHandle {
    /// Queues a batch without waiting; returns false (and counts it) when the queue is full or closed.
    pub fn offer(&self, events: Vec<AlarmEvent>) -> bool {
        if events.is_empty() {
            return true;
        }
        match self.tx.try_send(events) {
            Ok(()) => true,
            Err(_) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    pub fn stats(&self) -> &Arc<DeliveryStats> {
        &self.stats
    }
}

/// The consuming side, for [`run_sender`].
#[derive(Debug)]
pub struct DeliveryQueue {
    rx: mpsc::Receiver<Vec<AlarmEvent>>,
    stats: Arc<DeliveryStats>,
}

pub fn delivery_queue(capacity: usize) -> (DeliveryHandle, DeliveryQueue) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let stats = Arc::new(DeliveryStats::default());
    (
        DeliveryHandle {
            tx,
            stats: stats.clone(),
        },
        DeliveryQueue { rx, stats },
    )
}

/// Sends queued batches until `cancel`; then makes one attempt for each batch still queued and returns.
pub async fn run_sender(
    mut queue: DeliveryQueue,
    target: Target,
    settings: SenderSettings,
    cancel: CancellationToken,
) {
    let client = match delivery_client(&settings) {
        Ok(client) => client,
        Err(error) => {
            // Checked when the collector starts (`app::serve::analytics_settings`), so this is not expected.
            tracing::error!(%error, url = %target.url(), "alarm delivery off: no HTTP client");
            return;
        }
    };
    let mut rng = fastrand::Rng::new();
    loop {
        let batch = tokio::select! {
            batch = queue.rx.recv() => batch,
            () = cancel.cancelled() => None,
        };
        let Some(batch) = batch else { break };
        deliver_with_retries(
            &client,
            &batch,
            &target,
            &settings,
            &queue.stats,
            &cancel,
            &mut rng,
        )
        .await;
    }
    queue.rx.close();
    while let Ok(batch) = queue.rx.try_recv() {
        let single = SenderSettings {
            max_attempts: 1,
            ..settings.clone()
        };
        deliver_with_retries(&client, &batch, &target, &single, &queue.stats, &cancel, &mut rng).await;
    }
}

async fn deliver_with_retries(
    client: &Client,
    batch: &[AlarmEvent],
    target: &Target,
    settings: &SenderSettings,
    stats: &DeliveryStats,
    cancel: &CancellationToken,
    rng: &mut fastrand::Rng,
) {
    for attempt in 1..=settings.max_attempts.max(1) {
        // The body is built per attempt so a firing alarm's validity counts from the actual send.
        let now_ms = now_ms();
        let body = match target {
            Target::Alertmanager { .. } => alertmanager_body(batch, now_ms, &settings.generator_url),
            Target::Webhook { .. } => webhook_body(batch, now_ms, &settings.generator_url),
        };
        if body.as_array().is_some_and(|alerts| alerts.is_empty()) {
            return;
        }
        let result = post_json(client, &target.url(), body.to_string().into_bytes()).await;
        let error = match result {
            Ok(()) => {
                stats.sent.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(error) => error,
        };
        if error.is_permanent() || attempt == settings.max_attempts || cancel.is_cancelled() {
            tracing::warn!(%error, attempt, alarms = batch.len(), "alarm delivery failed, batch given up");
            stats.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let delay_ms = settings.retry_delay(attempt, rng.f64()).as_millis() as u64;
        tracing::debug!(%error, attempt, delay_ms, "alarm delivery failed, retrying");
        stats.retries.fetch_add(1, Ordering::Relaxed);
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(delay_ms)) => {}
            () = cancel.cancelled() => {}
        }
    }
}

/// One POST of a JSON body; Ok on any 2xx status.
pub async fn post_json(client: &Client, url: &str, body: Vec<u8>) -> Result<(), DeliveryError> {
    let response = client.post_json(url, body).await.map_err(|error| match error {
        HttpError::Request { detail, .. } => DeliveryError::Unreachable {
            url: url.to_string(),
            detail,
        },
        other => DeliveryError::Unreachable {
            url: url.to_string(),
            detail: other.to_string(),
        },
    })?;
    if response.is_success() {
        return Ok(());
    }
    Err(DeliveryError::Status {
        url: url.to_string(),
        status: response.status,
        body: response.body.trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::alarms::Severity;
    use std::collections::BTreeMap;
    use std::net::SocketAddr;

    const T0_MS: u64 = 1_700_000_000_000;

    fn event(status: AlarmStatus) -> AlarmEvent {
        let labels: BTreeMap<String, String> = [
            ("alertname", "host-silent"),
            ("severity", "critical"),
            ("host", "web-17"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        AlarmEvent {
            rule: "host-silent".into(),
            kind: "missing",
            subject: Subject::Host("web-17".into()),
            status,
            severity: Severity::Critical,
            runbook: "https://runbooks.invalid/silent".into(),
            summary: "web-17 silent".into(),
            description: "no data for 45.0 s".into(),
            value: Some(45.0),
            labels,
            active_since_ms: Some(T0_MS),
            fired_ms: Some(T0_MS + 1_000),
            resolved_ms: (status == AlarmStatus::Resolved).then_some(T0_MS + 90_000),
        }
    }

    #[test]
    fn alertmanager_body_has_the_v2_fields_and_skips_pending() {
        let events = [
            event(AlarmStatus::Pending),
            event(AlarmStatus::Firing),
            event(AlarmStatus::Resolved),
        ];
        let body = alertmanager_body(&events, T0_MS + 2_000, "http://127.0.0.1:9601/");
        let alerts = body.as_array().unwrap();
        assert_eq!(alerts.len(), 2);
        let firing = &alerts[0];
        assert_eq!(firing["labels"]["alertname"], "host-silent");
        assert_eq!(firing["labels"]["host"], "web-17");
        assert_eq!(
            firing["annotations"]["runbook_url"],
            "https://runbooks.invalid/silent"
        );
        assert_eq!(firing["annotations"]["summary"], "web-17 silent");
        assert_eq!(firing["annotations"]["description"], "no data for 45.0 s");
        assert_eq!(firing["startsAt"], "2023-11-14T22:13:21.000Z");
        // A firing alert carries a renewable end, four re-send intervals ahead.
        assert_eq!(
            firing["endsAt"],
            rfc3339_millis(T0_MS + 2_000 + FIRING_VALIDITY_MS)
        );
        assert_eq!(
            firing["generatorURL"],
            "http://127.0.0.1:9601/alarms?rule=host-silent"
        );
        assert_eq!(alerts[1]["endsAt"], "2023-11-14T22:14:50.000Z");
    }

    #[test]
    fn rule_names_in_links_are_percent_encoded() {
        assert_eq!(
            generator_link("http://127.0.0.1:9601/", "cpu hot/zone-a_1.5~é&x"),
            "http://127.0.0.1:9601/alarms?rule=cpu%20hot%2Fzone-a_1.5~%C3%A9%26x"
        );
    }

    #[test]
    fn label_names_are_made_valid_and_text_runbooks_are_not_urls() {
        assert_eq!(label_name("service-tier"), "service_tier");
        assert_eq!(label_name("1zone"), "_1zone");
        let mut e = event(AlarmStatus::Firing);
        e.runbook = "restart it".into();
        e.labels.insert("service-tier".into(), "gold".into());
        let body = alertmanager_body(&[e], T0_MS, "http://x");
        assert_eq!(body[0]["annotations"]["runbook"], "restart it");
        assert!(body[0]["annotations"].get("runbook_url").is_none());
        assert_eq!(body[0]["labels"]["service_tier"], "gold");
    }

    #[test]
    fn webhook_body_carries_every_transition() {
        let body = webhook_body(
            &[event(AlarmStatus::Pending), event(AlarmStatus::Resolved)],
            T0_MS,
            "http://x",
        );
        assert_eq!(body["version"], 1);
        assert_eq!(body["sent_at"], "2023-11-14T22:13:20.000Z");
        let alarms = body["alarms"].as_array().unwrap();
        assert_eq!(alarms[0]["status"], "pending");
        assert_eq!(alarms[0]["resolved_at"], Value::Null);
        assert_eq!(alarms[1]["status"], "resolved");
        assert_eq!(alarms[1]["subject"], "web-17");
        assert_eq!(alarms[1]["severity"], "critical");
    }

    #[test]
    fn retries_use_the_shared_capped_jittered_backoff() {
        let settings = SenderSettings::default();
        let ms = |attempt, unit| settings.retry_delay(attempt, unit).as_millis();
        // Equal jitter: the delay lies in the upper half of a ceiling that doubles from 500 ms.
        assert_eq!(ms(1, 1.0), 500);
        assert_eq!(ms(1, 0.0), 250);
        assert_eq!(ms(4, 1.0), 4_000);
        // The cap is a ceiling, also for huge attempt numbers.
        assert_eq!(ms(10, 1.0), 30_000);
        assert_eq!(ms(u32::MAX, 1.0), 30_000);
        for unit in [0.0, 0.3, 0.999] {
            let delay = ms(10, unit);
            assert!((15_000..=30_000).contains(&delay), "{delay}");
        }
    }

    #[test]
    fn a_full_queue_counts_what_it_drops() {
        let (handle, _queue) = delivery_queue(2);
        assert!(handle.offer(vec![event(AlarmStatus::Firing)]));
        assert!(handle.offer(vec![event(AlarmStatus::Firing)]));
        assert!(!handle.offer(vec![event(AlarmStatus::Firing)]));
        assert_eq!(handle.stats().dropped.load(Ordering::Relaxed), 1);
    }

    /// Reads one HTTP/1.1 request (head and a Content-Length body) from `stream`; `None` if the connection
    /// fails or closes first.
    fn try_read_request(stream: &mut impl std::io::Read) -> Option<(String, String)> {
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).ok()?;
            if n == 0 {
                return None;
            }
            raw.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&raw).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().unwrap())
                    })
                    .unwrap();
                if body.len() >= length {
                    return Some((head.to_string(), body.to_string()));
                }
            }
        }
    }

    fn read_request(stream: &mut impl std::io::Read) -> (String, String) {
        try_read_request(stream).expect("a whole request")
    }

    fn reply(status: u16) -> String {
        format!("HTTP/1.1 {status} X\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy")
    }

    /// Accepts `statuses.len()` plain HTTP requests, answering each with the next status; returns the bodies.
    fn receiver(statuses: Vec<u16>) -> (SocketAddr, std::thread::JoinHandle<Vec<String>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let task = std::thread::spawn(move || {
            let mut bodies = Vec::new();
            for status in statuses {
                let (mut socket, _) = listener.accept().unwrap();
                let (head, body) = read_request(&mut socket);
                assert!(head.starts_with("POST /api/v2/alerts HTTP/1.1"), "{head}");
                bodies.push(body);
                std::io::Write::write_all(&mut socket, reply(status).as_bytes()).unwrap();
            }
            bodies
        });
        (addr, task)
    }

    async fn join<T: Send + 'static>(server: std::thread::JoinHandle<T>) -> T {
        let joined = tokio::task::spawn_blocking(move || server.join().unwrap());
        tokio::time::timeout(Duration::from_secs(30), joined)
            .await
            .expect("the receiver got what it waited for")
            .unwrap()
    }

    #[tokio::test]
    async fn the_sender_retries_a_busy_alertmanager_then_delivers() {
        let (addr, server) = receiver(vec![503, 200]);
        let (handle, queue) = delivery_queue(4);
        let settings = SenderSettings {
            backoff_base_ms: 10,
            ..SenderSettings::default()
        };
        let cancel = CancellationToken::new();
        let sender = tokio::spawn(run_sender(
            queue,
            Target::Alertmanager {
                base_url: format!("http://{addr}/"),
            },
            settings,
            cancel.clone(),
        ));
        assert!(handle.offer(vec![event(AlarmStatus::Firing)]));
        let bodies = join(server).await;
        assert_eq!(bodies.len(), 2);
        let sent: Value = serde_json::from_str(&bodies[1]).unwrap();
        assert_eq!(sent[0]["labels"]["alertname"], "host-silent");
        cancel.cancel();
        sender.await.unwrap();
        assert_eq!(handle.stats().sent.load(Ordering::Relaxed), 1);
        assert_eq!(handle.stats().retries.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_rejected_body_is_not_retried_and_an_absent_receiver_names_the_address() {
        let client = delivery_client(&SenderSettings::default()).unwrap();
        let (addr, server) = receiver(vec![400]);
        let url = format!("http://{addr}/api/v2/alerts");
        let error = post_json(&client, &url, b"[]".to_vec()).await.unwrap_err();
        assert!(error.is_permanent());
        assert!(error.to_string().contains("status 400: busy"), "{error}");
        join(server).await;
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let url = format!("http://{closed}/api/v2/alerts");
        let error = post_json(&client, &url, b"[]".to_vec()).await.unwrap_err();
        assert!(!error.is_permanent());
        assert!(error.to_string().contains(&closed.to_string()), "{error}");
    }

    /// A TLS receiver on loopback with a certificate from a private CA: `(ca_pem, addr, server)`.
    fn tls_receiver() -> (String, SocketAddr, std::thread::JoinHandle<Option<String>>) {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let now = std::time::SystemTime::now();
        let ca = headroom_common::pki::create_ca("receiver test CA", now, 1).unwrap();
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let cert =
            headroom_common::pki::issue_server_cert(&ca, &names, now, Duration::from_secs(3600)).unwrap();
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (socket, _) = listener.accept().unwrap();
            let connection = rustls::ServerConnection::new(std::sync::Arc::new(config)).unwrap();
            let mut tls = rustls::StreamOwned::new(connection, socket);
            // A client that refuses the certificate ends the handshake: then there is no request.
            let (head, body) = try_read_request(&mut tls)?;
            assert!(head.starts_with("POST /hooks/headroom HTTP/1.1"), "{head}");
            std::io::Write::write_all(&mut tls, reply(200).as_bytes()).unwrap();
            tls.conn.send_close_notify();
            let _ = std::io::Write::flush(&mut tls);
            Some(body)
        });
        (ca.cert_pem, addr, server)
    }

    #[tokio::test]
    async fn alarms_are_delivered_over_https_to_a_receiver_with_a_private_ca() {
        let (ca_pem, addr, server) = tls_receiver();
        let (handle, queue) = delivery_queue(4);
        let settings = SenderSettings {
            extra_roots_pem: Some(ca_pem.into_bytes()),
            ..SenderSettings::default()
        };
        let cancel = CancellationToken::new();
        let sender = tokio::spawn(run_sender(
            queue,
            Target::Webhook {
                url: format!("https://{addr}/hooks/headroom"),
            },
            settings,
            cancel.clone(),
        ));
        assert!(handle.offer(vec![event(AlarmStatus::Firing)]));
        let body = join(server).await.expect("a request over TLS");
        let sent: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(sent["alarms"][0]["rule"], "host-silent");
        cancel.cancel();
        sender.await.unwrap();
        assert_eq!(handle.stats().sent.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn an_https_receiver_not_signed_by_a_trusted_ca_is_refused() {
        let (_ca_pem, addr, server) = tls_receiver();
        let client = delivery_client(&SenderSettings::default()).unwrap();
        let url = format!("https://{addr}/hooks/headroom");
        let error = post_json(&client, &url, b"{}".to_vec()).await.unwrap_err();
        assert!(!error.is_permanent());
        assert!(
            error.to_string().to_lowercase().contains("certificate"),
            "{error}"
        );
        assert_eq!(
            join(server).await,
            None,
            "no request without a trusted certificate"
        );
    }
}
