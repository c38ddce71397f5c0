//! Per host:action concurrency locks: `<state>/locks/<host>--<action>.lock`
//! held with flock(2) for the whole dispatch to that host, so a second
//! concurrent run of the same action on the same host is refused while
//! other actions proceed. Locks are local to one dispatcher host.

use std::fs::{File, TryLockError};
use std::path::Path;

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct HostLock {
    _file: File,
}

pub enum LockResult {
    Held(HostLock),
    Busy,
    Error(String),
}

/// Try to take the lock for `host:action` without waiting.
pub fn try_lock(dir: &Path, host: &str, action: &str) -> LockResult {
    if let Err(e) = std::fs::create_dir_all(dir) {
        return LockResult::Error(format!("cannot create {}: {e}", dir.display()));
    }
    let path = dir.join(format!("{host}--{action}.lock"));
    let file = match File::options().create(true).truncate(false).write(true).open(&path) {
        Ok(f) => f,
        Err(e) => return LockResult::Error(format!("cannot open {}: {e}", path.display())),
    };
    match file.try_lock() {
        Ok(()) => LockResult::Held(HostLock { _file: file }),
        Err(TryLockError::WouldBlock) => LockResult::Busy,
        Err(TryLockError::Error(e)) => LockResult::Error(format!("cannot lock {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_busy_until_released() {
        let d = tempfile::tempdir().unwrap();
        let a = try_lock(d.path(), "web01", "backup");
        assert!(matches!(a, LockResult::Held(_)));
        assert!(matches!(try_lock(d.path(), "web01", "backup"), LockResult::Busy));
        assert!(matches!(try_lock(d.path(), "web01", "other"), LockResult::Held(_)));
        drop(a);
        assert!(matches!(try_lock(d.path(), "web01", "backup"), LockResult::Held(_)));
    }
}
