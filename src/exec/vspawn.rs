//! Starting a step through `posix_spawn` (glibc's `clone(CLONE_VM |
//! CLONE_VFORK)`) instead of `fork`: the ns8 agent starts one process per
//! task step, and a `fork` of a multi-threaded agent copies its page
//! tables and then takes copy-on-write faults (with TLB shootdowns on every
//! core) until the child execs, which profiling showed to be most of the
//! agent's CPU per task. The standard library only uses `posix_spawn` when
//! no `pre_exec` hook is set, and placing the command channel at fd 3
//! needs one, so this module does the whole start itself: pipes for stdin,
//! stdout, stderr and the command channel (all close-on-exec in the
//! agent, duplicated onto 0-3 in the child by spawn file actions), the
//! signal mask emptied and SIGPIPE reset to its default, the process group
//! when asked. The child is waited for through a pidfd (Linux 5.3+), or on
//! the blocking pool when the kernel has none. Exec failures come back
//! synchronously as the OS error, as with [`super::step::spawn`].

use super::step::{Sink, StepCommand, COMFD};
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use tokio::io::unix::AsyncFd;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;

/// A step started by [`spawn`].
#[derive(Debug)]
pub struct Started {
    pub child: Child,
    /// Process id (and process group id when `own_group` was set).
    pub pid: u32,
    pub stdout: Option<pipe::Receiver>,
    pub stderr: Option<pipe::Receiver>,
    /// Read end of the command channel, when `comfd` was asked for.
    pub comfd: Option<pipe::Receiver>,
}

/// A child process to wait for; reaped in the background if dropped first.
#[derive(Debug)]
pub struct Child {
    pid: libc::pid_t,
    pidfd: Option<AsyncFd<OwnedFd>>,
    status: Option<ExitStatus>,
}

impl Child {
    /// Wait for the child to end and return how it ended.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            if let Some(s) = self.status {
                return Ok(s);
            }
            if let Some(s) = reap(self.pid, false)? {
                self.status = Some(s);
                continue;
            }
            match &self.pidfd {
                Some(fd) => fd.readable().await?.clear_ready(),
                None => {
                    let pid = self.pid;
                    let s = tokio::task::spawn_blocking(move || reap(pid, true)).await.map_err(io::Error::other)??;
                    self.status = s;
                }
            }
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.status.is_none() && !matches!(reap(self.pid, false), Ok(Some(_))) {
            let pid = self.pid;
            // Never leave a zombie: whoever drops the handle early (a
            // shutting-down runtime) hands the wait to a plain thread.
            let _ = std::thread::Builder::new().name("reap".into()).spawn(move || reap(pid, true));
        }
    }
}

/// `waitpid` for `pid`; `Ok(None)` while it runs (only when not `block`).
fn reap(pid: libc::pid_t, block: bool) -> io::Result<Option<ExitStatus>> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid writes one int through a valid pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, if block { 0 } else { libc::WNOHANG }) };
        match r {
            0 => return Ok(None),
            r if r == pid => return Ok(Some(ExitStatus::from_raw(status))),
            _ => {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EINTR) {
                    return Err(e);
                }
            }
        }
    }
}

