//! The only place with unsafe: ioctls, setns/unshare and other raw syscalls.
pub mod vm_pdeathsig;
