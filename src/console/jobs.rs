//! Console jobs (`bg CMD`): a run on the selection that goes on while the
//! operator types; when it ends, its grouped output and summary are
//! printed above the prompt (rustyline's external printer), so jobs end
//! and are reported in whatever order their hosts answer. `kill N`
//! cancels one like Ctrl-C cancels a foreground run.

use crate::dispatch::event::Event;
use crate::dispatch::outcome;
use crate::dispatch::output::{Mode, Printer as Output};
use crate::dispatch::plan::Plan;
use crate::transport::carrier::Carrier;
use rustyline::history::DefaultHistory;
use rustyline::{Editor, ExternalPrinter};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, watch};

/// Prints above the prompt while a line is being edited (or plainly when
/// the console does not run on a terminal).
#[derive(Clone)]
pub struct Printer(Arc<Mutex<Option<Box<dyn ExternalPrinter + Send>>>>);

impl Printer {
    pub fn new<H: rustyline::Helper>(rl: &mut Editor<H, DefaultHistory>) -> rustyline::Result<Printer> {
        let p = rl.create_external_printer().ok().map(|p| Box::new(p) as Box<dyn ExternalPrinter + Send>);
        Ok(Printer(Arc::new(Mutex::new(p))))
    }

    pub fn print(&self, text: String) {
        let Ok(mut p) = self.0.lock() else { return };
        match p.as_mut() {
            Some(p) => {
                let _ = p.print(text);
            }
            None => print!("{text}"),
        }
    }
}

struct Job {
    id: u32,
    cmd: String,
    started: Instant,
    stop: watch::Sender<bool>,
    /// The summary once it ended.
    ended: Arc<Mutex<Option<String>>>,
}

#[derive(Default)]
pub struct Jobs {
    next: u32,
    all: Vec<Job>,
}

impl Jobs {
    /// Start `plan` as a job; prints `[job N] started`. Its end is
    /// written to the audit log under `state`.
    pub fn start(
        &mut self,
        rt: &Runtime,
        carrier: Carrier,
        plan: Plan,
        cmd: String,
        printer: Printer,
        state: &std::path::Path,
    ) {
        let state = state.to_path_buf();
        let audited = plan.clone();
        let from = crate::audit::local_origin();
        self.next += 1;
        let id = self.next;
        let (stop, stop_rx) = watch::channel(false);
        let ended: Arc<Mutex<Option<String>>> = Arc::default();
        let done = ended.clone();
        let label = cmd.clone();
        rt.spawn(async move {
            let t0 = Instant::now();
            let (tx, mut rx) = mpsc::channel::<Event>(4096);
            let collect = tokio::spawn(async move {
                let mut events = Vec::new();
                while let Some(e) = rx.recv().await {
                    events.push(e);
                }
                events
            });
            let r = crate::dispatch::run(&carrier, plan, tx, stop_rx).await;
            let events = collect.await.unwrap_or_default();
            let text = match r {
                Ok(out) => {
                    let entry =
                        crate::audit::AuditEntry::of(&audited, &out, "console", &from, t0.elapsed().as_secs_f64());
                    if let Err(e) = crate::audit::append(&state, &entry) {
                        tracing::warn!("{e}");
                    }
                    let mut p = Output::with_writers(Mode::Grouped, Vec::new(), Vec::new());
                    for e in &events {
                        p.event(e);
                    }
                    p.finish();
                    let (out_text, _) = p.into_writers();
                    let summary = outcome::summary(&out.results, t0.elapsed());
                    if let Ok(mut d) = done.lock() {
                        *d = Some(summary.lines().next().unwrap_or_default().to_string());
                    }
                    format!("[job {id}] `{label}` ended:\n{}{summary}", String::from_utf8_lossy(&out_text))
                }
                Err(e) => {
                    if let Ok(mut d) = done.lock() {
                        *d = Some(format!("nothing dispatched: {e}"));
                    }
                    format!("[job {id}] `{label}`: nothing was dispatched: {e}\n")
                }
            };
            printer.print(text);
        });
        println!("[job {id}] started: {cmd}");
        self.all.push(Job { id, cmd, started: Instant::now(), stop, ended });
    }

    /// One line per job.
    pub fn list(&self) {
        if self.all.is_empty() {
            println!("no jobs");
        }
        for j in &self.all {
            match j.ended.lock().ok().and_then(|e| e.clone()) {
                Some(s) => println!("[job {}] done: {} — {s}", j.id, j.cmd),
                None => println!("[job {}] running for {:.0}s: {}", j.id, j.started.elapsed().as_secs_f64(), j.cmd),
            }
        }
    }

    /// Cancel job `id`.
    pub fn cancel(&self, id: u32) -> Result<(), String> {
        let j = self.all.iter().find(|j| j.id == id).ok_or_else(|| format!("no job {id} (see `jobs`)"))?;
        if j.ended.lock().map(|e| e.is_some()).unwrap_or(false) {
            return Err(format!("job {id} has already ended"));
        }
        let _ = j.stop.send(true);
        println!("[job {id}] cancelling");
        Ok(())
    }
}
