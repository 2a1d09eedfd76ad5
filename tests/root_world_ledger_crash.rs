//! A run killed with SIGKILL leaves a world behind; `cleanup` removes all of it.

mod root_world_support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::mount::MsFlags;
use root_world_support::{netns_entries_of, require_root_and};
use stackquake::block::{ImageFile, LoopDevice, MKFS_XFS_MIN_BYTES, Mount, is_mounted, mkfs_xfs};
use stackquake::cleanup::cleanup;
use stackquake::ledger::{Ledger, LedgerObject, RunId, ledger_path};
use stackquake::net::{Netns, VethPair, command_in, link_ifname};

const CHILD_ENV: &str = "SQ_CRASH_CHILD";

/// A global setting nothing else here depends on, changed by the doomed run
/// the way `kernel:` settings are.
const SETTING: &str = "/proc/sys/fs/lease-break-time";

/// The doomed run. Ignored in normal runs: the parent test starts it as a
/// separate process with `--ignored --exact` and the env var set.
#[test]
#[ignore = "entry point of the child process of sigkilled_run_is_cleaned_up_completely"]
fn crash_child() {
    let spec = std::env::var(CHILD_ENV).expect("only run by the crash test");
    let mut parts = spec.split('|');
    let (root, scratch, run) = (
        parts.next().unwrap(),
        PathBuf::from(parts.next().unwrap()),
        parts.next().unwrap(),
    );
    let run = RunId::parse(run).unwrap();
    let ledger = Ledger::create(Path::new(root), &run, Path::new("crash.yaml")).unwrap();
    ledger
        .record(LedgerObject::TempDir {
            path: scratch.clone(),
        })
        .unwrap();
    std::fs::create_dir(&scratch).unwrap();
    let was: u32 = std::fs::read_to_string(SETTING)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    ledger
        .record(LedgerObject::Sysctl {
            path: SETTING.into(),
            restore: was.to_string(),
        })
        .unwrap();
    std::fs::write(SETTING, (was + 1).to_string()).unwrap();

    let a = Netns::create(&Netns::name_for(&run, "client"), &ledger).unwrap();
    let b = Netns::create(&Netns::name_for(&run, "server"), &ledger).unwrap();
    let veth = VethPair::create(
        (&a, &link_ifname(&run, 0, 'a')),
        (&b, &link_ifname(&run, 0, 'b')),
        None,
        &ledger,
    )
    .unwrap();
    let image = ImageFile::create(&scratch.join("disk.img"), MKFS_XFS_MIN_BYTES).unwrap();
    mkfs_xfs(image.path()).unwrap();
    let lo = LoopDevice::attach(image.path(), &ledger).unwrap();
    let target = scratch.join("mnt");
    std::fs::create_dir(&target).unwrap();
    let mount = Mount::mount(
        lo.path().to_str().unwrap(),
        &target,
        "xfs",
        MsFlags::empty(),
        "",
        &ledger,
    )
    .unwrap();
    // A process inside the namespace, which keeps it alive past its unmount.
    // Its stdio must not hold the parent's pipe open after we die.
    let sleeper = command_in(&a, "sleep")
        .arg("600")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let st = stackquake::sys::procstat::read(sleeper.id()).unwrap();
    ledger
        .record(LedgerObject::Process {
            pid: sleeper.id(),
            starttime: st.starttime,
        })
        .unwrap();
    println!("READY {} {}", lo.name(), sleeper.id());
    std::mem::forget((a, b, veth, image, lo, mount, sleeper));
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn sigkilled_run_is_cleaned_up_completely() {
    require_root_and(&["ip", "mkfs.xfs", "sleep"], &["/dev/loop-control"]);
    let run = RunId::generate();
    let root = tempfile::Builder::new()
        .prefix("sqroot-")
        .tempdir()
        .unwrap();
    let parent = tempfile::tempdir().unwrap();
    let scratch = parent.path().join(format!("sq-{run}"));
    let setting_before = std::fs::read_to_string(SETTING).unwrap();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            CHILD_ENV,
            format!("{}|{}|{}", root.path().display(), scratch.display(), run),
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Whatever happens below, the world must not outlive this test.
    let _guard = CleanupOnDrop(root.path().to_path_buf());
    // libtest prints "test crash_child ... " before the test's own output,
    // so READY may not start the line. Read on a thread: a deadline, not a hang.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some((_, rest)) = line.split_once("READY ") {
                let _ = tx.send(rest.to_string());
                return;
            }
        }
    });
    let ready = rx.recv_timeout(Duration::from_secs(120)).ok();
    if ready.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let ready = ready.expect("child died before building its world");
    let mut fields = ready.split(' ');
    let (loop_name, sleeper) = (
        fields.next().unwrap().to_string(),
        fields.next().unwrap().parse::<u32>().unwrap(),
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();

    // The world outlived its owner.
    let image = std::fs::canonicalize(scratch.join("disk.img")).unwrap();
    let target = scratch.join("mnt");
    assert_eq!(netns_entries_of(&run).len(), 2);
    assert!(is_mounted(&target));
    assert_eq!(backing_of(&loop_name).as_deref(), Some(image.as_path()));
    assert!(Path::new(&format!("/proc/{sleeper}")).exists());
    assert_ne!(std::fs::read_to_string(SETTING).unwrap(), setting_before);

    let report = cleanup(root.path());
    eprintln!("{report:#?}");
    assert!(report.is_clean(), "failures: {:?}", report.failed);
    let removed = report.removed.join("\n");
    for expected in [
        "process", "mount at", "loop", "veth", "netns", "temp dir", "setting",
    ] {
        assert!(
            removed.contains(expected),
            "`{expected}` not removed:\n{removed}"
        );
    }
    assert!(
        report
            .ledgers_removed
            .contains(&ledger_path(root.path(), &run))
    );

    // And nothing is left.
    assert!(
        netns_entries_of(&run).is_empty(),
        "{:?}",
        netns_entries_of(&run)
    );
    assert!(!is_mounted(&target));
    assert!(
        stackquake::sys::loopdev::attached()
            .iter()
            .all(|(_, b)| b != &image),
        "a loop device still uses {}",
        image.display()
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    while Path::new(&format!("/proc/{sleeper}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // The sleeper was reparented; it may linger as a zombie until reaped.
    let state = stackquake::sys::procstat::read(sleeper)
        .map(|s| s.state)
        .unwrap_or('-');
    assert!(
        state == '-' || state == 'Z',
        "sleeper still in state {state}"
    );
    assert!(!scratch.exists());
    assert_eq!(
        std::fs::read_to_string(SETTING).unwrap(),
        setting_before,
        "{SETTING} not put back"
    );
    assert!(!ledger_path(root.path(), &run).exists());
    // A second cleanup finds nothing to do.
    let again = cleanup(root.path());
    assert!(again.removed.is_empty() && again.failed.is_empty());
    assert!(
        again
            .orphans
            .iter()
            .all(|o| !format!("{o:?}").contains(run.as_str()))
    );
}

struct CleanupOnDrop(PathBuf);

impl Drop for CleanupOnDrop {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed; cleaning up: {:#?}", cleanup(&self.0));
        }
    }
}

fn backing_of(loop_name: &str) -> Option<PathBuf> {
    let s = std::fs::read_to_string(format!("/sys/block/{loop_name}/loop/backing_file")).ok()?;
    Some(PathBuf::from(s.trim()))
}

#[test]
fn sweep_reports_a_namespace_whose_ledger_is_gone() {
    require_root_and(&["ip"], &["/proc/self/ns/net"]);
    let run = RunId::generate();
    let root = tempfile::Builder::new()
        .prefix("sqroot-")
        .tempdir()
        .unwrap();
    let name = Netns::name_for(&run, "lost");
    let path = stackquake::sys::ns::create_netns(&name).unwrap();
    let orphans = stackquake::ledger::sweep(root.path());
    stackquake::sys::ns::delete_netns(&path).unwrap();
    assert!(
        orphans.contains(&stackquake::ledger::Orphan::Netns {
            name: name.clone(),
            run: run.clone()
        }),
        "{orphans:?}"
    );
    assert!(netns_entries_of(&run).is_empty());
}
