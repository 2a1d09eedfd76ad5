//! NFSv4 state on the wire. Byte-range locks as two NFSv4.0 clients see
//! them: LOCK, its DENIED answer naming the holder, LOCKT, LOCKU, and
//! RELEASE_LOCKOWNER while locks are held. And 4.0's owner sequencing:
//! a retransmitted OPEN, LOCK, LOCKU or CLOSE gets the reply it got the
//! first time instead of running again. (The kernel client's flock over
//! 4.0, 4.1 and 4.2 is scenarios/nfs4-flock-contention.yaml, in the guest.)

use std::sync::atomic::{AtomicU32, Ordering};

use stackquake::nfs::dispatch::{Dispatcher, Outcome};
use stackquake::nfs::fuzz;
use stackquake::nfs::xdr::{XdrReader, XdrWriter};

const PUTFH: u32 = 22;
const PUTROOTFH: u32 = 24;
const LOOKUP: u32 = 15;
const OPEN: u32 = 18;
const GETFH: u32 = 10;
const LOCK: u32 = 12;
const LOCKT: u32 = 13;
const LOCKU: u32 = 14;
const SETCLIENTID: u32 = 35;
const SETCLIENTID_CONFIRM: u32 = 36;
const RELEASE_LOCKOWNER: u32 = 39;
const EXCHANGE_ID: u32 = 42;
const CREATE_SESSION: u32 = 43;
const SEQUENCE: u32 = 53;
const BAD_STATEID: u32 = 10025;
const WRITE_LT: u32 = 2;
const READ_LT: u32 = 1;
const DENIED: u32 = 10010;
const LOCKS_HELD: u32 = 10037;
const CLOSE: u32 = 4;
const EXIST: u32 = 17;
const BAD_SEQID: u32 = 10026;
const ALL: u64 = u64::MAX;

/// One operation's result: its status and the bytes after it.
struct OpResult {
    status: u32,
    body: Vec<u8>,
}

/// An operation: its number and what writes its arguments.
type Op<'a> = (u32, &'a dyn Fn(&mut XdrWriter));

