//! The usage ledger's records and the reports made from them. Costs are exact decimals
//! (`rust_decimal`): USD per 1,000 tokens × tokens, summed without rounding.

use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::str::FromStr;

/// One runtime call, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UsageRecord {
    pub request_id: String,
    /// RFC 3339, UTC.
    pub time: String,
    pub account_id: String,
    pub principal_arn: String,
    pub model_id: String,
    pub operation: String,
    /// Input tokens computed for this call (cache reads and writes not included).
    pub input_tokens: u32,
    pub output_tokens: u32,
    /// Input tokens read from the prompt cache, and written to it.
    #[serde(default)]
    pub cache_read_tokens: u32,
    #[serde(default)]
    pub cache_write_tokens: u32,
    pub latency_ms: u64,
    pub first_byte_ms: Option<u64>,
    /// HTTP status of the call (200, or the error's; 429 for throttles).
    pub status: u16,
    pub error_code: Option<String>,
    pub input_price_per_1k: String,
    pub output_price_per_1k: String,
    pub cost_usd: String,
}

/// A price per 1,000 tokens times a tier's factor (`"1.75"`), exactly, as a decimal string.
/// An unparseable factor leaves the price as it is.
pub fn scaled_price(price: &str, factor: &str) -> String {
    match (Decimal::from_str(price), Decimal::from_str(factor)) {
        (Ok(p), Ok(f)) => (p * f).normalize().to_string(),
        _ => price.to_owned(),
    }
}

/// `tokens × price / 1000` for both directions, exactly. Unparseable prices cost nothing (the
/// catalog's prices are checked when it loads).
pub fn cost(
    input_tokens: u32,
    output_tokens: u32,
    input_per_1k: &str,
    output_per_1k: &str,
) -> Decimal {
    let price = |s: &str| Decimal::from_str(s).unwrap_or_default();
    (Decimal::from(input_tokens) * price(input_per_1k)
        + Decimal::from(output_tokens) * price(output_per_1k))
        / Decimal::from(1000)
}

/// `tokens × price / 1000` for the prompt cache's reads and writes (5-minute and 1-hour),
/// exactly.
pub fn cache_cost(tokens_and_prices: &[(u32, &str)]) -> Decimal {
    tokens_and_prices
        .iter()
        .map(|(n, p)| Decimal::from(*n) * Decimal::from_str(p).unwrap_or_default())
        .sum::<Decimal>()
        / Decimal::from(1000)
}

/// A cost as an integer of 1e-12 USD (what reports sum in SQL); a cost finer than that is
/// rounded.
pub fn cost_pico(cost_usd: &str) -> i64 {
    let pico = Decimal::from_str(cost_usd).unwrap_or_default() * Decimal::from(PICO);
    i64::try_from(pico.round().mantissa()).unwrap_or(i64::MAX)
}

const PICO: i64 = 1_000_000_000_000;

/// How report rows are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupBy {
    #[default]
    Model,
    Principal,
    Day,
}

impl GroupBy {
    /// The JSON field naming a row's group.
    pub fn key_name(self) -> &'static str {
        match self {
            GroupBy::Model => "model_id",
            GroupBy::Principal => "principal_arn",
            GroupBy::Day => "day",
        }
    }

    /// The SQL expression of a row's group.
    pub(crate) fn sql_key(self) -> &'static str {
        match self {
            GroupBy::Model => "model_id",
            GroupBy::Principal => "principal_arn",
            GroupBy::Day => "substr(time, 1, 10)",
        }
    }

    fn key(self, r: &UsageRecord) -> String {
        match self {
            GroupBy::Model => r.model_id.clone(),
            GroupBy::Principal => r.principal_arn.clone(),
            GroupBy::Day => r.time.get(..10).unwrap_or_default().to_owned(),
        }
    }
}

/// Totals of a group of records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Successful calls (HTTP 200), as Bedrock's `Invocations` metric counts them.
    pub invocations: u64,
    pub throttles: u64,
    pub client_errors: u64,
    pub server_errors: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub cost_usd: Decimal,
}

impl Totals {
    fn add(&mut self, r: &UsageRecord) {
        match r.status {
            200..=299 => self.invocations += 1,
            429 => self.throttles += 1,
            400..=499 => self.client_errors += 1,
            _ => self.server_errors += 1,
        }
        self.input_tokens += u64::from(r.input_tokens);
        self.output_tokens += u64::from(r.output_tokens);
        self.cache_read_tokens += u64::from(r.cache_read_tokens);
        self.cache_write_tokens += u64::from(r.cache_write_tokens);
        self.cost_usd += Decimal::from_str(&r.cost_usd).unwrap_or_default();
    }
}

impl Totals {
    /// Totals summed by the database: calls by status class, tokens, and the cost in 1e-12 USD
    /// (a decimal string, as the database prints its sum).
    pub(crate) fn from_sums(counts: [i64; 4], tokens: [i64; 4], cost_pico: &str) -> Self {
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        let [calls, invocations, throttles, client_errors] = counts.map(n);
        let cost = Decimal::from_str(cost_pico).unwrap_or_default() / Decimal::from(PICO);
        Totals {
            invocations,
            throttles,
            client_errors,
            server_errors: calls.saturating_sub(invocations + throttles + client_errors),
            input_tokens: n(tokens[0]),
            output_tokens: n(tokens[1]),
            cache_read_tokens: n(tokens[2]),
            cache_write_tokens: n(tokens[3]),
            cost_usd: cost.normalize(),
        }
    }

