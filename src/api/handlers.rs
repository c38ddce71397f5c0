//! The API's endpoints and their OpenAPI description (utoipa derives it
//! from the annotations here; `GET /openapi.json` serves it).

use super::bodies::{Page, PingBody, RunBody, RunId, SseFrame, TargetsQuery};
use super::runs::{recorded_events, view_of, LiveRun};
use super::{ApiError, ApiJson, App, Caller, ErrorBody};
use crate::dispatch::outcome::State as EndState;
use crate::dispatch::plan::{Plan, Request as RunRequest};
use crate::dispatch::{self, DispatcherConfig};
use crate::transport::carrier::Carrier;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use utoipa::OpenApi;

/// Longest `wait` a `POST /run` may ask for (seconds).
pub const MAX_WAIT_S: f64 = 300.0;

/// Longest per-target `timeout` (seconds), as on the command line.
pub const MAX_TIMEOUT_S: f64 = 1e9;

#[derive(OpenApi)]
#[openapi(
    info(title = "muster API", description = "Run named actions on many hosts and watch every host's outcome."),
    paths(health, agents, targets, ping, run, runs_list, run_get, status_get, run_events, run_cancel, discovery, metrics_text),
    components(schemas(ErrorBody, RunBody, PingBody, SseFrame)),
    modifiers(&Bearer)
)]
pub struct ApiDoc;

struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every route, behind the auth layer, with the body limit.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/agents", get(agents))
        .route("/ping", post(ping))
        .route("/targets", get(targets))
        .route("/run", post(run))
        .route("/runs", get(runs_list))
        .route("/runs/{id}", get(run_get))
        .route("/status/{id}", get(status_get))
        .route("/runs/{id}/events", get(run_events))
        .route("/runs/{id}/cancel", post(run_cancel))
        .route("/discovery", get(discovery))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi))
        .merge(super::dashboard::routes())
        .layer(axum::middleware::from_fn_with_state(app.clone(), super::auth))
        .layer(axum::extract::DefaultBodyLimit::max(super::MAX_BODY))
        .with_state(app)
}

/// The mTLS carrier of this state dir, read now (a rotation is picked up).
fn carrier(app: &App, cfg: &DispatcherConfig) -> Result<crate::transport::tls_carrier::TlsCarrier, ApiError> {
    crate::transport::tls_carrier::for_state(&app.state_dir, Duration::from_secs(cfg.connect_timeout))
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

fn config(app: &App) -> Result<DispatcherConfig, ApiError> {
    DispatcherConfig::load(&app.state_dir).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// Liveness: `{"status":"ok","version":...,"running":N}`; needs no token.
#[utoipa::path(get, path = "/health", responses((status = 200, description = "The API is up", body = Object)))]
async fn health(State(app): State<Arc<App>>) -> Json<Value> {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION"), "running": app.runs.running()}))
}

/// The registered agents: name, address, tags, certificate serial and
/// expiry, when paired or revoked, and when this API last saw it answer
/// a ping.
#[utoipa::path(get, path = "/agents", security(("bearer" = [])),
    responses((status = 401, description = "No valid token", body = ErrorBody),
              (status = 200, description = "Every registered agent", body = Object),
))]
async fn agents(State(app): State<Arc<App>>) -> Json<Value> {
    let (entries, bad) = dispatch::registry::load_all(&app.state_dir);
    let seen = app.last_seen.lock().map(|m| m.clone()).unwrap_or_default();
    let list: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({"name": e.name, "addr": e.addr, "tags": e.tags, "serial": e.serial, "not_after": e.not_after,
                "paired": e.paired, "revoked": e.revoked, "last_seen": seen.get(&e.name)})
        })
        .collect();
    let errors: Vec<String> = bad.iter().map(|b| b.to_string()).collect();
    Json(json!({"agents": list, "errors": errors}))
}

