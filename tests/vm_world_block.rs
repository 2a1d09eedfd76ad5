//! Device-mapper faults in a guest (the dev hosts have no dm): XFS on a
//! dm-linear volume whose table is swapped to its failing device under an
//! fsyncing writer (and the I/Os failed there counted at the volume), then
//! delay and flakey, then back; a forgotten volume and its failing device
//! removed by ledger cleanup.

mod vm_world_support;

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::mount::MsFlags;
use stackquake::block::{
    DmTarget, DmVolume, ImageFile, LoopDevice, MKFS_XFS_MIN_BYTES, Mount, is_mounted, mkfs_xfs,
};
use stackquake::cleanup::{CleanupOptions, cleanup_with};
use stackquake::ledger::{Ledger, RunId};
use stackquake::observe::Kmsg;
use vm_world_support::{guest_init, require_guest, require_vm_tools, run_in_guest};

#[test]
#[ignore = "entry point for the guest's PID 1"]
fn guest_entry() {
    guest_init();
}

/// First 4 KiB of `dev` read with O_DIRECT (dd), so the page cache cannot
/// answer for the device.
fn direct_read(dev: &Path) -> Result<Vec<u8>, String> {
    let out = Command::new("dd")
        .arg(format!("if={}", dev.display()))
        .args(["bs=4096", "count=1", "iflag=direct", "status=none"])
        .output()
        .unwrap();
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

fn write_fsync(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

#[test]
#[ignore = "runs inside the guest booted by dm_error_swap_under_an_fsyncing_writer"]
fn guest_dm_error_swap() {
    require_guest();
    let st = Command::new("modprobe")
        .args(["-a", "dm_mod", "dm_delay", "dm_flakey"])
        .status()
        .unwrap();
    assert!(st.success(), "modprobe dm modules");
    let run = RunId::generate();
    let root = tempfile::tempdir().unwrap();
    let ledger = Ledger::create(root.path(), &run, Path::new("vm_world_block")).unwrap();
    let image = ImageFile::create(
        &Path::new("/tmp").join(format!("sq-{run}-disk.img")),
        MKFS_XFS_MIN_BYTES,
    )
    .unwrap();
    let lo = LoopDevice::attach(image.path(), &ledger).unwrap();
    let mut vol = DmVolume::create_linear(&format!("sq-{run}-vol"), lo.path(), &ledger).unwrap();
    assert!(vol.path().exists(), "mknodes made no /dev/mapper node");
    let table = vol.live_table().unwrap();
    assert_eq!(
        table,
        format!("0 {} linear 7:{} 0", vol.sectors(), lo.number())
    );
    let kname = vol.kernel_name().to_string();
    assert!(kname.starts_with("dm-"), "{kname}");
    mkfs_xfs(&vol.path()).unwrap();
    let target = Path::new("/tmp").join(format!("sq-{run}-mnt"));
    std::fs::create_dir(&target).unwrap();
    let mount = Mount::mount(
        vol.path().to_str().unwrap(),
        &target,
        "xfs",
        MsFlags::empty(),
        "",
        &ledger,
    )
    .unwrap();
    let mut kmsg = Kmsg::open_at_end().unwrap();

    // The fsyncing writer: 64 KiB + fsync every 20 ms until the first error.
    let ok = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = std::thread::spawn({
        let (ok, stop, file) = (ok.clone(), stop.clone(), target.join("data"));
        move || {
            while !stop.load(Ordering::Relaxed) {
                if let Err(e) = write_fsync(&file, &[7u8; 65536]) {
                    return Some(e);
                }
                ok.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
            None
        }
    });
    let until = Instant::now() + Duration::from_secs(30);
    while ok.load(Ordering::Relaxed) < 5 {
        assert!(Instant::now() < until, "writer made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    let swapped = Instant::now();
    let ios_at_swap = vol
        .swap_table(DmTarget::Error)
        .unwrap()
        .expect("the volume's I/O count");
    // Every I/O fails one level down, on `<name>-eio`'s `error` target.
    let failing = format!("sq-{run}-vol-eio");
    assert_eq!(
        dmsetup(&["table", &failing]),
        format!("0 {} error", vol.sectors())
    );
    let failing_dev = dmsetup(&[
        "info",
        "-c",
        "--noheadings",
        "-o",
        "major,minor",
        "--separator",
        ":",
        &failing,
    ]);
    assert_eq!(
        vol.live_table().unwrap(),
        format!("0 {} linear {failing_dev} 0", vol.sectors())
    );
    let watchdog = std::thread::spawn({
        let stop = stop.clone();
        move || {
            std::thread::sleep(Duration::from_secs(20));
            stop.store(true, Ordering::Relaxed);
        }
    });
    let err = writer
        .join()
        .unwrap()
        .expect("writer never failed under the error table");
    let took = swapped.elapsed();
    drop(watchdog);
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    // The writes that failed reached the volume, and it counted them: dm
    // counts none that its own `error` target fails at once.
    let ios_now = stackquake::block::io_count(&kname).unwrap();
    assert!(
        ios_now > ios_at_swap,
        "no I/O counted since the swap: {ios_now}"
    );
    println!(
        "FACT I/Os at the volume since the swap: {}",
        ios_now - ios_at_swap
    );
    println!(
        "FACT writer: {} fsynced writes ok, then {err} {took:?} after the swap",
        ok.load(Ordering::Relaxed)
    );
    assert!(is_mounted(&target), "the mount should stay listed");
    println!("FACT mount still listed: {}", is_mounted(&target));
    let touch = std::fs::File::create(target.join("probe-touch"));
    println!("FACT plain touch: {:?}", touch.as_ref().map(drop));
    // An open file would turn the unmount into a lazy detach that keeps
    // the dm device busy.
    drop(touch);
    let probe = write_fsync(&target.join("probe-fsync"), b"probe");
    assert!(probe.is_err(), "an fsyncing probe passed on an error table");
    println!("FACT fsync probe: {probe:?}");
    let read = direct_read(&vol.path());
    assert!(read.is_err(), "the device still reads under an error table");

    // The kernel's side: dm-N writeback errors or an XFS shutdown.
    let mut seen = Vec::new();
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        seen.extend(
            kmsg.read_available()
                .into_iter()
                .map(|r| r.text)
                .filter(|t| t.contains(&kname)),
        );
        if seen
            .iter()
            .any(|t| t.contains("writeback error") || t.contains("hut"))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for t in &seen {
        println!("FACT kmsg: {t}");
    }
    assert!(
        seen.iter()
            .any(|t| t.contains(&format!("{kname}: writeback error"))
                || t.contains(&format!("XFS ({kname})"))),
        "no kernel log about {kname}: {seen:?}"
    );
    let step = mount.unmount().unwrap();
    println!("FACT unmounted by {step:?}");

    // Delay: a direct read waits at least the delay.
    vol.swap_table(DmTarget::Delay {
        read: Duration::from_millis(400),
        write: None,
    })
    .unwrap();
    assert!(vol.live_table().unwrap().contains(" delay "));
    let t0 = Instant::now();
    let head = direct_read(&vol.path()).unwrap();
    let waited = t0.elapsed();
    assert_eq!(&head[..4], b"XFSB");
    assert!(waited >= Duration::from_millis(400), "read took {waited:?}");
    println!("FACT delay 400ms: direct read took {waited:?}");

    // Flakey: up 1 s, then down; a read in the down phase fails.
    vol.swap_table(DmTarget::Flakey {
        up: Duration::from_secs(1),
        down: Duration::from_secs(30),
    })
    .unwrap();
    assert!(
        vol.status().unwrap().contains(" flakey"),
        "{}",
        vol.status().unwrap()
    );
    std::thread::sleep(Duration::from_millis(1500));
    let down = direct_read(&vol.path());
    assert!(down.is_err(), "flakey in its down phase still reads");
    println!("FACT flakey down phase: {down:?}");

    vol.swap_table(DmTarget::Linear).unwrap();
    assert_eq!(vol.live_table().unwrap(), table);
    assert_eq!(&direct_read(&vol.path()).unwrap()[..4], b"XFSB");
    vol.remove().unwrap();
    for gone in [format!("sq-{run}-vol"), failing] {
        assert!(!Path::new("/dev/mapper").join(&gone).exists(), "{gone}");
    }

    // A volume its owner forgot is removed by cleanup, before its loop.
    let lost_name = format!("sq-{run}-lost");
    let lost = DmVolume::create_linear(&lost_name, lo.path(), &ledger).unwrap();
    std::mem::forget(lost);
    std::mem::forget(lo);
    let report = cleanup_with(
        root.path(),
        &CleanupOptions {
            force: true,
            run: Some(run.clone()),
            umount_deadline: None,
        },
    );
    assert!(report.is_clean(), "{:?}", report.failed);
    // The volume before the failing device it maps onto.
    assert_eq!(
        report.removed[..2],
        [
            format!("dm device {lost_name}"),
            format!("dm device {lost_name}-eio")
        ],
        "{:?}",
        report.removed
    );
    let mut ls = String::new();
    std::fs::File::open("/proc/partitions")
        .unwrap()
        .read_to_string(&mut ls)
        .unwrap();
    assert!(!ls.contains("dm-"), "a dm device survived cleanup:\n{ls}");
    println!("FACT cleanup removed: {:?}", report.removed);
}

/// `dmsetup` with `args`, its trimmed stdout.
fn dmsetup(args: &[&str]) -> String {
    let out = Command::new("dmsetup").args(args).output().unwrap();
    assert!(out.status.success(), "dmsetup {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn dm_error_swap_under_an_fsyncing_writer() {
    require_vm_tools();
    let out = run_in_guest("guest_dm_error_swap", Duration::from_secs(240), 1024);
    assert!(out.contains("FACT mount still listed: true"), "{out}");
    assert!(
        out.contains("FACT I/Os at the volume since the swap: "),
        "{out}"
    );
}
