//! `block.detach`, `block.error`, `block.delay`, `block.flakey`: the dm
//! volume under an image's filesystem gets another table while the
//! filesystem stays mounted; healing loads the linear table again.
//!
//! Why a table swap and not a QMP hot-unplug for `block.detach`: what the
//! filesystem above sees is the same (every bio fails with EIO, the mount
//! stays listed; incidents/ecs-ebs-detach-xfs-stays-mounted), but a swap
//! works on any kernel with dm — in the guest and on real staging hosts
//! alike — needs no second virtio disk per image, and can be healed, while
//! an unplugged disk comes back, if at all, as a new device the old mount
//! never sees again.

use super::{Active, FaultError, Targets};
use crate::block::{DmTarget, io_count};
use crate::plan::Fault;

pub(super) fn inject(world: &dyn Targets, fault: &Fault) -> Result<Active, FaultError> {
    let kind = fault.kind();
    let (image, target) = fault.dm_target().expect("a block fault");
    let image = image.to_string();
    let volume = world
        .dm_volume(&image)
        .ok_or_else(|| FaultError::UnknownTarget {
            fault: kind,
            what: "dm volume of image",
            name: image.clone(),
        })?;
    let mut volume = volume.lock().unwrap_or_else(|p| p.into_inner());
    let block = |source| FaultError::Block {
        fault: kind,
        source,
    };
    let device = volume.kernel_name().to_string();
    // Counted while the volume was suspended: I/O before the swap met the
    // healthy table and proves nothing about the fault.
    let ios_before = volume.swap_table(target).map_err(block)?.unwrap_or(0);
    Ok(Active::Block {
        kind,
        image,
        device,
        ios_before,
    })
}

pub(super) fn heal(
    world: &dyn Targets,
    kind: &'static str,
    image: &str,
    device: &str,
    ios_before: u64,
) -> Result<(), FaultError> {
    let volume = world
        .dm_volume(image)
        .ok_or_else(|| FaultError::UnknownTarget {
            fault: kind,
            what: "dm volume of image",
            name: image.to_string(),
        })?;
    let fired = fired(device, ios_before);
    tracing::info!(fault = kind, image, device, ios = ?fired, "block fault healing");
    let mut volume = volume.lock().unwrap_or_else(|p| p.into_inner());
    volume
        .swap_table(DmTarget::Linear)
        .map(drop)
        .map_err(|source| FaultError::Block {
            fault: kind,
            source,
        })
}

/// I/Os that reached `device` since the fault was injected; None when its
/// statistics cannot be read.
pub(super) fn fired(device: &str, ios_before: u64) -> Option<u64> {
    io_count(device).map(|now| now.saturating_sub(ios_before))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn each_block_fault_loads_its_table() {
        let s = crate::scenario::load_str(
            "schema_version: 1\nid: t\ntitle: t\nhosts: { a: {} }\n\
             images: [{ id: v, host: a, file: /v.img, size: 512M, mkfs: xfs, at: /mnt/v, dm: true }]\n\
             steps:\n\
             - { id: d, fault: { block.detach: { image: v } } }\n\
             - { id: e, fault: { block.error: { image: v, start: 64, sectors: 8 } } }\n\
             - { id: w, fault: { block.delay: { image: v, delay: 200ms, write_delay: 1s } } }\n\
             - { id: f, fault: { block.flakey: { image: v, up: 2s, down: 1s } } }\n",
            "t.yaml",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let targets: Vec<DmTarget> = s
            .steps
            .iter()
            .map(|st| match &st.action {
                crate::plan::Action::Fault { fault, .. } => fault.dm_target().unwrap().1,
                other => panic!("not a fault: {other:?}"),
            })
            .collect();
        assert_eq!(
            targets,
            vec![
                DmTarget::Error,
                DmTarget::ErrorRange {
                    start: 64,
                    sectors: 8
                },
                DmTarget::Delay {
                    read: Duration::from_millis(200),
                    write: Some(Duration::from_secs(1))
                },
                DmTarget::Flakey {
                    up: Duration::from_secs(2),
                    down: Duration::from_secs(1)
                },
            ]
        );
    }
}
