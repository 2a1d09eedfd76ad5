//! `DmVolume`: a device-mapper volume over another block device, whose
//! table a fault swaps (linear → error / delay / flakey → linear) while a
//! filesystem stays mounted on it — the `block.error`, `block.delay` and
//! volume-detach faults. Driven through `dmsetup`; needs dm-mod (absent on
//! the dev hosts: use it in a guest).
//!
//! Each volume comes with a second device, `<name>-eio`, of the same size
//! and whose every I/O fails: a fault's failing sectors are mapped onto it
//! (`linear`) rather than to dm's `error` target. The file system above
//! sees the same EIO, but dm counts the I/O at the volume only when its
//! target passes the bio on: one that `error` fails at once is in no
//! statistic, and a detach would look as if no I/O had ever reached it
//! (`fault::fired`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::BlockError;
use crate::ledger::{EntryId, Ledger, LedgerObject};
use crate::tools;

/// What the volume's single table line maps its sectors to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DmTarget {
    /// Straight through to the backing device (the healthy state).
    Linear,
    /// Every I/O fails with EIO: a detached volume, as XFS sees it. (Mapped
    /// onto the volume's failing device: see the module's doc.)
    Error,
    /// I/O to `sectors` sectors from `start` fails with EIO; the rest of
    /// the volume maps straight through (a bad stretch of disk).
    ErrorRange { start: u64, sectors: u64 },
    /// Every read waits `read`; writes wait `write` (or `read` if None).
    Delay {
        read: Duration,
        write: Option<Duration>,
    },
    /// Healthy for `up`, then every I/O fails for `down`, repeating
    /// (dm-flakey counts whole seconds).
    Flakey { up: Duration, down: Duration },
}

impl DmTarget {
    /// The kernel's name of the target, as `dmsetup table` prints it.
    pub fn kind(&self) -> &'static str {
        match self {
            DmTarget::Linear => "linear",
            DmTarget::Error | DmTarget::ErrorRange { .. } => "error",
            DmTarget::Delay { .. } => "delay",
            DmTarget::Flakey { .. } => "flakey",
        }
    }

    /// The table for a volume of `sectors` 512-byte sectors over `dev`,
    /// whose failing sectors map onto `failing` (a device of the same size
    /// whose every I/O fails): one line, or up to three for an error range
    /// (lines joined by `\n`; `dmsetup load` reads them from stdin,
    /// `--table` takes one line only).
    pub fn table(&self, sectors: u64, dev: &Path, failing: &Path) -> String {
        let dev = dev.display();
        let failing = failing.display();
        match self {
            DmTarget::Linear => format!("0 {sectors} linear {dev} 0"),
            DmTarget::Error => format!("0 {sectors} linear {failing} 0"),
            DmTarget::ErrorRange { start, sectors: n } => {
                let start = (*start).min(sectors);
                let end = start.saturating_add(*n).min(sectors);
                let mut lines = Vec::new();
                if start > 0 {
                    lines.push(format!("0 {start} linear {dev} 0"));
                }
                if end > start {
                    lines.push(format!("{start} {} linear {failing} {start}", end - start));
                }
                if end < sectors {
                    lines.push(format!("{end} {} linear {dev} {end}", sectors - end));
                }
                lines.join("\n")
            }
            DmTarget::Delay { read, write } => {
                let r = read.as_millis();
                match write {
                    Some(w) => format!("0 {sectors} delay {dev} 0 {r} {dev} 0 {}", w.as_millis()),
                    None => format!("0 {sectors} delay {dev} 0 {r}"),
                }
            }
            DmTarget::Flakey { up, down } => format!(
                "0 {sectors} flakey {dev} 0 {} {}",
                up.as_secs().max(1),
                down.as_secs().max(1)
            ),
        }
    }
}

