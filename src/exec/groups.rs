//! Every process group an action runs in, tracked process-wide, so an
//! agent told to exit at once (a second SIGTERM) can kill them all before
//! it goes: no action's processes outlive the agent that started them.
//!
//! An agent killed outright (SIGKILL, OOM killer) cannot clean up, so the
//! groups are also kept in a journal on disk once [`keep_journal`] is
//! called: `<dir>/<agent-pid>.<pgid>`, holding the start times (in clock
//! ticks since boot, `/proc/PID/stat` field 22) of the agent and of the
//! group's leader. The next agent to start on that state dir kills the
//! groups of agents that are gone — never those of a live agent sharing
//! the directory (several `agent stdio` run side by side), and never a
//! process that merely reused a recorded pid.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

static GROUPS: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());
static JOURNAL: OnceLock<PathBuf> = OnceLock::new();

/// A tracked process group; untracked when dropped.
#[derive(Debug)]
pub struct Tracked(u32);

/// Track the process group `pgid` until the returned guard is dropped.
pub fn track(pgid: u32) -> Tracked {
    if let Ok(mut g) = GROUPS.lock() {
        g.insert(pgid);
    }
    if let (Some(dir), Some(me), Some(leader)) = (JOURNAL.get(), own_start_time(), start_time(pgid)) {
        let p = entry(dir, std::process::id(), pgid);
        if let Err(e) = std::fs::write(&p, format!("{me} {leader}\n")) {
            tracing::warn!("cannot record process group {pgid} in {}: {e}", p.display());
        }
    }
    Tracked(pgid)
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Ok(mut g) = GROUPS.lock() {
            g.remove(&self.0);
        }
        if let Some(dir) = JOURNAL.get() {
            let _ = std::fs::remove_file(entry(dir, std::process::id(), self.0));
        }
    }
}

fn entry(dir: &Path, agent: u32, pgid: u32) -> PathBuf {
    dir.join(format!("{agent}.{pgid}"))
}

/// The start time of process `pid` in clock ticks since boot, `None` when
/// there is no such process.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command: state is field 3, so the
    // start time (field 22) is the 20th.
    stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()
}

/// This process's start time (see [`start_time`]), read once.
fn own_start_time() -> Option<u64> {
    static OWN: OnceLock<Option<u64>> = OnceLock::new();
    *OWN.get_or_init(|| start_time(std::process::id()))
}

/// Start the on-disk journal in `dir` (created, mode 0700) after killing
/// the process groups that agents no longer running left there. Returns
/// how many groups were killed. Called once per process; later calls only
/// reap.
pub fn keep_journal(dir: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let _ = std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700));
    let killed = reap(dir);
    let _ = JOURNAL.set(dir.to_path_buf());
    Ok(killed)
}

/// Kill the groups recorded by agents that are gone; returns how many.
fn reap(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    let mut killed = 0;
    for f in rd.flatten() {
        let name = f.file_name().to_string_lossy().to_string();
        let Some((agent, pgid)) = name.split_once('.') else { continue };
        let (Ok(agent), Ok(pgid)) = (agent.parse::<u32>(), pgid.parse::<u32>()) else { continue };
        let text = std::fs::read_to_string(f.path()).unwrap_or_default();
        let mut times = text.split_whitespace().map(|t| t.parse::<u64>().ok());
        let (agent_start, leader_start) = (times.next().flatten(), times.next().flatten());
        if agent_start.is_some() && start_time(agent) == agent_start {
            continue; // a live agent's own group
        }
        // A group whose leader still runs is ours only if it is the same
        // process; a group whose leader is gone keeps its number reserved
        // while members remain, so signalling it reaches only them.
        let ours = match start_time(pgid) {
            Some(t) => Some(t) == leader_start,
            None => true,
        };
        // SAFETY: kill(2) has no memory-safety preconditions.
        if ours && pgid > 1 && unsafe { libc::kill(-(pgid as i32), libc::SIGKILL) } == 0 {
            tracing::warn!("killed process group {pgid} left running by agent pid {agent}, which is gone");
            killed += 1;
        }
        let _ = std::fs::remove_file(f.path());
    }
    killed
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    fn group(cmd: &str) -> std::process::Child {
        std::process::Command::new("sh")
            .args(["-c", cmd])
            .process_group(0)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }

    #[test]
    fn groups_of_a_gone_agent_are_killed_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        // An "agent" that is gone (a process that exited) left a group.
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        let gone_pid = gone.id();
        gone.wait().unwrap();
        let mut orphan = group("sleep 30");
        let o = orphan.id();
        std::fs::write(entry(d.path(), gone_pid, o), format!("1 {}\n", start_time(o).unwrap())).unwrap();
        // A live agent (this test process) has its own group there.
        let mut mine = group("sleep 30");
        let m = mine.id();
        let me = std::process::id();
        std::fs::write(entry(d.path(), me, m), format!("{} {}\n", start_time(me).unwrap(), start_time(m).unwrap()))
            .unwrap();
        // A recorded pid now used by an unrelated process: the start time differs.
        let mut reused = group("sleep 30");
        let r = reused.id();
        std::fs::write(entry(d.path(), gone_pid, r), "1 1\n").unwrap();
        assert_eq!(reap(d.path()), 1);
        assert!(orphan.wait().is_ok_and(|s| !s.success()), "the orphan group was killed");
        assert!(mine.try_wait().unwrap().is_none(), "a live agent's group is left alone");
        assert!(reused.try_wait().unwrap().is_none(), "a reused pid is left alone");
        assert!(entry(d.path(), me, m).exists() && !entry(d.path(), gone_pid, o).exists());
        for mut c in [mine, reused] {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
            let _ = c.wait();
        }
    }
}
