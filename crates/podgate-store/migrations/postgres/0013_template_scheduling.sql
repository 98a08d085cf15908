-- Kubernetes scheduling of a template's sandboxes (runtime class, node selector, tolerations), as JSON.
ALTER TABLE templates ADD COLUMN scheduling TEXT;
