//! /proc/self/mountinfo: which mount points exist, matched exactly.

use std::path::{Path, PathBuf};

/// Mount points listed in /proc/self/mountinfo (field 5, octal escapes
/// decoded), in the order the kernel lists them.
pub fn mount_points() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| parse(&t))
        .unwrap_or_default()
}

pub fn parse(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .collect()
}

pub fn is_mount_point(target: &Path) -> bool {
    mount_points().iter().any(|p| p == target)
}

/// The filesystem type of the mount on `target` (the topmost, if stacked).
pub fn fstype(target: &Path) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    fstype_in(&text, target)
}

fn fstype_in(text: &str, target: &Path) -> Option<String> {
    text.lines()
        .filter(|l| {
            l.split(' ')
                .nth(4)
                .is_some_and(|p| Path::new(&unescape(p)) == target)
        })
        // After the optional fields, " - " precedes the type.
        .filter_map(|l| l.split_once(" - ")?.1.split(' ').next().map(String::from))
        .next_back()
}

/// The kernel escapes space, tab, newline and backslash as \ooo (show_path).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escaped_mount_points() {
        let text = "36 35 98:0 /mnt1 /mnt/a\\040b rw,noatime master:1 - ext3 /dev/root rw\n\
                    37 35 7:0 / /run/x rw - xfs /dev/loop0 rw\n";
        assert_eq!(
            parse(text),
            vec![PathBuf::from("/mnt/a b"), PathBuf::from("/run/x")]
        );
    }

    #[test]
    fn the_type_is_the_topmost_mounts() {
        let text = "36 35 98:0 / /mnt/a\\040b rw master:1 - ext3 /dev/root rw\n\
                    37 35 7:0 / /run/x rw - xfs /dev/loop0 rw\n\
                    38 37 0:52 / /run/x rw shared:4 - nfs 10.0.0.1:/e rw,vers=3\n";
        assert_eq!(fstype_in(text, Path::new("/run/x")).as_deref(), Some("nfs"));
        assert_eq!(
            fstype_in(text, Path::new("/mnt/a b")).as_deref(),
            Some("ext3")
        );
        assert_eq!(fstype_in(text, Path::new("/mnt")), None);
    }
}
