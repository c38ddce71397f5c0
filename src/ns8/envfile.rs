//! The environment state file `./environment` in the agent's working
//! directory: `NAME=VALUE` lines (no quoting; empty lines and lines without
//! `=` are ignored). Steps receive these variables on top of the agent's
//! own environment; after a completed action the file is mirrored into the
//! `<agent-id>/environment` Redis hash. It is read again for every step, so
//! a value one step writes is seen by the next; async code reads it with
//! [`read_async`], off the async workers.

use super::log::{log, ERR};
use std::path::Path;

pub const FILE: &str = "./environment";

/// Read and split the file; a read error is logged as the original logs
/// it and yields no variables.
pub fn read() -> Vec<(String, String)> {
    match std::fs::read(Path::new(FILE)) {
        Ok(bytes) => parse(&String::from_utf8_lossy(&bytes)),
        Err(e) => {
            log!(ERR, "Cannot read ./environment file: open ./environment: {}", super::log::errno_text(&e));
            Vec::new()
        }
    }
}

/// [`read`] on the blocking pool (see `super::off_worker`); the same
/// entries, or none (logged) if the read panicked.
pub async fn read_async() -> Vec<(String, String)> {
    super::off_worker(read).await.unwrap_or_else(|e| {
        log!(ERR, "Cannot read ./environment file: {e}");
        Vec::new()
    })
}

/// Split `NAME=VALUE` lines at the first `=`; other lines are ignored.
pub fn parse(text: &str) -> Vec<(String, String)> {
    text.split('\n').filter_map(|line| line.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The entries a child process can actually receive (a name must be
/// non-empty and neither part may hold a NUL byte).
pub fn for_child(entries: &[(String, String)]) -> impl Iterator<Item = (String, String)> + '_ {
    entries.iter().filter(|(k, v)| !k.is_empty() && !k.contains('\0') && !v.contains('\0')).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_first_equals() {
        let got = parse("A=1\n\nnoequals\nB=x=y\nC=\n");
        let want: Vec<(String, String)> =
            [("A", "1"), ("B", "x=y"), ("C", "")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(got, want);
    }
}
