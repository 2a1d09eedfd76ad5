//! The v4 pseudo file system (RFC 8881 §7.3): the directories above the
//! exports, so that `mount server:/srv/data` works by PUTROOTFH and a
//! LOOKUP per component. It holds names only; nothing in it is a real
//! directory a client could write to or escape through.

/// Where a LOOKUP in the pseudo file system lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Another pseudo directory, by index.
    Dir(usize),
    /// The root of an export, by id.
    Export(u32),
}

#[derive(Debug)]
pub struct PseudoFs {
    /// Directory paths; index 0 is "/".
    dirs: Vec<String>,
    exports: Vec<(u32, String)>,
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

impl PseudoFs {
    /// From the exports' ids and normalized names ("/srv/data").
    pub fn new(exports: &[(u32, String)]) -> PseudoFs {
        let mut dirs = vec!["/".to_string()];
        for (_, name) in exports {
            let mut p = parent(name);
            while p != "/" {
                if !dirs.iter().any(|d| d == p) && !exports.iter().any(|(_, n)| n == p) {
                    dirs.push(p.to_string());
                }
                p = parent(p);
            }
        }
        PseudoFs {
            dirs,
            exports: exports.to_vec(),
        }
    }

    /// The export that is "/" itself, if any: then there is no pseudo root.
    pub fn root_export(&self) -> Option<u32> {
        self.exports
            .iter()
            .find(|(_, n)| n == "/")
            .map(|(id, _)| *id)
    }

    pub fn dirs(&self) -> usize {
        self.dirs.len()
    }

    pub fn path(&self, dir: usize) -> &str {
        &self.dirs[dir]
    }

    fn step(&self, path: &str) -> Option<Step> {
        if let Some((id, _)) = self.exports.iter().find(|(_, n)| n == path) {
            return Some(Step::Export(*id));
        }
        self.dirs.iter().position(|d| d == path).map(Step::Dir)
    }

    /// LOOKUP `name` in pseudo directory `dir`.
    pub fn lookup(&self, dir: usize, name: &str) -> Option<Step> {
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return None;
        }
        self.step(&join(self.dirs.get(dir)?, name))
    }

    /// LOOKUPP of pseudo directory `dir`; the root has no parent.
    pub fn parent_of_dir(&self, dir: usize) -> Option<usize> {
        (dir != 0).then(|| self.parent_index(self.dirs.get(dir).map_or("/", |d| d)))
    }

    /// LOOKUPP of the root of export `id`: the pseudo directory above it.
    pub fn parent_of_export(&self, id: u32) -> Option<usize> {
        let (_, name) = self.exports.iter().find(|(i, _)| *i == id)?;
        (name != "/").then(|| self.parent_index(name))
    }

    fn parent_index(&self, path: &str) -> usize {
        let p = parent(path);
        self.dirs.iter().position(|d| d == p).unwrap_or(0)
    }

    /// The entries of pseudo directory `dir`, sorted by name.
    pub fn entries(&self, dir: usize) -> Vec<(String, Step)> {
        let Some(path) = self.dirs.get(dir) else {
            return Vec::new();
        };
        let below = self
            .dirs
            .iter()
            .map(String::as_str)
            .chain(self.exports.iter().map(|(_, n)| n.as_str()))
            .filter(|p| *p != "/" && parent(p) == path);
        let mut out: Vec<(String, Step)> = below
            .filter_map(|p| {
                let name = p.rsplit('/').next()?.to_string();
                Some((name, self.step(p)?))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.dedup_by(|a, b| a.0 == b.0);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_exports_get_pseudo_parents_and_no_way_out() {
        let fs = PseudoFs::new(&[(1, "/export".into()), (2, "/srv/nfs/data".into())]);
        assert_eq!(fs.root_export(), None);
        assert_eq!(fs.lookup(0, "export"), Some(Step::Export(1)));
        let Some(Step::Dir(srv)) = fs.lookup(0, "srv") else {
            panic!("no /srv")
        };
        let Some(Step::Dir(nfs)) = fs.lookup(srv, "nfs") else {
            panic!("no /srv/nfs")
        };
        assert_eq!(fs.lookup(nfs, "data"), Some(Step::Export(2)));
        assert_eq!(fs.lookup(0, ".."), None);
        assert_eq!(fs.lookup(0, "srv/nfs"), None);
        assert_eq!(fs.lookup(0, "etc"), None);
        assert_eq!(fs.parent_of_export(2), Some(nfs));
        assert_eq!(fs.parent_of_dir(nfs), Some(srv));
        assert_eq!(fs.parent_of_dir(0), None);
        let names: Vec<String> = fs.entries(0).into_iter().map(|e| e.0).collect();
        assert_eq!(names, ["export", "srv"]);
    }

    #[test]
    fn an_export_of_slash_is_the_root() {
        let fs = PseudoFs::new(&[(1, "/".into())]);
        assert_eq!(fs.root_export(), Some(1));
        assert_eq!(fs.parent_of_export(1), None);
    }
}
