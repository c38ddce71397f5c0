//! Tab completion for the console: the command word, then host names after
//! `select`, tags after `tags`, carriers after `via`, output modes after
//! `output`. Names come from `ssh.toml` and the agent registry.

use rustyline::completion::{Completer, Pair};
use rustyline::Context;
use rustyline::{Helper, Highlighter, Hinter, Validator};

/// The console's commands, for completion and help.
pub const COMMANDS: &[&str] = &[
    "select", "tags", "via", "output", "run", "bg", "jobs", "kill", "ping", "info", "put", "get", "status", "help",
    "quit",
];

#[derive(Helper, Highlighter, Hinter, Validator, Default)]
pub struct ConsoleHelper {
    pub hosts: Vec<String>,
    pub tags: Vec<String>,
}

fn pairs(words: &[String], prefix: &str) -> Vec<Pair> {
    words
        .iter()
        .filter(|w| w.starts_with(prefix))
        .map(|w| Pair { display: w.clone(), replacement: format!("{w} ") })
        .collect()
}

impl Completer for ConsoleHelper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let head = &line[..pos];
        let start = head.rfind([' ', ',']).map(|i| i + 1).unwrap_or(0);
        let word = &head[start..];
        let first = head.split_whitespace().next().unwrap_or("");
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let candidates = if start == 0 {
            owned(COMMANDS)
        } else {
            match first {
                "select" => {
                    let mut h = self.hosts.clone();
                    h.push("all".into());
                    h
                }
                "tags" => self.tags.clone(),
                "via" => owned(&["ssh", "tls"]),
                "output" => owned(&["live", "grouped", "json"]),
                _ => Vec::new(),
            }
        };
        Ok((start, pairs(&candidates, word)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustyline::history::DefaultHistory;

    #[test]
    fn completes_commands_hosts_and_tags() {
        let h = ConsoleHelper { hosts: vec!["web01".into(), "web02".into(), "db1".into()], tags: vec!["web".into()] };
        let hist = DefaultHistory::new();
        let ctx = Context::new(&hist);
        let (s, c) = h.complete("sel", 3, &ctx).unwrap();
        assert_eq!((s, c.iter().map(|p| p.display.as_str()).collect::<Vec<_>>()), (0, vec!["select"]));
        let (s, c) = h.complete("select db1,we", 13, &ctx).unwrap();
        assert_eq!(s, 11);
        assert_eq!(c.iter().map(|p| p.display.as_str()).collect::<Vec<_>>(), vec!["web01", "web02"]);
        let (_, c) = h.complete("tags w", 6, &ctx).unwrap();
        assert_eq!(c[0].display, "web");
    }
}
