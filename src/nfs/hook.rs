//! The FaultHook: every RPC call passes through it before dispatch. Rules are
//! data (a matcher and an action), matched by program, version, procedure,
//! export and client; the handlers never know about faults. Each rule
//! counts the calls it matched, and the count outlives the rule's heal so a
//! run can tell a fault that never fired from one that did.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::export::Cidr;
use super::names;

/// What the hook knows about a call when it decides.
#[derive(Debug, Clone)]
pub struct CallInfo<'a> {
    pub prog: u32,
    pub vers: u32,
    pub proc_: u32,
    /// The export the call's file handle or mount path names, if any.
    pub export: Option<&'a str>,
    pub client: SocketAddr,
    /// An NFSv4 COMPOUND's operations (empty for any other call).
    pub ops: &'a [u32],
}

/// Which calls a rule applies to; `None` fields match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallMatch {
    pub prog: Option<u32>,
    pub vers: Option<u32>,
    pub proc_: Option<u32>,
    pub export: Option<String>,
    pub client: Option<Cidr>,
    /// An NFSv4 operation the COMPOUND must contain.
    pub op: Option<u32>,
}

impl CallMatch {
    pub fn matches(&self, call: &CallInfo<'_>) -> bool {
        self.prog.is_none_or(|p| p == call.prog)
            && self.vers.is_none_or(|v| v == call.vers)
            && self.proc_.is_none_or(|p| p == call.proc_)
            && self
                .export
                .as_deref()
                .is_none_or(|e| Some(e) == call.export)
            && self.client.is_none_or(|c| c.contains(call.client.ip()))
            && self.op.is_none_or(|op| call.ops.contains(&op))
    }
}

/// What to do with a matching call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultAction {
    /// Hold the call this long, then serve it.
    Delay(Duration),
    /// Hold the call until the rule is removed (healed), then serve it.
    StallUntilHealed,
    /// Serve the call but send no reply (the client must retransmit).
    DropReply,
    /// Close the connection without serving the call.
    CloseConnection,
    /// Do not serve the call; answer it with this status (nfsstat3 /
    /// mountstat3) and empty attributes.
    ReplyStatus(u32),
}

/// A fault rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    pub matcher: CallMatch,
    pub action: FaultAction,
    /// Act only on the N-th matching call (1-based); `None` = every one.
    pub nth: Option<u64>,
}

/// Names a rule so it can be removed (healed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleId(u64);

impl RuleId {
    /// The number shown to people (control socket, logs).
    pub fn get(self) -> u64 {
        self.0
    }

    pub fn from_raw(id: u64) -> RuleId {
        RuleId(id)
    }
}

/// What the dispatcher must do after the hook (delays and stalls have
/// already been served inside `check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookDecision {
    Pass,
    DropReply,
    CloseConnection,
    ReplyStatus(u32),
}

#[derive(Debug)]
struct ActiveRule {
    id: RuleId,
    rule: FaultRule,
    /// Calls that matched the rule's matcher (every one, whether or not it
    /// was the N-th the rule acts on).
    seen: u64,
    /// Calls the rule acted on.
    acted: u64,
}

/// What a rule did, while active and after its heal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleCounts {
    /// Calls its matcher matched.
    pub matched: u64,
    /// Calls its action was applied to (≤ matched; one at most with `nth`).
    pub acted: u64,
}

#[derive(Debug, Default)]
struct HookState {
    rules: Vec<ActiveRule>,
    /// Counts of removed rules, kept for `counts` after a heal. A u64 pair
    /// per rule ever added: small next to anything a run does.
    healed: HashMap<RuleId, RuleCounts>,
    next_id: u64,
    shut_down: bool,
}

#[derive(Debug, Default)]
pub struct FaultHook {
    state: Mutex<HookState>,
    changed: Condvar,
}

impl FaultHook {
    pub fn new() -> FaultHook {
        FaultHook::default()
    }

