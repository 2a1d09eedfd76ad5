//! Processes and sockets placed inside a namespace.

use std::ffi::OsStr;
use std::net::{SocketAddr, TcpListener};
use std::process::Command;

use super::{NetError, Netns};
use crate::sys;

/// A `Command` whose child enters `ns` between fork and exec. If the
/// namespace fd cannot be duplicated, spawning fails rather than run the
/// program in the host namespace.
pub fn command_in(ns: &Netns, program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    match ns.file() {
        Ok(f) => sys::ns::command_in_netns(&mut cmd, f.into()),
        Err(e) => {
            tracing::error!(netns = ns.name(), error = %e, "child will fail to spawn");
            sys::ns::command_fail_before_exec(&mut cmd, libc::EMFILE);
        }
    }
    cmd
}

/// A `Command` whose child runs in `ns`, or where we run (None: a staging
/// rehearsal's client, which is the namespace stackquake runs in).
pub fn command_at(ns: Option<&Netns>, program: impl AsRef<OsStr>) -> Command {
    match ns {
        Some(ns) => command_in(ns, program),
        None => Command::new(program),
    }
}

/// Binds a TCP listener inside `ns`; a socket keeps the namespace it was
/// created in, so the caller may accept on it from any thread.
pub fn tcp_listener_in(ns: &Netns, addr: SocketAddr) -> Result<TcpListener, NetError> {
    ns.try_run(|| TcpListener::bind(addr))?
        .map_err(|source| NetError::Bind {
            addr,
            netns: ns.name().to_string(),
            source,
        })
}