/// The targets a node set and tags select (the dashboard's preview):
/// names, their fold, and the names that would not be dialled.
#[utoipa::path(get, path = "/targets", params(TargetsQuery), security(("bearer" = [])),
    responses((status = 401, description = "No valid token", body = ErrorBody),
              (status = 200, description = "The selected targets", body = Object),
              (status = 400, description = "Bad node set", body = ErrorBody),
              (status = 403, description = "Targets outside the token's", body = ErrorBody)))]
async fn targets(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<TargetsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad("spec", e.body_text()))?;
    let tags: Vec<String> =
        q.tags.unwrap_or_default().split(',').map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect();
    let r = resolve_for(&app, &caller, &q.spec, &tags)?;
    let names: Vec<String> = r.targets.iter().map(|t| t.name.clone()).collect();
    let missing: Vec<String> = r.missing.iter().map(|(n, _)| n.clone()).collect();
    Ok(Json(json!({"targets": names, "folded": crate::dispatch::nodeset::fold(&names), "missing": missing})))
}

/// The targets `spec` and `tags` select, checked against the caller's
/// allowed targets.
fn resolve_for(app: &App, caller: &Caller, spec: &str, tags: &[String]) -> Result<dispatch::Resolved, ApiError> {
    if spec.trim().is_empty() {
        return Err(ApiError::bad("targets", "no targets: give `all` or a node set such as web[01-03]"));
    }
    let resolved = dispatch::resolve(&app.state_dir, spec, tags).map_err(|e| ApiError::bad("targets", e))?;
    if resolved.targets.is_empty() && resolved.missing.is_empty() {
        return Err(ApiError::bad("targets", format!("no registered agent matches {spec:?}")));
    }
    if let Some(allowed) = &caller.targets {
        let outside: Vec<String> = resolved
            .targets
            .iter()
            .map(|t| t.name.clone())
            .chain(resolved.missing.iter().map(|(n, _)| n.clone()))
            .filter(|n| !allowed.contains(n))
            .collect();
        if !outside.is_empty() {
            return Err(ApiError::field(
                StatusCode::FORBIDDEN,
                "targets",
                format!("{} may not reach {}", caller.name, crate::dispatch::nodeset::fold(&outside)),
            ));
        }
    }
    Ok(resolved)
}

/// Ping agents over mTLS: each one's state and round-trip time in ms.
#[utoipa::path(post, path = "/ping", request_body = PingBody, security(("bearer" = [])),
    responses((status = 413, description = "Body over 1 MiB", body = ErrorBody),
              (status = 401, description = "No valid token", body = ErrorBody),
              (status = 200, description = "One answer per target", body = Object),
              (status = 400, description = "Bad body or targets", body = ErrorBody),
              (status = 403, description = "Targets outside the token's", body = ErrorBody)))]
async fn ping(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<PingBody>,
) -> Result<Json<Value>, ApiError> {
    let cfg = config(&app)?;
    if body.fanout == Some(0) {
        return Err(ApiError::bad("fanout", "fanout must be 1 or more"));
    }
    let resolved = resolve_for(&app, &caller, &body.targets, &body.tags)?;
    let carrier = carrier(&app, &cfg)?;
    let got = dispatch::ping::ping_all(
        Arc::new(carrier),
        resolved.targets,
        body.fanout.unwrap_or(cfg.fanout),
        Duration::from_secs(cfg.connect_timeout),
    )
    .await;
    let mut out = Vec::new();
    for (name, why) in resolved.missing {
        let st = EndState::not_dialled(why);
        out.push(json!({"target": name, "state": st.label(), "detail": st.to_string(), "rtt_ms": null}));
    }
    let now = crate::timefmt::now_rfc3339();
    let mut reachable = 0;
    for (r, rtt) in got {
        if rtt.is_some() {
            reachable += 1;
            if let Ok(mut m) = app.last_seen.lock() {
                m.insert(r.name.clone(), now.clone());
            }
        }
        out.push(json!({"target": r.name, "state": if rtt.is_some() { "ok" } else { r.state.label() },
            "detail": r.state.to_string(), "rtt_ms": rtt.map(|d| d.as_secs_f64() * 1000.0)}));
    }
    app.metrics.reachable.set(reachable);
    Ok(Json(json!({"results": out})))
}