    fn lock(&self) -> MutexGuard<'_, HookState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add(&self, rule: FaultRule) -> RuleId {
        let mut st = self.lock();
        st.next_id += 1;
        let id = RuleId(st.next_id);
        st.rules.push(ActiveRule {
            id,
            rule,
            seen: 0,
            acted: 0,
        });
        id
    }

    /// Heals one rule: it stops matching and calls it stalls resume.
    pub fn remove(&self, id: RuleId) -> bool {
        let mut st = self.lock();
        let Some(i) = st.rules.iter().position(|r| r.id == id) else {
            return false;
        };
        let r = st.rules.remove(i);
        st.healed.insert(
            id,
            RuleCounts {
                matched: r.seen,
                acted: r.acted,
            },
        );
        self.changed.notify_all();
        true
    }

    /// What rule `id` matched and acted on so far, active or healed; `None`
    /// for an id this hook never issued.
    pub fn counts(&self, id: RuleId) -> Option<RuleCounts> {
        let st = self.lock();
        st.rules
            .iter()
            .find(|r| r.id == id)
            .map(|r| RuleCounts {
                matched: r.seen,
                acted: r.acted,
            })
            .or_else(|| st.healed.get(&id).copied())
    }

    /// How many calls rule `id` matched (see `counts`).
    pub fn matched(&self, id: RuleId) -> Option<u64> {
        self.counts(id).map(|c| c.matched)
    }

    /// The active rules, oldest first.
    pub fn list(&self) -> Vec<(RuleId, FaultRule)> {
        self.lock()
            .rules
            .iter()
            .map(|r| (r.id, r.rule.clone()))
            .collect()
    }

    pub fn clear(&self) {
        let mut st = self.lock();
        let removed: Vec<ActiveRule> = st.rules.drain(..).collect();
        for r in removed {
            st.healed.insert(
                r.id,
                RuleCounts {
                    matched: r.seen,
                    acted: r.acted,
                },
            );
        }
        self.changed.notify_all();
    }

    /// Releases every held call for good (server shutdown).
    pub fn shut_down(&self) {
        let mut st = self.lock();
        st.shut_down = true;
        st.rules.clear();
        self.changed.notify_all();
    }

    /// Decides a call's fate; blocks the caller for Delay and StallUntilHealed.
    pub fn check(&self, call: &CallInfo<'_>) -> HookDecision {
        let mut st = self.lock();
        let mut chosen = None;
        for r in st.rules.iter_mut() {
            if !r.rule.matcher.matches(call) {
                continue;
            }
            r.seen += 1;
            if r.rule.nth.is_some_and(|n| n != r.seen) {
                continue;
            }
            r.acted += 1;
            chosen = Some((r.id, r.rule.action.clone()));
            break;
        }
        let Some((id, action)) = chosen else {
            return HookDecision::Pass;
        };
        let procedure = names::procedure_name(call.prog, Some(call.vers), call.proc_);
        tracing::info!(prog = call.prog, %procedure, client = %call.client, ?action, "fault hook acts");
        match action {
            FaultAction::Delay(d) => {
                let deadline = Instant::now() + d;
                while !st.shut_down {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    st = self
                        .changed
                        .wait_timeout(st, deadline - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                HookDecision::Pass
            }
            FaultAction::StallUntilHealed => {
                while !st.shut_down && st.rules.iter().any(|r| r.id == id) {
                    st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
                }
                HookDecision::Pass
            }
            FaultAction::DropReply => HookDecision::DropReply,
            FaultAction::CloseConnection => HookDecision::CloseConnection,
            FaultAction::ReplyStatus(s) => HookDecision::ReplyStatus(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn call(proc_: u32, export: Option<&str>) -> CallInfo<'_> {
        CallInfo {
            prog: 100003,
            vers: 3,
            proc_,
            export,
            client: "127.0.0.1:700".parse().unwrap(),
            ops: &[],
        }
    }

    #[test]
    fn matches_by_fields_and_nth() {
        let hook = FaultHook::new();
        assert_eq!(hook.check(&call(1, None)), HookDecision::Pass);
        hook.add(FaultRule {
            matcher: CallMatch {
                proc_: Some(7),
                export: Some("/export".into()),
                ..CallMatch::default()
            },
            action: FaultAction::ReplyStatus(70),
            nth: Some(2),
        });
        assert_eq!(hook.check(&call(7, Some("/export"))), HookDecision::Pass);
        assert_eq!(hook.check(&call(7, Some("/other"))), HookDecision::Pass);
        assert_eq!(hook.check(&call(1, Some("/export"))), HookDecision::Pass);
        assert_eq!(
            hook.check(&call(7, Some("/export"))),
            HookDecision::ReplyStatus(70)
        );
        assert_eq!(hook.check(&call(7, Some("/export"))), HookDecision::Pass);
    }

    #[test]
    fn counts_survive_the_heal_and_version_matches() {
        let hook = FaultHook::new();
        let id = hook.add(FaultRule {
            matcher: CallMatch {
                vers: Some(3),
                proc_: Some(7),
                ..CallMatch::default()
            },
            action: FaultAction::DropReply,
            nth: Some(2),
        });
        let never = hook.add(FaultRule {
            matcher: CallMatch {
                vers: Some(4),
                ..CallMatch::default()
            },
            action: FaultAction::DropReply,
            nth: None,
        });
        for _ in 0..3 {
            hook.check(&call(7, None));
        }
        hook.check(&call(1, None));
        assert_eq!(
            hook.counts(id),
            Some(RuleCounts {
                matched: 3,
                acted: 1
            })
        );
        assert!(hook.remove(id));
        hook.check(&call(7, None));
        assert_eq!(hook.matched(id), Some(3), "count lost or kept counting");
        assert_eq!(hook.matched(never), Some(0));
        hook.clear();
        assert_eq!(hook.matched(never), Some(0));
        assert_eq!(hook.matched(RuleId::from_raw(99)), None);
    }

    #[test]
    fn client_cidr_matching() {
        let hook = FaultHook::new();
        hook.add(FaultRule {
            matcher: CallMatch {
                client: Some(Cidr::parse("10.0.0.0/8").unwrap()),
                ..CallMatch::default()
            },
            action: FaultAction::CloseConnection,
            nth: None,
        });
        assert_eq!(hook.check(&call(1, None)), HookDecision::Pass);
        let mut c = call(1, None);
        c.client = "10.1.2.3:800".parse().unwrap();
        assert_eq!(hook.check(&c), HookDecision::CloseConnection);
    }

    #[test]
    fn stall_holds_until_healed() {
        let hook = Arc::new(FaultHook::new());
        let id = hook.add(FaultRule {
            matcher: CallMatch::default(),
            action: FaultAction::StallUntilHealed,
            nth: None,
        });
        let h = hook.clone();
        // Measured from before the spawn: a thread that starts late must not
        // make the wait look shorter than the stall.
        let start = Instant::now();
        let t = std::thread::spawn(move || {
            let d = h.check(&call(1, None));
            (d, start.elapsed())
        });
        std::thread::sleep(Duration::from_millis(200));
        assert!(!t.is_finished(), "stalled call returned before heal");
        assert!(hook.remove(id));
        let (d, waited) = t.join().unwrap();
        assert_eq!(d, HookDecision::Pass);
        assert!(waited >= Duration::from_millis(200));
    }

    #[test]
    fn delay_waits_then_passes() {
        let hook = FaultHook::new();
        hook.add(FaultRule {
            matcher: CallMatch::default(),
            action: FaultAction::Delay(Duration::from_millis(100)),
            nth: None,
        });
        let start = Instant::now();
        assert_eq!(hook.check(&call(1, None)), HookDecision::Pass);
        assert!(start.elapsed() >= Duration::from_millis(100));
    }
}
