//! Benchmark: a usage report over a large ledger, summed in SQL (`Store::usage_report`) and,
//! as the earlier way, every record loaded and summed in Rust (`usage_records` + `report`),
//! on SQLite and, when `OUTCROP_TEST_DATABASE_URL` names a Postgres server, on Postgres.
//!
//! `cargo run --release -p outcrop-store --example usage_report -- [ROWS]` (default 1,000,000).

use outcrop_store::{report, GroupBy, SecretBox, SqlStore, Store};
use sqlx::any::AnyPoolOptions;
use std::time::Instant;

const ACCOUNT: &str = "000000000000";

/// Writes `rows` ledger rows straight into the database, in batches of multi-row inserts.
async fn fill(url: &str, rows: u32) {
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    let models = [
        "anthropic.claude-v2",
        "amazon.nova-micro-v1:0",
        "meta.llama3-8b-instruct-v1:0",
    ];
    let mut tx = pool.begin().await.unwrap();
    for start in (0..rows).step_by(1000) {
        let values: Vec<String> = (start..(start + 1000).min(rows))
            .map(|i| {
                let cost = outcrop_store::cost(100 + i % 900, i % 300, "0.00025", "0.00125")
                    .normalize()
                    .to_string();
                format!(
                    "('r{i}', '2026-{:02}-{:02}T{:02}:00:00.000Z', '{ACCOUNT}', 'arn:aws:iam::{ACCOUNT}:user/u{}', '{}', 'InvokeModel', {}, {}, 0, 0, 12, NULL, {}, NULL, '0.00025', '0.00125', '{cost}', {})",
                    1 + i % 12,
                    1 + i % 28,
                    i % 24,
                    i % 50,
                    models[(i % 3) as usize],
                    100 + i % 900,
                    i % 300,
                    if i.is_multiple_of(97) { 429 } else { 200 },
                    outcrop_store::cost_pico(&cost),
                )
            })
            .collect();
        sqlx::query(&format!(
            "INSERT INTO usage_records (request_id, time, account_id, principal_arn, model_id, operation,
                input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, latency_ms,
                first_byte_ms, status, error_code, input_price_per_1k, output_price_per_1k, cost_usd,
                cost_pico) VALUES {}",
            values.join(", ")
        ))
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    pool.close().await;
}

async fn measure(engine: &str, store: &SqlStore, rows: u32) {
    for group_by in [GroupBy::Model, GroupBy::Day] {
        let started = Instant::now();
        let in_sql = store
            .usage_report(Some(ACCOUNT), None, None, group_by)
            .await
            .unwrap();
        let sql_secs = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let records = store
            .usage_records(Some(ACCOUNT), None, None)
            .await
            .unwrap();
        let in_rust = report(&records, group_by);
        let rust_secs = started.elapsed().as_secs_f64();
        assert_eq!(in_sql, in_rust);
        println!(
            "{engine:<8} {rows:>9} rows  by {:<8}  SQL {sql_secs:>7.3} s   load+sum {rust_secs:>7.3} s   {:>5.1}x",
            group_by.key_name(),
            rust_secs / sql_secs
        );
    }
}

#[tokio::main]
async fn main() {
    let rows: u32 = std::env::args()
        .nth(1)
        .map_or(1_000_000, |a| a.parse().expect("ROWS: a number"));
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outcrop.db");
    let store = SqlStore::open(&path).await.unwrap();
    fill(&format!("sqlite://{}", path.display()), rows).await;
    measure("sqlite", &store, rows).await;
    if let Ok(url) = std::env::var("OUTCROP_TEST_DATABASE_URL") {
        let name = format!("outcrop_bench_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::AnyPool::connect(&url).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap();
        let url = format!("{}/{name}", url.rsplit_once('/').unwrap().0);
        let key = SecretBox::from_hex(&"42".repeat(32)).unwrap();
        let store = SqlStore::open_postgres(&url, key).await.unwrap();
        fill(&url, rows).await;
        measure("postgres", &store, rows).await;
    }
}
