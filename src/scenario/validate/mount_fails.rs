//! `mount_fails` expectations: the mount must be an NFS mount, its errno a
//! real one, and nothing may use what will not be there (a workload on its
//! path or storming it, an image file on it, a `mounted` check of it).

use super::super::matchers::Expectation;
use super::super::model::Scenario;
use super::{Checker, check_errno};
use std::path::Path;

pub(super) fn check(c: &mut Checker, s: &Scenario) {
    for (i, e) in s.expect.iter().enumerate() {
        let Expectation::MountFails { mount, errno } = &e.value else {
            continue;
        };
        let path = format!("expect[{i}].mount_fails");
        if let Some(errno) = errno {
            check_errno(c, errno, &path);
        }
        let Some(m) = s.mounts.iter().find(|m| m.id.value == mount.value) else {
            let nfs: Vec<&str> = s.mounts.iter().map(|m| m.id.value.as_str()).collect();
            c.reference(mount, format!("{path}.mount"), "NFS mount", nfs);
            continue;
        };
        let at = Path::new(&m.at.value);
        let hint = || {
            Some(format!(
                "mount `{}` is expected to be refused, so nothing can use it",
                mount.value
            ))
        };
        for (j, w) in s.workloads.iter().enumerate() {
            if let Some(p) = w
                .path
                .as_ref()
                .filter(|p| Path::new(&p.value).starts_with(at))
            {
                c.at(
                    p.referenced,
                    format!("workloads[{j}].path"),
                    format!(
                        "`{}` lies on mount `{}`, which must fail",
                        p.value, mount.value
                    ),
                    hint(),
                );
            }
            if let Some(r) = w.mount.as_ref().filter(|r| r.value == mount.value) {
                c.at(
                    r.referenced,
                    format!("workloads[{j}].mount"),
                    format!("mount `{}` must fail; there is nothing to storm", r.value),
                    hint(),
                );
            }
        }
        for (j, img) in s.images.iter().enumerate() {
            if Path::new(&img.file.value).starts_with(at) {
                c.at(
                    img.file.referenced,
                    format!("images[{j}].file"),
                    format!(
                        "`{}` lies on mount `{}`, which must fail",
                        img.file.value, mount.value
                    ),
                    hint(),
                );
            }
        }
        for (j, other) in s.expect.iter().enumerate() {
            if let Expectation::Mounted { mount: r, .. } = &other.value
                && r.value == mount.value
            {
                c.at(
                    r.referenced,
                    format!("expect[{j}].mounted.mount"),
                    format!("mount `{}` must fail; `mounted` cannot look at it", r.value),
                    hint(),
                );
            }
        }
    }
}
