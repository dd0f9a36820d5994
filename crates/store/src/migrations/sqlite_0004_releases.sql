-- Launch releases and their waiting rooms. A release's draw secret is never stored: only the
-- nonce it is derived from with the server's key. `prequeue` is set when the pre-queue closes at
-- the opening; `cursor` is how far admission has walked the queue's ranks.
CREATE TABLE releases (
    release_id  INTEGER PRIMARY KEY,
    session_ids TEXT NOT NULL,
    opens_at    INTEGER NOT NULL,
    admit_per_s INTEGER,
    pass_ttl_s  INTEGER NOT NULL CHECK (pass_ttl_s > 0),
    draw_nonce  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    prequeue    INTEGER CHECK (prequeue >= 0),
    cursor      INTEGER NOT NULL DEFAULT 0 CHECK (cursor >= 0)
);
CREATE TABLE queue_tickets (
    release_id INTEGER NOT NULL,
    idx        INTEGER NOT NULL CHECK (idx >= 0),
    account_id INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (release_id, idx)
);
CREATE TABLE queue_admissions (
    release_id INTEGER NOT NULL,
    idx        INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (release_id, idx)
);
