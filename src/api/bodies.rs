//! The shapes of the API's request bodies and parameters (their JSON
//! Schema in `/openapi.json` is derived from these by utoipa). Unknown
//! fields are refused.

use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TargetsQuery {
    /// `all` or a node set.
    #[param(min_length = 1)]
    pub spec: String,
    /// Comma-separated tags every target must carry.
    #[serde(default)]
    pub tags: Option<String>,
}

/// `POST /ping` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PingBody {
    /// `all` or a node set of registered agents.
    #[schema(min_length = 1)]
    pub targets: String,
    /// Keep agents carrying every one of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Agents pinged at once (default: the dispatcher's fan-out).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub fanout: Option<usize>,
}

/// `POST /run` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunBody {
    /// `all` or a node set of registered agents, e.g. `web[01-03],db1`.
    #[schema(min_length = 1)]
    pub targets: String,
    /// Keep agents carrying every one of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The action's name in each agent's allowlist.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")]
    pub action: String,
    /// Arguments passed to the action.
    #[serde(default)]
    pub args: Vec<String>,
    /// Seconds each target may run (default: the dispatcher's).
    #[serde(default)]
    #[schema(exclusive_minimum = 0.0, maximum = 1e9)]
    pub timeout: Option<f64>,
    /// Targets run at once (default: the dispatcher's fan-out).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub fanout: Option<usize>,
    /// Stop starting targets after this many failures.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub max_errors: Option<usize>,
    /// Seconds to wait for the end before answering 202 (0 to 300).
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 300.0)]
    pub wait: Option<f64>,
    /// Asynchronous, as `muster run --async`: the agents keep running the
    /// action and its result after the dispatch ends; `GET /status/{id}`
    /// asks them for it.
    #[serde(default, rename = "async")]
    pub detach: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// 1-based page number.
    #[serde(default)]
    #[param(minimum = 1)]
    pub page: Option<usize>,
    /// Runs per page (1 to 500, default 50).
    #[serde(default)]
    #[param(minimum = 1, maximum = 500)]
    pub per_page: Option<usize>,
}

/// One Server-Sent Event of `GET /runs/{id}/events`: `id` counts from 1,
/// `event` is `started`, `output`, `end` or `done`, `data` is the event's
/// JSON object (as `muster run --output json` prints it).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct SseFrame {
    pub id: String,
    pub event: String,
    pub data: String,
}

/// A request id in a path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct RunId {
    /// 16 lowercase hex digits.
    #[param(pattern = "^[0-9a-f]{16}$")]
    pub id: String,
}