    pub(crate) fn merge(&mut self, other: &Totals) {
        self.invocations += other.invocations;
        self.throttles += other.throttles;
        self.client_errors += other.client_errors;
        self.server_errors += other.server_errors;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_tokens += other.cache_read_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
        self.cost_usd += other.cost_usd;
    }
}

/// A report: rows by group key (sorted), and the grand total.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub rows: BTreeMap<String, Totals>,
    pub total: Totals,
}

impl Totals {
    /// `{"invocations", ..., "cost_usd": "<decimal string>"}`.
    pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("invocations".into(), self.invocations.into());
        m.insert("throttles".into(), self.throttles.into());
        m.insert("client_errors".into(), self.client_errors.into());
        m.insert("server_errors".into(), self.server_errors.into());
        m.insert("input_tokens".into(), self.input_tokens.into());
        m.insert("output_tokens".into(), self.output_tokens.into());
        m.insert("cache_read_tokens".into(), self.cache_read_tokens.into());
        m.insert("cache_write_tokens".into(), self.cache_write_tokens.into());
        m.insert(
            "cost_usd".into(),
            self.cost_usd.normalize().to_string().into(),
        );
        m
    }
}

impl Report {
    /// `{"rows": [{<group key>, totals...}], "total": {...}}`, as `outcrop usage --format
    /// json` prints it and the console reads it.
    pub fn to_json(&self, group_by: GroupBy) -> serde_json::Value {
        let rows: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|(k, t)| {
                let mut m = serde_json::Map::new();
                m.insert(group_by.key_name().into(), k.clone().into());
                m.extend(t.to_json());
                serde_json::Value::Object(m)
            })
            .collect();
        serde_json::json!({ "rows": rows, "total": self.total.to_json() })
    }
}

impl Report {
    /// The rows as CSV with a header line (the group key quoted when it needs to be).
    pub fn to_csv(&self, group_by: GroupBy) -> String {
        let mut out = format!(
            "{},invocations,throttles,client_errors,server_errors,input_tokens,output_tokens,cost_usd\n",
            group_by.key_name()
        );
        for (k, t) in &self.rows {
            let key = if k.contains([',', '"', '\n']) {
                format!("\"{}\"", k.replace('"', "\"\""))
            } else {
                k.clone()
            };
            out.push_str(&format!(
                "{key},{},{},{},{},{},{},{}\n",
                t.invocations,
                t.throttles,
                t.client_errors,
                t.server_errors,
                t.input_tokens,
                t.output_tokens,
                t.cost_usd.normalize()
            ));
        }
        out
    }
}

pub fn report(records: &[UsageRecord], group_by: GroupBy) -> Report {
    let mut out = Report::default();
    for r in records {
        out.rows.entry(group_by.key(r)).or_default().add(r);
        out.total.add(r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(model: &str, status: u16, input: u32, output: u32, cost: &str) -> UsageRecord {
        UsageRecord {
            request_id: format!("{model}{status}{input}"),
            time: "2026-11-25T10:00:00.000Z".into(),
            account_id: "0".into(),
            principal_arn: "arn".into(),
            model_id: model.into(),
            operation: "InvokeModel".into(),
            input_tokens: input,
            output_tokens: output,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            latency_ms: 1,
            first_byte_ms: None,
            status,
            error_code: None,
            input_price_per_1k: "0.008".into(),
            output_price_per_1k: "0.024".into(),
            cost_usd: cost.into(),
        }
    }

    #[test]
    fn costs_are_exact() {
        // 0.1 + 0.2 style sums stay exact.
        assert_eq!(cost(1, 0, "0.1", "0").to_string(), "0.0001");
        assert_eq!(cost(1000, 1000, "0.008", "0.024").to_string(), "0.032");
        assert_eq!(cost(3, 7, "0.00025", "0.00125").to_string(), "0.0000095");
        let cache = cache_cost(&[(2048, "0.0003"), (1000, "0.00375"), (0, "0.006")]);
        assert_eq!(cache.normalize().to_string(), "0.0043644");
    }

    #[test]
    fn reports_group_and_count_by_status() {
        let rs = vec![
            rec("a", 200, 10, 5, "0.0002"),
            rec("a", 200, 1, 1, "0.0001"),
            rec("b", 429, 0, 0, "0"),
            rec("b", 400, 0, 0, "0"),
        ];
        let r = report(&rs, GroupBy::Model);
        assert_eq!(r.rows["a"].invocations, 2);
        assert_eq!(r.rows["a"].cost_usd.to_string(), "0.0003");
        assert_eq!((r.rows["b"].throttles, r.rows["b"].client_errors), (1, 1));
        assert_eq!(r.total.input_tokens, 11);
        assert_eq!(
            report(&rs, GroupBy::Day).rows.keys().collect::<Vec<_>>(),
            ["2026-11-25"]
        );
        let csv = r.to_csv(GroupBy::Model);
        assert!(csv.starts_with("model_id,invocations,"));
        assert!(csv.contains("\na,2,0,0,0,11,6,0.0003\n"), "{csv}");
    }
}
