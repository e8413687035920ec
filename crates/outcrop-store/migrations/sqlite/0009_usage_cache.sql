-- Prompt caching: the input tokens a call read from and wrote to the cache, counted apart
-- from input_tokens (which excludes them) and priced at the model's cache prices.
ALTER TABLE usage_records ADD COLUMN cache_read_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_records ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