#[derive(Debug)]
pub struct DmVolume {
    name: String,
    /// dm-N, as the kernel names the volume.
    kernel_name: String,
    backing: PathBuf,
    sectors: u64,
    target: DmTarget,
    ledger: Ledger,
    entry: EntryId,
    /// `<name>-eio`'s ledger entry: see the module's doc.
    failing_entry: EntryId,
    removed: bool,
}

fn mapper_path(name: &str) -> PathBuf {
    Path::new("/dev/mapper").join(name)
}

/// The name of `volume`'s failing device.
fn failing_name(volume: &str) -> String {
    format!("{volume}-eio")
}

/// Creates dm device `name` with a one-line `table` and its node, recorded
/// in the ledger first; a device whose node cannot be made is removed again.
fn create_device(name: &str, table: &str, ledger: &Ledger) -> Result<EntryId, BlockError> {
    let entry = ledger
        .record(LedgerObject::DmDevice {
            name: name.to_string(),
        })
        .map_err(|source| BlockError::Ledger {
            what: format!("dm device {name}"),
            source,
        })?;
    let created = tools::run(dmsetup(&["create", "--noudevsync", name, "--table", table]));
    let made = created.and_then(|()| tools::run(dmsetup(&["mknodes", name])));
    if let Err(e) = made {
        undo_create(name, entry, ledger);
        return Err(e.into());
    }
    Ok(entry)
}

/// Takes back a [`create_device`] whose volume could not be set up: the
/// device goes, and so does its ledger entry, unless the removal failed
/// (then `stackquake cleanup` still finds it).
fn undo_create(name: &str, entry: EntryId, ledger: &Ledger) {
    if remove_dm_device(name).is_ok() {
        let _ = ledger.done(entry);
    }
}

/// I/Os the block layer has seen on `device` (dm-N), from
/// /sys/block/<device>/stat: reads, writes, discards and flushes completed
/// (failed ones included: dm accounts a bio when it ends, whatever its
/// status), plus those in flight (dm-delay holds them there).
pub fn io_count(device: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/sys/block/{device}/stat")).ok()?;
    parse_io_count(&text)
}

/// See [`io_count`]; fields as in Documentation/block/stat.rst.
pub fn parse_io_count(stat: &str) -> Option<u64> {
    let f: Vec<u64> = stat
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // read I/Os, write I/Os, in_flight, then discard and flush I/Os where
    // the kernel reports them (4.18+ and 5.5+).
    let mut n = *f.first()? + *f.get(4)? + *f.get(8)?;
    n += f.get(11).copied().unwrap_or(0) + f.get(15).copied().unwrap_or(0);
    Some(n)
}

fn dmsetup(args: &[&str]) -> Command {
    let mut cmd = Command::new("dmsetup");
    cmd.args(args);
    cmd
}

/// `dmsetup load <name>` with the table on stdin, so it may have several lines.
fn load_table(name: &str, table: &str) -> Result<(), BlockError> {
    let table = format!("{table}\n");
    let input = tools::Input {
        stdin: Some(&table),
        place: None,
    };
    Ok(tools::output_with(dmsetup(&["load", name]), input).map(drop)?)
}