fn seconds(field: &str, v: f64, max: f64) -> Result<Duration, ApiError> {
    if !v.is_finite() || v <= 0.0 {
        return Err(ApiError::bad(field, format!("{field} must be a number of seconds more than 0")));
    }
    if v > max {
        return Err(ApiError::bad(field, format!("{field} must be at most {max} seconds")));
    }
    Ok(Duration::from_secs_f64(v))
}

/// Start a run; answer 200 with every target's result when it ends within
/// `wait` seconds, else 202 with its id and where to follow it.
#[utoipa::path(post, path = "/run", request_body = RunBody, security(("bearer" = [])),
    responses((status = 413, description = "Body over 1 MiB", body = ErrorBody),
              (status = 401, description = "No valid token", body = ErrorBody),
              (status = 200, description = "The run ended within `wait`: every target's result", body = Object),
              (status = 202, description = "The run goes on: its id and where to follow it", body = Object),
              (status = 400, description = "Bad body, action or targets", body = ErrorBody),
              (status = 403, description = "Action or targets outside the token's", body = ErrorBody)))]
async fn run(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<RunBody>,
) -> Result<Response, ApiError> {
    let cfg = config(&app)?;
    let action = body.action.trim();
    if action.is_empty() {
        return Err(ApiError::bad("action", "no action: name one from the agents' allowlists"));
    }
    crate::protocol::check_action_name(action).map_err(|e| ApiError::bad("action", e.to_string()))?;
    if let Some(allowed) = &caller.actions {
        if !allowed.iter().any(|a| a == action) {
            return Err(ApiError::field(
                StatusCode::FORBIDDEN,
                "action",
                format!("{} may not run {action:?} (it may run: {})", caller.name, allowed.join(", ")),
            ));
        }
    }
    let timeout = match body.timeout {
        Some(t) => seconds("timeout", t, MAX_TIMEOUT_S)?,
        None => Duration::from_secs(cfg.default_timeout),
    };
    let wait = match body.wait {
        None => Duration::ZERO,
        Some(0.0) => Duration::ZERO,
        Some(w) => seconds("wait", w, MAX_WAIT_S)?,
    };
    if body.fanout == Some(0) {
        return Err(ApiError::bad("fanout", "fanout must be 1 or more"));
    }
    if body.max_errors == Some(0) {
        return Err(ApiError::bad("max_errors", "max_errors must be 1 or more"));
    }
    let resolved = resolve_for(&app, &caller, &body.targets, &body.tags)?;
    let carrier = carrier(&app, &cfg)?;
    let request_id = crate::hexstr::random(8);
    let plan = Plan {
        request: RunRequest {
            request_id: request_id.clone(),
            action: action.to_string(),
            args: body.args,
            username: caller.name.clone(),
            token: None,
            timeout,
            detach: body.detach,
        },
        dispatcher: carrier.dispatcher_id.clone(),
        via: "tls".into(),
        targets: resolved.targets,
        missing: resolved.missing,
        tags: body.tags,
        fanout: body.fanout.unwrap_or(cfg.fanout),
        max_errors: body.max_errors,
        lock_dir: Some(app.state_dir.join("locks")),
        hook: cfg
            .hook
            .clone()
            .map(|path| crate::dispatch::plan::HookSpec { path, timeout: Duration::from_secs(cfg.hook_timeout) }),
        liveness: Default::default(),
        broadcast: Default::default(),
    };
    let now = crate::pairing::now();
    dispatch::runs::prune(&app.state_dir, cfg.result_retention, now);
    app.runs.prune(cfg.result_retention, now);
    let record = dispatch::runs::RunRecord::of(&plan, now);
    if let Err(e) = dispatch::runs::save(&app.state_dir, &record) {
        tracing::warn!("{e}");
    }
    let (live, cancel) = LiveRun::new(record.clone(), &caller.name);
    app.runs.insert(&request_id, live.clone(), now);
    let mut changed = live.changed.subscribe();
    tokio::spawn(drive(app.clone(), caller, plan, record, live.clone(), carrier, cancel));
    let deadline = tokio::time::Instant::now() + wait;
    while !live.is_done() {
        if tokio::time::timeout_at(deadline, changed.changed()).await.is_err() {
            break;
        }
    }
    if live.is_done() {
        return Ok((StatusCode::OK, Json(live.view())).into_response());
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"request_id": request_id, "status": format!("/runs/{request_id}"),
            "events": format!("/runs/{request_id}/events")})),
    )
        .into_response())
}

