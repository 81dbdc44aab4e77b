//! Benchmark of the remote_write export (issue 13): a generated database of HOSTS hosts × SAMPLES samples
//! (every catalogue metric measured, three listening ports per host) is exported by the real exporter
//! (`export::spawn`, with the store writer saving its cursor) into the receiver at the URL given as the first
//! argument, RUNS times from a fresh copy of the file. Prints per run: host-samples per second, collector CPU
//! per exported host-sample (the whole process, user + system, while exporting) split into reading and
//! encoding (the exporter's own accounting) and the rest (HTTP, compression is part of encoding), series per
//! host, samples and bytes on the wire; then the median and spread. `bench/export_bench.sh` starts
//! VictoriaMetrics on 127.0.0.1 and runs it (a release build).

use std::path::Path;
use std::time::{Duration, Instant};

use headroom_collector::export::{self, config::RemoteWriteConfig};
use headroom_collector::live::fleet::HostMetrics;
use headroom_collector::store::{
    spawn_writer, HostBatch, HostInfo, Retention, SampleDetail, SampleRow, Store,
};
use headroom_common::wire::Listener;
use tokio_util::sync::CancellationToken;

const HOSTS: u64 = 1_000;
const SAMPLES: u64 = 200;
const RUNS: usize = 3;

fn cpu_time() -> Duration {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes one rusage struct through a pointer to a live local.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv =
        |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn sample(host: u64, seq: u64, ts_ms: u64) -> SampleRow {
    let wave = ((host * 7 + seq) % 100) as f64;
    let listeners = vec![
        Listener {
            port: 443,
            established: 500 + (wave as u32) * 3,
            accept_queue: (wave as u32) % 5,
            accept_queue_limit: 4096,
        },
        Listener {
            port: 8080,
            established: 40,
            accept_queue: 0,
            accept_queue_limit: 1024,
        },
        Listener {
            port: 9100,
            established: 1,
            accept_queue: 0,
            accept_queue_limit: 128,
        },
    ];
    SampleRow {
        seq,
        ts_ms,
        clock_offset_ms: 0,
        metrics: HostMetrics {
            cpu_busy_pct: Some(20.0 + wave * 0.5),
            cpu_user_pct: Some(15.0 + wave * 0.3),
            cpu_system_pct: Some(4.0 + wave * 0.1),
            cpu_iowait_pct: Some(0.5),
            cpu_steal_pct: Some(0.1),
            load1: Some(wave / 10.0),
            mem_used_pct: Some(40.0 + wave * 0.2),
            mem_used_bytes: Some((24u64 << 30) + (wave as u64) * (1 << 20)),
            swap_used_bytes: Some(0),
            psi_cpu: Some(wave / 50.0),
            psi_memory: Some(0.0),
            psi_io: Some(0.2),
            net_rx_bytes_per_s: Some(1.0e6 + wave * 1.0e4),
            net_tx_bytes_per_s: Some(2.0e6 + wave * 1.0e4),
            tcp_established: Some(560 + wave as u64 * 3),
            tcp_time_wait: Some(120),
            retrans_per_s: Some(wave / 20.0),
            listen_overflows_per_s: Some(0.0),
            listen_drops_per_s: Some(0.0),
            conntrack_fill_pct: Some(12.0),
            max_accept_queue_fill_pct: headroom_common::derive::max_accept_queue_fill_pct(&listeners),
            cpu_busiest_core_pct: Some(40.0 + wave * 0.5),
            ..HostMetrics::default()
        },
        detail: SampleDetail {
            listeners,
            ..SampleDetail::default()
        }
        .encode(),
    }
}

/// Writes the template database: every host's samples at 1 Hz ending a minute ago, rolled up, so the
/// writer has no maintenance left while the export is measured.
fn generate(path: &Path, now_ms: u64) {
    let (mut store, _) = Store::open(path, now_ms).expect("creating the database");
    let first_ms = now_ms - 60_000 - SAMPLES * 1000;
    for chunk in (0..SAMPLES).collect::<Vec<_>>().chunks(20) {
        let batches: Vec<HostBatch> = (0..HOSTS)
            .map(|host| HostBatch {
                host: format!("bench-{host:05}"),
                instance_id: 1,
                received_ms: first_ms + chunk[chunk.len() - 1] * 1000,
                hello: Some(HostInfo {
                    labels: [
                        ("group".to_string(), format!("svc-{:02}", host % 50)),
                        ("zone".to_string(), format!("zone-{}", host % 3)),
                        ("rack".to_string(), format!("r{}", host % 40)),
                    ]
                    .into_iter()
                    .collect(),
                    cores: 16,
                    memory_bytes: 64 << 30,
                    interval_ms: 1000,
                    agent_version: "0.1.0".into(),
                }),
                rows: chunk
                    .iter()
                    .map(|seq| sample(host, seq + 1, first_ms + seq * 1000 + host % 1000))
                    .collect(),
                gaps: Vec::new(),
            })
            .collect();
        store.commit_batches(&batches).expect("committing");
    }
    store.maintain(now_ms, &Retention::default()).expect("rolling up");
}

struct Run {
    seconds: f64,
    rows: u64,
    samples: u64,
    bytes: u64,
    requests: u64,
    cpu_us: f64,
    prepare_cpu_us: f64,
}

fn export_once(runtime: &tokio::runtime::Runtime, db: &Path, url: &str) -> Run {
    let store = Store::open(db, headroom_common::clock::now_ms())
        .expect("opening the copy")
        .0;
    let newest = store.last_row_id().expect("newest row");
    runtime.block_on(async {
        let (handle, writer) = spawn_writer(store, 4096);
        let cancel = CancellationToken::new();
        let mut config = RemoteWriteConfig::new(url);
        config.batch_wait = Duration::from_millis(200);
        let cpu_before = cpu_time();
        let started = Instant::now();
        let (task, monitor) = export::spawn(config, db.to_path_buf(), handle.clone(), cancel.clone())
            .expect("starting the exporter");
        let status = loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let status = monitor.status();
            if status.cursor >= newest {
                break status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "export did not finish: {status:?}"
            );
        };
        let seconds = started.elapsed().as_secs_f64();
        let cpu = cpu_time() - cpu_before;
        cancel.cancel();
        let _ = task.await;
        drop(handle);
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        assert_eq!(status.dropped_rows, 0, "the receiver refused rows: {status:?}");
        Run {
            seconds,
            rows: status.sent_rows,
            samples: status.sent_samples,
            bytes: status.sent_bytes,
            requests: status.requests,
            cpu_us: cpu.as_secs_f64() * 1e6,
            prepare_cpu_us: status.prepare_cpu_us as f64,
        }
    })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let url = std::env::args()
        .nth(1)
        .expect("usage: export_bench http://127.0.0.1:PORT/api/v1/write");
    let dir = tempfile::tempdir().expect("temp dir");
    let template = dir.path().join("template.db");
    let now_ms = headroom_common::clock::now_ms();
    let generating = Instant::now();
    generate(&template, now_ms);
    println!(
        "generated {HOSTS} hosts × {SAMPLES} samples in {:.1} s",
        generating.elapsed().as_secs_f64()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut runs = Vec::new();
    for run in 0..RUNS {
        let db = dir.path().join(format!("run-{run}.db"));
        std::fs::copy(&template, &db).expect("copying the template");
        let result = export_once(&runtime, &db, &url);
        println!(
            "run {}: {} host-samples in {:.2} s = {:.0}/s; CPU {:.2} us per host-sample ({:.2} reading and \
             encoding, {:.2} sending and the rest); {:.1} series per host; {:.1} bytes on the wire per sample \
             ({:.0} per host-sample); {} requests",
            run + 1,
            result.rows,
            result.seconds,
            result.rows as f64 / result.seconds,
            result.cpu_us / result.rows as f64,
            result.prepare_cpu_us / result.rows as f64,
            (result.cpu_us - result.prepare_cpu_us) / result.rows as f64,
            result.samples as f64 / result.rows as f64,
            result.bytes as f64 / result.samples as f64,
            result.bytes as f64 / result.rows as f64,
            result.requests
        );
        std::fs::remove_file(&db).ok();
        runs.push(result);
    }
    let mut rate: Vec<f64> = runs.iter().map(|r| r.rows as f64 / r.seconds).collect();
    let mut cpu: Vec<f64> = runs.iter().map(|r| r.cpu_us / r.rows as f64).collect();
    let (rate_min, rate_max) = (
        rate.iter().copied().fold(f64::INFINITY, f64::min),
        rate.iter().copied().fold(0.0, f64::max),
    );
    let (cpu_min, cpu_max) = (
        cpu.iter().copied().fold(f64::INFINITY, f64::min),
        cpu.iter().copied().fold(0.0, f64::max),
    );
    println!(
        "median of {RUNS}: {:.0} host-samples/s (min {rate_min:.0}, max {rate_max:.0}); {:.2} us of collector CPU \
         per host-sample (min {cpu_min:.2}, max {cpu_max:.2}); targets >= 20000/s and <= 15 us",
        median(&mut rate),
        median(&mut cpu)
    );
}
