//! Per host:action concurrency locks: `<state>/locks/<host>.<action>.lock`
//! held with flock(2) for the whole dispatch to that host, so a second
//! concurrent run of the same action on the same host is refused while
//! other actions proceed. Locks are local to one dispatcher host.
//!
//! The flock is the truth; the file only carries it. On release the file is
//! removed while the flock is still held, so the directory holds a file
//! only while some run holds its lock. Removing a name someone else may
//! have open is the classic unlink race: a process that opened the old file
//! just before it was removed can lock it afterwards, while a third process
//! creates and locks a new file under the same name. So after taking the
//! flock, a locker checks that the path still names the file it locked
//! (same device and inode, `fstat` against `lstat`) and otherwise starts
//! over on whatever the path names now. Host and action must pass the
//! name rule before any file is created, so no path is ever built from a
//! name with `/`, `..` or a `.` (the separator).

use crate::protocol::check_action_name;
use std::fs::{self, File, TryLockError};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Attempts before giving up when the lock file keeps being replaced.
const MAX_ATTEMPTS: usize = 32;

/// A held lock; released when dropped (or when the process dies, in which
/// case the file stays behind, unlocked, and is reused by the next run).
#[derive(Debug)]
pub struct HostLock {
    file: File,
    path: PathBuf,
}

pub enum LockResult {
    Held(HostLock),
    Busy,
    /// The names fail the name rule, or the lock directory or file cannot
    /// be used; the message says which and why.
    Error(String),
}

/// The lock file for `host` and `action` (both already checked).
fn lock_path(dir: &Path, host: &str, action: &str) -> PathBuf {
    dir.join(format!("{host}.{action}.lock"))
}

/// Try to take the lock for `host:action` without waiting.
pub fn try_lock(dir: &Path, host: &str, action: &str) -> LockResult {
    if let Err(e) = check_action_name(action) {
        return LockResult::Error(format!("bad action name, no lock taken: {e}"));
    }
    if let Err(e) = check_action_name(host) {
        let e = e.to_string().replace("action name", "host name");
        return LockResult::Error(format!("bad host name, no lock taken: {e}"));
    }
    if let Err(e) = fs::create_dir_all(dir) {
        return LockResult::Error(format!("cannot create {}: {e}", dir.display()));
    }
    let path = lock_path(dir, host, action);
    for _ in 0..MAX_ATTEMPTS {
        let opened = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path);
        let file = match opened {
            Ok(f) => f,
            Err(e) => return LockResult::Error(format!("cannot open {}: {e}", path.display())),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return LockResult::Busy,
            Err(TryLockError::Error(e)) => return LockResult::Error(format!("cannot lock {}: {e}", path.display())),
        }
        if names_same_file(&file, &path) {
            return LockResult::Held(HostLock { file, path });
        }
        // We locked a file its holder has just removed; start over on what
        // the path names now (the old file closes here).
    }
    LockResult::Error(format!(
        "cannot lock {}: the lock file was replaced {MAX_ATTEMPTS} times in a row; is something else removing files in {}?",
        path.display(),
        dir.display()
    ))
}

/// True when `path` names the very file `file` is open on.
fn names_same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::symlink_metadata(path)) {
        (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
        _ => false,
    }
}

impl Drop for HostLock {
    fn drop(&mut self) {
        // Still holding the flock: anyone who opened this file meanwhile
        // will find, once they lock it, that the path no longer names it.
        if names_same_file(&self.file, &self.path) {
            let _ = fs::remove_file(&self.path);
        }
        // The flock ends when `self.file` is closed, right after this.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = match fs::read_dir(dir) {
            Ok(rd) => rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
            Err(_) => vec![],
        };
        v.sort();
        v
    }

    #[test]
    fn second_lock_is_busy_until_released_and_release_removes_the_file() {
        let d = tempfile::tempdir().unwrap();
        let a = try_lock(d.path(), "web01", "backup");
        assert!(matches!(a, LockResult::Held(_)));
        assert!(matches!(try_lock(d.path(), "web01", "backup"), LockResult::Busy));
        let b = try_lock(d.path(), "web01", "other");
        assert!(matches!(b, LockResult::Held(_)));
        assert_eq!(files(d.path()), ["web01.backup.lock", "web01.other.lock"]);
        drop(a);
        assert_eq!(files(d.path()), ["web01.other.lock"]);
        drop(b);
        assert!(files(d.path()).is_empty(), "no lock file outlives its run");
        let again = try_lock(d.path(), "web01", "backup");
        assert!(matches!(again, LockResult::Held(_)));
        drop(again);
        assert!(files(d.path()).is_empty());
    }

    #[test]
    fn names_that_could_collide_get_separate_files() {
        let d = tempfile::tempdir().unwrap();
        let a = try_lock(d.path(), "a--b", "c");
        let b = try_lock(d.path(), "a", "b--c");
        assert!(matches!((&a, &b), (LockResult::Held(_), LockResult::Held(_))));
    }

    #[test]
    fn bad_names_create_no_file() {
        let d = tempfile::tempdir().unwrap();
        let locks = d.path().join("locks");
        for (host, action) in
            [("web01", "../x"), ("web01", "a/b"), ("../../etc/x", "backup"), ("web01", ""), ("", "a"), ("w.1", "a")]
        {
            match try_lock(&locks, host, action) {
                LockResult::Error(e) => assert!(e.contains("bad ") && e.contains("no lock taken"), "{e}"),
                _ => panic!("{host:?} {action:?} was locked"),
            }
        }
        assert!(!locks.exists(), "not even the directory is made for a refused name");
        assert_eq!(files(d.path()), Vec::<String>::new());
    }

    #[test]
    fn a_file_removed_by_its_holder_is_never_taken_as_the_lock() {
        let d = tempfile::tempdir().unwrap();
        let path = lock_path(d.path(), "h", "a");
        let first = try_lock(d.path(), "h", "a");
        // Someone opens the file just before the holder releases it ...
        let stale = File::options().write(true).open(&path).unwrap();
        drop(first);
        // ... and a third run creates and locks a new file under the name.
        let third = try_lock(d.path(), "h", "a");
        assert!(matches!(third, LockResult::Held(_)));
        // The stale opener can flock the old file, but must see it is stale.
        stale.try_lock().unwrap();
        assert!(!names_same_file(&stale, &path));
        assert!(matches!(try_lock(d.path(), "h", "a"), LockResult::Busy), "the third run holds the real lock");
    }

    #[test]
    fn many_racing_lockers_never_hold_one_lock_together() {
        let d = Arc::new(tempfile::tempdir().unwrap());
        let (holders, overlaps, taken) =
            (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let (d, holders, overlaps, taken) = (d.clone(), holders.clone(), overlaps.clone(), taken.clone());
                std::thread::spawn(move || {
                    for _ in 0..400 {
                        if let LockResult::Held(l) = try_lock(d.path(), "h", "a") {
                            if holders.fetch_add(1, Ordering::SeqCst) > 0 {
                                overlaps.fetch_add(1, Ordering::SeqCst);
                            }
                            taken.fetch_add(1, Ordering::SeqCst);
                            std::thread::yield_now();
                            holders.fetch_sub(1, Ordering::SeqCst);
                            drop(l);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(overlaps.load(Ordering::SeqCst), 0);
        assert!(taken.load(Ordering::SeqCst) > 0);
        assert!(files(d.path()).is_empty(), "{:?}", files(d.path()));
    }
}