/// Dispatch one run to its end: events into the run, the record and the
/// audit log at the end, metrics counted.
async fn drive(
    app: Arc<App>,
    caller: Caller,
    plan: Plan,
    mut record: dispatch::runs::RunRecord,
    live: Arc<LiveRun>,
    carrier: crate::transport::tls_carrier::TlsCarrier,
    cancel: tokio::sync::watch::Receiver<bool>,
) {
    let _slot = app.run_slots.acquire().await;
    let t0 = Instant::now();
    app.metrics.running.inc();
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let sink = {
        let live = live.clone();
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                live.push(&ev);
            }
        })
    };
    let audit_plan = plan.clone();
    let carrier = Carrier::Dial(Arc::new(carrier));
    let result = dispatch::run(&carrier, plan, tx, cancel).await;
    let _ = sink.await;
    let outcome = result.unwrap_or_else(|e| crate::dispatch::outcome::Outcome {
        refused_run: Some(crate::transport::carrier::Reason::new("not dispatched", e.to_string())),
        ..Default::default()
    });
    record.end(&outcome, crate::pairing::now());
    if let Err(e) = dispatch::runs::save(&app.state_dir, &record) {
        tracing::warn!("{e}");
    }
    let wall = t0.elapsed().as_secs_f64();
    let entry = crate::audit::AuditEntry::of(&audit_plan, &outcome, "api", &caller.from.to_string(), wall);
    if let Err(e) = crate::audit::append(&app.state_dir, &entry) {
        tracing::warn!("{e}");
    }
    let label = if outcome.refused_run.is_some() {
        "refused"
    } else if outcome.exit_status() == 0 {
        "succeeded"
    } else {
        "failed"
    };
    app.metrics.runs.get_or_create(&super::metrics::StateLabel { state: label.into() }).inc();
    for r in &outcome.results {
        app.metrics.targets.get_or_create(&super::metrics::StateLabel { state: r.state.label().into() }).inc();
    }
    app.metrics.durations.observe(wall);
    app.metrics.running.dec();
    live.finish(record);
}

/// Runs recorded in the state dir (CLI, API and console runs), newest
/// first, paged.
#[utoipa::path(get, path = "/runs", params(Page), security(("bearer" = [])),
    responses((status = 401, description = "No valid token", body = ErrorBody),
              (status = 200, description = "A page of runs", body = Object),
              (status = 400, description = "Bad paging", body = ErrorBody)))]
async fn runs_list(
    State(app): State<Arc<App>>,
    q: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad("query", e.body_text()))?;
    let page = q.page.unwrap_or(1);
    let per_page = q.per_page.unwrap_or(50);
    if page == 0 {
        return Err(ApiError::bad("page", "page numbers start at 1"));
    }
    if !(1..=500).contains(&per_page) {
        return Err(ApiError::bad("per_page", "per_page must be 1 to 500"));
    }
    let mut all = dispatch::runs::list(&app.state_dir);
    all.sort_by(|a, b| b.started_s.cmp(&a.started_s).then(b.request_id.cmp(&a.request_id)));
    let total = all.len();
    let runs: Vec<Value> = all
        .iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .map(|r| match app.runs.get(&r.request_id) {
            Some(live) => live.view(),
            None => view_of(r, None, r.ended.is_some(), None),
        })
        .map(|mut v| {
            if let Some(o) = v.as_object_mut() {
                o.remove("targets");
            }
            v
        })
        .collect();
    Ok(Json(json!({"runs": runs, "total": total, "page": page, "per_page": per_page})))
}

fn check_id(id: &str) -> Result<(), ApiError> {
    if id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(ApiError::bad("id", format!("{id:?} is not a request id (16 lowercase hex digits)")))
    }
}

