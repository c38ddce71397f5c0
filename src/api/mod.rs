//! `muster api`: the HTTP API and web dashboard over the dispatcher's state
//! dir, on axum (the process's one tokio runtime). Runs take the same
//! dispatch path as `muster run` (plan → dispatcher hook → mTLS carrier →
//! outcome), are recorded in `<state>/runs/` like CLI runs and logged in
//! the audit log. Every endpoint but `/health` and the dashboard's static
//! files needs a bearer token from `<state>/api/tokens.json` (see
//! [`tokens`]); each token may be limited to some actions and to a node
//! set of targets, and the dispatcher hook sees the token's name as the
//! user. With `--tls` the API serves HTTPS and also admits user client
//! certificates from the muster CA ([`tls`]). Without a token file the
//! API refuses to start unless
//! `--insecure-no-auth` is given. Errors are JSON:
//! `{"error": "...", "field": "..."}` with a 4xx status that says whose
//! fault it is. Endpoints: docs/api.md, and `GET /openapi.json`
//! (generated from this code by utoipa).

pub mod bodies;
pub mod dashboard;
pub mod handlers;
pub mod metrics;
pub mod runs;
pub mod tls;
pub mod tokens;

use axum::extract::{ConnectInfo, FromRequest, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use utoipa::ToSchema;

/// Largest request body accepted (1 MiB).
pub const MAX_BODY: usize = 1 << 20;

/// The default listen address (seed 002's port for async results).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7445";

/// Everything the handlers share.
pub struct App {
    pub state_dir: PathBuf,
    pub runs: runs::RunTable,
    pub metrics: metrics::Metrics,
    /// `--insecure-no-auth`: every request is the user `anonymous`, allowed
    /// everything.
    pub insecure: bool,
    /// Agents' last ping answers: name → RFC 3339.
    pub last_seen: std::sync::Mutex<std::collections::BTreeMap<String, String>>,
    /// Runs dispatching at once ([`RUN_SLOTS`]); later ones wait, pending.
    pub run_slots: tokio::sync::Semaphore,
}

/// How many runs the API dispatches at once; more wait their turn (their
/// targets show `pending`), so a burst of requests does not open
/// thousands of sessions at once and time out on a small dispatcher.
pub const RUN_SLOTS: usize = 16;

/// Who is calling, as the auth layer found it.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's name (`anonymous` without auth).
    pub name: String,
    pub actions: Option<Vec<String>>,
    /// The targets the token may reach (expanded node set); `None`: any.
    pub targets: Option<Vec<String>>,
    pub from: SocketAddr,
}

impl Caller {
    /// May this caller do anything (no action or target limits)?
    pub fn unrestricted(&self) -> bool {
        self.actions.is_none() && self.targets.is_none()
    }
}

/// A JSON error body: `error` says what was wrong and what to do,
/// `field` names the request field at fault when there is one.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// An error answer: status and body.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError { status, body: ErrorBody { error: error.into(), field: None } }
    }

    pub fn field(status: StatusCode, field: &str, error: impl Into<String>) -> ApiError {
        ApiError { status, body: ErrorBody { error: error.into(), field: Some(field.to_string()) } }
    }

    pub fn bad(field: &str, error: impl Into<String>) -> ApiError {
        Self::field(StatusCode::BAD_REQUEST, field, error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// A JSON body, read whole (up to [`MAX_BODY`]) and deserialized with
/// the path of the field at fault in any error; unknown fields are
/// refused by the body types themselves.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|e| {
            let status = e.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(status, format!("the request body is larger than {MAX_BODY} bytes"))
            } else {
                ApiError::new(status, format!("cannot read the request body: {e}"))
            }
        })?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        match serde_path_to_error::deserialize(de) {
            Ok(v) => Ok(ApiJson(v)),
            Err(e) => {
                let path = e.path().to_string();
                let inner = e.into_inner();
                let field = match path.as_str() {
                    "." | "" | "?" => unknown_or_missing(&inner.to_string()),
                    p => Some(p.to_string()),
                };
                let msg = if inner.is_syntax() || inner.is_eof() {
                    format!("the body is not valid JSON: {inner}")
                } else {
                    format!("bad request body: {inner}")
                };
                Err(ApiError { status: StatusCode::BAD_REQUEST, body: ErrorBody { error: msg, field } })
            }
        }
    }
}

/// The field a serde message names (`unknown field `x``, `missing field `y``).
fn unknown_or_missing(msg: &str) -> Option<String> {
    let rest = msg.split_once("field `")?.1;
    Some(rest.split_once('`')?.0.to_string())
}

