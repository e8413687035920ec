-- Invocation log records waiting for delivery, written before the invocation's answer ends so
-- that a crash loses none. A server delivering a record holds a lease on it until it is done
-- (or the lease runs out and another server takes it).
CREATE TABLE invocation_log_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job TEXT NOT NULL,
    owner TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0
);
