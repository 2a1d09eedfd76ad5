//! An export's seeded `files`: each path stays inside the export's
//! directory by its spelling alone, each names one file, and each says
//! what it holds at most one way.

use super::Checker;
use crate::plan::SEED_MAX_BYTES;
use crate::scenario::model::SeedFile;
use std::collections::BTreeSet;

pub(super) fn check(c: &mut Checker, files: &[SeedFile], export: &str) {
    let mut seen = BTreeSet::new();
    for (i, f) in files.iter().enumerate() {
        let path = format!("{export}.files[{i}]");
        let p = &f.path.value;
        let parts: Vec<&str> = p.split('/').collect();
        if p.starts_with('/') || parts.iter().any(|c| matches!(*c, "" | "." | "..")) {
            c.at(
                f.path.referenced,
                format!("{path}.path"),
                format!("`{p}` is not a path inside the export"),
                Some(
                    "write it relative to the export's directory, without `.`, `..` or \
                     empty parts, e.g. seed.bin or db/data"
                        .into(),
                ),
            );
            continue;
        }
        // A file cannot also be the parent directory of another.
        let clash = seen.iter().any(|s: &String| {
            s == p || s.starts_with(&format!("{p}/")) || p.starts_with(&format!("{s}/"))
        });
        if clash {
            c.at(
                f.path.referenced,
                format!("{path}.path"),
                format!("`{p}` is seeded twice, or is a file and a directory at once"),
                Some("seed each file once; its parent directories are made for it".into()),
            );
        }
        seen.insert(p.clone());
        if let (Some(size), Some(_)) = (&f.size, &f.content) {
            c.at(
                size.referenced,
                format!("{path}.size"),
                "a seeded file has `size` (zeros) or `content` (text), not both".into(),
                Some("leave `size` out: the content's length is the file's".into()),
            );
        }
        if let Some(size) = &f.size
            && size.value.0 > SEED_MAX_BYTES
        {
            c.at(
                size.referenced,
                format!("{path}.size"),
                format!("{} is more than a seeded file may have (1G)", size.value),
                Some("its bytes are written into the run's scratch area".into()),
            );
        }
    }
}
