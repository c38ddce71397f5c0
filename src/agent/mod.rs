//! The agent: serves actions from its catalog to trusted dispatchers. This
//! file owns the shared agent state (config, catalog, trust, running
//! requests, run slots, shutdown) and its atomic reload. Front doors —
//! `server` (mTLS listener, one `session` per connection), `hub` (Redis
//! subscriber, and its load-test `swarm`) — all admit and run requests
//! through `request`; `builtins` answers the built-in actions. Loading and
//! reloading log a warning for each file that loads but will not work as
//! the operator expects (missing allowlist or trusted map, a listed script
//! that is missing or not executable, a missing hook).

pub mod builtins;
pub mod config;
pub mod files;
pub mod hub;
pub mod hub_replies;
pub mod pki_builtins;
pub mod request;
pub mod results;
pub mod self_check;
pub mod server;
pub mod session;
pub mod stdio;
pub mod swarm;
pub mod trust;
pub mod trust_edit;

use crate::exec::{Catalog, CatalogError, CatalogWarning};
pub use config::AgentConfig;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
pub use trust::{Trust, TrustError, TrustWarning};

/// Why the agent's files cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Trust(#[from] TrustError),
}

/// Parts a reload kept because their files did not load.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct ReloadError(pub Vec<String>);

/// Something in the agent's files that loads but will not work as meant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadWarning {
    #[error(transparent)]
    Catalog(#[from] CatalogWarning),
    #[error(transparent)]
    Trust(#[from] TrustWarning),
    #[error("hook {} does not exist or is not an executable file; every request will be denied", .0.display())]
    Hook(std::path::PathBuf),
}

/// A request that is running, for `cancel` and duplicate checks.
struct Running {
    dispatcher: String,
    cancel: watch::Sender<bool>,
    /// The process group of the step running now (0 before it starts).
    pgid: Arc<std::sync::atomic::AtomicU32>,
}

pub struct Agent {
    pub cfg: AgentConfig,
    catalog: RwLock<Arc<Catalog>>,
    trust: RwLock<Arc<Trust>>,
    running: Mutex<HashMap<String, Running>>,
    active: AtomicU32,
    pub started: Instant,
    /// Cancelled when the agent begins to stop: nothing new is admitted.
    stopping: CancellationToken,
    /// Every request task, so a stop can wait for their end reports.
    tasks: TaskTracker,
    /// Results of asynchronous requests, per owning dispatcher.
    pub results: results::Results,
    /// The mTLS server config, rebuilt when the certificate is renewed.
    tls: RwLock<Option<Arc<rustls::ServerConfig>>>,
}

impl Agent {
    /// Load catalog and trust; any error here stops start-up. Warnings are
    /// logged.
    pub fn new(cfg: AgentConfig) -> Result<Agent, LoadError> {
        let (catalog, mut warnings) = load_catalog(&cfg)?;
        let (trust, trust_warnings) = Trust::load(&cfg.state_dir)?;
        // Only mTLS uses the trusted map: a hub-only agent has no need of one.
        if cfg.tls {
            warnings.extend(trust_warnings.into_iter().map(LoadWarning::from));
        }
        warnings.extend(check_hook(&cfg));
        log_warnings(&warnings);
        Ok(Agent {
            catalog: RwLock::new(Arc::new(catalog)),
            trust: RwLock::new(Arc::new(trust)),
            running: Mutex::new(HashMap::new()),
            active: AtomicU32::new(0),
            started: Instant::now(),
            stopping: CancellationToken::new(),
            tasks: TaskTracker::new(),
            results: results::Results::new(&cfg.state_dir, std::time::Duration::from_secs(cfg.result_retention)),
            tls: RwLock::new(None),
            cfg,
        })
    }

    /// The current mTLS server config (`None` before [`Agent::reload_tls`]).
    pub fn tls(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.tls.read().ok().and_then(|t| t.clone())
    }

    /// Build the mTLS server config from the state dir's key, certificate
    /// and CA; new connections use it at once. On error the old one stays.
    pub fn reload_tls(&self) -> Result<(), crate::transport::tls::TlsError> {
        let c = server::tls_config(self)?;
        if let Ok(mut slot) = self.tls.write() {
            *slot = Some(c);
        }
        Ok(())
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn trust(&self) -> Arc<Trust> {
        self.trust.read().map(|t| t.clone()).unwrap_or_default()
    }

    /// Re-read the allowlist, run dirs, trusted map and revoked serials.
    /// Each part is replaced only if it loads whole; on error the old part
    /// stays and the error is returned for the log. Warnings are logged.
    pub fn reload(&self) -> Result<(), ReloadError> {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        match load_catalog(&self.cfg) {
            Ok((c, w)) => {
                warnings.extend(w);
                if let Ok(mut slot) = self.catalog.write() {
                    *slot = Arc::new(c);
                }
            }
            Err(e) => errors.push(format!("kept the previous catalog: {e}")),
        }
        match Trust::load(&self.cfg.state_dir) {
            Ok((t, w)) => {
                warnings.extend(w.into_iter().map(LoadWarning::from));
                if let Ok(mut slot) = self.trust.write() {
                    *slot = Arc::new(t);
                }
            }
            Err(e) => errors.push(format!("kept the previous trust files: {e}")),
        }
        warnings.extend(check_hook(&self.cfg));
        log_warnings(&warnings);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ReloadError(errors))
        }
    }

    /// Take a run slot; `None` when `max_concurrent` are running. Every
    /// front door takes one before a request's hook or process starts, so
    /// hooks, processes and request tasks are all bounded by it.
    pub(crate) fn try_acquire(self: &Arc<Self>) -> Option<Slot> {
        let max = self.cfg.max_concurrent;
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| Slot(self.clone()))
    }

    /// Register a running request; false if the id is already running.
    pub(crate) fn register(
        &self,
        request_id: &str,
        dispatcher: &str,
        cancel: watch::Sender<bool>,
        pgid: Arc<std::sync::atomic::AtomicU32>,
    ) -> bool {
        let Ok(mut map) = self.running.lock() else { return false };
        if map.contains_key(request_id) {
            return false;
        }
        map.insert(request_id.into(), Running { dispatcher: dispatcher.into(), cancel, pgid });
        true
    }

    /// Kill a running request of `dispatcher` at once: SIGKILL to the
    /// process group of its current step (no grace). False when it does not
    /// run, is another dispatcher's, or has no process yet.
    pub fn kill(&self, request_id: &str, dispatcher: &str) -> bool {
        let Ok(map) = self.running.lock() else { return false };
        match map.get(request_id) {
            Some(r) if r.dispatcher == dispatcher => {
                let pgid = r.pgid.load(Ordering::Acquire);
                let _ = r.cancel.send(true);
                if pgid > 1 {
                    crate::exec::runner::signal_group(pgid, libc::SIGKILL);
                }
                pgid > 1
            }
            _ => false,
        }
    }

    pub(crate) fn unregister(&self, request_id: &str) {
        if let Ok(mut map) = self.running.lock() {
            map.remove(request_id);
        }
    }

    /// Cancel a running request owned by `dispatcher`.
    pub fn cancel(&self, request_id: &str, dispatcher: &str) -> bool {
        let Ok(map) = self.running.lock() else { return false };
        match map.get(request_id) {
            Some(r) if r.dispatcher == dispatcher => {
                let _ = r.cancel.send(true);
                true
            }
            _ => false,
        }
    }

    /// True while the request id is running.
    pub fn is_running(&self, request_id: &str) -> bool {
        self.running.lock().map(|m| m.contains_key(request_id)).unwrap_or(false)
    }

    pub fn active(&self) -> u32 {
        self.active.load(Ordering::Acquire)
    }

    /// Cancelled once the agent begins to stop.
    pub fn stopping(&self) -> CancellationToken {
        self.stopping.clone()
    }

    /// Spawn a request task that a stop waits for.
    pub(crate) fn spawn_request<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(fut);
    }

    /// Begin to stop: admit nothing new and cancel every running request
    /// (TERM to its process group, KILL after the kill grace); each reports
    /// `cancelled` to whoever asked for it.
    pub fn begin_stop(&self) {
        self.stopping.cancel();
        if let Ok(map) = self.running.lock() {
            for (id, r) in map.iter() {
                tracing::info!(request = %id, dispatcher = %r.dispatcher, "stopping: cancelling the request");
                let _ = r.cancel.send(true);
            }
        }
    }

    /// Wait until every request task has ended, at most `limit`; false if
    /// some were still running.
    pub async fn wait_requests(&self, limit: Duration) -> bool {
        self.tasks.close();
        tokio::time::timeout(limit, self.tasks.wait()).await.is_ok()
    }
}

/// A held run slot, released on drop.
pub(crate) struct Slot(Arc<Agent>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

fn load_catalog(cfg: &AgentConfig) -> Result<(Catalog, Vec<LoadWarning>), CatalogError> {
    let (mut catalog, mut warnings) = Catalog::load(cfg.allowlist.as_deref(), &cfg.run_dirs)?;
    warnings.extend(catalog.add_roots(&cfg.action_roots));
    Ok((catalog, warnings.into_iter().map(LoadWarning::from).collect()))
}

fn check_hook(cfg: &AgentConfig) -> Option<LoadWarning> {
    let hook = cfg.hook.as_ref()?;
    (!crate::exec::roots::is_executable(hook)).then(|| LoadWarning::Hook(hook.clone()))
}

fn log_warnings(warnings: &[LoadWarning]) {
    for w in warnings {
        tracing::warn!("{w}");
    }
}
