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
        let r = TargetResult::new(name, State::Unreachable(why.clone()));
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
