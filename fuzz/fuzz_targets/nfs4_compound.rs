//! An NFSv4 COMPOUND of arbitrary arguments (operation loop, session and
//! file operations) through the whole dispatcher, on a scratch export.
#![no_main]

use std::sync::OnceLock;

use stackquake::nfs::dispatch::Dispatcher;

struct Target {
    dispatcher: Dispatcher,
    _dir: tempfile::TempDir,
}

fn target() -> &'static Target {
    static TARGET: OnceLock<Target> = OnceLock::new();
    TARGET.get_or_init(|| {
        let dir = tempfile::tempdir().expect("scratch export");
        std::fs::write(dir.path().join("f"), b"data").expect("seed file");
        let dispatcher = stackquake::nfs::fuzz::dispatcher_for(dir.path()).expect("dispatcher");
        Target {
            dispatcher,
            _dir: dir,
        }
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    stackquake::nfs::fuzz::nfs4_compound(&target().dispatcher, data);
});