/// Sends a 4.0 COMPOUND of `ops` and returns the results, each body
/// running to the end of the reply.
fn compound(d: &Dispatcher, ops: &[Op<'_>]) -> Vec<OpResult> {
    compound_v(d, 0, ops)
}

/// The same in minor version `minor` (4.1 ops start with SEQUENCE).
fn compound_v(d: &Dispatcher, minor: u32, ops: &[Op<'_>]) -> Vec<OpResult> {
    static XID: AtomicU32 = AtomicU32::new(1);
    let mut w = XdrWriter::new();
    w.opaque(b"").u32(minor).u32(ops.len() as u32);
    for (op, args) in ops {
        w.u32(*op);
        args(&mut w);
    }
    let xid = XID.fetch_add(1, Ordering::Relaxed);
    let call = fuzz::call_with_args(xid, 100003, 4, 1, w.as_bytes());
    let Outcome::Reply(reply) = d.handle(
        &call,
        "127.0.0.1:700".parse().unwrap(),
        stackquake::nfs::Transport::Tcp,
    ) else {
        panic!("no reply");
    };
    // RPC reply header (24 bytes), then COMPOUND4res.
    let mut r = XdrReader::new(&reply[24..]);
    let _status = r.u32().unwrap();
    r.opaque(1024).unwrap();
    let n = r.u32().unwrap();
    let mut out = Vec::new();
    for i in 0..n {
        assert_eq!(r.u32().unwrap(), ops[i as usize].0, "result order");
        let status = r.u32().unwrap();
        let rest = &reply[24 + r.position()..];
        out.push(OpResult {
            status,
            body: rest.to_vec(),
        });
        if i + 1 < n {
            // Only the operations this test puts first have fixed results.
            skip_result(ops[i as usize].0, status, &mut r);
        }
    }
    out
}

fn skip_result(op: u32, status: u32, r: &mut XdrReader<'_>) {
    if status != 0 {
        return;
    }
    match op {
        PUTFH | PUTROOTFH | LOOKUP => {}
        SEQUENCE => {
            r.opaque_fixed(16 + 5 * 4).unwrap();
        }
        OPEN => {
            r.opaque_fixed(16 + 4 + 8 + 8 + 4).unwrap();
            let words = r.u32().unwrap();
            r.opaque_fixed(4 * words as usize + 4).unwrap();
        }
        other => panic!("no skip for op {other}"),
    }
}

/// A confirmed 4.0 client id for `name`.
fn client(d: &Dispatcher, name: &str) -> u64 {
    let owner = name.as_bytes().to_vec();
    let res = compound(
        d,
        &[(SETCLIENTID, &|w: &mut XdrWriter| {
            w.opaque_fixed(&[1; 8])
                .opaque(&owner)
                .u32(0x4000_0000)
                .string(b"tcp")
                .string(b"127.0.0.1.3.0")
                .u32(1);
        })],
    );
    assert_eq!(res[0].status, 0);
    let mut r = XdrReader::new(&res[0].body);
    let id = r.u64().unwrap();
    let confirm = r.opaque_fixed(8).unwrap().to_vec();
    let res = compound(
        d,
        &[(SETCLIENTID_CONFIRM, &|w: &mut XdrWriter| {
            w.u64(id).opaque_fixed(&confirm);
        })],
    );
    assert_eq!(res[0].status, 0);
    id
}

/// Opens (creating) /export/f read-write for `client`: its stateid and
/// the file's handle.
fn open(d: &Dispatcher, client: u64) -> ([u8; 16], Vec<u8>) {
    let res = compound(
        d,
        &[
            (PUTROOTFH, &|_: &mut XdrWriter| {}),
            (LOOKUP, &|w: &mut XdrWriter| {
                w.string(b"export");
            }),
            (OPEN, &|w: &mut XdrWriter| {
                w.u32(0).u32(3).u32(0).u64(client).opaque(b"open-owner");
                w.u32(1).u32(0).u32(0).u32(0); // CREATE, UNCHECKED, no attrs
                w.u32(0).string(b"f"); // CLAIM_NULL
            }),
            (GETFH, &|_: &mut XdrWriter| {}),
        ],
    );
    assert!(res.iter().all(|r| r.status == 0), "open failed");
    let mut stateid = [0u8; 16];
    stateid.copy_from_slice(&res[2].body[..16]);
    let fh = XdrReader::new(&res[3].body).opaque(128).unwrap().to_vec();
    (stateid, fh)
}

/// Who asks for a lock: a client, one of its opens, a lock-owner name,
/// and the 4.0 seqids (RFC 7530 §9.1.7): the open-owner's next and the
/// new lock-owner's first.
struct Locker<'a> {
    client: u64,
    open: &'a [u8; 16],
    owner: &'a [u8],
    seqids: (u32, u32),
}

/// LOCK of `len` bytes from `offset` by a new lock-owner.
fn lock_new(
    d: &Dispatcher,
    fh: &[u8],
    by: Locker<'_>,
    write: bool,
    offset: u64,
    len: u64,
) -> OpResult {
    let Locker {
        client,
        open,
        owner,
        seqids: (open_seqid, lock_seqid),
    } = by;
    let mut res = compound(
        d,
        &[
            (PUTFH, &|w: &mut XdrWriter| {
                w.opaque(fh);
            }),
            (LOCK, &|w: &mut XdrWriter| {
                w.u32(if write { WRITE_LT } else { READ_LT })
                    .bool(false)
                    .u64(offset)
                    .u64(len);
                w.bool(true)
                    .u32(open_seqid)
                    .opaque_fixed(open)
                    .u32(lock_seqid);
                w.u64(client).opaque(owner);
            }),
        ],
    );
    res.remove(1)
}

/// LOCK4denied: offset, length, type, owner's client and name.
fn denied(body: &[u8]) -> (u64, u64, u32, u64, Vec<u8>) {
    let mut r = XdrReader::new(body);
    (
        r.u64().unwrap(),
        r.u64().unwrap(),
        r.u32().unwrap(),
        r.u64().unwrap(),
        r.opaque(1024).unwrap().to_vec(),
    )
}

#[test]
fn two_clients_contend_for_a_byte_range_lock() {
    let dir = tempfile::tempdir().unwrap();
    let d = fuzz::dispatcher_for(dir.path()).unwrap();
    let (a, b) = (client(&d, "client-a"), client(&d, "client-b"));
    assert_ne!(a, b);
    let (open_a, fh) = open(&d, a);
    let (open_b, _) = open(&d, b);
    // b's locks: (owner name, its seqids, write?, offset, length).
    let lock_b = |owner: &[u8], seqids, write: bool, offset: u64, len: u64| {
        let by = Locker {
            client: b,
            open: &open_b,
            owner,
            seqids,
        };
        lock_new(&d, &fh, by, write, offset, len)
    };

    // a write-locks bytes 0..100; b cannot write-lock byte 50.
    // Each OPEN took seqid 0 of its client's open-owner.
    let by_a = Locker {
        client: a,
        open: &open_a,
        owner: b"php-a",
        seqids: (1, 0),
    };
    let got = lock_new(&d, &fh, by_a, true, 0, 100);
    assert_eq!(got.status, 0);
    let mut lock_a = [0u8; 16];
    lock_a.copy_from_slice(&got.body[..16]);
    let refused = lock_b(b"php-b", (1, 0), true, 50, 1);
    assert_eq!(refused.status, DENIED);
    assert_eq!(
        denied(&refused.body),
        (0, 100, WRITE_LT, a, b"php-a".to_vec()),
        "DENIED names the holder's range, type and owner"
    );
    // Past a's range b may lock; a read lock over a's write lock is denied.
    // (A refused new lock-owner asks again with both seqids advanced, as
    // the Linux client does.)
    assert_eq!(lock_b(b"php-b", (2, 1), true, 100, ALL).status, 0);
    assert_eq!(lock_b(b"php-b2", (3, 0), false, 99, 1).status, DENIED);

    // LOCKT says the same without taking anything.
    let lockt = |owner: &'static [u8], client: u64| {
        compound(
            &d,
            &[
                (PUTFH, &|w: &mut XdrWriter| {
                    w.opaque(&fh);
                }),
                (LOCKT, &move |w: &mut XdrWriter| {
                    w.u32(WRITE_LT).u64(10).u64(5).u64(client).opaque(owner);
                }),
            ],
        )
        .remove(1)
        .status
    };
    assert_eq!(lockt(b"someone", b), DENIED);
    assert_eq!(
        lockt(b"php-a", a),
        0,
        "an owner never conflicts with itself"
    );

    // a cannot release its lock-owner while it holds the lock...
    let release = || {
        compound(
            &d,
            &[(RELEASE_LOCKOWNER, &|w: &mut XdrWriter| {
                w.u64(a).opaque(b"php-a");
            })],
        )
        .remove(0)
        .status
    };
    assert_eq!(release(), LOCKS_HELD);
    // ...LOCKU frees the range with a new seqid, and b gets it.
    let unlocked = compound(
        &d,
        &[
            (PUTFH, &|w: &mut XdrWriter| {
                w.opaque(&fh);
            }),
            (LOCKU, &|w: &mut XdrWriter| {
                // php-a's seqid after its first LOCK took 0
                w.u32(WRITE_LT).u32(1).opaque_fixed(&lock_a).u64(0).u64(100);
            }),
        ],
    )
    .remove(1);
    assert_eq!(unlocked.status, 0);
    assert_eq!(&unlocked.body[..4], &2u32.to_be_bytes(), "seqid 1 → 2");
    assert_eq!(&unlocked.body[4..16], &lock_a[4..16], "same lock state");
    assert_eq!(lockt(b"someone", b), 0);
    assert_eq!(release(), 0);
    assert_eq!(lock_b(b"php-b2", (4, 1), true, 0, 100).status, 0);
}

