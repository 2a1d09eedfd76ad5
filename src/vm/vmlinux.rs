//! An uncompressed, PVH-bootable vmlinux extracted from a compressed
//! vmlinuz, so QEMU jumps straight into the kernel: under TCG the in-guest
//! XZ decompressor of Debian's vmlinuz costs ~2.7 s of a ~5.5 s run.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::cache::ContentHash;
use super::kernel::GuestKernel;

/// Compressed payload formats a bzImage may carry: (magic, decompressor
/// argv). Same approach as the kernel's scripts/extract-vmlinux: find the
/// magic, decompress from there, keep the first result that is an ELF.
const FORMATS: &[(&[u8], &[&str])] = &[
    (b"\xfd7zXZ\x00", &["xz", "-dc", "--single-stream"]),
    (b"\x28\xb5\x2f\xfd", &["zstd", "-dcq"]),
    (b"\x1f\x8b\x08", &["gzip", "-dcq"]),
    (b"\x02\x21\x4c\x18", &["lz4", "-dcq"]),
];

/// The cached vmlinux for `kernel`, extracted on first use; None when it
/// cannot be had (unknown compression, no decompressor, no PVH entry note),
/// in which case the caller boots the compressed image as is.
pub fn ensure(kernel: &GuestKernel, cache: &Path) -> Option<PathBuf> {
    let meta = fs::metadata(&kernel.image).ok()?;
    let mut key = ContentHash::default();
    key.update(kernel.image.as_os_str().as_encoded_bytes())
        .update(&meta.len().to_le_bytes())
        .update(&meta.mtime().to_le_bytes());
    let path = cache.join(format!("vmlinux-{}-{}", kernel.version, key.hex()));
    if path.is_file() {
        return Some(path);
    }
    let image = fs::read(&kernel.image).ok()?;
    let Some(elf) = extract(&image) else {
        tracing::warn!(kernel = %kernel.image.display(), "no PVH vmlinux inside; booting the compressed image (slower under TCG)");
        return None;
    };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::create_dir_all(cache).ok()?;
    if let Err(e) = fs::write(&tmp, &elf).and_then(|()| fs::rename(&tmp, &path)) {
        tracing::warn!(path = %path.display(), error = %e, "caching vmlinux failed");
        let _ = fs::remove_file(&tmp);
        return None;
    }
    tracing::info!(path = %path.display(), bytes = elf.len(), "vmlinux extracted");
    Some(path)
}

fn extract(image: &[u8]) -> Option<Vec<u8>> {
    for (magic, argv) in FORMATS {
        let Some(offset) = image.windows(magic.len()).position(|w| w == *magic) else {
            continue;
        };
        if let Some(out) = decompress(argv, &image[offset..]) {
            if has_pvh_entry(&out) {
                return Some(out);
            }
        }
    }
    None
}

fn decompress(argv: &[&str], input: &[u8]) -> Option<Vec<u8>> {
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let input = input.to_vec();
    // Feed on a thread: the decompressor blocks on a full stdout otherwise.
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().ok()?;
    let _ = feeder.join();
    // Exit status is ignored on purpose: gzip and friends complain about
    // the bytes after the stream ("trailing garbage") yet decode it whole.
    Some(out.stdout).filter(|o| o.starts_with(b"\x7fELF"))
}

/// XEN_ELFNOTE_PHYS32_ENTRY (Xen public/elfnote.h): the 32-bit entry point
/// QEMU's PVH loader requires to boot an ELF kernel directly.
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
const PT_NOTE: u32 = 4;

/// Whether `elf` (ELF64, little endian) carries a "Xen" PHYS32_ENTRY note.
pub fn has_pvh_entry(elf: &[u8]) -> bool {
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    // EI_CLASS 2 = 64-bit, EI_DATA 1 = little endian.
    if !elf.starts_with(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    for i in 0..usize::from(phnum) {
        let ph = phoff as usize + i * usize::from(phentsize);
        let (Some(p_type), Some(off), Some(size)) = (u32_at(ph), u64_at(ph + 8), u64_at(ph + 32))
        else {
            return false;
        };
        if p_type != PT_NOTE {
            continue;
        }
        let (mut n, end) = (off as usize, (off + size) as usize);
        while n + 12 <= end {
            let (Some(namesz), Some(descsz), Some(kind)) =
                (u32_at(n), u32_at(n + 4), u32_at(n + 8))
            else {
                return false;
            };
            let name = elf
                .get(n + 12..n + 12 + namesz as usize)
                .unwrap_or_default();
            if name == b"Xen\0" && kind == XEN_ELFNOTE_PHYS32_ENTRY {
                return true;
            }
            n += 12 + align4(namesz as usize) + align4(descsz as usize);
        }
    }
    false
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 with one PT_NOTE segment holding the given notes.
    fn elf_with_notes(notes: &[(&[u8], u32)]) -> Vec<u8> {
        let mut note = Vec::new();
        for (name, kind) in notes {
            note.extend_from_slice(&(name.len() as u32).to_le_bytes());
            note.extend_from_slice(&4u32.to_le_bytes());
            note.extend_from_slice(&kind.to_le_bytes());
            note.extend_from_slice(name);
            note.resize(align4(note.len()), 0);
            note.extend_from_slice(&[1, 2, 3, 4]);
        }
        let mut elf = vec![0u8; 64 + 56];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        elf[64..68].copy_from_slice(&PT_NOTE.to_le_bytes());
        elf[72..80].copy_from_slice(&120u64.to_le_bytes());
        elf[96..104].copy_from_slice(&(note.len() as u64).to_le_bytes());
        elf.extend_from_slice(&note);
        elf
    }

    #[test]
    fn finds_the_pvh_note_after_other_xen_notes() {
        let elf = elf_with_notes(&[(b"Xen\0", 6), (b"GNU\0", 3), (b"Xen\0", 18)]);
        assert!(has_pvh_entry(&elf));
    }

    #[test]
    fn rejects_elves_without_it_and_non_elves() {
        assert!(!has_pvh_entry(&elf_with_notes(&[
            (b"Xen\0", 6),
            (b"GNU\0", 18)
        ])));
        assert!(!has_pvh_entry(b"MZ not an elf"));
        let mut truncated = elf_with_notes(&[(b"Xen\0", 18)]);
        truncated.truncate(130);
        assert!(!has_pvh_entry(&truncated));
    }

    #[test]
    fn extracts_a_gzip_payload_from_behind_a_stub() {
        let elf = elf_with_notes(&[(b"Xen\0", 18)]);
        let mut gz = Command::new("gzip")
            .arg("-c")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("gzip is part of every Debian system");
        gz.stdin.take().unwrap().write_all(&elf).unwrap();
        let packed = gz.wait_with_output().unwrap().stdout;
        let mut image = b"bzImage setup code".to_vec();
        image.extend_from_slice(&packed);
        image.extend_from_slice(b"trailing bytes after the stream");
        assert_eq!(extract(&image), Some(elf));
    }
}
