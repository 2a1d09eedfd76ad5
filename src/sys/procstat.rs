//! /proc/<pid>/stat: the few fields we trust to identify and describe a task.

use std::io;

/// Fields of proc(5) /proc/<pid>/stat that we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 3: R, S, D, Z, T, t, X, I …
    pub state: char,
    /// Field 19: the task's nice value, -20 to 19.
    pub nice: i32,
    /// Field 22: start time in clock ticks after boot. Together with the pid
    /// it names one process; a reused pid has a later start time.
    pub starttime: u64,
    /// Field 52: the exit status as waitpid(2) reports it, once the task
    /// has exited (a zombie); None on a live task or a kernel before 3.5.
    pub exit_code: Option<i32>,
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
    let nice = fields.get(16)?.parse().ok()?;
    let starttime = fields.get(19)?.parse().ok()?;
    let exit_code = match state {
        'Z' | 'X' => fields.get(49).and_then(|f| f.parse().ok()),
        _ => None,
    };
    Some(ProcStat {
        state,
        nice,
        starttime,
        exit_code,
    })
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
        assert_eq!(s.nice, 0);
        assert_eq!(s.starttime, 987654);
        assert_eq!(s.exit_code, None);
    }

    #[test]
    fn a_main_thread_gone_before_its_threads_shows_its_status_unreaped() {
        // The state the guest's PID 1 meets when a thread of the job is
        // stuck in the kernel: the main thread exited (exit(2), not
        // exit_group), another thread lives on, and wait(2) cannot reap.
        let mut child = std::process::Command::new("/usr/bin/python3")
            .args([
                "-c",
                "import ctypes, threading, time\n\
                 threading.Thread(target=time.sleep, args=(60,)).start()\n\
                 ctypes.CDLL(None).syscall(60, 7)",
            ])
            .spawn()
            .expect("/usr/bin/python3 (ci/setup installs it)");
        let pid = child.id();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let stat = loop {
            let s = read(pid).unwrap();
            if s.state == 'Z' || std::time::Instant::now() > until {
                break s;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert_eq!(child.try_wait().unwrap(), None, "not reapable yet");
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!((stat.state, stat.exit_code), ('Z', Some(7 << 8)));
    }

    #[test]
    fn a_zombie_carries_its_wait_status() {
        let tail = (23..=51).map(|_| "0").collect::<Vec<_>>().join(" ");
        let line = format!("7 (job) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 {tail} 17920");
        let s = parse(&line).unwrap();
        assert_eq!(
            (s.state, s.starttime, s.exit_code),
            ('Z', 55, Some(70 << 8))
        );
    }

    #[test]
    fn own_process_is_alive_and_a_wrong_starttime_is_not() {
        let me = std::process::id();
        let s = read(me).unwrap();
        assert!(is_same_process_alive(me, s.starttime));
        assert!(!is_same_process_alive(me, s.starttime + 1));
    }
}
