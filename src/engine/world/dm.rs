//! Device-mapper volumes between an image's loop device and its filesystem
//! (`images: - dm: true`), torn down after the image is unmounted and
//! before its loop device is detached.

use super::{SetupError, World};
use crate::block::{DmVolume, LoopDevice};
use crate::ledger::Ledger;

impl World {
    /// Creates `sq-<run>-<image>` as a linear map of all of `dev` and keeps
    /// both; returns the path to mount.
    pub(super) fn build_dm_volume(
        &mut self,
        image: &str,
        dev: LoopDevice,
        ledger: &Ledger,
        note: &mut dyn FnMut(String),
    ) -> Result<String, SetupError> {
        let backing = dev.path().to_path_buf();
        let loop_name = dev.name().to_string();
        // The loop device is the world's before the volume exists, so a
        // failed create still detaches it.
        self.loops.push(dev);
        // The delay and flakey targets are modules of their own; load them
        // now (best effort) rather than rely on the kernel's request_module
        // when a fault first names them mid-run.
        if let Err(e) = crate::tools::modprobe(&["dm_delay", "dm_flakey"]) {
            tracing::debug!(error = %e, "dm target modules not loaded");
        }
        let name = format!("sq-{}-{image}", ledger.run());
        let vol = DmVolume::create_linear(&name, &backing, ledger).map_err(|source| {
            SetupError::Block {
                what: format!("dm volume for image {image}"),
                source,
            }
        })?;
        let path = vol.path().display().to_string();
        let kernel = vol.kernel_name();
        note(format!(
            "image {image}: {name} ({kernel}, linear) on {loop_name}"
        ));
        self.dm_volumes
            .insert(image.to_string(), std::sync::Mutex::new(vol));
        Ok(path)
    }

    /// Removes every dm volume; the filesystems on them are unmounted by now.
    pub(super) fn teardown_dm_volumes(&mut self, log: &mut super::TeardownLog) {
        for (image, vol) in std::mem::take(&mut self.dm_volumes).into_iter().rev() {
            let vol = vol.into_inner().unwrap_or_else(|p| p.into_inner());
            let name = vol.name().to_string();
            log.record(
                format!("remove dm volume {name} of image {image}"),
                vol.remove(),
            );
        }
    }
}
