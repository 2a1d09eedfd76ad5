//! What world setup would refuse, refused by `validate` instead: a run
//! should not get as far as ERROR for something the file alone shows.

use super::Checker;
use crate::block::MKFS_XFS_MIN_BYTES;
use crate::plan::NfsVersion;
use crate::scenario::model::*;

pub(super) fn check(c: &mut Checker, s: &Scenario) {
    for (i, img) in s.images.iter().enumerate() {
        if img.mkfs == Mkfs::Xfs && img.size.value.0 < MKFS_XFS_MIN_BYTES {
            c.at(
                img.size.referenced,
                format!("images[{i}].size"),
                format!(
                    "XFS image `{}` of {} is smaller than mkfs.xfs accepts (300M)",
                    img.id.value, img.size.value
                ),
                Some(
                    "write `size: 300M` or more; the file is sparse, so size costs no disk".into(),
                ),
            );
        }
    }
    for (i, m) in s.mounts.iter().enumerate() {
        if let Some(o) = &m.options
            && let Err(e) = NfsVersion::from_options(Some(&o.value))
        {
            c.at(
                o.referenced,
                format!("mounts[{i}].options"),
                e,
                Some(format!(
                    "valid: {} (vers=4 alone tries 4.2, then 4.1, then 4.0)",
                    NfsVersion::CHOICES
                )),
            );
        }
        let Some(host) = s.hosts.get(&m.host.value) else {
            continue; // an unknown host is reported by the reference check
        };
        if host.statd.is_none() && takes_nlm_locks(m.options.as_ref().map(|o| o.value.as_str())) {
            // The client's lockd registers NLM with the host's portmapper
            // (127.0.0.1:111) when an NLM mount starts it; without one the
            // mount fails (docs/scenarios.md, "Locking").
            let at = m
                .options
                .as_ref()
                .map_or(m.host.referenced, |o| o.referenced);
            let path = if m.options.is_some() {
                "options"
            } else {
                "host"
            };
            c.at(
                at,
                format!("mounts[{i}].{path}"),
                format!(
                    "mount `{}` locks over NLM (NFSv3 without `nolock`), but host `{}` \
                     has no `statd:` for its lockd",
                    m.id.value, m.host.value
                ),
                Some(format!(
                    "add `nolock` to the mount's options, or give host `{}` \
                     `statd: system` (or `stackquake`, or `none` for a portmapper without statd)",
                    m.host.value
                )),
            );
        }
    }
}

/// Whether the kernel starts lockd for a mount with these options: NFSv2
/// and v3 lock over NLM unless `nolock` (the last of `lock`/`nolock`
/// wins) or `local_lock=all` keeps every lock local. No `vers=` means 3:
/// that is what the engine mounts (engine::world::nfs).
pub(super) fn takes_nlm_locks(options: Option<&str>) -> bool {
    let mut nlm = true;
    for o in options.unwrap_or("").split(',').map(str::trim) {
        match o.split_once('=') {
            None if o == "nolock" => nlm = false,
            None if o == "lock" => nlm = true,
            Some(("local_lock", "all")) => nlm = false,
            Some(("local_lock", _)) => nlm = true,
            _ => {}
        }
    }
    // An unreadable version is reported on its own, not as a lock problem.
    nlm && NfsVersion::from_options(options) == Ok(NfsVersion::V3)
}

#[cfg(test)]
mod tests {
    use super::takes_nlm_locks;

    #[test]
    fn nlm_is_v2_v3_without_nolock() {
        assert!(takes_nlm_locks(None));
        assert!(takes_nlm_locks(Some("vers=3,proto=tcp,hard")));
        assert!(takes_nlm_locks(Some("nolock,lock")));
        assert!(!takes_nlm_locks(Some("vers=3,nolock")));
        assert!(!takes_nlm_locks(Some("lock,nolock")));
        assert!(!takes_nlm_locks(Some("vers=3,local_lock=all")));
        assert!(!takes_nlm_locks(Some("vers=4.1")));
        assert!(!takes_nlm_locks(Some("nfsvers=4")));
    }
}