impl DmVolume {
    /// Creates `/dev/mapper/<name>` as a linear map of all of `backing`,
    /// and its failing device before it (so that a killed run's cleanup,
    /// which goes backwards through the ledger, removes the volume that
    /// may map onto it first). `--noudevsync` + `mknodes`: a guest has no
    /// udev to make the node or to answer dmsetup's cookie, and on a host
    /// with udev this is still correct (mknodes only fixes up what is
    /// missing).
    pub fn create_linear(
        name: &str,
        backing: &Path,
        ledger: &Ledger,
    ) -> Result<DmVolume, BlockError> {
        let mut getsz = Command::new("blockdev");
        getsz.arg("--getsz").arg(backing);
        let sectors = tools::output(getsz)?;
        let sectors: u64 = sectors.trim().parse().map_err(|_| BlockError::BadOutput {
            command: format!("blockdev --getsz {}", backing.display()),
            why: format!("not a sector count: {sectors:?}"),
        })?;
        let failing = failing_name(name);
        let failing_entry = create_device(&failing, &format!("0 {sectors} error"), ledger)?;
        let undo_failing = |e: BlockError| {
            undo_create(&failing, failing_entry, ledger);
            e
        };
        let table = DmTarget::Linear.table(sectors, backing, &mapper_path(&failing));
        let entry = create_device(name, &table, ledger).map_err(undo_failing)?;
        let mut vol = DmVolume {
            name: name.to_string(),
            kernel_name: String::new(),
            backing: backing.to_path_buf(),
            sectors,
            target: DmTarget::Linear,
            ledger: ledger.clone(),
            entry,
            failing_entry,
            removed: false,
        };
        // From here on, dropping `vol` removes both devices.
        let info = tools::output(dmsetup(&[
            "info",
            "-c",
            "--noheadings",
            "-o",
            "blkdevname",
            name,
        ]))?;
        vol.kernel_name = info.trim().to_string();
        tracing::info!(name, backing = %backing.display(), sectors, "created dm volume");
        Ok(vol)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// /dev/mapper/<name>
    pub fn path(&self) -> PathBuf {
        mapper_path(&self.name)
    }

    pub fn sectors(&self) -> u64 {
        self.sectors
    }

    /// The target last loaded by `swap_table`.
    pub fn target(&self) -> &DmTarget {
        &self.target
    }

    /// dm-N, as the kernel log names it ("dm-0: writeback error …",
    /// "XFS (dm-0): …") and /sys/block lists it.
    pub fn kernel_name(&self) -> &str {
        &self.kernel_name
    }

    /// The live table (`dmsetup table`): proof of what the kernel maps now.
    pub fn live_table(&self) -> Result<String, BlockError> {
        Ok(tools::output(dmsetup(&["table", &self.name]))?
            .trim()
            .to_string())
    }

    /// The target's status line (`dmsetup status`).
    pub fn status(&self) -> Result<String, BlockError> {
        Ok(tools::output(dmsetup(&["status", &self.name]))?
            .trim()
            .to_string())
    }

    /// Replaces the live table: suspend, load, resume. The suspend neither
    /// freezes the filesystem nor waits for queued I/O (`--nolockfs
    /// --noflush`): a disk that goes away does not let XFS flush first,
    /// and in-flight I/O must meet the new table, not the old one.
    /// Returns the volume's [`io_count`] read while it was suspended: every
    /// I/O counted after that met the new table (None: unreadable).
    pub fn swap_table(&mut self, target: DmTarget) -> Result<Option<u64>, BlockError> {
        let failing = mapper_path(&failing_name(&self.name));
        let table = target.table(self.sectors, &self.backing, &failing);
        tools::run(dmsetup(&["suspend", "--nolockfs", "--noflush", &self.name]))?;
        let ios = io_count(&self.kernel_name);
        let loaded = load_table(&self.name, &table);
        // Resume even if the load failed: a volume left suspended hangs
        // every writer, which is not the fault anyone asked for.
        let resumed = tools::run(dmsetup(&["resume", "--noudevsync", &self.name]));
        loaded?;
        resumed?;
        tracing::info!(name = %self.name, from = self.target.kind(), to = target.kind(), "dm table swapped");
        self.target = target;
        Ok(ios)
    }

    pub fn remove(mut self) -> Result<(), BlockError> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), BlockError> {
        if self.removed {
            return Ok(());
        }
        self.removed = true;
        // The volume first: its table may map onto the failing device.
        for (name, entry) in [
            (self.name.clone(), self.entry),
            (failing_name(&self.name), self.failing_entry),
        ] {
            remove_dm_device(&name)?;
            if let Err(e) = self.ledger.done(entry) {
                tracing::warn!(name, error = %e, "cannot mark dm device done in ledger");
            }
        }
        tracing::info!(name = %self.name, "removed dm volume");
        Ok(())
    }
}

