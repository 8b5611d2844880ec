//! The file locks Linux says are held, from `/proc/locks`: reading it neither opens a locked
//! file nor takes a lock someone may be waiting for. Two questions are asked of it: is a
//! thread's writer lock held (Codex is writing that thread), and who holds the lock on a
//! Codex home (another codex-maint).

/// A granted lock (waiters, shown as "->", are left out) on the file `ino` of the device
/// `major:minor`, held by `pid` (0 where the holder is in another pid namespace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldLock {
    pub flock: bool,
    pub pid: u32,
    pub major: u64,
    pub minor: u64,
    pub ino: u64,
}

/// Every lock held now; `None` where the list cannot be read (not Linux, no `/proc`).
pub fn held() -> Option<Vec<HeldLock>> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    std::fs::read_to_string("/proc/locks")
        .ok()
        .map(|text| parse(&text))
}

/// The lines of `/proc/locks`: "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF".
fn parse(text: &str) -> Vec<HeldLock> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(1) == Some(&"->") {
                return None;
            }
            let mut dev_ino = fields.get(5)?.split(':');
            Some(HeldLock {
                flock: fields.get(1) == Some(&"FLOCK"),
                pid: fields.get(4)?.parse().ok()?,
                major: u64::from_str_radix(dev_ino.next()?, 16).ok()?,
                minor: u64::from_str_radix(dev_ino.next()?, 16).ok()?,
                ino: dev_ino.next()?.parse().ok()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn granted_locks_are_read_and_waiters_left_out() {
        let text = "1: POSIX  ADVISORY  WRITE 77 08:01:42 0 EOF\n\
                    2: FLOCK  ADVISORY  WRITE 4242 103:02:9917 0 EOF\n\
                    2: -> FLOCK  ADVISORY  WRITE 5151 103:02:9917 0 EOF\n";
        assert_eq!(
            parse(text),
            vec![
                HeldLock {
                    flock: false,
                    pid: 77,
                    major: 8,
                    minor: 1,
                    ino: 42
                },
                HeldLock {
                    flock: true,
                    pid: 4242,
                    major: 0x103,
                    minor: 2,
                    ino: 9917
                },
            ]
        );
    }
}
