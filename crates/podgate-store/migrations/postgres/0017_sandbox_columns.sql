-- What the store queries moves out of the spec's JSON into columns: the quota charge (with
-- sidecars; before charges were stored, a sandbox's own cpu, memory and disk), the warm pool
-- that holds a sandbox, and a revision for compare-and-set updates of the spec.
ALTER TABLE sandboxes ADD COLUMN charged_cpu DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE sandboxes ADD COLUMN charged_memory BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sandboxes ADD COLUMN charged_disk BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sandboxes ADD COLUMN pool TEXT;
ALTER TABLE sandboxes ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
UPDATE sandboxes SET
    charged_cpu = coalesce((spec::jsonb->>'charged_cpu')::float8, (spec::jsonb->>'cpu')::float8, 0),
    charged_memory = coalesce((spec::jsonb->>'charged_memory')::bigint, (spec::jsonb->>'memory')::bigint, 0),
    charged_disk = coalesce((spec::jsonb->>'charged_disk')::bigint, (spec::jsonb->>'disk')::bigint, 0),
    pool = spec::jsonb->>'pool';
UPDATE sandboxes SET state = 'failed' WHERE state = 'stopped';
CREATE INDEX sandboxes_pool ON sandboxes (owner_id, pool) WHERE pool IS NOT NULL;