/// A 4.1 client: its id, session and slot 0's next sequence id.
struct Session41 {
    client: u64,
    id: [u8; 16],
    seq: std::cell::Cell<u32>,
}

impl Session41 {
    fn new(d: &Dispatcher, name: &str) -> Session41 {
        let owner = name.as_bytes().to_vec();
        let res = compound_v(
            d,
            1,
            &[(EXCHANGE_ID, &|w: &mut XdrWriter| {
                // verifier, owner, flags, SP4_NONE, no implementation id
                w.opaque_fixed(&[1; 8]).opaque(&owner).u32(0).u32(0).u32(0);
            })],
        );
        assert_eq!(res[0].status, 0, "EXCHANGE_ID");
        let mut r = XdrReader::new(&res[0].body);
        let (client, seq) = (r.u64().unwrap(), r.u32().unwrap());
        let channel = |w: &mut XdrWriter| {
            w.u32(0)
                .u32(1 << 20)
                .u32(1 << 20)
                .u32(8192)
                .u32(16)
                .u32(8)
                .u32(0);
        };
        let res = compound_v(
            d,
            1,
            &[(CREATE_SESSION, &|w: &mut XdrWriter| {
                w.u64(client).u32(seq).u32(0);
                channel(w);
                channel(w);
                w.u32(0x4000_0000).u32(1).u32(0); // cb program, AUTH_NONE
            })],
        );
        assert_eq!(res[0].status, 0, "CREATE_SESSION");
        let mut id = [0u8; 16];
        id.copy_from_slice(&res[0].body[..16]);
        Session41 {
            client,
            id,
            seq: std::cell::Cell::new(1),
        }
    }

