//! Requirement checks before anything is built: an unmet one is a SKIP with
//! a reason that says how to get it (often: run with `--target vm`).

use super::kfeature::{self, Evidence, Presence};
use crate::plan::{KernelFeature, Plan, Target};

/// Why the scenario cannot run here, or None if it can.
pub fn unmet(s: &Plan, target: Target) -> Option<String> {
    if !s.requires.targets.is_empty() && !s.requires.targets.contains(&target) {
        let allowed: Vec<String> = s.requires.targets.iter().map(Target::to_string).collect();
        return Some(format!(
            "scenario runs on target {} only, not {target}",
            allowed.join("/")
        ));
    }
    let mut missing = Vec::new();
    // The plan lists what the world and the faults imply too.
    let mut evidence = Evidence::gather();
    for f in &s.requires.kernel_features {
        if let Some(why) = missing_feature(*f, &mut evidence) {
            missing.push(why);
        }
    }
    for tool in &s.requires.tools {
        if crate::tools::which(tool).is_none() {
            missing.push(format!("tool `{tool}` not found on PATH"));
        }
    }
    if missing.is_empty() {
        None
    } else {
        let hint = if target == Target::Host {
            "; use --vm (--target vm boots a guest kernel that has them)"
        } else {
            ""
        };
        Some(format!("{}{hint}", missing.join("; ")))
    }
}

/// Why a kernel feature is missing (after loading its module, when the
/// kernel can), or None if it is there: the reason a SKIP gives.
fn missing_feature(f: KernelFeature, evidence: &mut Evidence) -> Option<String> {
    let spec = kfeature::spec(f);
    let why = match evidence.decide(f) {
        Presence::Present => return None,
        Presence::Loadable(module) => {
            // Best effort: modprobe may be missing or refused; the
            // evidence below decides.
            if let Err(e) = crate::tools::modprobe(&[module]) {
                tracing::debug!(error = %e, "module not loaded");
            }
            evidence.refresh_modules();
            match evidence.decide(f) {
                Presence::Present => return None,
                _ => format!("module {module} exists but `modprobe {module}` did not load it"),
            }
        }
        Presence::Missing(why) => why,
    };
    Some(format!(
        "kernel feature {} ({}) unavailable on {}: {why}",
        spec.name, spec.what, evidence.release
    ))
}

/// `uname -r`.
pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}
