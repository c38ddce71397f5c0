//! The NethServer ns8 agent on Redis, a drop-in replacement for ns8-core's
//! Go agent (`core/agent`): it pops JSON tasks from `<agent-id>/tasks`,
//! runs the action's steps from the action roots (through `exec`), and
//! writes what ns8 clients read: `task/<agent-id>/<task-id>/{context,
//! output,error,exit_code}` (8 h TTL), the status on
//! `progress/<agent-id>/task/<task-id>`, and the `<agent-id>/environment`
//! hash. It also runs event handlers for `*/event/*` messages. SIGUSR1
//! drains and exits 0; SIGTERM keeps its default action (immediate end).
//! Files: `config` (arguments and environment), `queue` (the task loop),
//! `action` (one task's steps), `builtin` (list-actions, cancel-task),
//! `events`, `validate` (JSON Schema), `comfd` (step commands), `progress`,
//! `task` and `gojson` (wire formats; a stored context is masked by
//! `exec::secrets`), `link` and `resp` (Redis; `resp::parse` is the pure,
//! capped RESP2 parser), `log`. File work runs through [`off_worker`].

mod action;
mod builtin;
pub mod comfd;
pub mod config;
pub mod envfile;
mod events;
pub mod gojson;
mod link;
mod log;
pub mod progress;
mod queue;
pub mod resp;
pub mod task;
mod validate;

use clap::Args;
use log::{log, ERR, WARNING};
use progress::Processor;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;

/// Results and contexts expire after 8 hours.
pub const TASK_TTL_SECS: u64 = 8 * 3600;

/// `muster ns8-agent [--agentid ID] [ID] [ROOT...] [--actionsdir D]... [--eventsdir D]...`
#[derive(Args, Debug, Clone)]
pub struct Ns8Args {
    /// Agent ID and default Redis user name, e.g. module/mail1
    #[arg(long, value_name = "ID")]
    pub agentid: Option<String>,
    /// The agent ID (when --agentid is not given), then action root directories
    #[arg(value_name = "ID_AND_ROOTS")]
    pub positional: Vec<String>,
    /// Directory with action definitions (repeatable; later ones win)
    #[arg(long, value_name = "DIR")]
    pub actionsdir: Vec<String>,
    /// Directory with event handler definitions (repeatable; later ones win)
    #[arg(long, value_name = "DIR")]
    pub eventsdir: Vec<String>,
}

/// Run the agent until it is drained (SIGUSR1) and return its exit status.
pub fn main(args: Ns8Args) -> anyhow::Result<u8> {
    let built = config::build(args.agentid.as_deref(), &args.positional, &args.actionsdir, &args.eventsdir, |k| {
        std::env::var(k).ok()
    });
    let cfg = match built {
        Ok(c) => c,
        Err(e) => {
            log!(log::EMERG, "{e}");
            return Ok(1);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(cfg))?;
    Ok(0)
}

async fn run(cfg: config::Config) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let agent = std::sync::Arc::new(Agent::new(cfg));
    let (drain_tx, drain_rx) = watch::channel(false);
    tokio::spawn(async move {
        if usr1.recv().await.is_some() {
            // Like Go's signal.Stop: a second SIGUSR1 gets the default action.
            // SAFETY: restoring a default disposition has no memory effects.
            unsafe {
                libc::signal(libc::SIGUSR1, libc::SIG_DFL);
            }
            log!(WARNING, "Signal \"user defined signal 1\" caught: shutdown started.");
            let _ = drain_tx.send(true);
        }
    });
    let (stop_events, events_stopped) = watch::channel(false);
    let listener = tokio::spawn(events::listen(agent.clone(), events_stopped));
    queue::serve(agent.clone(), drain_rx).await;
    // Tasks are done; stop listening for events and let running handlers end.
    let _ = stop_events.send(true);
    let _ = listener.await;
    Ok(())
}

/// State shared by the task loop, the task workers and the event listener.
pub struct Agent {
    pub cfg: config::Config,
    redis: link::Link,
    /// Running tasks by id: a generation (so a finished task never removes
    /// a newer one with the same id) and the sender that cancels it.
    running: Mutex<HashMap<String, (u64, watch::Sender<bool>)>>,
    generation: AtomicU64,
    /// Number of task workers alive.
    workers: watch::Sender<usize>,
}

impl Agent {
    pub fn new(cfg: config::Config) -> Agent {
        let redis = link::Link::new(cfg.tasks.clone());
        Agent {
            cfg,
            redis,
            running: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            workers: watch::channel(0).0,
        }
    }

    /// `task/<agent-id>/<task-id>/<what>`
    pub fn key(&self, task_id: &str, what: &str) -> String {
        format!("task/{}/{task_id}/{what}", self.cfg.id)
    }

    /// `progress/<agent-id>/task/<task-id>`
    pub fn channel(&self, task_id: &str) -> String {
        format!("progress/{}/task/{task_id}", self.cfg.id)
    }

    fn publish_cmd(&self, task_id: &str, proc: &Processor) -> redis::Cmd {
        redis::cmd("publish").arg(self.channel(task_id)).arg(proc.to_json()).clone()
    }