    /// `ops` after this session's SEQUENCE; their results, SEQUENCE's first.
    fn call(&self, d: &Dispatcher, ops: &[Op<'_>]) -> Vec<OpResult> {
        let seq = self.seq.get();
        self.seq.set(seq + 1);
        let sequence = |w: &mut XdrWriter| {
            w.opaque_fixed(&self.id).u32(seq).u32(0).u32(0).bool(false);
        };
        let mut all: Vec<Op<'_>> = vec![(SEQUENCE, &sequence)];
        all.extend_from_slice(ops);
        let res = compound_v(d, 1, &all);
        assert_eq!(res[0].status, 0, "SEQUENCE");
        res
    }
}

#[test]
fn a_41_client_cannot_unlock_or_extend_another_clients_lock() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"").unwrap();
    let d = fuzz::dispatcher_for(dir.path()).unwrap();
    let (a, b) = (Session41::new(&d, "host-a"), Session41::new(&d, "host-b"));
    let open_f = |s: &Session41| {
        let res = s.call(
            &d,
            &[
                (PUTROOTFH, &|_: &mut XdrWriter| {}),
                (LOOKUP, &|w: &mut XdrWriter| {
                    w.string(b"export");
                }),
                (OPEN, &|w: &mut XdrWriter| {
                    w.u32(0).u32(3).u32(0).u64(s.client).opaque(b"open-owner");
                    w.u32(0).u32(0).string(b"f"); // NOCREATE, CLAIM_NULL
                }),
                (GETFH, &|_: &mut XdrWriter| {}),
            ],
        );
        assert!(res.iter().all(|r| r.status == 0), "open failed");
        let mut stateid = [0u8; 16];
        stateid.copy_from_slice(&res[3].body[..16]);
        let fh = XdrReader::new(&res[4].body).opaque(128).unwrap().to_vec();
        (stateid, fh)
    };
    let (open_a, fh) = open_f(&a);
    let (open_b, _) = open_f(&b);
    let on_file = |s: &Session41, op: Op<'_>| {
        s.call(
            &d,
            &[
                (PUTFH, &|w: &mut XdrWriter| {
                    w.opaque(&fh);
                }),
                op,
            ],
        )
        .remove(2)
    };
    let got = on_file(
        &a,
        (LOCK, &|w: &mut XdrWriter| {
            w.u32(WRITE_LT).bool(false).u64(0).u64(ALL);
            w.bool(true).u32(0).opaque_fixed(&open_a).u32(0);
            w.u64(a.client).opaque(b"php-a");
        }),
    );
    assert_eq!(got.status, 0);
    let lock_a = got.body[..16].to_vec();
    // b presents a's lock stateid: to unlock, and to lock more with it.
    let unlock = on_file(
        &b,
        (LOCKU, &|w: &mut XdrWriter| {
            w.u32(WRITE_LT).u32(0).opaque_fixed(&lock_a).u64(0).u64(ALL);
        }),
    );
    assert_eq!(unlock.status, BAD_STATEID, "b unlocked a's lock");
    let extend = on_file(
        &b,
        (LOCK, &|w: &mut XdrWriter| {
            w.u32(WRITE_LT).bool(false).u64(0).u64(ALL);
            w.bool(false).opaque_fixed(&lock_a).u32(0);
        }),
    );
    assert_eq!(extend.status, BAD_STATEID, "b locked through a's stateid");
    // a's lock still holds b off.
    let mine = on_file(
        &b,
        (LOCK, &|w: &mut XdrWriter| {
            w.u32(WRITE_LT).bool(false).u64(0).u64(1);
            w.bool(true).u32(0).opaque_fixed(&open_b).u32(0);
            w.u64(b.client).opaque(b"php-b");
        }),
    );
    assert_eq!(mine.status, DENIED);
}

