//! XFS images: a file (perhaps on an NFS mount), a loop device over it,
//! and the filesystem mounted from that device.

use super::{SetupError, World, io};
use crate::block::{self, ImageFile, LoopDevice, Mount};
use crate::ledger::Ledger;
use crate::plan::Plan;
use nix::mount::MsFlags;

impl World {
    pub(super) fn build_images(
        &mut self,
        s: &Plan,
        ledger: &Ledger,
        note: &mut dyn FnMut(String),
    ) -> Result<(), SetupError> {
        for img in &s.images {
            let block_err = |what: String| move |source| SetupError::Block { what, source };
            let file = self.path(&img.file);
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
            }
            let image = ImageFile::create(&file, img.size)
                .map_err(block_err(format!("image {}", img.id)))?;
            self.images.push(image);
            block::mkfs_xfs(&file).map_err(block_err(format!("mkfs.xfs {}", file.display())))?;
            let dev = LoopDevice::attach(&file, ledger)
                .map_err(block_err(format!("attach {}", file.display())))?;
            let target = self.path(&img.at);
            std::fs::create_dir_all(&target).map_err(io(format!("create {}", target.display())))?;
            let mut dev_path = dev.path().display().to_string();
            if img.dm {
                // loop → dm-linear → XFS: block.* faults swap the dm table.
                dev_path = self.build_dm_volume(&img.id, dev, ledger, note)?;
                let mount = Mount::mount(&dev_path, &target, "xfs", MsFlags::empty(), "", ledger)
                    .map_err(block_err(format!("mount {}", img.id)))?;
                self.sources
                    .insert(img.id.clone(), (dev_path, "xfs".into(), String::new()));
                self.image_mounts.insert(img.id.clone(), mount);
                continue;
            }
            self.sources.insert(
                img.id.clone(),
                (dev_path.clone(), "xfs".into(), String::new()),
            );
            let mount = Mount::mount(&dev_path, &target, "xfs", MsFlags::empty(), "", ledger);
            note(format!(
                "image {}: {} on {}",
                img.id,
                dev.name(),
                file.display()
            ));
            self.loops.push(dev);
            let mount = mount.map_err(block_err(format!("mount {}", img.id)))?;
            self.image_mounts.insert(img.id.clone(), mount);
        }
        Ok(())
    }
}
