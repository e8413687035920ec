//! Usage records the store could not take (a read-only or full database, a failing disk),
//! kept in an append-only file and written into the store later: on the next start and
//! periodically. The store ignores a record it already has (by request id), so a record
//! replayed twice is counted once.

use outcrop_store::{Store, UsageRecord};
use std::io::{BufRead, Write};
use std::path::PathBuf;

/// The spool file (one JSON record per line).
pub struct Spool {
    path: PathBuf,
    /// One writer or replayer at a time.
    lock: tokio::sync::Mutex<()>,
}

impl Spool {
    pub fn new(path: PathBuf) -> Self {
        Spool {
            path,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Appends a record and syncs it to disk before returning.
    pub async fn append(&self, record: &UsageRecord) -> std::io::Result<()> {
        let _guard = self.lock.lock().await;
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            file.write_all(&line)?;
            file.sync_data()
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Writes the spooled records into the store; the file keeps those the store still
    /// refuses (and is removed once empty). Returns how many went in.
    pub async fn replay(&self, store: &dyn Store) -> std::io::Result<usize> {
        let _guard = self.lock.lock().await;
        let file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut kept = Vec::new();
        let mut written = 0;
        for line in std::io::BufReader::new(file).lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let Ok(record) = serde_json::from_str::<UsageRecord>(&line) else {
                // A line cut short by a crash while it was written: nothing to recover.
                tracing::warn!(line = %line, "unreadable line in the usage spool; dropped");
                continue;
            };
            match store.record_usage(&record).await {
                Ok(()) => written += 1,
                Err(_) => kept.push(line),
            }
        }
        if kept.is_empty() {
            std::fs::remove_file(&self.path)?;
        } else {
            let partial = self.path.with_extension("jsonl.part");
            std::fs::write(&partial, kept.join("\n") + "\n")?;
            std::fs::rename(&partial, &self.path)?;
        }
        if written > 0 {
            tracing::info!(
                records = written,
                left = kept.len(),
                "spooled usage records written to the store"
            );
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> UsageRecord {
        UsageRecord {
            request_id: id.into(),
            time: "2026-12-05T00:00:00.000Z".into(),
            account_id: "000000000000".into(),
            principal_arn: "arn:aws:iam::000000000000:root".into(),
            model_id: "anthropic.claude-v2".into(),
            operation: "InvokeModel".into(),
            input_tokens: 3,
            output_tokens: 4,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            latency_ms: 5,
            first_byte_ms: None,
            status: 200,
            error_code: None,
            input_price_per_1k: "0.008".into(),
            output_price_per_1k: "0.024".into(),
            cost_usd: "0.00012".into(),
        }
    }

    #[tokio::test]
    async fn spooled_records_reach_the_store_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = outcrop_store::SqlStore::open(&dir.path().join("db"))
            .await
            .unwrap();
        let spool = Spool::new(dir.path().join("spool.jsonl"));
        assert_eq!(spool.replay(&store).await.unwrap(), 0);
        spool.append(&record("a")).await.unwrap();
        spool.append(&record("b")).await.unwrap();
        // A line cut short by a crash is dropped, the rest goes in.
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("spool.jsonl"))
            .unwrap()
            .write_all(b"{\"request_id\": \"c\", \"ti")
            .unwrap();
        assert_eq!(spool.replay(&store).await.unwrap(), 2);
        assert!(!dir.path().join("spool.jsonl").exists());
        // Replaying a record the store already has counts it once.
        spool.append(&record("a")).await.unwrap();
        spool.replay(&store).await.unwrap();
        let all = store.usage_records(None, None, None).await.unwrap();
        assert_eq!(
            all.iter()
                .map(|r| r.request_id.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
    }
}
