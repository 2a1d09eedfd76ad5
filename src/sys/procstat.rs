//! /proc/<pid>/stat: the few fields we trust to identify and describe a task.

use std::io;

/// Fields of proc(5) /proc/<pid>/stat that we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 3: R, S, D, Z, T, t, X, I …
    pub state: char,
    /// Field 22: start time in clock ticks after boot. Together with the pid
    /// it names one process; a reused pid has a later start time.
    pub starttime: u64,
}

pub fn read(pid: u32) -> io::Result<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unparsable /proc/{pid}/stat"),
        )
    })
}

/// The command name (field 2) may contain spaces and parentheses, so fields
/// are counted from the last ')'.
pub fn parse(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); field 22 is fields[19].
    let state = fields.first()?.chars().next()?;
    let starttime = fields.get(19)?.parse().ok()?;
    Some(ProcStat { state, starttime })
}

/// True when `pid` is alive and is the same process that had `starttime`.
pub fn is_same_process_alive(pid: u32, starttime: u64) -> bool {
    match read(pid) {
        Ok(s) => s.starttime == starttime && s.state != 'Z' && s.state != 'X',
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_state_and_starttime_past_a_tricky_comm() {
        let line = "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615";
        let s = parse(line).unwrap();
        assert_eq!(s.state, 'S');
        assert_eq!(s.starttime, 987654);
    }

    #[test]
    fn own_process_is_alive_and_a_wrong_starttime_is_not() {
        let me = std::process::id();
        let s = read(me).unwrap();
        assert!(is_same_process_alive(me, s.starttime));
        assert!(!is_same_process_alive(me, s.starttime + 1));
    }
}
