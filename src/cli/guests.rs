//! `run --vm --jobs N`: each case (on each kernel) in a guest of its own,
//! up to N guests at once. Under TCG the seed scenarios leave a guest idle
//! most of the time (lockd's 30-60 s, statd's upcall, grace periods), so
//! overlapping guests shortens the suite without a scheduler of our own:
//! workers take the next case from one counter, the longest timeline first
//! (a long case started last would be the suite's tail), and each result is
//! said on stderr as its guest ends; the results keep load order.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use crate::engine::Timeline;
use crate::plan::Plan;
use crate::report::{RunReport, ScenarioResult};

/// One guest's work: a case, the kernel it boots (None: the default) and
/// the directory its files go to.
pub struct GuestTask<'a> {
    pub kernel: Option<&'a Path>,
    pub file: &'a Path,
    pub plan: &'a Plan,
    pub dir: PathBuf,
}

/// Runs every task through `run_one` on up to `jobs` threads and returns
/// the results in task order. Each thread waits on its own QEMU; a failure
/// to start a guest at all (exit code) stops handing out tasks and is
/// returned once the running guests have ended.
pub fn fan_out(
    jobs: usize,
    tasks: &[GuestTask<'_>],
    run_one: impl Fn(&GuestTask<'_>) -> Result<RunReport, u8> + Sync,
) -> Result<Vec<ScenarioResult>, u8> {
    let mut order: Vec<usize> = (0..tasks.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(Timeline::resolve(tasks[i].plan).known_length()));
    let next = AtomicUsize::new(0);
    let (done_tx, done_rx) = mpsc::channel();
    let mut by_task: Vec<Option<Vec<ScenarioResult>>> = tasks.iter().map(|_| None).collect();
    let mut failed = None;
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(tasks.len()) {
            let done_tx = done_tx.clone();
            let (next, order, run_one) = (&next, &order, &run_one);
            scope.spawn(move || {
                loop {
                    let k = next.fetch_add(1, Ordering::SeqCst);
                    if k >= tasks.len() || crate::sys::termination_requested() {
                        break;
                    }
                    let i = order[k];
                    let report = run_one(&tasks[i]);
                    let stop = report.is_err();
                    if done_tx.send((i, report)).is_err() || stop {
                        // No more tasks for anyone: the others finish theirs.
                        next.store(tasks.len(), Ordering::SeqCst);
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        let mut finished = 0;
        for (i, report) in done_rx {
            finished += 1;
            match report {
                Ok(report) => {
                    for r in &report.results {
                        eprintln!(
                            "[{finished}/{}] {} {}  ({:.1}s)",
                            tasks.len(),
                            r.verdict,
                            r.name_with_kernel(),
                            r.duration_s
                        );
                    }
                    by_task[i] = Some(report.results);
                }
                Err(code) => failed = failed.or(Some(code)),
            }
        }
    });
    if let Some(code) = failed {
        return Err(code);
    }
    Ok(by_task.into_iter().flatten().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Verdict;
    use std::sync::Mutex;
    use std::time::Duration;

    fn plan(id: &str) -> Plan {
        plan_waiting(id, 1)
    }

    fn plan_waiting(id: &str, secs: u32) -> Plan {
        let text = format!(
            "schema_version: 1\nid: {id}\ntitle: t\nhosts: {{ a: {{}} }}\nsteps:\n  - {{ id: s, wait: {secs}s }}\n"
        );
        crate::scenario::load_str(&text, "t.yaml").unwrap_or_else(|e| panic!("{e}"))
    }

    fn tasks_of(plans: &[Plan]) -> Vec<GuestTask<'_>> {
        plans
            .iter()
            .map(|p| GuestTask {
                kernel: None,
                file: Path::new("t.yaml"),
                plan: p,
                dir: PathBuf::new(),
            })
            .collect()
    }

    fn result(id: &str) -> RunReport {
        RunReport {
            run_id: "r".into(),
            stackquake: "0".into(),
            target: "vm".into(),
            kernel: "6.1".into(),
            results: vec![ScenarioResult {
                id: id.into(),
                title: "t".into(),
                file: "t.yaml".into(),
                verdict: Verdict::Pass,
                kernel: "6.1".into(),
                reason: None,
                duration_s: 0.0,
                outcomes: Vec::new(),
                journal: Default::default(),
                files_dir: None,
            }],
        }
    }

    /// Tasks finish out of order (the first is the slowest) on at most
    /// `jobs` threads at once; the results still come back in task order.
    #[test]
    fn results_keep_task_order_and_at_most_jobs_run_at_once() {
        let plans: Vec<Plan> = (0..6).map(|i| plan(&format!("c{i}"))).collect();
        let tasks = tasks_of(&plans);
        let running = Mutex::new((0usize, 0usize)); // (now, most)
        let results = fan_out(2, &tasks, |t| {
            {
                let mut r = running.lock().unwrap();
                r.0 += 1;
                r.1 = r.1.max(r.0);
            }
            let slow = if t.plan.id == "c0" { 200 } else { 10 };
            std::thread::sleep(Duration::from_millis(slow));
            running.lock().unwrap().0 -= 1;
            Ok(result(&t.plan.id))
        })
        .unwrap();
        let ids: Vec<&str> = results.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["c0", "c1", "c2", "c3", "c4", "c5"]);
        assert_eq!(
            running.lock().unwrap().1,
            2,
            "two guests at once, never more"
        );
    }

    #[test]
    fn a_guest_that_cannot_start_stops_the_rest_and_gives_its_code() {
        let plans: Vec<Plan> = (0..5).map(|i| plan(&format!("c{i}"))).collect();
        let tasks = tasks_of(&plans);
        let started = AtomicUsize::new(0);
        let err = fan_out(1, &tasks, |t| {
            started.fetch_add(1, Ordering::SeqCst);
            if t.plan.id == "c1" {
                Err(69)
            } else {
                Ok(result(&t.plan.id))
            }
        })
        .unwrap_err();
        assert_eq!(err, 69);
        assert_eq!(
            started.load(Ordering::SeqCst),
            2,
            "nothing after the failure"
        );
    }

    #[test]
    fn the_longest_timeline_starts_first_and_results_keep_load_order() {
        let plans = [
            plan_waiting("short", 1),
            plan_waiting("long", 90),
            plan_waiting("middle", 30),
            plan_waiting("also-short", 1),
        ];
        let tasks = tasks_of(&plans);
        let started = Mutex::new(Vec::new());
        let results = fan_out(1, &tasks, |t| {
            started.lock().unwrap().push(t.plan.id.clone());
            Ok(result(&t.plan.id))
        })
        .unwrap();
        assert_eq!(
            *started.lock().unwrap(),
            ["long", "middle", "short", "also-short"]
        );
        let ids: Vec<&str> = results.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["short", "long", "middle", "also-short"]);
    }
}
