//! A live writer of a thread holds an exclusive `flock` on `thread-writer-locks/<id>.lock`.
//! On Linux the held locks are read from `/proc/locks`, which neither opens the lock file
//! nor takes a lock a writer might be waiting for; elsewhere a non-blocking shared lock
//! attempt is the fallback.

use std::collections::HashSet;
use std::path::Path;

use super::CodexHome;

/// Lowercase thread ids whose writer lock is held right now.
pub fn held_thread_locks(home: &CodexHome) -> HashSet<String> {
    let dir = home.writer_locks_dir();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return HashSet::new();
    };
    let held = held_lock_keys();
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.strip_suffix(".lock")?;
            uuid::Uuid::parse_str(id).ok()?;
            is_locked(&e.path(), held.as_ref()).then(|| id.to_ascii_lowercase())
        })
        .collect()
}

fn held_lock_keys() -> Option<HashSet<(u64, u64, u64)>> {
    Some(
        crate::proc_locks::held()?
            .into_iter()
            .map(|l| (l.major, l.minor, l.ino))
            .collect(),
    )
}

fn is_locked(path: &Path, held: Option<&HashSet<(u64, u64, u64)>>) -> bool {
    #[cfg(target_os = "linux")]
    if let Some(held) = held {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = std::fs::metadata(path) else {
            return false;
        };
        let dev = meta.dev();
        let key = (libc::major(dev) as u64, libc::minor(dev) as u64, meta.ino());
        return held.contains(&key);
    }
    let _ = held;
    try_lock_probe(path)
}

#[allow(dead_code)]
fn try_lock_probe(path: &Path) -> bool {
    use fs2::FileExt;
    let Ok(file) = crate::regular_file::open(path) else {
        return false;
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = FileExt::unlock(&file);
            false
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fs2::FileExt;

    #[test]
    fn a_held_flock_marks_its_thread_current_and_a_released_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let home = CodexHome {
            root: dir.path().to_path_buf(),
        };
        let locks = home.writer_locks_dir();
        std::fs::create_dir_all(&locks).unwrap();
        let id = "01a20c2e-e45a-7d33-9558-2b68569b884c";
        let lock_path = locks.join(format!("{id}.lock"));
        std::fs::write(&lock_path, "").unwrap();
        std::fs::write(locks.join(".coordination.lock"), "").unwrap();
        assert!(held_thread_locks(&home).is_empty());
        let holder = std::fs::File::open(&lock_path).unwrap();
        holder.lock_exclusive().unwrap();
        assert_eq!(held_thread_locks(&home), HashSet::from([id.to_string()]));
        FileExt::unlock(&holder).unwrap();
        assert!(held_thread_locks(&home).is_empty());
    }
}
