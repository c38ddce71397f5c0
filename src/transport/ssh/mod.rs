//! The SSH carrier (seed 003): reach hosts that run no muster service over
//! the SSH access operators already have. It drives the system OpenSSH
//! client, so `~/.ssh/config`, keys, agents, jump hosts and known_hosts
//! work as they do for the user; connections are multiplexed
//! (ControlMaster, kept 60 s), so a second run pays no handshake. Opening
//! a session: check the host's architecture and whether this binary is
//! installed there (`install`), copy it when it is not (unless
//! `--no-install`), then start `muster agent stdio` and speak the agent
//! protocol on its stdin/stdout. A failure is unreachable when SSH could
//! not connect, refused when the host refused us (authentication, host
//! key) or cannot run the agent.

pub mod config;
pub mod install;

use super::carrier::{BoxFuture, BoxRead, BoxWrite, Dialer, OpenError, Reason, Session, Target};
use super::{FrameReader, FrameWriter};
use crate::protocol::Role;
use config::{split_address, SshConfig};
use install::{AgentBinary, InstallState, Installed};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::process::{Child, ChildStdout, Command};

/// The SSH carrier.
pub struct SshCarrier {
    /// The ssh client to run (`ssh`).
    pub ssh: PathBuf,
    pub config: SshConfig,
    /// Where ControlMaster sockets live (0700).
    pub control_dir: PathBuf,
    /// Bounds connecting (ssh ConnectTimeout); four of it, at least 30 s,
    /// bound each remote check and the agent's Hello, and a copy gets 1 s
    /// per MiB more once it has its turn.
    pub connect_timeout: Duration,
    /// Copy the agent to hosts that lack it.
    pub install: bool,
    pub binary: Arc<AgentBinary>,
    pub installs: Arc<InstallState>,
    /// Where each host's agent's stderr is logged.
    pub log_dir: PathBuf,
}

/// A child's stdout that owns the child: dropping the reader ends the ssh
/// client (and with it the remote agent's stdin).
struct ChildReader {
    out: ChildStdout,
    _child: Child,
}

impl AsyncRead for ChildReader {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.out).poll_read(cx, buf)
    }
}

/// Classify an ssh failure from its stderr.
fn failure(target: &Target, stderr: &str) -> OpenError {
    let text = stderr.trim();
    let last = text.lines().last().unwrap_or("ssh failed").to_string();
    let detail = format!("ssh {}: {last}", target.addr);
    let refused = ["Permission denied", "Host key verification failed", "IDENTIFICATION HAS CHANGED", "no matching"];
    match refused.iter().find(|r| text.contains(**r)) {
        Some(r) => OpenError::Refused(Reason::new(
            if *r == "Permission denied" { "ssh authentication failed" } else { "ssh host key refused" },
            detail,
        )),
        None => {
            let kind = if text.contains("Connection refused") {
                "connection refused"
            } else if text.contains("timed out") {
                "no answer"
            } else if text.contains("resolve") {
                "unknown host"
            } else {
                "ssh failed"
            };
            OpenError::Unreachable(Reason::new(kind, detail))
        }
    }
}

/// Does this stderr come from the ssh client failing (rather than from
/// the remote side)?
fn is_ssh_error(stderr: &str) -> bool {
    ["ssh:", "Permission denied", "Connection", "Host key verification", "IDENTIFICATION HAS CHANGED", "no matching"]
        .iter()
        .any(|p| stderr.contains(p))
}

impl SshCarrier {
    /// A carrier whose control sockets, logs and install records live
    /// under `state/ssh`.
    pub fn new(
        state: &Path,
        config: SshConfig,
        connect_timeout: Duration,
        install: bool,
    ) -> std::io::Result<SshCarrier> {
        let base = state.join("ssh");
        // Unix socket paths are short: fall back to /tmp when the state dir is deep.
        let mut control_dir = base.join("cm");
        if control_dir.as_os_str().len() > 60 {
            // SAFETY: getuid has no preconditions.
            control_dir = std::env::temp_dir().join(format!("muster-cm-{}", unsafe { libc::getuid() }));
        }
        for d in [&base, &control_dir] {
            std::fs::create_dir_all(d)?;
            std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        }
        Ok(SshCarrier {
            ssh: PathBuf::from("ssh"),
            config,
            control_dir,
            connect_timeout,
            install,
            binary: Arc::new(AgentBinary::current()?),
            installs: Arc::new(InstallState::new(state)),
            log_dir: base.join("logs"),
        })
    }

