//! A synthetic run of 10,000 workload operations for report.html: two
//! writers every 1 ms for 5 s with a fault window of EIO in the middle, one
//! hung op, 200 kernel lines (one deny-listed). Writes journal.json and
//! report.html into the directory given (default target/bench/report-html-10k)
//! and prints the page's size and how long rendering it took.
//! bench/report-html.sh then times Chromium loading it.

use stackquake::expect::Outcome;
use stackquake::journal::{Event, Journal};
use stackquake::report::{RunReport, ScenarioResult, Verdict};
use std::time::Instant;

const OPS_PER_WORKLOAD: u64 = 5_000;
const PERIOD_NS: u64 = 1_000_000;

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/bench/report-html-10k".into());
    let dir = std::path::Path::new(&dir);
    std::fs::create_dir_all(dir).expect("create the output directory");
    let report = synthetic_run();
    // journal.json too, so `stackquake report DIR` can re-render it.
    let text = serde_json::to_string(&report).expect("report serializes");
    std::fs::write(dir.join("journal.json"), text).expect("write journal.json");
    let start = Instant::now();
    let path = report.write_html(dir).expect("write report.html");
    let took = start.elapsed();
    let size = std::fs::metadata(&path).expect("report.html exists").len();
    println!(
        "{}: {} ops, {size} bytes ({:.2} MiB), rendered in {:.1} ms",
        path.display(),
        OPS_PER_WORKLOAD * 2,
        size as f64 / (1 << 20) as f64,
        took.as_secs_f64() * 1e3
    );
}

fn synthetic_run() -> RunReport {
    let mut events = Vec::new();
    let steps = [
        ("steady", 0u64, 2_000_000_000u64),
        ("fault", 2_000_000_000, 3_000_000_000),
        ("after", 3_000_000_000, 5_000_000_000),
    ];
    for (step, begin, _) in steps {
        events.push(Event::StepBegin {
            step: step.into(),
            t_ns: begin,
        });
    }
    events.push(Event::FaultInjected {
        step: "fault".into(),
        fault: "nfs.error".into(),
        t_ns: 2_000_000_000,
    });
    for w in ["writer-a", "writer-b"] {
        for seq in 0..OPS_PER_WORKLOAD {
            let start_ns = seq * PERIOD_NS;
            let in_fault = (2_000_000_000..3_000_000_000).contains(&start_ns);
            // Latencies spread over four decades so the log scale is used.
            let latency = 20_000 + (seq * 7_919 % 1_000) * 1_000 * (1 + seq % 10);
            events.push(Event::Op {
                workload: w.into(),
                seq,
                start_ns,
                end_ns: start_ns + latency,
                errno: in_fault.then_some(5),
                stage: in_fault.then(|| "fsync".into()),
                exit_code: None,
                mounts: Vec::new(),
                hold: None,
            });
        }
    }
    events.push(Event::Indeterminate {
        workload: "writer-a".into(),
        seq: OPS_PER_WORKLOAD,
        start_ns: 4_000_000_000,
        t_ns: 4_500_000_000,
        state: "D".into(),
        wchan: "rpc_wait_bit_killable".into(),
        stack: None,
        mounts: Vec::new(),
    });
    for i in 0..200u64 {
        let text = if i == 100 {
            "WARNING: CPU: 1 PID: 4242 at fs/nfs/write.c:123 nfs_page_async_flush".to_string()
        } else {
            format!("nfs: server 10.0.0.1 not responding, still trying ({i})")
        };
        events.push(Event::Kmsg {
            seq: i,
            level: 4,
            text,
            t_ns: Some(i * 150_000_000),
        });
    }
    for (step, _, end) in steps {
        events.push(Event::StepEnd {
            step: step.into(),
            t_ns: end,
        });
    }
    events.push(Event::FaultHealed {
        step: "fault".into(),
        fault: "nfs.error".into(),
        t_ns: 3_000_000_000,
        error: None,
        matched: Some(2_000),
        unit: Some("call".into()),
        uncounted: None,
    });
    RunReport {
        run_id: "bench10k".into(),
        stackquake: env!("CARGO_PKG_VERSION").into(),
        target: "host".into(),
        kernel: "synthetic".into(),
        results: vec![ScenarioResult {
            id: "synthetic-10k".into(),
            title: "10,000 operations, one fault window".into(),
            file: "bench/report_html_10k.rs".into(),
            verdict: Verdict::Pass,
            kernel: "6.1.0-57-amd64".into(),
            reason: None,
            duration_s: 5.0,
            outcomes: vec![Outcome {
                expectation: "writer-a sees EIO during fault".into(),
                passed: true,
                evaluated: true,
                detail: "op 2000 failed with EIO in fsync at +2.00s".into(),
            }],
            journal: Journal {
                run_id: "bench10k".into(),
                events,
            },
            files_dir: None,
        }],
    }
}
