-- A check value (HMAC-SHA256 of a fixed label, hex) of each server secret that stored data
-- depends on: a server whose configured secret does not reproduce it refuses to start.
CREATE TABLE secret_checks (
    name text PRIMARY KEY,
    check_value text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
