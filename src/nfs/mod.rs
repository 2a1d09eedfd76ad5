//! The in-process NFS server: XDR, ONC RPC, MOUNT v3, NFSv3 and the fault hook.