    /// `ssh [options] DEST -- REMOTE` for `target`, with stderr to `err`.
    fn command(&self, target: &Target, remote: &str, err: Stdio) -> Command {
        let (dest, port) = split_address(&target.addr);
        let mut c = Command::new(&self.ssh);
        c.args(["-o", "BatchMode=yes", "-o", "ControlMaster=auto", "-o", "ControlPersist=60"])
            .arg("-o")
            .arg(format!("ControlPath={}/%C", self.control_dir.display()))
            .arg("-o")
            .arg(format!("ConnectTimeout={}", self.connect_timeout.as_secs().max(1)))
            .args(self.config.options(&target.name));
        if let Some(p) = port {
            c.arg("-p").arg(p.to_string());
        }
        c.arg(dest).arg("--").arg(remote).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(err).kill_on_drop(true);
        c
    }

    /// Run a short remote command, feeding `input`; returns its exit
    /// code, stdout and stderr. Stderr goes through a temporary file: a
    /// background ControlMaster may keep the pipe open.
    async fn oneshot(
        &self,
        target: &Target,
        remote: &str,
        input: Option<Vec<u8>>,
        limit: Duration,
    ) -> Result<(i32, String, String), OpenError> {
        let errfile =
            tempfile::tempfile().map_err(|e| OpenError::Unreachable(Reason::new("ssh failed", e.to_string())))?;
        let errcopy =
            errfile.try_clone().map_err(|e| OpenError::Unreachable(Reason::new("ssh failed", e.to_string())))?;
        let mut child = self.command(target, remote, Stdio::from(errcopy)).spawn().map_err(|e| {
            OpenError::Unreachable(Reason::new("no ssh client", format!("cannot run {}: {e}", self.ssh.display())))
        })?;
        let mut stdin = child.stdin.take();
        let feed = async move {
            if let (Some(s), Some(data)) = (stdin.as_mut(), input) {
                let _ = s.write_all(&data).await;
            }
            drop(stdin);
        };
        let (_, out) = tokio::time::timeout(limit, futures_util::future::join(feed, child.wait_with_output()))
            .await
            .map_err(|_| {
                OpenError::Unreachable(Reason::new(
                    "no answer",
                    format!("ssh {}: no answer within {limit:?}", target.addr),
                ))
            })?;
        let out = out.map_err(|e| OpenError::Unreachable(Reason::new("ssh failed", e.to_string())))?;
        let mut err = String::new();
        let mut f = errfile;
        use std::io::{Read, Seek};
        let _ = f.seek(std::io::SeekFrom::Start(0));
        let _ = f.take(64 * 1024).read_to_string(&mut err);
        Ok((out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).to_string(), err))
    }

    /// How long a short remote command may take: four connection
    /// budgets, at least 30 s.
    fn short_limit(&self) -> Duration {
        self.connect_timeout.saturating_mul(4).max(Duration::from_secs(30))
    }

    /// Run `script` on `target`'s host over the shared connection: exit
    /// code, stdout, stderr.
    pub async fn remote(&self, target: &Target, script: &str) -> Result<(i32, String, String), OpenError> {
        self.oneshot(target, script, None, self.short_limit()).await
    }

    /// Check the host's architecture and copy this binary there when it
    /// is absent; returns the install dir.
    async fn ensure_installed(&self, target: &Target) -> Result<String, OpenError> {
        let dir = self.config.install_dir(&target.name);
        let bin = &self.binary;
        let (code, out, err) =
            self.oneshot(target, &install::probe_script(&dir, bin), None, self.short_limit()).await?;
        if code == 255 {
            return Err(failure(target, &err));
        }
        let mut lines = out.lines();
        let arch = lines.next().unwrap_or_default().trim().to_string();
        let present = lines.next().map(str::trim) == Some("present");
        if code != 0 || arch.is_empty() {
            return Err(OpenError::Refused(Reason::new(
                "remote check failed",
                format!("{}: {}", target.addr, err.trim()),
            )));
        }
        if !install::same_arch(&arch, &bin.arch) {
            return Err(OpenError::Refused(Reason::new(
                "other architecture",
                format!(
                    "{} is {arch}, this muster is built for {}: install a muster for {arch} there",
                    target.addr, bin.arch
                ),
            )));
        }
        if present {
            return Ok(dir);
        }
        if !self.install {
            return Err(OpenError::Refused(Reason::new(
                "agent not installed",
                format!("{} has no {} in {dir}, and --no-install forbids copying it", target.addr, bin.file_name()),
            )));
        }
        // Wait for a turn to copy; the binary is read only then, so at most
        // COPIES_AT_ONCE copies of it are in memory.
        let _turn = self.installs.copies.acquire().await.map_err(|_| {
            OpenError::Refused(Reason::new("install failed", "the install queue is closed".to_string()))
        })?;
        let data = tokio::fs::read(&bin.path).await.map_err(|e| {
            OpenError::Refused(Reason::new("install failed", format!("cannot read {}: {e}", bin.path.display())))
        })?;
        let limit = install::copy_limit(self.short_limit(), data.len() as u64);
        let (code, _, err) = self.oneshot(target, &install::install_script(&dir, bin), Some(data), limit).await?;
        if code != 0 {
            return Err(if code == 255 {
                failure(target, &err)
            } else {
                OpenError::Refused(Reason::new("install failed", format!("{}: {}", target.addr, err.trim())))
            });
        }
        tracing::info!(host = %target.name, "installed {} in {dir}", bin.file_name());
        self.installs.record(
            &target.name,
            Installed {
                address: target.addr.clone(),
                dir: dir.clone(),
                file: bin.file_name(),
                version: bin.version.clone(),
                sha256: bin.sha256.clone(),
                arch,
                installed: crate::timefmt::now_rfc3339(),
            },
        );
        Ok(dir)
    }

    /// Open a session: start the agent where it is installed (one SSH
    /// session); where it is not, check the host, copy the agent, start
    /// it again.
    async fn dial(&self, target: &Target) -> Result<Session, OpenError> {
        let dir = self.config.install_dir(&target.name);
        match self.start(target, &dir).await? {
            Some(session) => Ok(session),
            None => {
                let dir = self.ensure_installed(target).await?;
                self.start(target, &dir).await?.ok_or_else(|| {
                    OpenError::Refused(Reason::new(
                        "agent did not start",
                        format!("{}: the agent was installed in {dir} but is not there at start", target.addr),
                    ))
                })
            }
        }
    }

    /// Start the agent in `dir` and exchange Hellos; `None` when this
    /// binary is not installed there.
    async fn start(&self, target: &Target, dir: &str) -> Result<Option<Session>, OpenError> {
        let _ = std::fs::create_dir_all(&self.log_dir);
        let log_path = self.log_dir.join(format!("{}.log", target.name.replace('/', "_")));
        let log = std::fs::File::create(&log_path)
            .map_err(|e| OpenError::Unreachable(Reason::new("ssh failed", format!("{}: {e}", log_path.display()))))?;
        let mut child = self
            .command(
                target,
                &install::start_script(dir, &self.binary, self.config.max_concurrent(&target.name)),
                Stdio::from(log),
            )
            .spawn()
            .map_err(|e| OpenError::Unreachable(Reason::new("no ssh client", e.to_string())))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(OpenError::Unreachable(Reason::new("ssh failed", "no pipes to the ssh client")));
        };
        let max = crate::protocol::DEFAULT_MAX_FRAME;
        let mut reader = FrameReader::new(Box::new(ChildReader { out: stdout, _child: child }) as BoxRead, max);
        let mut writer = FrameWriter::new(Box::new(stdin) as BoxWrite, max);
        let ours = super::hello(Role::Dispatcher, "ssh");
        match super::handshake(&mut reader, &mut writer, &ours, self.short_limit()).await {
            Ok(peer) => Ok(Some(Session { reader, writer, peer })),
            Err(e) => {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                if log.contains(install::ABSENT) {
                    return Ok(None);
                }
                if is_ssh_error(&log) {
                    return Err(failure(target, &log));
                }
                let tail = log.lines().last().unwrap_or("").to_string();
                Err(OpenError::Refused(Reason::new(
                    "agent did not start",
                    format!("{}: the agent did not answer ({e}) {tail}", target.addr),
                )))
            }
        }
    }
}

impl Dialer for SshCarrier {
    fn open<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<Session, OpenError>> {
        Box::pin(self.dial(target))
    }
}
