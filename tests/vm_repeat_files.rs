//! `run --vm --repeat 2` over two kernels keeps each round's files apart
//! (`<kernel>/<case>/repeat-<k>/`), says so in the journal, and
//! report.html links each round's: with a guest per case (the default
//! fan-out) and with one guest per kernel (`--jobs 1`), whose files reach
//! the output directory by different paths. Needs QEMU and both kernels
//! (ci/setup installs them); fails loudly without.

use std::collections::BTreeSet;
mod vm_run_support;
use vm_run_support::VmRun;

#[test]
fn each_round_on_each_kernel_keeps_its_own_files() {
    for jobs in ["2", "1"] {
        let args = [
            "--jobs", jobs, "--repeat", "2", "--kernel", "6.1", "--kernel", "6.12",
        ];
        let run = VmRun::new(&args, "tests/scenarios/vm/repeat-files.yaml");
        let ctx = &run.ctx;
        let dirs: BTreeSet<&str> = run
            .results()
            .iter()
            .map(|r| {
                assert_eq!(r["verdict"], "PASS", "--jobs {jobs}: {r}\n{ctx}");
                r["files_dir"].as_str().unwrap_or_default()
            })
            .collect();
        let want: BTreeSet<&str> = [
            "kernel-6.1/repeat-files/repeat-1",
            "kernel-6.1/repeat-files/repeat-2",
            "kernel-6.12/repeat-files/repeat-1",
            "kernel-6.12/repeat-files/repeat-2",
        ]
        .into();
        assert_eq!(dirs, want, "--jobs {jobs}\n{ctx}");
        let out = run.out.path();
        let page = std::fs::read_to_string(out.join("report.html")).unwrap();
        for dir in want {
            for step in ["first", "second"] {
                let kmsg = format!("{dir}/{step}/kmsg.txt");
                assert!(out.join(&kmsg).is_file(), "--jobs {jobs}: {kmsg}\n{ctx}");
                assert!(
                    page.contains(&format!(r#"href="{kmsg}""#)),
                    "--jobs {jobs}: {kmsg} linked from report.html"
                );
            }
        }
        assert_eq!(run.code, Some(0), "--jobs {jobs}\n{ctx}");
    }
}