    /// Publish the task's status now.
    pub async fn publish(&self, task_id: &str, proc: &Processor) {
        if self.redis.query::<redis::Value>(&self.publish_cmd(task_id, proc)).await.is_err() {
            log!(ERR, "Failed to publish the action status on channel {}", self.channel(task_id));
        }
    }

    /// Publish held statuses (see [`Held`]) in one round trip, in order.
    pub async fn flush(&self, task_id: &str, held: &mut Held) {
        if held.0.is_empty() {
            return;
        }
        let cmds = std::mem::take(&mut held.0);
        if self.redis.pipeline(&cmds).await.is_err() {
            log!(ERR, "Failed to publish the action status on channel {}", self.channel(task_id));
        }
    }

    /// Store a task's result and publish its final status in one
    /// transaction; with `env`, first replace the environment hash.
    pub async fn finish(&self, task_id: &str, proc: &Processor, result: &Outcome, env: Option<&[(String, String)]>) {
        self.finish_after(task_id, &mut Held::default(), proc, result, env).await
    }

    /// [`Agent::finish`], with the statuses still `held` published first
    /// (before the transaction, in the same round trip).
    pub async fn finish_after(
        &self,
        task_id: &str,
        held: &mut Held,
        proc: &Processor,
        result: &Outcome,
        env: Option<&[(String, String)]>,
    ) {
        let set = |what: &str, value: &[u8]| {
            redis::cmd("set").arg(self.key(task_id, what)).arg(value).arg("ex").arg(TASK_TTL_SECS).clone()
        };
        let mut cmds = Vec::new();
        if let Some(env) = env {
            let hash = format!("{}/environment", self.cfg.id);
            cmds.push(redis::cmd("del").arg(&hash).clone());
            if !env.is_empty() {
                let mut hset = redis::cmd("hset");
                hset.arg(&hash);
                for (k, v) in env {
                    hset.arg(k).arg(v);
                }
                cmds.push(hset);
            }
        }
        cmds.push(set("output", &result.output));
        cmds.push(set("error", &result.error));
        cmds.push(set("exit_code", result.exit_code.to_string().as_bytes()));
        cmds.push(self.publish_cmd(task_id, proc));
        let before = std::mem::take(&mut held.0);
        if let Err(e) = self.redis.transaction(&before, &cmds).await {
            log!(ERR, "Redis command failed: {}", link::error_text(&e, &self.cfg.tasks.address));
        }
    }

    /// The last log line of every task.
    pub fn log_end(&self, task: &task::Task, proc: &Processor, result: &Outcome, last_step: &str) {
        log!(
            log::INFO,
            "task/{}/{}: action \"{}\" status is \"{}\" ({}) at step {last_step}",
            self.cfg.id,
            task.id,
            task.action,
            proc.status,
            result.exit_code
        );
    }

    /// Register a starting task; returns its generation and cancel receiver.
    fn register(&self, task_id: &str) -> (u64, watch::Receiver<bool>) {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(false);
        if let Ok(mut map) = self.running.lock() {
            map.insert(task_id.to_string(), (generation, tx));
        }
        self.workers.send_modify(|n| *n += 1);
        (generation, rx)
    }

    fn unregister(&self, task_id: &str, generation: u64) {
        if let Ok(mut map) = self.running.lock() {
            if map.get(task_id).is_some_and(|(g, _)| *g == generation) {
                map.remove(task_id);
            }
        }
        self.workers.send_modify(|n| *n = n.saturating_sub(1));
    }

    /// Ask a running task to stop; false when no task has that id.
    pub fn cancel(&self, task_id: &str) -> bool {
        let Ok(map) = self.running.lock() else { return false };
        match map.get(task_id) {
            Some((_, tx)) => {
                let _ = tx.send(true);
                true
            }
            None => false,
        }
    }

    pub fn busy_workers(&self) -> usize {
        *self.workers.borrow()
    }

    /// Resolve once no task worker is running.
    pub async fn idle(&self) {
        let mut rx = self.workers.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    pub fn polling(&self) -> Duration {
        self.cfg.polling
    }
}

/// Run blocking file work (directory scans, `./environment`, schema
/// files) on tokio's blocking pool so a slow disk never stalls the async
/// workers that serve Redis. `Err` only when `work` panicked.
pub async fn off_worker<T, F>(work: F) -> Result<T, tokio::task::JoinError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    tokio::task::spawn_blocking(work).await
}

/// Resolve once `flag` is true (or can no longer change).
pub async fn until(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|f| *f).await;
}

/// Status updates of one task not yet sent: a step's action publishes
/// them in order, but sends them together with the next Redis write that
/// must precede something observable (a step starting, the final
/// transaction), so a task costs one round trip per step instead of one
/// per status. Subscribers see the same statuses in the same order.
#[derive(Debug, Default)]
pub struct Held(Vec<redis::Cmd>);

impl Held {
    /// Queue the task's status as it is now.
    pub fn publish(&mut self, agent: &Agent, task_id: &str, proc: &Processor) {
        self.0.push(agent.publish_cmd(task_id, proc));
    }
}

/// What a task leaves in its keys.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub output: Vec<u8>,
    pub error: Vec<u8>,
    pub exit_code: i32,
}
