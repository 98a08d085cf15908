-- The last failure of a template's warm-pool refill (cleared by a success), shown by `template ls`.
ALTER TABLE templates ADD COLUMN pool_error TEXT;
ALTER TABLE templates ADD COLUMN pool_error_at BIGINT;
