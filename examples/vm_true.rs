//! Boots a guest through `stackquake::vm` and runs /bin/true in it: the
//! workload of bench/vm-boot.sh. Doubles as its own guest init.

use std::process::ExitCode;
use std::time::Duration;

use stackquake::vm::{self, Accel, GuestJob, GuestOutcome};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args == ["vm", "guest-init"] {
        vm::guest_init();
    }
    let out = std::env::temp_dir().join(format!("sq-vm-true-{}", std::process::id()));
    let accel = match std::env::var("SQ_ACCEL").as_deref() {
        Ok("kvm") => Accel::Kvm,
        Ok("auto") => Accel::Auto,
        _ => Accel::Tcg,
    };
    let job = GuestJob {
        argv: vec!["/bin/true".into()],
        env: vec![],
        cwd: "/".into(),
        timeout: Duration::from_secs(30),
        kernel: std::env::var_os("SQ_KERNEL").map(Into::into),
        accel,
        memory_mib: 512,
        cpus: stackquake::vm::guest_cpus(1),
        out_dir: out.clone(),
    };
    let outcome = vm::run(&job);
    let _ = std::fs::remove_dir_all(&out);
    match outcome {
        Ok(GuestOutcome::Exited {
            code: 0,
            boot_time,
            total,
            ..
        }) => {
            eprintln!("boot {boot_time:?} total {total:?}");
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("vm_true: {other:?}");
            ExitCode::FAILURE
        }
    }
}
