//! The one dispatch path every front end and every carrier takes: report
//! the names that cannot be reached, run the dispatcher hook (a denial
//! sends nothing anywhere), then drive the carrier by its shape —
//! [`super::sessions`] for dialled carriers, [`super::broadcast`] for
//! broadcast ones — and return an [`Outcome`] whose exit status is decided
//! here, never by a carrier.

use super::event::Event;
use super::outcome::{Outcome, State, TargetResult};
use super::plan::Plan;
use super::{broadcast, hook, sessions};
use crate::transport::carrier::{Carrier, OpenError};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// Run `plan` over `carrier`. Every target of the plan (and every agent
/// that answers a broadcast) gets exactly one `End` event and one result.
/// An error means the carrier could not be reached at all (a broadcast
/// carrier that could not publish): nothing was dispatched.
pub async fn run(
    carrier: &Carrier,
    plan: Plan,
    events: mpsc::Sender<Event>,
    interrupt: watch::Receiver<bool>,
) -> Result<Outcome, OpenError> {
    let mut missing = Vec::new();
    for (name, why) in &plan.missing {
        let r = TargetResult::new(name, State::not_dialled(why.clone()));
        let _ = events.send(Event::end(r.clone())).await;
        missing.push(r);
    }
    if let Some(spec) = &plan.hook {
        if let Some(why) = hook::check(spec, &plan).await {
            let mut out = Outcome { results: missing, ..Default::default() };
            for t in &plan.targets {
                let r = TargetResult::new(&t.name, State::Refused(why.clone()));
                let _ = events.send(Event::end(r.clone())).await;
                out.results.push(r);
            }
            out.refused_run = Some(why);
            return Ok(out);
        }
    }
    let mut out = match carrier {
        Carrier::Dial(d) => {
            let results = sessions::run(d.clone(), Arc::new(plan), events, interrupt).await;
            Outcome { results, ..Default::default() }
        }
        Carrier::Broadcast(b) => broadcast::run(b.as_ref(), &plan, &events, interrupt).await?,
    };
    missing.append(&mut out.results);
    out.results = missing;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::event::EventKind;
    use crate::dispatch::plan::Request;
    use crate::transport::carrier::{BoxFuture, Dialer, Reason, Session, Target};
    use std::time::Duration;

    /// A dialer whose task panics for one target and finds nobody home
    /// for the others.
    struct Panicky;

    impl Dialer for Panicky {
        fn open<'a>(&'a self, t: &'a Target) -> BoxFuture<'a, Result<Session, OpenError>> {
            Box::pin(async move {
                if t.name == "boom" {
                    panic!("injected fault for {}", t.name);
                }
                Err(OpenError::Unreachable(Reason::new("connection refused", "nobody home")))
            })
        }
    }

    fn plan(names: &[&str]) -> Plan {
        Plan {
            request: Request {
                request_id: "r1".into(),
                action: "x".into(),
                args: vec![],
                username: "u".into(),
                token: None,
                timeout: Duration::from_secs(5),
                detach: false,
            },
            dispatcher: "d".into(),
            via: "test".into(),
            targets: names.iter().map(|n| Target { name: n.to_string(), addr: String::new() }).collect(),
            missing: vec![],
            tags: Vec::new(),
            fanout: 2,
            max_errors: None,
            lock_dir: None,
            hook: None,
            liveness: Default::default(),
            broadcast: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_panicking_target_task_still_yields_its_result_and_end_event() {
        let (tx, mut rx) = mpsc::channel(64);
        let (_stop, stop_rx) = watch::channel(false);
        let carrier = Carrier::Dial(Arc::new(Panicky));
        let out = run(&carrier, plan(&["a1", "boom", "a3"]), tx, stop_rx).await.unwrap();
        let names: Vec<&str> = out.results.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a1", "boom", "a3"]);
        let boom = &out.results[1].state;
        assert!(matches!(boom, State::Failed { why: Some(w), .. } if w.contains("injected fault")), "{boom:?}");
        assert_ne!(out.exit_status(), 0);
        let mut ends = Vec::new();
        while let Some(e) = rx.recv().await {
            if let EventKind::End(r) = e.kind {
                ends.push(r.name);
            }
        }
        ends.sort();
        assert_eq!(ends, ["a1", "a3", "boom"], "one end event per target");
    }

    #[tokio::test]
    async fn the_error_budget_skips_the_rest() {
        let (tx, _rx) = mpsc::channel(64);
        let (_stop, stop_rx) = watch::channel(false);
        let mut p = plan(&["a1", "a2", "a3", "a4", "a5"]);
        p.fanout = 1;
        p.max_errors = Some(2);
        let out = run(&Carrier::Dial(Arc::new(Panicky)), p, tx, stop_rx).await.unwrap();
        let skipped = out.results.iter().filter(|r| r.state == State::Skipped).count();
        assert_eq!(skipped, 3, "{:?}", out.results);
        assert_eq!(out.exit_status(), crate::dispatch::outcome::BIT_MISSING);
    }
}
