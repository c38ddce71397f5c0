//! A terminal driven like a person: a command in a detached tmux session,
//! keys sent to it, its screen read back (for the console and prompts).
#![allow(dead_code)] // each test binary uses a part

use std::process::Command;
use std::time::Duration;

pub struct Tmux(pub String);

impl Tmux {
    /// Run `cmd` (a shell command line) in a new 160x50 session.
    pub fn start(cmd: &str) -> Tmux {
        let name = format!("muster-test-{}", muster::hexstr::random(4));
        let ok = Command::new("tmux")
            .args(["new-session", "-d", "-s", &name, "-x", "160", "-y", "50", cmd])
            .status()
            .expect("tmux is needed: apt-get install tmux");
        assert!(ok.success());
        Tmux(name)
    }

    /// Type `line` and press Enter.
    pub fn send(&self, line: &str) {
        self.keys(line);
        assert!(Command::new("tmux").args(["send-keys", "-t", &self.0, "Enter"]).status().unwrap().success());
    }

    /// Type `text` without Enter.
    pub fn keys(&self, text: &str) {
        assert!(Command::new("tmux").args(["send-keys", "-t", &self.0, "-l", text]).status().unwrap().success());
    }

    pub fn screen(&self) -> String {
        let out = Command::new("tmux").args(["capture-pane", "-p", "-S", "-200", "-t", &self.0]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Wait until the screen shows `what`.
    pub fn wait(&self, what: &str, limit: Duration) {
        self.wait_count(what, 1, limit);
    }

    /// Wait until the screen shows `what` at least `n` times.
    pub fn wait_count(&self, what: &str, n: usize, limit: Duration) {
        let mut last = String::new();
        let t0 = std::time::Instant::now();
        while t0.elapsed() < limit {
            last = self.screen();
            if last.matches(what).count() >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no {what:?} (x{n}) on the terminal after {limit:?}:\n{last}");
    }

    /// True while the session runs.
    pub fn alive(&self) -> bool {
        Command::new("tmux").args(["has-session", "-t", &self.0]).status().is_ok_and(|s| s.success())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.0]).status();
    }
}