/// OPEN of /export/g by `client`'s open-owner with `seqid`, GUARDED: a
/// second execution would find the file and answer EXIST.
fn open_guarded(d: &Dispatcher, client: u64, seqid: u32) -> Vec<OpResult> {
    compound(
        d,
        &[
            (PUTROOTFH, &|_: &mut XdrWriter| {}),
            (LOOKUP, &|w: &mut XdrWriter| {
                w.string(b"export");
            }),
            (OPEN, &|w: &mut XdrWriter| {
                w.u32(seqid).u32(3).u32(0).u64(client).opaque(b"owner");
                w.u32(1).u32(1).u32(0).u32(0); // CREATE, GUARDED, no attrs
                w.u32(0).string(b"g"); // CLAIM_NULL
            }),
            (GETFH, &|_: &mut XdrWriter| {}),
        ],
    )
}

/// `op` on the file `fh`; its result.
fn on_file(d: &Dispatcher, fh: &[u8], op: Op<'_>) -> OpResult {
    compound(
        d,
        &[
            (PUTFH, &|w: &mut XdrWriter| {
                w.opaque(fh);
            }),
            op,
        ],
    )
    .remove(1)
}

#[test]
fn a_40_owners_retransmissions_get_their_first_replies() {
    let dir = tempfile::tempdir().unwrap();
    let d = fuzz::dispatcher_for(dir.path()).unwrap();
    let a = client(&d, "client-a");

    // OPEN: the repeat answers as the first did (not EXIST), with the
    // same stateid (not one seqid on) and the opened file as current.
    let first = open_guarded(&d, a, 0);
    assert!(first.iter().all(|r| r.status == 0), "first OPEN");
    let again = open_guarded(&d, a, 0);
    assert_eq!(again[2].status, 0, "a repeated OPEN is not run again");
    assert_eq!(again[2].body, first[2].body, "the same OPEN result");
    assert_eq!(again[3].body, first[3].body, "GETFH after it: the file");
    assert_eq!(open_guarded(&d, a, 5)[2].status, BAD_SEQID, "a gap");
    assert_eq!(open_guarded(&d, a, 1)[2].status, EXIST, "the next one runs");
    let mut open = [0u8; 16];
    open.copy_from_slice(&first[2].body[..16]);
    let fh = XdrReader::new(&first[3].body).opaque(128).unwrap().to_vec();

    // LOCK by a new lock-owner (the open-owner's seqid 2): repeated, the
    // same lock stateid, seqid 1.
    let lock = |w: &mut XdrWriter| {
        w.u32(WRITE_LT).bool(false).u64(0).u64(10);
        w.bool(true).u32(2).opaque_fixed(&open).u32(0);
        w.u64(a).opaque(b"pid-1");
    };
    let locked = on_file(&d, &fh, (LOCK, &lock));
    assert_eq!(locked.status, 0);
    assert_eq!(on_file(&d, &fh, (LOCK, &lock)).body, locked.body);
    assert_eq!(&locked.body[..4], &1u32.to_be_bytes());
    let lock_sid = &locked.body[..16];

    // LOCKU (the lock-owner's seqid 1): repeated, seqid 2 again, not 3.
    let locku = |w: &mut XdrWriter| {
        w.u32(WRITE_LT).u32(1).opaque_fixed(lock_sid).u64(0).u64(10);
    };
    let unlocked = on_file(&d, &fh, (LOCKU, &locku));
    assert_eq!(unlocked.status, 0);
    assert_eq!(&unlocked.body[..4], &2u32.to_be_bytes());
    assert_eq!(
        on_file(&d, &fh, (LOCKU, &locku)).body[..16],
        unlocked.body[..16]
    );

    // CLOSE (seqid 3): repeated after the open is gone, the same reply.
    let close = |w: &mut XdrWriter| {
        w.u32(3).opaque_fixed(&open);
    };
    let closed = on_file(&d, &fh, (CLOSE, &close));
    assert_eq!(closed.status, 0);
    let repeated = on_file(&d, &fh, (CLOSE, &close));
    assert_eq!(repeated.status, 0, "a repeated CLOSE finds its reply");
    assert_eq!(repeated.body[..16], closed.body[..16]);
    let late = |w: &mut XdrWriter| {
        w.u32(9).opaque_fixed(&open);
    };
    assert_eq!(on_file(&d, &fh, (CLOSE, &late)).status, BAD_SEQID);
}
