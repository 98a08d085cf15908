-- What the store queries moves out of the spec's JSON into columns: the quota charge (with
-- sidecars; before charges were stored, a sandbox's own cpu, memory and disk), the warm pool
-- that holds a sandbox, and a revision for compare-and-set updates of the spec.
ALTER TABLE sandboxes ADD COLUMN charged_cpu REAL NOT NULL DEFAULT 0;
ALTER TABLE sandboxes ADD COLUMN charged_memory BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sandboxes ADD COLUMN charged_disk BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sandboxes ADD COLUMN pool TEXT;
ALTER TABLE sandboxes ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
UPDATE sandboxes SET
    charged_cpu = coalesce(json_extract(spec, '$.charged_cpu'), json_extract(spec, '$.cpu'), 0),
    charged_memory = coalesce(json_extract(spec, '$.charged_memory'), json_extract(spec, '$.memory'), 0),
    charged_disk = coalesce(json_extract(spec, '$.charged_disk'), json_extract(spec, '$.disk'), 0),
    pool = json_extract(spec, '$.pool');
UPDATE sandboxes SET state = 'failed' WHERE state = 'stopped';
CREATE INDEX sandboxes_pool ON sandboxes (owner_id, pool) WHERE pool IS NOT NULL;
