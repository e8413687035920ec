//! `outcrop usage`: the usage ledger summed per model, principal or day, as a table, JSON
//! (costs as decimal strings) or CSV.

use crate::identities::DataDir;
use anyhow::bail;
use outcrop_store::{GroupBy, Store, Totals};

#[derive(clap::ValueEnum, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReportFormat {
    #[default]
    Table,
    Json,
    Csv,
}

#[derive(clap::ValueEnum, Clone, Copy, Default, PartialEq, Eq)]
pub enum Group {
    #[default]
    Model,
    Principal,
    Day,
}

#[derive(clap::Args)]
pub struct UsageArgs {
    /// Only calls at or after this time (RFC 3339, or a date: 2026-11-01)
    #[arg(long)]
    since: Option<String>,
    /// Only calls before this time (RFC 3339, or a date)
    #[arg(long)]
    until: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    group_by: Group,
    #[arg(long, value_enum, default_value_t)]
    format: ReportFormat,
    #[command(flatten)]
    data: DataDir,
}

/// A bound as the ledger stores times (RFC 3339 UTC with milliseconds).
fn bound(value: &Option<String>) -> anyhow::Result<Option<String>> {
    let Some(v) = value else { return Ok(None) };
    let utc = if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        t.with_timezone(&chrono::Utc)
    } else if let Ok(d) = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
    } else {
        bail!("{v} is neither an RFC 3339 time nor a date (YYYY-MM-DD)");
    };
    Ok(Some(
        utc.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    ))
}

pub async fn usage(args: UsageArgs) -> anyhow::Result<()> {
    let group_by = match args.group_by {
        Group::Model => GroupBy::Model,
        Group::Principal => GroupBy::Principal,
        Group::Day => GroupBy::Day,
    };
    let (since, until) = (bound(&args.since)?, bound(&args.until)?);
    let store = args.data.store().await?;
    let report = store
        .usage_report(None, since.as_deref(), until.as_deref(), group_by)
        .await?;
    let key = group_by.key_name();
    match args.format {
        ReportFormat::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&report.to_json(group_by))?
            );
        }
        ReportFormat::Csv => print!("{}", report.to_csv(group_by)),
        ReportFormat::Table => {
            let width = report
                .rows
                .keys()
                .map(String::len)
                .max()
                .unwrap_or(0)
                .max(key.len())
                .max(5);
            println!(
                "{key:<width$}  {:>11}  {:>9}  {:>6}  {:>12}  {:>13}  {:>14}",
                "invocations", "throttles", "errors", "input_tokens", "output_tokens", "cost_usd"
            );
            let line = |k: &str, t: &Totals| {
                println!(
                    "{k:<width$}  {:>11}  {:>9}  {:>6}  {:>12}  {:>13}  {:>14}",
                    t.invocations,
                    t.throttles,
                    t.client_errors + t.server_errors,
                    t.input_tokens,
                    t.output_tokens,
                    t.cost_usd.normalize().to_string()
                );
            };
            for (k, t) in &report.rows {
                line(k, t);
            }
            line("total", &report.total);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_accept_dates_and_times() {
        assert_eq!(
            bound(&Some("2026-11-01".into())).unwrap().unwrap(),
            "2026-11-01T00:00:00.000Z"
        );
        assert_eq!(
            bound(&Some("2026-11-01T10:00:00+01:00".into()))
                .unwrap()
                .unwrap(),
            "2026-11-01T09:00:00.000Z"
        );
        assert!(bound(&Some("yesterday".into())).is_err());
    }
}
