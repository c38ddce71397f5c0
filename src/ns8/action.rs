//! One task's action, step by step, with the original's observable
//! sequence: publish `pending`; for each step read `./environment`, run the
//! schema checks in place (`validate-input.json` first, `validate-output.json`
//! last), publish `running` before the first executable step, run the step
//! with the task data on stdin, stdout collected, stderr copied to the
//! agent's stderr and collected, commands read from fd 3, the status
//! republished every polling interval while it runs; then store output,
//! error, exit code and final status in one transaction (and the
//! environment hash when the action completed) and log one line.
//! Statuses published between two Redis writes that matter (the start of
//! a step, the final transaction) travel together with the next one in a
//! single round trip ([`super::Held`]); the order subscribers see is the
//! original's.
//! A step file that vanished or lost its exec bit is skipped with a warning
//! (the original suite's "missing step" cases); a present, executable step
//! the OS still cannot exec aborts the action with exit code 9. File work
//! (the root scan, `./environment`, schema files, the skip check) runs on
//! the blocking pool (`super::off_worker`), never on an async worker.

use super::comfd::{self, Effect};
use super::log::{errno_text, log, ERR, INFO, WARNING};
use super::progress::{Processor, ABORTED, COMPLETED, PENDING, RUNNING, VALIDATION_FAILED};
use super::task::Task;
use super::{envfile, gojson, off_worker, validate, Agent, Held, Outcome};
use crate::exec::roots::{self, RootAction};
use crate::exec::step::{self, StepCommand};
use crate::exec::vspawn;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

enum Kind {
    Input(PathBuf),
    Exec(PathBuf),
    Output(PathBuf),
}

struct Planned {
    name: String,
    kind: Kind,
}

/// The steps in run order, schema checks included.
fn plan(found: RootAction) -> Vec<Planned> {
    let mut out = Vec::new();
    if let Some(p) = found.validate_input {
        out.push(Planned { name: roots::VALIDATE_INPUT.into(), kind: Kind::Input(p) });
    }
    out.extend(found.steps.into_iter().map(|s| Planned { name: s.name, kind: Kind::Exec(s.path) }));
    if let Some(p) = found.validate_output {
        out.push(Planned { name: roots::VALIDATE_OUTPUT.into(), kind: Kind::Output(p) });
    }
    out
}

enum Flow {
    Next,
    Stop,
}

pub async fn run(agent: &Agent, task: &Task, mut cancel: watch::Receiver<bool>) {
    let (roots, name) = (agent.cfg.action_roots.clone(), task.action.clone());
    let found = off_worker(move || roots::scan_action(&roots, &name)).await.unwrap_or_else(|e| {
        log!(ERR, "Action {} scan failed: {e}", task.action);
        RootAction::default()
    });
    let plan = plan(found);
    let weights = plan.iter().map(|p| (p.name.clone(), if matches!(p.kind, Kind::Exec(_)) { 1 } else { 0 })).collect();
    let mut proc = Processor::new(weights);
    let mut out = Outcome::default();
    let mut last_step = "{unknown}".to_string();
    let mut held = Held::default();
    held.publish(agent, &task.id, &proc);
    if plan.is_empty() {
        out.error = format!("Action {} is not defined\n", task.action).into_bytes();
        out.exit_code = 8;
        proc.status = ABORTED;
        log!(ERR, "Action {} is not defined", task.action);
    }
    for (index, planned) in plan.iter().enumerate() {
        last_step = planned.name.clone();
        // Read on every step, so values written by earlier steps are seen.
        let env = envfile::read_async().await;
        let flow = match &planned.kind {
            Kind::Input(path) => check_input(task, path, &mut proc, &mut out).await,
            Kind::Output(path) => check_output(task, path, &mut proc, &mut out).await,
            Kind::Exec(path) => {
                if proc.status == PENDING {
                    proc.status = RUNNING;
                    held.publish(agent, &task.id, &proc);
                }
                let step = Step { index, name: &planned.name, path };
                run_step(agent, task, &step, &env, &mut proc, &mut out, &mut cancel, &mut held).await
            }
        };
        if let Flow::Stop = flow {
            break;
        }
    }
    if out.exit_code == 0 && proc.status == RUNNING {
        proc.status = COMPLETED;
    }
    // Read (and log a read error) every time, as the original does; the
    // hash is replaced only after a completed action.
    let env = envfile::read_async().await;
    agent.finish_after(&task.id, &mut held, &proc, &out, (proc.status == COMPLETED).then_some(env.as_slice())).await;
    agent.log_end(task, &proc, &out, &last_step);
}