async fn find_run(app: &App, id: &str) -> Result<Value, ApiError> {
    check_id(id)?;
    let live = app.runs.get(id);
    if let Some(l) = &live {
        if !(l.is_done() && l.view()["async"] == true) {
            return Ok(l.view());
        }
    }
    let r = dispatch::runs::load(&app.state_dir, id)
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, format!("no run {id} (runs are kept one day)")))?;
    if !r.detach || r.via != "tls" {
        return Ok(view_of(&r, None, r.ended.is_some(), None));
    }
    // An asynchronous run: its agents hold the results.
    let cfg = config(app)?;
    let carrier = carrier(app, &cfg)?;
    let limit = Duration::from_secs(cfg.connect_timeout.max(5));
    let got = dispatch::status::fetch_all(Arc::new(carrier), r.started_targets(), id, cfg.fanout, limit).await;
    let mut view = view_of(&r, None, r.ended.is_some(), live.as_ref().map(|l| l.owner()).as_deref());
    let mut targets = Vec::new();
    let mut running = false;
    for (name, f) in &got {
        let (events, result) = dispatch::status::events(name, f);
        let (mut out, mut err) = (String::new(), String::new());
        for e in &events {
            if let crate::dispatch::event::EventKind::Output { stream, bytes } = &e.kind {
                let buf = if *stream == crate::protocol::Stream::Stderr { &mut err } else { &mut out };
                buf.push_str(&String::from_utf8_lossy(bytes));
            }
        }
        running |= matches!(result.state, EndState::Running { .. });
        targets.push(json!({"target": name, "state": result.state.label(), "detail": result.state.to_string(),
            "exit": result.state.exit_code(), "stdout": out, "stderr": err}));
    }
    // Targets the dispatch never started keep their recorded end.
    for e in r.results.iter().filter(|e| e.state != "dispatched") {
        targets.push(json!({"target": e.target, "state": e.state, "detail": e.detail, "exit": e.exit}));
    }
    view["counts"] = json!(super::runs::counts(&targets));
    view["targets"] = json!(targets);
    view["done"] = json!(!running);
    Ok(view)
}

/// One run: its request, each target's state and output. For an
/// asynchronous run whose dispatch has ended, the agents are asked for
/// their stored results (as `muster status` does): `running` until each
/// ends, kept by the agents for their result retention (one day).
#[utoipa::path(get, path = "/runs/{id}", params(RunId),
    security(("bearer" = [])),
    responses((status = 401, description = "No valid token", body = ErrorBody),
              (status = 200, description = "The run", body = Object),
              (status = 400, description = "Not a request id", body = ErrorBody),
              (status = 404, description = "No such run", body = ErrorBody)))]
async fn run_get(State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    find_run(&app, &id).await.map(Json)
}

/// Alias of `GET /runs/{id}`.
#[utoipa::path(get, path = "/status/{id}", params(RunId),
    security(("bearer" = [])),
    responses((status = 401, description = "No valid token", body = ErrorBody),
              (status = 200, description = "The run", body = Object),
              (status = 400, description = "Not a request id", body = ErrorBody),
              (status = 404, description = "No such run", body = ErrorBody)))]
async fn status_get(State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    find_run(&app, &id).await.map(Json)
}

/// The run's events as Server-Sent Events (`started`, `output`, `end` per
/// target, in order, then one `done`), live; each has an id, and a
/// reconnect with `Last-Event-ID` resumes after it.
#[utoipa::path(get, path = "/runs/{id}/events", params(RunId),
    security(("bearer" = [])),
    responses((status = 401, description = "No valid token", body = ErrorBody),
              (status = 200, description = "The events", content_type = "text/event-stream", body = SseFrame),
              (status = 400, description = "Not a request id", body = ErrorBody),
              (status = 404, description = "No such run", body = ErrorBody)))]
