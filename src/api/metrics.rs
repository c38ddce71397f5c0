//! Prometheus metrics of the API process (`GET /metrics`, text format,
//! built with prometheus-client): runs by outcome, targets by end state,
//! a histogram of run durations, agents that answered the last ping, and
//! API requests by status code.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: String,
}

/// Every metric the API exports.
pub struct Metrics {
    registry: Registry,
    /// `muster_runs_total{state="succeeded|failed|refused"}`.
    pub runs: Family<StateLabel, Counter>,
    /// `muster_targets_total{state=...}`: one per target end.
    pub targets: Family<StateLabel, Counter>,
    /// `muster_run_duration_seconds`.
    pub durations: Histogram,
    /// `muster_runs_running`.
    pub running: Gauge,
    /// `muster_agents_reachable`: agents that answered the last `POST /ping`.
    pub reachable: Gauge,
    /// `muster_api_requests_total{code=...}`.
    pub requests: Family<CodeLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let runs = Family::<StateLabel, Counter>::default();
        let targets = Family::<StateLabel, Counter>::default();
        let durations = Histogram::new([0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0]);
        let running = Gauge::default();
        let reachable = Gauge::default();
        let requests = Family::<CodeLabel, Counter>::default();
        registry.register("muster_runs", "Runs ended, by outcome", runs.clone());
        registry.register("muster_targets", "Target ends, by state", targets.clone());
        registry.register("muster_run_duration_seconds", "Wall time of runs", durations.clone());
        registry.register("muster_runs_running", "Runs in flight", running.clone());
        registry.register("muster_agents_reachable", "Agents that answered the last ping", reachable.clone());
        registry.register("muster_api_requests", "API requests, by status code", requests.clone());
        Metrics { registry, runs, targets, durations, running, reachable, requests }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.push_str("# encoding failed\n");
        }
        out
    }
}