/// Removes dm device `name`: the one removal of a dm device, for
/// `DmVolume`'s drop and `stackquake cleanup`. Ok(false): it was already
/// gone. `--force` swaps in an error table first, so a device still held
/// (a filesystem on the `block.error` volume that only a lazy umount let
/// go) fails its I/O instead of hanging; `--retry` rides out the brief
/// opens of udev or blkid.
pub fn remove_dm_device(name: &str) -> Result<bool, BlockError> {
    let existed = tools::remove(
        dmsetup(&["remove", "--force", "--retry", "--noudevsync", name]),
        &["No such device or address", "not found"],
    )?;
    // Without udev nobody else deletes /dev/mapper/<name>.
    let _ = tools::run(dmsetup(&["mknodes"]));
    Ok(existed)
}

impl Drop for DmVolume {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            tracing::error!(name = %self.name, error = %e, "dm volume left behind");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_count_adds_reads_writes_in_flight_discards_flushes() {
        // 6.1's 17 fields: 5 reads, 7 writes, 2 in flight, 3 discards, 11 flushes.
        let stat = "5 0 40 1 7 0 56 9 2 10 20 3 0 24 0 11 4";
        assert_eq!(parse_io_count(stat), Some(5 + 7 + 2 + 3 + 11));
        // Older kernels print 11 fields: no discards or flushes.
        assert_eq!(parse_io_count("5 0 40 1 7 0 56 9 2 10 20"), Some(14));
        assert_eq!(parse_io_count("5 0 40"), None);
        assert_eq!(parse_io_count("garbage"), None);
    }

    #[test]
    fn table_lines() {
        let (d, f) = (Path::new("/dev/loop0"), Path::new("/dev/mapper/v-eio"));
        assert_eq!(DmTarget::Linear.table(8, d, f), "0 8 linear /dev/loop0 0");
        assert_eq!(
            DmTarget::Error.table(8, d, f),
            "0 8 linear /dev/mapper/v-eio 0"
        );
        let delay = DmTarget::Delay {
            read: Duration::from_millis(200),
            write: None,
        };
        assert_eq!(delay.table(8, d, f), "0 8 delay /dev/loop0 0 200");
        let delay = DmTarget::Delay {
            read: Duration::from_millis(1),
            write: Some(Duration::from_millis(50)),
        };
        assert_eq!(
            delay.table(8, d, f),
            "0 8 delay /dev/loop0 0 1 /dev/loop0 0 50"
        );
        let flakey = DmTarget::Flakey {
            up: Duration::from_secs(3),
            down: Duration::from_millis(10),
        };
        assert_eq!(flakey.table(8, d, f), "0 8 flakey /dev/loop0 0 3 1");
    }

    #[test]
    fn an_error_range_keeps_the_rest_linear() {
        let (d, f) = (Path::new("/dev/loop0"), Path::new("/dev/mapper/v-eio"));
        let mid = DmTarget::ErrorRange {
            start: 100,
            sectors: 8,
        };
        assert_eq!(
            mid.table(1000, d, f),
            "0 100 linear /dev/loop0 0\n100 8 linear /dev/mapper/v-eio 100\n\
             108 892 linear /dev/loop0 108"
        );
        let head = DmTarget::ErrorRange {
            start: 0,
            sectors: 8,
        };
        assert_eq!(
            head.table(1000, d, f),
            "0 8 linear /dev/mapper/v-eio 0\n8 992 linear /dev/loop0 8"
        );
        // A range past the end is clipped to the volume, never beyond it.
        let tail = DmTarget::ErrorRange {
            start: 992,
            sectors: 100,
        };
        assert_eq!(
            tail.table(1000, d, f),
            "0 992 linear /dev/loop0 0\n992 8 linear /dev/mapper/v-eio 992"
        );
        assert_eq!(tail.kind(), "error");
    }
}
