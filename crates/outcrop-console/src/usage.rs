//! Usage and cost: totals, a cost-per-day and a cost-per-model chart (server-rendered SVG),
//! tables by model and by day, CSV download; read from the same ledger as `outcrop usage`.

use crate::page::{authorize, frame, render, unavailable, Signed};
use crate::Console;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use outcrop_api::Operation;
use outcrop_store::{GroupBy, Report};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize, Default)]
pub struct Period {
    since: Option<String>,
    until: Option<String>,
}

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

async fn records(
    c: &Console,
    signed: &Signed,
    period: &Period,
) -> Result<Vec<outcrop_store::UsageRecord>, Response> {
    authorize(c, signed, &Operation::GetUsageReport).await?;
    c.api
        .store
        .usage_records(
            Some(&signed.s.account_id),
            day_bound(&period.since).as_deref(),
            day_bound(&period.until).as_deref(),
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "console could not read the ledger");
            unavailable()
        })
}

/// Horizontal bars of a report's cost, as widths in percent of the largest.
fn cost_bars(report: &Report) -> Vec<Value> {
    let max = report
        .rows
        .values()
        .map(|t| t.cost_usd)
        .max()
        .unwrap_or_default();
    report
        .rows
        .iter()
        .enumerate()
        .map(|(i, (key, t))| {
            let pct = if max.is_zero() {
                0.0
            } else {
                (t.cost_usd * rust_decimal::Decimal::ONE_HUNDRED / max)
                    .round_dp(1)
                    .to_string()
                    .parse::<f64>()
                    .unwrap_or(0.0)
            };
            json!({ "key": key, "y": i * 26 + 4, "w": pct, "cost": t.cost_usd.normalize().to_string(),
                    "invocations": t.invocations })
        })
        .collect()
}

pub async fn usage(
    State(c): State<Console>,
    signed: Signed,
    Query(period): Query<Period>,
) -> Response {
    let records = match records(&c, &signed, &period).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let by_model = outcrop_store::report(&records, GroupBy::Model);
    let by_day = outcrop_store::report(&records, GroupBy::Day);
    let mut ctx = match frame(&c, &signed, "Usage and cost", "usage").await {
        Ok(ctx) => ctx,
        Err(r) => return r,
    };
    ctx["models"] = by_model.to_json(GroupBy::Model)["rows"].clone();
    ctx["days"] = by_day.to_json(GroupBy::Day)["rows"].clone();
    ctx["total"] = by_model.total.to_json().into();
    ctx["day_bars"] = json!(cost_bars(&by_day));
    ctx["model_bars"] = json!(cost_bars(&by_model));
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
    let records = match records(&c, &signed, &period).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let csv = outcrop_store::report(&records, GroupBy::Model).to_csv(GroupBy::Model);
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
