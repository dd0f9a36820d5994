-- A revoked operator key stays on record (the audit log names its id) but no longer
-- authenticates; a running server drops it from memory within seconds.
ALTER TABLE operator_keys ADD COLUMN revoked_at INTEGER;