/// Start `cmd` (its `cwd` must be `None`) with `stdin` as its input.
pub fn spawn(cmd: &StepCommand, stdin: Vec<u8>) -> io::Result<Started> {
    if cmd.cwd.is_some() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "a working directory needs exec::step::spawn"));
    }
    let program = cstring(cmd.program.as_os_str())?;
    let mut argv = vec![program.clone()];
    for a in &cmd.args {
        argv.push(cstring(OsStr::new(a))?);
    }
    let envp = environment(cmd)?;

    let (stdin_r, stdin_w) = pipe_pair()?;
    let out = output(cmd.stdout)?;
    let err = output(cmd.stderr)?;
    let com = if cmd.comfd { Some(pipe_pair()?) } else { None };

    let mut actions = FileActions::new()?;
    actions.dup2(stdin_r.as_raw_fd(), 0)?;
    for (target, o) in [(1, &out), (2, &err)] {
        match o {
            Output::Pipe(_, w) => actions.dup2(w.as_raw_fd(), target)?,
            Output::AgentStderr => actions.dup2(2, target)?,
            Output::Null => actions.open_null(target)?,
        }
    }
    if let Some((_, w)) = &com {
        actions.dup2(w.as_raw_fd(), COMFD)?;
    }
    let attr = Attributes::new(cmd.own_group)?;

    let mut pid: libc::pid_t = 0;
    let argv_p = pointers(&argv);
    let envp_p = pointers(&envp);
    // SAFETY: every pointer is valid for the call: the file actions and
    // attributes are initialised, argv and envp are NUL-terminated arrays of
    // C strings that outlive the call.
    let rc =
        unsafe { libc::posix_spawn(&mut pid, program.as_ptr(), &actions.0, &attr.0, argv_p.as_ptr(), envp_p.as_ptr()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    // The child has its copies; closing ours lets the readers see EOF once
    // the step (and whatever it started) closed theirs.
    drop((stdin_r, actions, attr));
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let pidfd = match RawFd::try_from(raw) {
        // SAFETY: a non-negative return is a fresh fd owned by nobody else;
        // the OwnedFd keeps it open, unchanged, for the AsyncFd's lifetime.
        Ok(fd) if fd >= 0 => unsafe {
            AsyncFd::register_with_interest(OwnedFd::from_raw_fd(fd), tokio::io::Interest::READABLE).ok()
        },
        _ => None,
    };
    let child = Child { pid, pidfd, status: None };

    let mut input = pipe::Sender::from_owned_fd(stdin_w)?;
    tokio::spawn(async move {
        // A step that never reads its input closes the pipe: not an error.
        let _ = input.write_all(&stdin).await;
    });
    let stdout = out.into_receiver()?;
    let stderr = err.into_receiver()?;
    let comfd = match com {
        Some((r, w)) => {
            drop(w);
            Some(pipe::Receiver::from_owned_fd(r)?)
        }
        None => None,
    };
    Ok(Started { child, pid: u32::try_from(pid).unwrap_or(0), stdout, stderr, comfd })
}

enum Output {
    /// Read end (ours), write end (the child's).
    Pipe(OwnedFd, OwnedFd),
    AgentStderr,
    Null,
}

impl Output {
    fn into_receiver(self) -> io::Result<Option<pipe::Receiver>> {
        match self {
            Output::Pipe(r, w) => {
                drop(w);
                Ok(Some(pipe::Receiver::from_owned_fd(r)?))
            }
            _ => Ok(None),
        }
    }
}

fn output(sink: Sink) -> io::Result<Output> {
    Ok(match sink {
        Sink::Piped => {
            let (r, w) = pipe_pair()?;
            Output::Pipe(r, w)
        }
        Sink::AgentStderr => Output::AgentStderr,
        Sink::Null => Output::Null,
    })
}

fn cstring(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("{s:?} contains a NUL byte")))
}

/// The child's `KEY=value` list: the agent's environment (unless
/// `clear_env`) with `cmd.env` added over it, in order.
fn environment(cmd: &StepCommand) -> io::Result<Vec<CString>> {
    let mut vars: Vec<(OsString, OsString)> = if cmd.clear_env { Vec::new() } else { std::env::vars_os().collect() };
    for (k, v) in &cmd.env {
        match vars.iter_mut().find(|(have, _)| have.as_os_str() == OsStr::new(k)) {
            Some(slot) => slot.1 = v.into(),
            None => vars.push((k.into(), v.into())),
        }
    }
    vars.iter()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            cstring(OsStr::from_bytes(&kv))
        })
        .collect()
}

fn pointers(strings: &[CString]) -> Vec<*mut libc::c_char> {
    strings.iter().map(|s| s.as_ptr().cast_mut()).chain(std::iter::once(std::ptr::null_mut())).collect()
}

/// A close-on-exec pipe whose ends are both numbered above [`COMFD`], so
/// duplicating one end onto 0-3 in the child never overwrites another
/// source before it is used.
fn pipe_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two fds into the array on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((high(r)?, high(w)?))
}

fn high(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > COMFD {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC returns a new fd (or -1) without touching memory.
    let moved = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, COMFD + 1) };
    if moved < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `moved` is a fresh fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

