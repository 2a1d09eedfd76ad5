//! The control socket of a standalone server (`stackquake nfs serve`): a
//! unix stream socket speaking JSON lines, one request and one response per
//! line, to unexport, inject and heal faults, list rules and restart while
//! the server runs.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::export::Cidr;
use super::hook::{CallMatch, FaultAction, FaultRule, RuleId};
use super::{NfsError, NfsServer, RestartOptions, nfs4, nlm, nsm};

/// Longest request line accepted.
const MAX_LINE: u64 = 64 * 1024;
const POLL: Duration = Duration::from_millis(50);

/// A request, e.g. `{"op":"fault","rule":{"proc":7,"action":{"kind":"stall"}}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Unexport {
        export: String,
    },
    Reexport {
        export: String,
    },
    InvalidateHandles {
        export: String,
    },
    Fault {
        rule: RuleSpec,
    },
    Heal {
        id: u64,
    },
    HealAll,
    List,
    Restart {
        keep_handles: bool,
        downtime_ms: u64,
    },
    /// `nlm.down`: NLM stops answering (a hook rule: heal it by id) or
    /// leaves the portmapper (heal with `nlm_up`).
    NlmDown {
        mode: DownMode,
    },
    NlmUp,
    /// `nsm.down`, the same for the status monitor.
    NsmDown {
        mode: DownMode,
    },
    NsmUp,
    /// `nlm.grace`: a grace period of this long from now (0 ends one).
    NlmGrace {
        ms: u64,
    },
    /// `nfs.expire_lease`: the NFSv4 leases of the clients that registered
    /// from `client` (every client when absent) run out now.
    ExpireLease {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<std::net::IpAddr>,
    },
    /// `nfs.sequence_flags`: NFSv4.1+ SEQUENCE replies carry these
    /// status flags (RFC 8881 §18.46.3, by name) from now on; none stops.
    SequenceFlags {
        #[serde(default)]
        flags: Vec<String>,
    },
    /// Lock counts, grace and NSM state.
    LockStatus,
    Shutdown,
}

/// How a lock service is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DownMode {
    /// Calls are held until healed, then answered (an unresponsive lockd:
    /// the client logs "not responding", then "OK").
    #[default]
    Stall,
    /// Calls are served but never answered.
    Drop,
    /// Not in the portmapper: clients asking for the port get 0.
    Unregister,
}

/// What `lock_status` reports.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LockStatus {
    pub held: usize,
    pub blocked: usize,
    pub grace_ms: u64,
    pub nsm_state: i32,
    pub monitors: usize,
}

/// A fault rule on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RuleSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prog: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vers: Option<u32>,
    #[serde(default, rename = "proc", skip_serializing_if = "Option::is_none")]
    pub proc_: Option<u32>,
    /// An NFSv4 operation the COMPOUND must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    pub action: ActionSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nth: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ActionSpec {
    Delay {
        ms: u64,
    },
    #[default]
    Stall,
    Drop,
    Close,
    Status {
        status: u32,
    },
}

impl RuleSpec {
    pub fn to_rule(&self) -> Result<FaultRule, NfsError> {
        let client = self.client.as_deref().map(Cidr::parse).transpose()?;
        Ok(FaultRule {
            matcher: CallMatch {
                prog: self.prog,
                vers: self.vers,
                proc_: self.proc_,
                export: self.export.clone(),
                client,
                op: self.op,
            },
            action: match self.action {
                ActionSpec::Delay { ms } => FaultAction::Delay(Duration::from_millis(ms)),
                ActionSpec::Stall => FaultAction::StallUntilHealed,
                ActionSpec::Drop => FaultAction::DropReply,
                ActionSpec::Close => FaultAction::CloseConnection,
                ActionSpec::Status { status } => FaultAction::ReplyStatus(status),
            },
            nth: self.nth,
        })
    }

