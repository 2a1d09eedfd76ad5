//! Finding the programs stackquake runs (nft, rpc.nfsd, mkfs.xfs, qemu…).

use std::path::PathBuf;

/// The path of `tool` on PATH: the lookup every `Command::new(tool)` (and
/// `nsenter … tool`) makes, so a tool found here is one those can start.
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_a_shell_and_not_a_made_up_name() {
        assert!(super::which("sh").is_some_and(|p| p.is_absolute()));
        assert_eq!(super::which("no-such-tool-stackquake"), None);
    }
}