struct FileActions(libc::posix_spawn_file_actions_t);

impl FileActions {
    fn new() -> io::Result<FileActions> {
        // SAFETY: an all-zero value is a valid place for init to write to.
        let mut a = FileActions(unsafe { std::mem::zeroed() });
        // SAFETY: init on an owned, writable value.
        check(unsafe { libc::posix_spawn_file_actions_init(&mut a.0) })?;
        Ok(a)
    }

    fn dup2(&mut self, from: RawFd, to: RawFd) -> io::Result<()> {
        // SAFETY: the actions were initialised; the fds are plain integers.
        check(unsafe { libc::posix_spawn_file_actions_adddup2(&mut self.0, from, to) })
    }

    fn open_null(&mut self, to: RawFd) -> io::Result<()> {
        // SAFETY: the actions were initialised; the path is a static C string.
        check(unsafe {
            libc::posix_spawn_file_actions_addopen(&mut self.0, to, c"/dev/null".as_ptr(), libc::O_RDWR, 0)
        })
    }
}

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: destroying actions initialised by `new`, once.
        unsafe { libc::posix_spawn_file_actions_destroy(&mut self.0) };
    }
}

struct Attributes(libc::posix_spawnattr_t);

impl Attributes {
    /// An empty signal mask, SIGPIPE at its default (the agent ignores it),
    /// and a new process group when `own_group`.
    fn new(own_group: bool) -> io::Result<Attributes> {
        // SAFETY: an all-zero value is a valid place for init to write to.
        let mut a = Attributes(unsafe { std::mem::zeroed() });
        // SAFETY: init on an owned, writable value.
        check(unsafe { libc::posix_spawnattr_init(&mut a.0) })?;
        // SAFETY: sigset_t values are initialised by sigemptyset before use;
        // every call gets valid pointers to initialised attributes.
        unsafe {
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            check(libc::posix_spawnattr_setsigmask(&mut a.0, &none))?;
            let mut pipe: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut pipe);
            libc::sigaddset(&mut pipe, libc::SIGPIPE);
            check(libc::posix_spawnattr_setsigdefault(&mut a.0, &pipe))?;
            let mut flags = libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF;
            if own_group {
                flags |= libc::POSIX_SPAWN_SETPGROUP;
                check(libc::posix_spawnattr_setpgroup(&mut a.0, 0))?;
            }
            check(libc::posix_spawnattr_setflags(&mut a.0, flags as libc::c_short))?;
        }
        Ok(a)
    }
}

impl Drop for Attributes {
    fn drop(&mut self) {
        // SAFETY: destroying attributes initialised by `new`, once.
        unsafe { libc::posix_spawnattr_destroy(&mut self.0) };
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_script as script;
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn command_channel_stdio_environment_and_group() {
        let d = tempfile::tempdir().unwrap();
        let body = "cat; echo \"err $V\" >&2; echo 'set-progress 5' >&3; set -- $(cat /proc/$$/stat); [ \"$5\" = $$ ] || exit 4; exit 3";
        let mut cmd = StepCommand::new(&script(d.path(), body));
        cmd.comfd = true;
        cmd.env = vec![("V".into(), "x".into())];
        let mut s = spawn(&cmd, b"in".to_vec()).unwrap();
        let (mut out, mut err, mut com) = (String::new(), String::new(), String::new());
        s.stdout.take().unwrap().read_to_string(&mut out).await.unwrap();
        s.stderr.take().unwrap().read_to_string(&mut err).await.unwrap();
        s.comfd.take().unwrap().read_to_string(&mut com).await.unwrap();
        assert_eq!(s.child.wait().await.unwrap().code(), Some(3));
        assert_eq!((out.as_str(), err.as_str(), com.as_str()), ("in", "err x\n", "set-progress 5\n"));
    }

    #[tokio::test]
    async fn exec_errors_come_back() {
        let d = tempfile::tempdir().unwrap();
        let e = spawn(&StepCommand::new(&d.path().join("missing")), Vec::new()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        let p = script(d.path(), "exit 0");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = spawn(&StepCommand::new(&p), Vec::new()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EACCES));
    }
}
