//! Usage and cost: totals, a cost-per-day and a cost-per-model chart (server-rendered SVG),
//! tables by model and by day, CSV download; read from the same ledger as `outcrop usage`.

use crate::page::{frame, refused, render, unavailable, Signed};
use crate::Console;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use outcrop_service::usage::{GroupBy, Report, Totals};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize, Default)]
pub struct Period {
    since: Option<String>,
    until: Option<String>,
    /// What the charts plot: `cost` (default), `tokens`, `invocations` or `throttles`.
    metric: Option<String>,
}

/// A row's value of a charted metric.
type Metric = fn(&Totals) -> Decimal;

/// The charted metrics: (query value, label, value).
const METRICS: &[(&str, &str, Metric)] = &[
    ("cost", "Cost (USD)", |t| t.cost_usd),
    ("tokens", "Tokens (input + output)", |t| {
        Decimal::from(t.input_tokens + t.output_tokens)
    }),
    ("invocations", "Invocations", |t| {
        Decimal::from(t.invocations)
    }),
    ("throttles", "Throttles", |t| Decimal::from(t.throttles)),
];

/// A date (YYYY-MM-DD) as the ledger's time bound, or `None` when absent or not a date.
fn day_bound(v: &Option<String>) -> Option<String> {
    let v = v.as_deref()?.trim();
    let ok = v.len() == 10
        && v.chars().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                c == '-'
            } else {
                c.is_ascii_digit()
            }
        });
    ok.then(|| format!("{v}T00:00:00.000Z"))
}

/// The caller's account's ledger over the period, summed by `group_by` in the store.
async fn report(
    c: &Console,
    signed: &Signed,
    period: &Period,
    group_by: GroupBy,
) -> Result<Report, Response> {
    let report = outcrop_service::usage::report(
        &c.api,
        &signed.principal(),
        day_bound(&period.since).as_deref(),
        day_bound(&period.until).as_deref(),
        group_by,
    )
    .await;
    match report {
        Ok(report) => Ok(report),
        Err(e @ outcrop_service::ApiError::AccessDenied(_)) => Err(refused(c, signed, &e).await),
        Err(e) => {
            tracing::error!(error = %e, "console could not read the ledger");
            Err(unavailable())
        }
    }
}

/// Horizontal bars of a report's metric, as widths in percent of the largest.
fn bars(report: &Report, value: Metric, money: bool) -> Vec<Value> {
    let max = report.rows.values().map(value).max().unwrap_or_default();
    report
        .rows
        .iter()
        .enumerate()
        .map(|(i, (key, t))| {
            let v = value(t);
            let pct = if max.is_zero() {
                0.0
            } else {
                (v * Decimal::ONE_HUNDRED / max)
                    .round_dp(1)
                    .to_string()
                    .parse::<f64>()
                    .unwrap_or(0.0)
            };
            let shown = if money {
                format!("${}", v.normalize())
            } else {
                v.normalize().to_string()
            };
            json!({ "key": key, "y": i * 26 + 4, "w": pct, "value": shown })
        })
        .collect()
}

pub async fn usage(
    State(c): State<Console>,
    signed: Signed,
    Query(period): Query<Period>,
) -> Response {
    let by_model = match report(&c, &signed, &period, GroupBy::Model).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let by_day = match report(&c, &signed, &period, GroupBy::Day).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let mut ctx = match frame(&c, &signed, "Usage and cost", "usage").await {
        Ok(ctx) => ctx,
        Err(r) => return r,
    };
    ctx["models"] = by_model.to_json(GroupBy::Model)["rows"].clone();
    ctx["days"] = by_day.to_json(GroupBy::Day)["rows"].clone();
    ctx["total"] = by_model.total.to_json().into();
    let metric = METRICS
        .iter()
        .find(|(name, _, _)| Some(*name) == period.metric.as_deref())
        .unwrap_or(&METRICS[0]);
    let money = metric.0 == "cost";
    ctx["day_bars"] = json!(bars(&by_day, metric.2, money));
    ctx["model_bars"] = json!(bars(&by_model, metric.2, money));
    ctx["metric"] = json!(metric.0);
    ctx["metric_label"] = json!(metric.1);
    ctx["metrics"] = json!(METRICS
        .iter()
        .map(|(n, l, _)| json!({ "name": n, "label": l }))
        .collect::<Vec<_>>());
    ctx["since"] = json!(period.since.clone().unwrap_or_default());
    ctx["until"] = json!(period.until.clone().unwrap_or_default());
    render(&c, StatusCode::OK, "usage.html", ctx)
}

/// The usage table by model as CSV, for the period given.
pub async fn usage_csv(
    State(c): State<Console>,
    signed: Signed,
    Query(period): Query<Period>,
) -> Response {
    let csv = match report(&c, &signed, &period, GroupBy::Model).await {
        Ok(r) => r.to_csv(GroupBy::Model),
        Err(resp) => return resp,
    };
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"outcrop-usage.csv\"",
            ),
        ],
        csv,
    )
        .into_response()
}
