-- Launch releases and their waiting rooms. A release's draw secret is never stored: only the
-- nonce it is derived from with the server's key. `prequeue` is set when the pre-queue closes at
-- the opening; `cursor` is how far admission has walked the queue's ranks.
CREATE TABLE releases (
    release_id  bigint PRIMARY KEY,
    session_ids bigint[] NOT NULL,
    opens_at    timestamptz NOT NULL,
    admit_per_s int,
    pass_ttl_s  int NOT NULL CHECK (pass_ttl_s > 0),
    draw_nonce  text NOT NULL,
    created_at  timestamptz NOT NULL,
    prequeue    int CHECK (prequeue >= 0),
    cursor      int NOT NULL DEFAULT 0 CHECK (cursor >= 0)
);
CREATE TABLE queue_tickets (
    release_id bigint NOT NULL,
    idx        int NOT NULL CHECK (idx >= 0),
    account_id bigint NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (release_id, idx)
);
CREATE TABLE queue_admissions (
    release_id bigint NOT NULL,
    idx        int NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (release_id, idx)
);