/// A schema that could not be applied aborts the action with exit 1.
fn abort_validation(
    which: &str,
    path: &Path,
    fault: &dyn std::fmt::Display,
    proc: &mut Processor,
    out: &mut Outcome,
) -> Flow {
    let msg = format!("JSON Schema {which} validation aborted at step {}: {fault}\n", path.display());
    log!(ERR, "{msg}");
    out.error.extend_from_slice(msg.as_bytes());
    proc.status = ABORTED;
    out.exit_code = 1;
    Flow::Stop
}

async fn check_input(task: &Task, path: &Path, proc: &mut Processor, out: &mut Outcome) -> Flow {
    match validate::check_async(path.to_path_buf(), task.data.clone()).await {
        Err(fault) => abort_validation("input", path, &fault, proc, out),
        Ok(problems) if !problems.is_empty() => {
            let text = validate::to_text(&problems);
            out.error.extend_from_slice(format!("Validation errors: {text}\n").as_bytes());
            out.output.extend_from_slice(validate::to_json(&problems).as_bytes());
            out.exit_code = 10;
            proc.status = VALIDATION_FAILED;
            log!(ERR, "Action {} {} at step {}: {text}", task.action, proc.status, path.display());
            Flow::Stop
        }
        Ok(_) => Flow::Next,
    }
}

async fn check_output(task: &Task, path: &Path, proc: &mut Processor, out: &mut Outcome) -> Flow {
    match validate::check_output_async(path.to_path_buf(), out.output.clone()).await {
        Err(fault) => abort_validation("output", path, &fault, proc, out),
        Ok(problems) if !problems.is_empty() => {
            let text = validate::to_text(&problems);
            out.error.extend_from_slice(format!("Validation errors: {text}\n").as_bytes());
            out.exit_code = 1;
            proc.status = ABORTED;
            log!(ERR, "Action {} {} at step {}: {text}", task.action, proc.status, path.display());
            Flow::Stop
        }
        Ok(_) => Flow::Next,
    }
}

struct Step<'a> {
    index: usize,
    name: &'a str,
    path: &'a Path,
}

/// What the pipe readers report to the step loop.
enum Event {
    Command(comfd::Record),
    Closed,
}

