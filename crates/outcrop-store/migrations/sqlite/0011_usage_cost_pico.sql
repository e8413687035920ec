-- Each call's cost as an integer of 1e-12 USD, so that reports sum it in SQL exactly (the
-- decimal string in cost_usd stays the record). Earlier rows are converted from cost_usd:
-- a call's cost is far below the range where a double loses a unit of 1e-12.
ALTER TABLE usage_records ADD COLUMN cost_pico INTEGER NOT NULL DEFAULT 0;
UPDATE usage_records SET cost_pico = CAST(ROUND(CAST(cost_usd AS REAL) * 1000000000000) AS INTEGER);