async fn run_events(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_id(&id)?;
    let after: usize = match headers.get("last-event-id") {
        None => 0,
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| ApiError::bad("Last-Event-ID", "Last-Event-ID must be an event number"))?,
    };
    let sse = |id: usize, v: &Value| {
        let name = v["event"].as_str().unwrap_or("event").to_string();
        Ok::<_, std::convert::Infallible>(SseEvent::default().id(id.to_string()).event(name).data(v.to_string()))
    };
    if let Some(live) = app.runs.get(&id) {
        let stream = futures_util::stream::unfold(
            (live.clone(), live.changed.subscribe(), after, false),
            move |(live, mut rx, cursor, ended)| async move {
                if ended {
                    return None;
                }
                loop {
                    let (evs, done) = live.events_after(cursor);
                    if !evs.is_empty() {
                        let next = evs.last().map(|(i, _)| *i).unwrap_or(cursor);
                        let batch: Vec<_> = evs.iter().map(|(i, v)| sse(*i, v)).collect();
                        return Some((futures_util::stream::iter(batch), (live, rx, next, false)));
                    }
                    if done {
                        let v = live.view();
                        let last =
                            vec![sse(cursor + 1, &json!({"event": "done", "exit": v["exit"], "counts": v["counts"]}))];
                        return Some((futures_util::stream::iter(last), (live, rx, cursor + 1, true)));
                    }
                    if rx.changed().await.is_err() {
                        return None;
                    }
                }
            },
        );
        use futures_util::StreamExt;
        return Ok(Sse::new(stream.flatten()).keep_alive(KeepAlive::default()).into_response());
    }
    let r = dispatch::runs::load(&app.state_dir, &id)
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, format!("no run {id} (runs are kept one day)")))?;
    let mut evs = recorded_events(&r);
    if r.ended.is_some() {
        evs.push(json!({"event": "done", "exit": r.exit}));
    }
    let items: Vec<_> = evs.iter().enumerate().skip(after).map(|(i, v)| sse(i + 1, v)).collect();
    Ok(Sse::new(futures_util::stream::iter(items)).into_response())
}

/// Cancel a run: running targets are told to stop, the rest are skipped.
/// Only the token that started it, or one without limits, may.
#[utoipa::path(post, path = "/runs/{id}/cancel", params(RunId),
    security(("bearer" = [])),
    responses((status = 401, description = "No valid token", body = ErrorBody),
              (status = 202, description = "Cancelling", body = Object),
              (status = 400, description = "Not a request id", body = ErrorBody),
              (status = 403, description = "Not this token's run", body = ErrorBody),
              (status = 404, description = "No such run in this API process", body = ErrorBody),
              (status = 409, description = "The run has ended", body = ErrorBody)))]
async fn run_cancel(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    check_id(&id)?;
    let live = app
        .runs
        .get(&id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no run {id} in flight in this API process")))?;
    if live.owner() != caller.name && !caller.unrestricted() {
        return Err(ApiError::new(StatusCode::FORBIDDEN, format!("run {id} was started by another token")));
    }
    if live.is_done() {
        return Err(ApiError::new(StatusCode::CONFLICT, format!("run {id} has ended")));
    }
    live.cancel.send_replace(true);
    Ok((StatusCode::ACCEPTED, Json(json!({"request_id": id, "cancelling": true}))).into_response())
}

/// The hub agents a station has seen answer, per channel, with their
/// tags and when last seen (from `<state>/hub/discovery.toml`).
#[utoipa::path(get, path = "/discovery", security(("bearer" = [])),
    responses((status = 401, description = "No valid token", body = ErrorBody),
              (status = 200, description = "Seen agents per channel", body = Object)))]
async fn discovery(State(app): State<Arc<App>>) -> Result<Json<Value>, ApiError> {
    let d = crate::hub::discovery::Discovery::load(&app.state_dir.join("hub").join("discovery.toml"))
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(serde_json::to_value(&d.channel).unwrap_or(Value::Null)))
}

/// Prometheus text metrics.
#[utoipa::path(get, path = "/metrics", security(("bearer" = [])),
    responses((status = 401, description = "No valid token", body = ErrorBody),
              (status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
async fn metrics_text(State(app): State<Arc<App>>) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], app.metrics.render())
        .into_response()
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
