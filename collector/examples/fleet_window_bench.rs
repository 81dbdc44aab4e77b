//! Times the windowed fleet view (`fleet --window W --stat S`, `/api/v1/fleet?window=W&stat=S`) on a
//! database: the same function the collector's API runs on a read-only connection per request, without the
//! HTTP hop and the JSON encoding. Usage: `fleet_window_bench FILE [WINDOW] [STAT] [RUNS]`, on a database
//! written by `report_db_bench`; bench/report_bench.sh runs it.

use std::path::PathBuf;
use std::time::Instant;

use headroom_collector::store::Store;
use headroom_collector::views::end::EndAt;
use headroom_collector::views::{fleet_view, Stat};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "/tmp/headroom-report-bench.db".into()),
    );
    let window = args.next().unwrap_or_else(|| "30d".into());
    let stat: Stat = args
        .next()
        .unwrap_or_else(|| "p99".into())
        .parse()
        .map_err(anyhow::Error::msg)?;
    let runs: usize = args.next().map_or(Ok(5), |n| n.parse())?;
    let mut times = Vec::with_capacity(runs);
    let mut rows = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let store = Store::open_read_only(&path)?;
        let view = fleet_view(
            &[],
            Some(&store),
            vec!["group".into(), "zone".into()],
            &window,
            headroom_common::clock::now_ms(),
            Some(stat),
            EndAt::Latest,
        )
        .map_err(anyhow::Error::msg)?;
        times.push(started.elapsed().as_secs_f64());
        rows = view.rows.len();
    }
    let all: Vec<String> = times.iter().map(|t| format!("{t:.2}")).collect();
    times.sort_by(f64::total_cmp);
    println!(
        "fleet --window {window} --stat {}: median {:.2}s over {runs} runs (all: {} s); {rows} rows",
        stat.label(),
        times[(runs - 1) / 2],
        all.join(", ")
    );
    Ok(())
}
