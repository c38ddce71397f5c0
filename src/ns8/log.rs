//! The agent log, byte for byte as the original writes it: one line per
//! message on stderr, no timestamp, prefixed with the sd-daemon(3)
//! severity (`<3>` for errors, `<4>` warnings, `<7>` debug; none for the
//! default level) so journald files each line at the right priority. Each
//! line goes out in a single write so it never interleaves with the step
//! stderr the agent copies to the same stream.

use std::io::Write;

pub const EMERG: &str = "<0>";
pub const ERR: &str = "<3>";
pub const WARNING: &str = "<4>";
pub const DEBUG: &str = "<7>";
/// The default level: no prefix.
pub const INFO: &str = "";

/// Write `prefix` + `msg` and a newline unless `msg` already ends with one.
pub fn line(prefix: &str, msg: &str) {
    let mut s = String::with_capacity(prefix.len() + msg.len() + 1);
    s.push_str(prefix);
    s.push_str(msg);
    if !s.ends_with('\n') {
        s.push('\n');
    }
    let _ = std::io::stderr().lock().write_all(s.as_bytes());
}

/// Copy raw bytes (a step's stderr) onto the agent's stderr.
pub fn raw(bytes: &[u8]) {
    let _ = std::io::stderr().lock().write_all(bytes);
}

/// `log!(ERR, "format", args...)`
macro_rules! log {
    ($prefix:expr, $($arg:tt)*) => {
        $crate::ns8::log::line($prefix, &format!($($arg)*))
    };
}
pub(crate) use log;

/// An OS error as Go's `syscall.Errno` prints it ("no such file or directory").
pub fn errno_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOENT) => "no such file or directory".into(),
        Some(libc::EACCES) => "permission denied".into(),
        Some(libc::ENOEXEC) => "exec format error".into(),
        Some(libc::ETXTBSY) => "text file busy".into(),
        Some(libc::E2BIG) => "argument list too long".into(),
        Some(libc::ESRCH) => "no such process".into(),
        Some(libc::EPERM) => "operation not permitted".into(),
        Some(libc::ENOTDIR) => "not a directory".into(),
        Some(libc::EISDIR) => "is a directory".into(),
        Some(n) => {
            let text = std::io::Error::from_raw_os_error(n).to_string();
            let text = text.split(" (os error").next().unwrap_or(&text).to_string();
            let mut chars = text.chars();
            match chars.next() {
                Some(c) => c.to_lowercase().chain(chars).collect(),
                None => text,
            }
        }
        None => e.to_string(),
    }
}