/// Run one executable step. The statuses `held` go out before it starts;
/// the status after it (100% of the step) is held for the next write.
#[allow(clippy::too_many_arguments)]
async fn run_step(
    agent: &Agent,
    task: &Task,
    step: &Step<'_>,
    env: &[(String, String)],
    proc: &mut Processor,
    out: &mut Outcome,
    cancel: &mut watch::Receiver<bool>,
    held: &mut Held,
) -> Flow {
    let mut vars: Vec<(String, String)> = envfile::for_child(env).collect();
    vars.extend([
        ("AGENT_COMFD".to_string(), step::COMFD.to_string()),
        ("AGENT_TASK_ID".to_string(), task.id.clone()),
        ("AGENT_TASK_ACTION".to_string(), task.action.clone()),
        ("AGENT_TASK_USER".to_string(), task.user.clone()),
    ]);
    let spec = StepCommand { env: vars, comfd: true, kill_on_drop: false, ..StepCommand::new(step.path) };
    agent.flush(&task.id, held).await;
    let spawned = match vspawn::spawn(&spec, gojson::encode(&task.data).into_bytes()) {
        Ok(s) => s,
        Err(e) => {
            let why = format!("fork/exec {}: {}", step.path.display(), errno_text(&e));
            if skippable(step.path, &e).await {
                log!(WARNING, "Action {} skipped step {}: {why}", task.action, step.name);
                let _ = proc.set_progress_at_step(step.index, 100);
                held.publish(agent, &task.id, proc);
                return Flow::Next;
            }
            let msg = format!("Action {} failed at step {}: {why}", task.action, step.name);
            log!(ERR, "{msg}");
            out.error.extend_from_slice(format!("{msg}\n").as_bytes());
            out.exit_code = 9;
            proc.status = ABORTED;
            return Flow::Stop;
        }
    };
    log!(INFO, "task/{}/{}: {}/{} is starting", agent.cfg.id, task.id, task.action, step.name);
    let vspawn::Started { mut child, pid, stdout, stderr, comfd } = spawned;
    let (tx, mut rx) = mpsc::channel::<Event>(64);
    let stdout = tokio::spawn(collect(stdout, false, tx.clone()));
    let stderr = tokio::spawn(collect(stderr, true, tx.clone()));
    tokio::spawn(read_commands(comfd, tx));

    let polling = agent.polling();
    let mut beat = Instant::now() + polling;
    let mut open = 3;
    let mut signalled = false;
    while open > 0 {
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(Event::Command(record)) => {
                    if comfd::apply(&record, proc, step.index) == Effect::Publish {
                        agent.publish(&task.id, proc).await;
                    }
                }
                Some(Event::Closed) => {
                    open -= 1;
                    beat = Instant::now() + polling;
                }
                None => break,
            },
            _ = cancelled(cancel), if !signalled => {
                signalled = true;
                beat = Instant::now() + polling;
                log!(WARNING, "task/{}/{}: Sending TERM signal to action \"{}\" at step {}",
                    agent.cfg.id, task.id, task.action, step.name);
                terminate_group(pid);
            }
            _ = tokio::time::sleep_until(beat) => {
                agent.publish(&task.id, proc).await;
                beat = Instant::now() + polling;
            }
        }
    }
    let status = child.wait().await;
    out.output.extend(stdout.await.unwrap_or_default());
    out.error.extend(stderr.await.unwrap_or_default());
    let code = match status {
        Ok(s) if s.success() => 0,
        Ok(s) => s.code().unwrap_or(-1),
        Err(_) => -1,
    };
    if code != 0 {
        out.exit_code = code;
        if proc.status == RUNNING {
            proc.status = ABORTED;
        }
        return Flow::Stop;
    }
    if proc.status == VALIDATION_FAILED {
        out.exit_code = 10;
        log!(
            WARNING,
            "Action \"{}\" validation-failed at step {}. Exit code is not set! Forced to 10",
            task.action,
            step.path.display()
        );
        return Flow::Stop;
    }
    let _ = proc.set_progress_at_step(step.index, 100);
    held.publish(agent, &task.id, proc);
    Flow::Next
}

/// A step that is gone, or no longer an executable file, is skipped
/// (the check stats the file, on the blocking pool).
pub async fn skippable(path: &Path, e: &std::io::Error) -> bool {
    let (path, errno) = (path.to_path_buf(), e.raw_os_error());
    off_worker(move || match errno {
        Some(libc::ENOENT) => std::fs::symlink_metadata(&path).is_err(),
        Some(libc::EACCES) => !roots::is_executable(&path),
        _ => false,
    })
    .await
    .unwrap_or(false)
}

/// Resolve when the task is cancelled; never if it cannot be anymore.
pub async fn cancelled(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// TERM to the step's process group, logging a failure as the original.
fn terminate_group(pid: u32) {
    let Ok(pgid) = libc::pid_t::try_from(pid) else { return };
    // SAFETY: kill has no memory-safety preconditions.
    if pgid > 1 && unsafe { libc::kill(-pgid, libc::SIGTERM) } != 0 {
        log!(ERR, "Kill failed: {}", errno_text(&std::io::Error::last_os_error()));
    }
}

/// Read a pipe to its end; with `tee`, copy each chunk to the agent's stderr.
async fn collect<R: AsyncRead + Unpin>(pipe: Option<R>, tee: bool, tx: mpsc::Sender<Event>) -> Vec<u8> {
    let mut all = Vec::new();
    if let Some(mut pipe) = pipe {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match pipe.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tee {
                        super::log::raw(&buf[..n]);
                    }
                    all.extend_from_slice(&buf[..n]);
                }
            }
        }
    }
    let _ = tx.send(Event::Closed).await;
    all
}

async fn read_commands<R: AsyncRead + Unpin>(pipe: Option<R>, tx: mpsc::Sender<Event>) {
    if let Some(pipe) = pipe {
        let mut reader = BufReader::new(pipe);
        let mut parser = comfd::Parser::default();
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if let Some(record) = parser.feed(&String::from_utf8_lossy(&line)) {
                        let _ = tx.send(Event::Command(record)).await;
                    }
                }
            }
        }
        if let Some(record) = parser.finish() {
            let _ = tx.send(Event::Command(record)).await;
        }
    }
    let _ = tx.send(Event::Closed).await;
}
