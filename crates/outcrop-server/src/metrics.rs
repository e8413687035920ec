//! `GET /metrics`: Prometheus text with Bedrock's CloudWatch runtime metric names (counted by
//! the API layer through the `metrics` facade) plus engine gauges read at scrape time.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use outcrop_engine::{Engine, LoadState};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// The process-wide Prometheus recorder (installed once; later servers in the same process,
/// as in tests, share it).
fn handle() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    // Latencies in milliseconds, from 10 ms to 2 minutes.
    let buckets = [
        10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0, 120000.0,
    ];
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full("InvocationLatency".into()), &buckets)?
        .set_buckets_for_metric(Matcher::Full("TimeToFirstToken".into()), &buckets)?
        .build_recorder();
    let h = recorder.handle();
    if metrics::set_global_recorder(recorder).is_err() {
        anyhow::bail!("another metrics recorder is installed");
    }
    Ok(HANDLE.get_or_init(|| h).clone())
}

#[derive(Clone)]
struct MetricsState {
    prometheus: PrometheusHandle,
    engines: Arc<HashMap<String, Arc<dyn Engine>>>,
}

async fn render(State(s): State<MetricsState>) -> impl IntoResponse {
    for (name, engine) in s.engines.iter() {
        let gauges = engine.gauges();
        metrics::gauge!("EngineActiveSequences", "backing_model" => name.clone())
            .set(gauges.active_sequences as f64);
        metrics::gauge!("EngineWaitingRequests", "backing_model" => name.clone())
            .set(gauges.waiting as f64);
        metrics::gauge!("EngineKvCellsReserved", "backing_model" => name.clone())
            .set(gauges.reserved_kv as f64);
        // The prefix store (prompt cache): what it holds, and how often it served.
        metrics::gauge!("EngineKvCellsCached", "backing_model" => name.clone())
            .set(gauges.cached_kv as f64);
        metrics::gauge!("EnginePrefixEntries", "backing_model" => name.clone())
            .set(gauges.prefix_entries as f64);
        for (metric, value) in [
            ("EnginePrefixHits", gauges.prefix_hits),
            ("EnginePrefixMisses", gauges.prefix_misses),
            ("EnginePrefixEvictions", gauges.prefix_evictions),
            ("EnginePrefixReusedTokens", gauges.prefix_reused_tokens),
        ] {
            metrics::counter!(metric, "backing_model" => name.clone()).absolute(value);
        }
        if gauges.endpoints > 0 {
            metrics::gauge!("EngineEndpoints", "backing_model" => name.clone())
                .set(gauges.endpoints as f64);
            metrics::gauge!("EngineHealthyEndpoints", "backing_model" => name.clone())
                .set(gauges.healthy_endpoints as f64);
        }
        for state in [
            LoadState::Unloaded,
            LoadState::Loading,
            LoadState::Ready,
            LoadState::Failed,
        ] {
            let now = engine.load_state() == state;
            metrics::gauge!("EngineModelState", "backing_model" => name.clone(), "state" => state.as_str())
                .set(if now { 1.0 } else { 0.0 });
        }
        metrics::gauge!("EngineMemoryBytes", "backing_model" => name.clone())
            .set(engine.memory().unwrap_or(0) as f64);
        if let Some(info) = engine.model() {
            metrics::gauge!("EngineKvCells", "backing_model" => name.clone())
                .set(f64::from(info.kv_tokens));
        }
    }
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.prometheus.render(),
    )
}

/// The `/metrics` route.
pub fn router(engines: HashMap<String, Arc<dyn Engine>>) -> anyhow::Result<Router> {
    let state = MetricsState {
        prometheus: handle()?,
        engines: Arc::new(engines),
    };
    Ok(Router::new()
        .route("/metrics", get(render))
        .with_state(state))
}