    pub fn from_rule(rule: &FaultRule) -> RuleSpec {
        RuleSpec {
            prog: rule.matcher.prog,
            vers: rule.matcher.vers,
            proc_: rule.matcher.proc_,
            op: rule.matcher.op,
            export: rule.matcher.export.clone(),
            client: rule.matcher.client.map(|c| c.to_string()),
            action: match rule.action {
                FaultAction::Delay(d) => ActionSpec::Delay {
                    ms: d.as_millis() as u64,
                },
                FaultAction::StallUntilHealed => ActionSpec::Stall,
                FaultAction::DropReply => ActionSpec::Drop,
                FaultAction::CloseConnection => ActionSpec::Close,
                FaultAction::ReplyStatus(status) => ActionSpec::Status { status },
            },
            nth: rule.nth,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedRule {
    pub id: u64,
    pub rule: RuleSpec,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<ListedRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locks: Option<LockStatus>,
    /// How many NFSv4 clients `expire_lease` expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired: Option<usize>,
}

impl Response {
    fn ok() -> Response {
        Response {
            ok: true,
            ..Response::default()
        }
    }

    fn err(e: impl std::fmt::Display) -> Response {
        Response {
            ok: false,
            error: Some(e.to_string()),
            ..Response::default()
        }
    }
}

/// Carries out one request; `Shutdown` only sets `shutdown`.
pub fn execute(server: &NfsServer, req: &Request, shutdown: &AtomicBool) -> Response {
    let done = |r: Result<(), NfsError>| r.map_or_else(Response::err, |()| Response::ok());
    match req {
        Request::Unexport { export } => done(server.set_exported(export, false)),
        Request::Reexport { export } => done(server.set_exported(export, true)),
        Request::InvalidateHandles { export } => done(server.invalidate_handles(export)),
        Request::Fault { rule } => match rule.to_rule() {
            Ok(rule) => Response {
                id: Some(server.hook().add(rule).get()),
                ..Response::ok()
            },
            Err(e) => Response::err(e),
        },
        Request::Heal { id } => {
            if server.hook().remove(RuleId::from_raw(*id)) {
                Response::ok()
            } else {
                Response::err(format!("no rule {id}"))
            }
        }
        Request::HealAll => {
            server.hook().clear();
            Response::ok()
        }
        Request::List => Response {
            rules: Some(
                server
                    .hook()
                    .list()
                    .iter()
                    .map(|(id, rule)| ListedRule {
                        id: id.get(),
                        rule: RuleSpec::from_rule(rule),
                    })
                    .collect(),
            ),
            ..Response::ok()
        },
        Request::Restart {
            keep_handles,
            downtime_ms,
        } => {
            server.restart(RestartOptions {
                keep_handles: *keep_handles,
                downtime: Duration::from_millis(*downtime_ms),
            });
            Response::ok()
        }
        Request::NlmDown { mode } => lock_down(server, nlm::PROGRAM, *mode),
        Request::NsmDown { mode } => lock_down(server, nsm::PROGRAM, *mode),
        Request::NlmUp => done(server.set_registered(nlm::PROGRAM, true)),
        Request::NsmUp => done(server.set_registered(nsm::PROGRAM, true)),
        Request::NlmGrace { ms } => done(server.start_grace(Duration::from_millis(*ms))),
        Request::ExpireLease { client } => Response {
            expired: Some(server.expire_v4_leases(*client)),
            ..Response::ok()
        },
        Request::SequenceFlags { flags } => {
            match nfs4::status::sequence_flags(flags.iter().map(String::as_str)) {
                Ok(bits) => {
                    server.set_v4_sequence_flags(bits);
                    Response::ok()
                }
                Err(unknown) => Response::err(format!(
                    "unknown SEQUENCE status flag `{unknown}`; valid: {}",
                    nfs4::status::SEQUENCE_FLAGS.map(|(n, _)| n).join(", ")
                )),
            }
        }
        Request::LockStatus => {
            let (held, blocked) = server.nlm().map_or((0, 0), |n| n.counts());
            let grace_ms = server
                .nlm()
                .and_then(|n| n.grace().remaining())
                .map_or(0, |d| d.as_millis() as u64);
            Response {
                locks: Some(LockStatus {
                    held,
                    blocked,
                    grace_ms,
                    nsm_state: server.nsm().map_or(0, |n| n.state()),
                    monitors: server.nsm().map_or(0, |n| n.monitored().len()),
                }),
                ..Response::ok()
            }
        }
        Request::Shutdown => {
            shutdown.store(true, Ordering::SeqCst);
            Response::ok()
        }
    }
}

/// `nlm.down` / `nsm.down`: a hook rule on the whole program, or leaving
/// the portmapper.
fn lock_down(server: &NfsServer, program: u32, mode: DownMode) -> Response {
    let served = match program {
        nlm::PROGRAM => server.nlm().is_some(),
        _ => server.nsm().is_some(),
    };
    if !served {
        return Response::err(NfsError::NotServed(if program == nlm::PROGRAM {
            "nlm"
        } else {
            "nsm"
        }));
    }
    let action = match mode {
        DownMode::Stall => FaultAction::StallUntilHealed,
        DownMode::Drop => FaultAction::DropReply,
        DownMode::Unregister => {
            return server
                .set_registered(program, false)
                .map_or_else(Response::err, |()| Response::ok());
        }
    };
    let id = server.hook().add(FaultRule {
        matcher: CallMatch {
            prog: Some(program),
            ..CallMatch::default()
        },
        action,
        nth: None,
    });
    Response {
        id: Some(id.get()),
        ..Response::ok()
    }
}

/// A bound control socket; the file is removed when dropped.
#[derive(Debug)]
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlSocket {
    /// Binds `path`, replacing a stale socket file left by a dead server.
    pub fn bind(path: &Path) -> Result<ControlSocket, NfsError> {
        let err = |source| NfsError::Control {
            path: path.to_path_buf(),
            source,
        };
        if std::fs::symlink_metadata(path).is_ok_and(|m| {
            use std::os::unix::fs::FileTypeExt;
            m.file_type().is_socket()
        }) && UnixStream::connect(path).is_err()
        {
            std::fs::remove_file(path).map_err(err)?;
        }
        let listener = UnixListener::bind(path).map_err(err)?;
        listener.set_nonblocking(true).map_err(err)?;
        Ok(ControlSocket {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// Serves requests until `stop` is set (by a signal or by a `shutdown`
    /// request, which sets `stop` itself).
    pub fn serve(&self, server: &NfsServer, stop: &AtomicBool) {
        std::thread::scope(|s| {
            while !stop.load(Ordering::SeqCst) {
                match self.listener.accept() {
                    Ok((stream, _)) => {
                        s.spawn(move || serve_client(server, stream, stop));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(POLL)
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "control accept failed");
                        std::thread::sleep(POLL);
                    }
                }
            }
        });
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve_client(server: &NfsServer, stream: UnixStream, stop: &AtomicBool) {
    if stream.set_nonblocking(false).is_err() || stream.set_read_timeout(Some(POLL * 4)).is_err() {
        return;
    }
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    while !stop.load(Ordering::SeqCst) {
        match (&mut reader).take(MAX_LINE).read_line(&mut line) {
            Ok(0) => return,
            Ok(_) if !line.ends_with('\n') && line.len() as u64 >= MAX_LINE => {
                let _ = writeln!(writer, "{}", to_json(&Response::err("request too long")));
                return;
            }
            Ok(_) if !line.ends_with('\n') => continue,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => return,
        }
        let resp = match serde_json::from_str::<Request>(line.trim()) {
            Ok(req) => {
                tracing::info!(?req, "control request");
                execute(server, &req, stop)
            }
            Err(e) => Response::err(format!("bad request: {e}")),
        };
        line.clear();
        if writeln!(writer, "{}", to_json(&resp)).is_err() {
            return;
        }
    }
}

fn to_json(r: &Response) -> String {
    serde_json::to_string(r)
        .unwrap_or_else(|_| r#"{"ok":false,"error":"unencodable response"}"#.into())
}

/// Sends one request to a control socket and returns the response.
pub fn request(path: &Path, req: &Request) -> Result<Response, NfsError> {
    let err = |source| NfsError::Control {
        path: path.to_path_buf(),
        source,
    };
    let mut stream = UnixStream::connect(path).map_err(err)?;
    let line = serde_json::to_string(req).map_err(|e| err(std::io::Error::other(e)))?;
    writeln!(stream, "{line}").map_err(err)?;
    let mut reply = String::new();
    BufReader::new(stream.take(MAX_LINE * 16))
        .read_line(&mut reply)
        .map_err(err)?;
    serde_json::from_str(reply.trim()).map_err(|e| err(std::io::Error::other(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_a_stable_json_shape() {
        let req = Request::Fault {
            rule: RuleSpec {
                prog: Some(100003),
                proc_: Some(7),
                action: ActionSpec::Delay { ms: 500 },
                ..RuleSpec::default()
            },
        };
        let json = serde_json::to_string(&req).unwrap();
        assert_eq!(
            json,
            r#"{"op":"fault","rule":{"prog":100003,"proc":7,"action":{"kind":"delay","ms":500}}}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&json).unwrap(), req);
        let spec = RuleSpec {
            client: Some("10.0.0.0/8".into()),
            action: ActionSpec::Status { status: 5 },
            nth: Some(2),
            ..RuleSpec::default()
        };
        assert_eq!(RuleSpec::from_rule(&spec.to_rule().unwrap()), spec);
        let down = Request::NlmDown {
            mode: DownMode::Unregister,
        };
        assert_eq!(
            serde_json::to_string(&down).unwrap(),
            r#"{"op":"nlm_down","mode":"unregister"}"#
        );
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"op":"nlm_grace","ms":5000}"#).unwrap(),
            Request::NlmGrace { ms: 5000 }
        );
    }
}
