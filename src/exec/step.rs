//! Starting one step process: the single place where the executor turns a
//! path into a child. It sets the environment and working directory, puts
//! the step in its own process group when asked, feeds stdin from a buffer
//! in the background, routes stdout and stderr (piped to the caller, or
//! straight onto the agent's own stderr), and optionally opens the ns8
//! command channel: a pipe whose write end the step sees as fd 3
//! (`AGENT_COMFD=3`) and whose read end the caller gets back. Policies
//! (timeouts, caps, progress) stay with the callers: `runner` for fleet
//! requests, `ns8` for the NethServer agent.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::process::{Child, ChildStderr, ChildStdout};

/// The fd number a step writes its commands to.
pub const COMFD: RawFd = 3;

/// Where a step's stdout or stderr goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// A pipe the caller reads.
    Piped,
    /// The agent's own stderr, unbuffered and unparsed.
    AgentStderr,
    /// Discarded.
    Null,
}

/// What to start and how.
#[derive(Debug, Clone)]
pub struct StepCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Added to (and overriding) the inherited environment, in order.
    pub env: Vec<(String, String)>,
    /// Start from an empty environment: `env` is then all the step gets.
    pub clear_env: bool,
    /// `None` keeps the agent's working directory.
    pub cwd: Option<PathBuf>,
    /// Start the step as the leader of a new process group.
    pub own_group: bool,
    /// Open the command channel at fd [`COMFD`].
    pub comfd: bool,
    pub stdout: Sink,
    pub stderr: Sink,
    /// Kill the child if its handle is dropped before it was waited for.
    pub kill_on_drop: bool,
}

impl StepCommand {
    /// A step with piped output in its own process group and no command channel.
    pub fn new(program: &Path) -> StepCommand {
        StepCommand {
            program: program.to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
            clear_env: false,
            cwd: None,
            own_group: true,
            comfd: false,
            stdout: Sink::Piped,
            stderr: Sink::Piped,
            kill_on_drop: true,
        }
    }
}

/// A started step.
#[derive(Debug)]
pub struct Spawned {
    pub child: Child,
    /// Process id (and process group id when `own_group` was set); 0 if unknown.
    pub pid: u32,
    pub stdout: Option<ChildStdout>,
    pub stderr: Option<ChildStderr>,
    /// Read end of the command channel.
    pub comfd: Option<pipe::Receiver>,
}

/// Start `cmd` with `stdin` as its standard input. The error is the OS
/// error of the failed `exec` (or of the pipe setup).
pub fn spawn(cmd: &StepCommand, stdin: Vec<u8>) -> io::Result<Spawned> {
    let mut command = tokio::process::Command::new(&cmd.program);
    if cmd.clear_env {
        command.env_clear();
    }
    command
        .args(&cmd.args)
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(sink(cmd.stdout)?)
        .stderr(sink(cmd.stderr)?)
        .kill_on_drop(cmd.kill_on_drop);
    if let Some(dir) = &cmd.cwd {
        command.current_dir(dir);
    }
    if cmd.own_group {
        command.process_group(0);
    }
    let channel = if cmd.comfd { Some(command_pipe()?) } else { None };
    if let Some((_, write_end)) = &channel {
        let fd = write_end.as_raw_fd();
        // SAFETY: the closure runs in the forked child before exec and only
        // calls async-signal-safe functions (dup2, fcntl) on an fd that
        // stays open in the parent until spawn returns.
        unsafe {
            command.pre_exec(move || place_at_comfd(fd));
        }
    }
    let mut child = command.spawn()?;
    let comfd = match channel {
        // The parent's copy of the write end closes here, so the read end
        // sees EOF once the step and everything it started have closed theirs.
        Some((read_end, write_end)) => {
            drop(write_end);
            Some(pipe::Receiver::from_owned_fd(read_end)?)
        }
        None => None,
    };
    let pid = child.id().unwrap_or(0);
    if let Some(mut input) = child.stdin.take() {
        tokio::spawn(async move {
            // A step that never reads its input closes the pipe: not an error.
            let _ = input.write_all(&stdin).await;
        });
    }
    Ok(Spawned { pid, stdout: child.stdout.take(), stderr: child.stderr.take(), comfd, child })
}

fn sink(s: Sink) -> io::Result<Stdio> {
    Ok(match s {
        Sink::Piped => Stdio::piped(),
        Sink::Null => Stdio::null(),
        Sink::AgentStderr => {
            use std::os::fd::AsFd;
            Stdio::from(io::stderr().as_fd().try_clone_to_owned()?)
        }
    })
}

/// A close-on-exec pipe whose write end is numbered above the standard fds,
/// so the child's stdio setup cannot overwrite it.
fn command_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two fds into the array on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    let (read_end, write_end) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    if write_end.as_raw_fd() > COMFD {
        return Ok((read_end, write_end));
    }
    // SAFETY: F_DUPFD_CLOEXEC returns a new fd (or -1) without touching memory.
    let high = unsafe { libc::fcntl(write_end.as_raw_fd(), libc::F_DUPFD_CLOEXEC, COMFD + 1) };
    if high < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `high` is a fresh fd owned by nobody else.
    Ok((read_end, unsafe { OwnedFd::from_raw_fd(high) }))
}

/// In the child: make `fd` available as [`COMFD`] across exec.
fn place_at_comfd(fd: RawFd) -> io::Result<()> {
    // SAFETY: dup2 and fcntl on plain integers; both are async-signal-safe.
    unsafe {
        if libc::dup2(fd, COMFD) < 0 {
            return Err(io::Error::last_os_error());
        }
        // dup2 clears close-on-exec on the new fd; make sure of it anyway.
        let flags = libc::fcntl(COMFD, libc::F_GETFD);
        if flags >= 0 {
            libc::fcntl(COMFD, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_script as script;
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn command_channel_and_stdio() {
        let d = tempfile::tempdir().unwrap();
        let mut cmd = StepCommand::new(&script(d.path(), "cat; echo err >&2; echo 'set-progress 5' >&3"));
        cmd.comfd = true;
        let mut s = spawn(&cmd, b"in".to_vec()).unwrap();
        let (mut out, mut err, mut com) = (String::new(), String::new(), String::new());
        s.stdout.take().unwrap().read_to_string(&mut out).await.unwrap();
        s.stderr.take().unwrap().read_to_string(&mut err).await.unwrap();
        s.comfd.take().unwrap().read_to_string(&mut com).await.unwrap();
        assert!(s.child.wait().await.unwrap().success());
        assert_eq!((out.as_str(), err.as_str(), com.as_str()), ("in", "err\n", "set-progress 5\n"));
    }

    #[tokio::test]
    async fn exec_errors_come_back() {
        let d = tempfile::tempdir().unwrap();
        let e = spawn(&StepCommand::new(&d.path().join("missing")), Vec::new()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    }
}
