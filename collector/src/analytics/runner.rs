//! The analytics task: closes the outlier windows and evaluates the alarm rules on their ticks, delivers the
//! transitions, until the collector stops.
//!
//! Both passes walk every host: scoring a window sorts every group's values of every metric, and an
//! evaluation reads every host's recent history (about 50 ms at 10,000 hosts, bench/RESULTS.md "Outliers and
//! alarms"). Run on this task they held a runtime thread that the QUIC connections need, and the
//! acknowledgements behind it waited: at 20,000 agents the outlier window and the web view's summary held it
//! for about 150 ms once a minute (issue 12).
//! Each pass therefore runs on the low-priority passes thread (`crate::background`): the task hands it the
//! tracker and the engine and gets them back.

use super::alarms::deliver::{self, DeliveryHandle, SenderSettings, Target, RESEND_INTERVAL_MS};
use super::alarms::{AlarmEngine, AlarmStatus};
use super::outliers::OutlierTracker;
use super::{lock, Analytics, AnalyticsSettings};
use crate::background::{run_on, Lane};
use headroom_common::clock::now_ms;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// What the passes carry from one tick to the next.
pub(super) struct Passes {
    pub(super) tracker: OutlierTracker,
    /// `None` without alarm rules.
    pub(super) engine: Option<AlarmEngine>,
}

impl Passes {
    pub(super) fn new(settings: &AnalyticsSettings) -> Passes {
        Passes {
            tracker: OutlierTracker::new(settings.outliers.clone()),
            engine: settings.rules.clone().map(|rules| {
                let mut engine = AlarmEngine::new(rules);
                engine.set_sizing(settings.sizing.clone());
                engine
            }),
        }
    }
}

/// Runs `pass` over `passes` on the passes thread and hands them back with its result. A pass that panics
/// costs the outlier flags' history and the alarms' states (they start over, as after a restart), not the
/// analytics task.
pub(super) async fn apart<T: Send + 'static>(
    analytics: &Arc<Analytics>,
    mut passes: Passes,
    pass: impl FnOnce(&Analytics, &mut Passes) -> T + Send + 'static,
) -> (Passes, Option<T>) {
    let shared = analytics.clone();
    // A pass hands the rows it records to the store writer through a task of this runtime.
    let runtime = tokio::runtime::Handle::current();
    let outcome = run_on(Lane::Passes, move || {
        let _entered = runtime.enter();
        let result = pass(&shared, &mut passes);
        (passes, result)
    })
    .await;
    match outcome {
        Some((passes, result)) => (passes, Some(result)),
        None => {
            warn!("an analytics pass failed; outlier flags and alarm states start over");
            (Passes::new(&analytics.settings), None)
        }
    }
}

/// Runs outlier windows and alarm evaluation until `cancel`, then lets the senders flush.
pub async fn run(analytics: Arc<Analytics>, cancel: CancellationToken) {
    let settings = analytics.settings.clone();
    let mut passes = Passes::new(&settings);
    let sender_settings = SenderSettings {
        generator_url: settings.api_url.clone(),
        extra_roots_pem: settings.alarm_ca_pem.clone(),
        ..SenderSettings::default()
    };
    let mut targets: Vec<DeliveryHandle> = Vec::new();
    let mut senders = Vec::new();
    let wanted = [
        settings
            .alertmanager
            .clone()
            .map(|base_url| Target::Alertmanager { base_url }),
        settings.webhook.clone().map(|url| Target::Webhook { url }),
    ];
    for target in wanted.into_iter().flatten().filter(|_| passes.engine.is_some()) {
        let (handle, queue) = deliver::delivery_queue(sender_settings.queue_capacity);
        info!(target = ?target, "alarm delivery on");
        senders.push(tokio::spawn(deliver::run_sender(
            queue,
            target,
            sender_settings.clone(),
            cancel.clone(),
        )));
        targets.push(handle);
    }
    if passes.engine.is_none() {
        info!("no alarm rules configured (alarms.rules); alarms are off");
    }
    let mut window_tick = tokio::time::interval(Duration::from_millis(settings.outliers.window_ms.max(1)));
    let mut alarm_tick = tokio::time::interval(Duration::from_millis(settings.alarm_interval_ms.max(1)));
    window_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    alarm_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick of an interval fires at once; a window closed at start-up would be empty.
    window_tick.tick().await;
    let mut last_resend_ms = now_ms();
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = window_tick.tick() => {
                let now = now_ms();
                (passes, _) = apart(&analytics, passes, move |analytics, passes| {
                    analytics.close_window(&mut passes.tracker, now);
                })
                .await;
            }
            _ = alarm_tick.tick(), if passes.engine.is_some() => {
                let now = now_ms();
                let events;
                (passes, events) = apart(&analytics, passes, move |analytics, passes| {
                    let engine = passes.engine.as_mut()?;
                    Some(analytics.evaluate(engine, &passes.tracker, now))
                })
                .await;
                let (Some(Some(events)), Some(engine)) = (events, passes.engine.as_ref()) else { continue };
                for event in &events {
                    info!(rule = %event.rule, subject = %event.subject.name(), status = ?event.status,
                          "alarm {:?}", event.status);
                }
                let mut batch = events;
                // Alertmanager forgets an alert whose endsAt passed; firing alarms are repeated before that.
                if now.saturating_sub(last_resend_ms) >= RESEND_INTERVAL_MS {
                    last_resend_ms = now;
                    batch.extend(engine.active().into_iter().filter(|e| e.status == AlarmStatus::Firing));
                }
                for target in &targets {
                    if !target.offer(batch.clone()) {
                        warn!(dropped = target.stats().dropped.load(Ordering::Relaxed),
                              "alarm delivery queue full; batch dropped");
                    }
                }
                let mut report = lock(&analytics.alarms);
                report.delivered_batches = targets.iter().map(|t| t.stats().sent.load(Ordering::Relaxed)).sum();
                report.failed_batches = targets.iter().map(|t| t.stats().failed.load(Ordering::Relaxed)).sum();
                report.dropped_batches = targets.iter().map(|t| t.stats().dropped.load(Ordering::Relaxed)).sum();
            }
        }
    }
    drop(targets);
    for sender in senders {
        let _ = sender.await;
    }
}
