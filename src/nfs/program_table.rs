//! The one table of the RPC programs this crate knows: dispatch routes by
//! it, the fault hook answers "reply with a status" through it, and the
//! name lookups (`names`: scenarios, `nfs serve` flags, logs) read it.
//! Registering a program means adding its row here and serving it with a
//! `program::Program`.

use super::program::ProgramInfo;
use super::{mount, nfs3, nfs4, nlm, nsm, portmap};

/// Every known program, in the order names are looked up: a program number
/// that has rows for several versions is named by its first row.
pub static PROGRAMS: [&ProgramInfo; 6] = [
    &nfs3::INFO,
    &nfs4::INFO,
    &mount::INFO,
    &portmap::INFO,
    &nlm::INFO,
    &nsm::INFO,
];

/// The first row of program `number`, if it is known.
pub fn by_number(number: u32) -> Option<&'static ProgramInfo> {
    PROGRAMS.iter().copied().find(|p| p.number == number)
}

/// The row serving version `vers` of program `number`, else its first row.
pub fn by_number_version(number: u32, vers: u32) -> Option<&'static ProgramInfo> {
    PROGRAMS
        .iter()
        .copied()
        .find(|p| p.number == number && p.versions.contains(&vers))
        .or_else(|| by_number(number))
}

/// The program a person names ("mount", "rpcbind"; any case).
pub fn by_name(name: &str) -> Option<&'static ProgramInfo> {
    let lower = name.to_ascii_lowercase();
    PROGRAMS
        .iter()
        .copied()
        .find(|p| p.names.contains(&lower.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_serves_each_version_and_names_are_unambiguous() {
        for (i, a) in PROGRAMS.iter().enumerate() {
            for b in &PROGRAMS[i + 1..] {
                if a.number == b.number {
                    assert!(a.versions.iter().all(|v| !b.versions.contains(v)));
                } else {
                    assert!(
                        a.names.iter().all(|n| !b.names.contains(n)),
                        "{:?}",
                        a.names
                    );
                }
            }
            assert!(a.names.iter().all(|n| *n == n.to_ascii_lowercase()));
            assert!(!a.versions.is_empty());
        }
    }
}
