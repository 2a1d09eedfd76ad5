//! Real loop devices and XFS: image → mkfs → loop → mount → forced shutdown.

mod root_world_support;

use std::io::Write;
use std::time::{Duration, Instant};

use nix::mount::MsFlags;
use root_world_support::{TestRun, require_root_and};
use stackquake::block::{
    FsState, ImageFile, LoopDevice, MKFS_XFS_MIN_BYTES, Mount, fs_state, is_mounted, mkfs_xfs,
    xfs_shutdown,
};
use stackquake::observe::Kmsg;

#[test]
fn xfs_on_loop_shuts_down_reports_eio_and_tears_down() {
    require_root_and(&["mkfs.xfs"], &["/dev/loop-control", "/dev/kmsg"]);
    let t = TestRun::new("root_world_block");
    let image = ImageFile::create(
        &t.scratch("disk.img"),
        MKFS_XFS_MIN_BYTES + 20 * 1024 * 1024,
    )
    .unwrap();
    // Sparse: nothing allocated yet.
    let blocks = std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(image.path()).unwrap());
    assert!(blocks < 64, "image is not sparse: {blocks} blocks");
    mkfs_xfs(image.path()).unwrap();

    let target = t.scratch("mnt");
    std::fs::create_dir(&target).unwrap();
    let lo = LoopDevice::attach(image.path(), &t.ledger).unwrap();
    assert!(lo.path().exists());
    let sysfs =
        std::fs::read_to_string(format!("/sys/block/{}/loop/backing_file", lo.name())).unwrap();
    assert_eq!(
        sysfs.trim(),
        std::fs::canonicalize(image.path())
            .unwrap()
            .to_str()
            .unwrap()
    );
    let autoclear =
        std::fs::read_to_string(format!("/sys/block/{}/loop/autoclear", lo.name())).unwrap();
    assert_eq!(autoclear.trim(), "0");

    let mount = Mount::mount(
        lo.path().to_str().unwrap(),
        &target,
        "xfs",
        MsFlags::empty(),
        "",
        &t.ledger,
    )
    .unwrap();
    assert!(is_mounted(&target));
    assert!(!is_mounted(&target.join("sub")), "exact match only");
    assert_eq!(fs_state(&target).unwrap(), FsState::Ok);

    let mut f = std::fs::File::create(target.join("data")).unwrap();
    f.write_all(&[7u8; 65536]).unwrap();
    f.sync_all().unwrap();

    let mut kmsg = Kmsg::open_at_end().unwrap();
    xfs_shutdown(&target).unwrap();

    let write = f.write_all(&[8u8; 4096]).and_then(|()| f.sync_all());
    let err = write.expect_err("writes after an XFS shutdown must fail");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    let create = std::fs::File::create(target.join("new"));
    assert_eq!(create.unwrap_err().raw_os_error(), Some(libc::EIO));
    assert_eq!(fs_state(&target).unwrap(), FsState::Shutdown);
    assert!(is_mounted(&target), "a shut-down XFS stays mounted");

    let tag = format!("XFS ({})", lo.name());
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut lines = Vec::new();
    while Instant::now() < deadline
        && !lines
            .iter()
            .any(|l: &String| l.to_lowercase().contains("shut"))
    {
        lines.extend(
            kmsg.read_available()
                .into_iter()
                .filter(|r| r.text.contains(&tag))
                .map(|r| r.text),
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("kernel log for {}:\n{}", lo.name(), lines.join("\n"));
    assert!(
        lines.iter().any(|l| l.to_lowercase().contains("shut")),
        "no `{tag}` shutdown line in: {lines:?}"
    );

    drop(f);
    drop(mount);
    assert!(!is_mounted(&target));
    let name = lo.name().to_string();
    let took = lo.detach().unwrap();
    eprintln!("loop detach took {took:?}");
    assert!(!std::path::Path::new(&format!("/sys/block/{name}/loop/backing_file")).exists());
    assert_eq!(t.ledger.open_entries(), 0);
    drop(image);
    assert!(t.ledger.finish().unwrap());
}

#[test]
fn mkfs_refuses_small_images_with_a_clear_error() {
    require_root_and(&["mkfs.xfs"], &[]);
    let t = TestRun::new("root_world_block");
    let image = ImageFile::create(&t.scratch("small.img"), 64 * 1024 * 1024).unwrap();
    let err = mkfs_xfs(image.path()).unwrap_err();
    assert!(err.to_string().contains("300 MB"), "{err}");
}

// Issue 13: a mount refused at setup said `cannot mount … (nfs)` and no more.
#[test]
fn a_refused_mount_says_errno_and_options() {
    require_root_and(&[], &[]);
    let t = TestRun::new("root_world_block");
    let target = t.scratch("mnt");
    std::fs::create_dir(&target).unwrap();
    let err = Mount::mount(
        "none",
        &target,
        "tmpfs",
        MsFlags::empty(),
        "no_such_option=1",
        &t.ledger,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("(tmpfs, options no_such_option=1): EINVAL: Invalid argument"),
        "{err}"
    );
    assert!(!is_mounted(&target));
}
