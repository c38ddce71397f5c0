//! Every process group an action runs in, tracked process-wide, so an
//! agent told to exit at once (a second SIGTERM) can kill them all before
//! it goes: no action's processes outlive the agent that started them.

use std::collections::BTreeSet;
use std::sync::Mutex;

static GROUPS: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// A tracked process group; untracked when dropped.
#[derive(Debug)]
pub struct Tracked(u32);

/// Track the process group `pgid` until the returned guard is dropped.
pub fn track(pgid: u32) -> Tracked {
    if let Ok(mut g) = GROUPS.lock() {
        g.insert(pgid);
    }
    Tracked(pgid)
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Ok(mut g) = GROUPS.lock() {
            g.remove(&self.0);
        }
    }
}

/// SIGKILL every tracked process group.
pub fn kill_all() {
    let groups: Vec<u32> = GROUPS.lock().map(|g| g.iter().copied().collect()).unwrap_or_default();
    for pgid in groups {
        super::runner::signal_group(pgid, libc::SIGKILL);
    }
}

/// How many process groups are tracked now.
pub fn count() -> usize {
    GROUPS.lock().map(|g| g.len()).unwrap_or(0)
}
