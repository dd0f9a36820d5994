-- Kataar schema, version 1 (SQLite): the PostgreSQL schema with bytea as BLOB, timestamps as
-- integer microseconds since the Unix epoch, dates as 'YYYY-MM-DD' text, json as text and the
-- operator key's centres as a JSON array. Same CHECKs and the same partial unique indexes.

CREATE TABLE leader (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch INTEGER NOT NULL
);
INSERT INTO leader (id, epoch) VALUES (1, 0);

CREATE TABLE batches (
    batch_id     INTEGER PRIMARY KEY,
    epoch        INTEGER NOT NULL,
    events       INTEGER NOT NULL,
    committed_at INTEGER NOT NULL
);

CREATE TABLE states (
    state_id      INTEGER PRIMARY KEY,
    state_name    TEXT NOT NULL,
    state_name_hi TEXT NOT NULL
);

CREATE TABLE districts (
    district_id      INTEGER PRIMARY KEY,
    state_id         INTEGER NOT NULL,
    district_name    TEXT NOT NULL,
    district_name_hi TEXT NOT NULL
);

CREATE TABLE centres (
    centre_id   INTEGER PRIMARY KEY,
    state_id    INTEGER NOT NULL,
    district_id INTEGER NOT NULL,
    name        TEXT NOT NULL,
    address     TEXT NOT NULL,
    pincode     TEXT NOT NULL,
    block_name  TEXT NOT NULL,
    lat         REAL NOT NULL,
    long        REAL NOT NULL,
    fee_type    TEXT NOT NULL,
    fee_rupees  INTEGER NOT NULL
);

CREATE TABLE sessions (
    session_id  INTEGER PRIMARY KEY,
    centre_id   INTEGER NOT NULL,
    state_id    INTEGER NOT NULL,
    district_id INTEGER NOT NULL,
    date        TEXT NOT NULL,
    vaccine     TEXT NOT NULL,
    min_age     INTEGER NOT NULL,
    max_age     INTEGER,
    opens_at    INTEGER,
    cancelled   INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE slots (
    slot_id    INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL,
    state_id   INTEGER NOT NULL,
    start_hm   TEXT NOT NULL,
    end_hm     TEXT NOT NULL
);

CREATE TABLE pools (
    pool_id    INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL,
    slot_id    INTEGER NOT NULL,
    state_id   INTEGER NOT NULL,
    dose       INTEGER NOT NULL CHECK (dose IN (1, 2)),
    channel    TEXT NOT NULL,
    capacity   INTEGER NOT NULL CHECK (capacity >= 0),
    booked     INTEGER NOT NULL,
    CONSTRAINT pools_booked_within_capacity CHECK (booked >= 0 AND booked <= capacity)
);

CREATE TABLE accounts (
    account_id INTEGER PRIMARY KEY,
    mobile     TEXT UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE beneficiaries (
    beneficiary_id INTEGER PRIMARY KEY,
    account_id     INTEGER NOT NULL,
    state_id       INTEGER,
    person_key     BLOB NOT NULL,
    name           TEXT NOT NULL,
    birth_year     INTEGER NOT NULL,
    gender         TEXT NOT NULL,
    id_type        TEXT NOT NULL,
    id_masked      TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    removed_at     INTEGER
);
CREATE UNIQUE INDEX beneficiaries_person_key_live
    ON beneficiaries (person_key) WHERE removed_at IS NULL;
CREATE INDEX beneficiaries_account ON beneficiaries (account_id);

CREATE TABLE bookings (
    booking_id     INTEGER PRIMARY KEY,
    account_id     INTEGER NOT NULL,
    beneficiary_id INTEGER NOT NULL,
    person_key     BLOB NOT NULL,
    state_id       INTEGER NOT NULL,
    centre_id      INTEGER NOT NULL,
    session_id     INTEGER NOT NULL,
    slot_id        INTEGER NOT NULL,
    pool_id        INTEGER NOT NULL,
    dose           INTEGER NOT NULL CHECK (dose IN (1, 2)),
    channel        TEXT NOT NULL,
    status         TEXT NOT NULL
        CHECK (status IN ('booked', 'checked_in', 'administered', 'cancelled', 'no_show')),
    token_number   INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE UNIQUE INDEX bookings_live_person_dose
    ON bookings (person_key, dose) WHERE status IN ('booked', 'checked_in');
CREATE INDEX bookings_account ON bookings (account_id);
CREATE INDEX bookings_session ON bookings (session_id);

CREATE TABLE doses (
    beneficiary_id  INTEGER NOT NULL,
    dose            INTEGER NOT NULL CHECK (dose IN (1, 2)),
    vaccine         TEXT NOT NULL,
    batch           TEXT NOT NULL,
    date            TEXT NOT NULL,
    centre_id       INTEGER NOT NULL,
    booking_id      INTEGER NOT NULL,
    operator_id     INTEGER NOT NULL,
    administered_at INTEGER NOT NULL,
    PRIMARY KEY (beneficiary_id, dose)
);

CREATE TABLE idempotency (
    account_id   INTEGER NOT NULL,
    idem_key     TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER NOT NULL,
    response     TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (account_id, idem_key)
);
CREATE INDEX idempotency_created ON idempotency (created_at);

CREATE TABLE operator_keys (
    operator_id INTEGER PRIMARY KEY,
    key_hash    TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'centre')),
    centres     TEXT NOT NULL,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE audit (
    audit_id    INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    operator_id INTEGER NOT NULL,
    action      TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    object      TEXT NOT NULL,
    before      TEXT NOT NULL,
    after       TEXT NOT NULL
);

-- Version 2 (later) adds `releases` and `tickets` for the waiting room.