/// The auth layer: checks the bearer token (or lets everyone in with
/// `--insecure-no-auth`), puts the [`Caller`] in the request, counts the
/// answer's status code.
pub async fn auth(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<tls::Peer>,
    mut req: Request,
    next: Next,
) -> Response {
    let from = peer.addr;
    let path = req.uri().path().to_string();
    let open = path == "/health" || dashboard::is_asset(&path);
    let caller = if app.insecure {
        Ok(Caller { name: "anonymous".into(), actions: None, targets: None, from })
    } else {
        caller_of(&app, &req, &peer)
    };
    let resp = match caller {
        Ok(c) => {
            req.extensions_mut().insert(c);
            next.run(req).await
        }
        Err(_) if open => next.run(req).await,
        Err(e) => e.into_response(),
    };
    app.metrics.requests.get_or_create(&metrics::CodeLabel { code: resp.status().as_u16().to_string() }).inc();
    resp
}

fn caller_of(app: &App, req: &Request, peer: &tls::Peer) -> Result<Caller, ApiError> {
    let from = peer.addr;
    let unauthorized = |why: &str| ApiError::new(StatusCode::UNAUTHORIZED, why.to_string());
    let all = tokens::load(&app.state_dir)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .unwrap_or_default();
    let (name, entry) = match (req.headers().get(axum::http::header::AUTHORIZATION), &peer.cert) {
        (Some(header), _) => {
            let token = header
                .to_str()
                .ok()
                .and_then(|h| h.strip_prefix("Bearer "))
                .map(str::trim)
                .ok_or_else(|| unauthorized("the Authorization header is not `Bearer TOKEN`"))?;
            tokens::find(&all, token).ok_or_else(|| unauthorized("this token is not known (removed, or mistyped)"))?
        }
        (None, Some(cert)) => {
            if cert.server_use {
                return Err(unauthorized(&format!(
                    "the client certificate of {} is an agent's (it may serve TLS): use a user certificate from \
                     `muster api token add NAME --cert --out DIR`",
                    cert.name
                )));
            }
            if crate::transport::tls_carrier::revoked_serials(&app.state_dir).contains(&cert.serial) {
                return Err(unauthorized(&format!("the client certificate of {} is revoked", cert.name)));
            }
            all.iter().find(|(n, e)| e.cert && **n == cert.name).ok_or_else(|| {
                unauthorized(&format!(
                    "no certificate user {} in the API tokens (add one with `muster api token add {} --cert`)",
                    cert.name, cert.name
                ))
            })?
        }
        (None, None) => {
            return Err(unauthorized(
                "no Authorization header: send `Authorization: Bearer TOKEN` (tokens are made with `muster api token \
                 add NAME`), or a client certificate over TLS",
            ))
        }
    };
    let targets = match &entry.targets {
        None => None,
        Some(spec) => Some(token_targets(&app.state_dir, spec).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("token {name}'s targets {spec:?} do not parse: {e}"),
            )
        })?),
    };
    Ok(Caller { name: name.clone(), actions: entry.actions.clone(), targets, from })
}

/// The names a token's target node set allows (groups such as `@web`
/// are read from the registry and groups.toml now, so they follow
/// changes).
pub fn token_targets(state: &std::path::Path, spec: &str) -> Result<Vec<String>, String> {
    let r = crate::dispatch::resolve(state, spec, &[])?;
    Ok(r.targets.into_iter().map(|t| t.name).chain(r.missing.into_iter().map(|(n, _)| n)).collect())
}

/// Errors starting the API.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error(
        "no API token file at {0}: create a token with `muster api token add NAME`, or start with --insecure-no-auth \
         to let anyone who can reach the port run actions"
    )]
    NoTokens(PathBuf),
    #[error("{0}")]
    Tokens(#[from] tokens::TokenError),
    #[error("the API server failed: {0}")]
    Serve(std::io::Error),
    #[error("{0}")]
    Tls(String),
}

/// Serve until the process is stopped; `bound` is told the address
/// actually bound (for `--listen 127.0.0.1:0`).
pub async fn serve(
    state_dir: PathBuf,
    listen: SocketAddr,
    insecure: bool,
    tls_name: Option<String>,
    bound: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    if !insecure && tokens::load(&state_dir)?.is_none() {
        return Err(ServeError::NoTokens(tokens::path(&state_dir)));
    }
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|source| ServeError::Listen { addr: listen, source })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Listen { addr: listen, source })?;
    let app = Arc::new(App {
        state_dir,
        runs: runs::RunTable::default(),
        metrics: metrics::Metrics::new(),
        insecure,
        last_seen: Default::default(),
        run_slots: tokio::sync::Semaphore::new(RUN_SLOTS),
    });
    let router = handlers::router(app.clone());
    match tls_name {
        None => {
            bound(addr);
            axum::serve(listener, router.into_make_service_with_connect_info::<tls::Peer>())
                .await
                .map_err(ServeError::Serve)
        }
        Some(name) => {
            let config = tls::server_config(&app.state_dir, &name).map_err(ServeError::Tls)?;
            let listener = tls::TlsListener::new(listener, config).map_err(ServeError::Serve)?;
            bound(addr);
            axum::serve(listener, router.into_make_service_with_connect_info::<tls::Peer>())
                .await
                .map_err(ServeError::Serve)
        }
    }
}
