//! The dispatcher-side auth hook (ctrl-exec's), run once per dispatch before
//! anything is sent on any carrier, with the whole run in its context: the
//! request, the user, the carrier, the named targets and a broadcast's
//! scope. A denial refuses the run; nothing is dialled or published.

use super::plan::{HookSpec, Plan};
use crate::exec::hook::{self, Verdict};
use crate::transport::carrier::Reason;

/// `None` when the hook allows the run; the refusal otherwise.
pub async fn check(spec: &HookSpec, plan: &Plan) -> Option<Reason> {
    let r = &plan.request;
    let names: Vec<&str> = plan.targets.iter().map(|t| t.name.as_str()).collect();
    let scope = &plan.broadcast.scope;
    let tags = if plan.tags.is_empty() { &scope.tags } else { &plan.tags };
    let ctx = serde_json::json!({
        "request_id": r.request_id, "action": r.action, "args": r.args,
        "username": r.username, "token": r.token.as_ref().map(|_| "XXX"),
        "dispatcher": plan.dispatcher, "via": plan.via, "targets": names,
        "tags": tags, "timeout_s": r.timeout.as_secs_f64(),
    });
    let env = vec![
        ("MUSTER_REQUEST_ID".to_string(), r.request_id.clone()),
        ("MUSTER_ACTION".to_string(), r.action.clone()),
        ("MUSTER_USERNAME".to_string(), r.username.clone()),
        ("MUSTER_DISPATCHER".to_string(), plan.dispatcher.clone()),
        ("MUSTER_VIA".to_string(), plan.via.clone()),
        ("MUSTER_TOKEN".to_string(), r.token.clone().unwrap_or_default()),
    ];
    match hook::run_hook(&spec.path, &ctx, &env, spec.timeout).await {
        Verdict::Allow => None,
        Verdict::Deny(w) => {
            Some(Reason::new("denied by the dispatcher hook", format!("dispatcher hook denied the run: {w}")))
        }
        Verdict::Error(w) => Some(Reason::new("dispatcher hook error", format!("dispatcher hook error: {w}"))),
    }
}
