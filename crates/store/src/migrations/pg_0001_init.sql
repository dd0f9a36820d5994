-- Kataar schema, version 1 (PostgreSQL). Every table that describes drive data carries
-- state_id (the partitioning key for later). No foreign keys: the engine is the first line of
-- defence, and tables must stay distributable by state_id; the constraints that matter for
-- O and D (pool CHECK, live-booking partial unique index, idempotency primary key) are here.

CREATE TABLE leader (
    id    int PRIMARY KEY CHECK (id = 1),
    epoch bigint NOT NULL
);
INSERT INTO leader (id, epoch) VALUES (1, 0);

CREATE TABLE batches (
    batch_id     bigint PRIMARY KEY,
    epoch        bigint NOT NULL,
    events       int NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE states (
    state_id      bigint PRIMARY KEY,
    state_name    text NOT NULL,
    state_name_hi text NOT NULL
);

CREATE TABLE districts (
    district_id      bigint PRIMARY KEY,
    state_id         bigint NOT NULL,
    district_name    text NOT NULL,
    district_name_hi text NOT NULL
);

CREATE TABLE centres (
    centre_id   bigint PRIMARY KEY,
    state_id    bigint NOT NULL,
    district_id bigint NOT NULL,
    name        text NOT NULL,
    address     text NOT NULL,
    pincode     text NOT NULL,
    block_name  text NOT NULL,
    lat         double precision NOT NULL,
    long        double precision NOT NULL,
    fee_type    text NOT NULL,
    fee_rupees  int NOT NULL
);

CREATE TABLE sessions (
    session_id  bigint PRIMARY KEY,
    centre_id   bigint NOT NULL,
    state_id    bigint NOT NULL,
    district_id bigint NOT NULL,
    date        date NOT NULL,
    vaccine     text NOT NULL,
    min_age     smallint NOT NULL,
    max_age     smallint,
    opens_at    timestamptz,
    cancelled   boolean NOT NULL DEFAULT false
);

CREATE TABLE slots (
    slot_id    bigint PRIMARY KEY,
    session_id bigint NOT NULL,
    state_id   bigint NOT NULL,
    start_hm   text NOT NULL,
    end_hm     text NOT NULL
);

CREATE TABLE pools (
    pool_id    bigint PRIMARY KEY,
    session_id bigint NOT NULL,
    slot_id    bigint NOT NULL,
    state_id   bigint NOT NULL,
    dose       smallint NOT NULL CHECK (dose IN (1, 2)),
    channel    text NOT NULL,
    capacity   int NOT NULL CHECK (capacity >= 0),
    booked     int NOT NULL,
    CONSTRAINT pools_booked_within_capacity CHECK (booked >= 0 AND booked <= capacity)
);

CREATE TABLE accounts (
    account_id bigint PRIMARY KEY,
    mobile     text UNIQUE,
    created_at timestamptz NOT NULL
);

CREATE TABLE beneficiaries (
    beneficiary_id bigint PRIMARY KEY,
    account_id     bigint NOT NULL,
    state_id       bigint,
    person_key     bytea NOT NULL,
    name           text NOT NULL,
    birth_year     smallint NOT NULL,
    gender         text NOT NULL,
    id_type        text NOT NULL,
    id_masked      text NOT NULL,
    created_at     timestamptz NOT NULL,
    removed_at     timestamptz
);
CREATE UNIQUE INDEX beneficiaries_person_key_live
    ON beneficiaries (person_key) WHERE removed_at IS NULL;
CREATE INDEX beneficiaries_account ON beneficiaries (account_id);

CREATE TABLE bookings (
    booking_id     bigint PRIMARY KEY,
    account_id     bigint NOT NULL,
    beneficiary_id bigint NOT NULL,
    person_key     bytea NOT NULL,
    state_id       bigint NOT NULL,
    centre_id      bigint NOT NULL,
    session_id     bigint NOT NULL,
    slot_id        bigint NOT NULL,
    pool_id        bigint NOT NULL,
    dose           smallint NOT NULL CHECK (dose IN (1, 2)),
    channel        text NOT NULL,
    status         text NOT NULL
        CHECK (status IN ('booked', 'checked_in', 'administered', 'cancelled', 'no_show')),
    token_number   int NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);
CREATE UNIQUE INDEX bookings_live_person_dose
    ON bookings (person_key, dose) WHERE status IN ('booked', 'checked_in');
CREATE INDEX bookings_account ON bookings (account_id);
CREATE INDEX bookings_session ON bookings (session_id);

CREATE TABLE doses (
    beneficiary_id  bigint NOT NULL,
    dose            smallint NOT NULL CHECK (dose IN (1, 2)),
    vaccine         text NOT NULL,
    batch           text NOT NULL,
    date            date NOT NULL,
    centre_id       bigint NOT NULL,
    booking_id      bigint NOT NULL,
    operator_id     bigint NOT NULL,
    administered_at timestamptz NOT NULL,
    PRIMARY KEY (beneficiary_id, dose)
);

CREATE TABLE idempotency (
    account_id   bigint NOT NULL,
    idem_key     text NOT NULL,
    request_hash text NOT NULL,
    status       int NOT NULL,
    response     jsonb NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (account_id, idem_key)
);
CREATE INDEX idempotency_created ON idempotency (created_at);

CREATE TABLE operator_keys (
    operator_id bigint PRIMARY KEY,
    key_hash    text NOT NULL UNIQUE,
    role        text NOT NULL CHECK (role IN ('admin', 'centre')),
    centres     bigint[] NOT NULL,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE TABLE audit (
    audit_id    bigint PRIMARY KEY,
    at          timestamptz NOT NULL,
    operator_id bigint NOT NULL,
    action      text NOT NULL,
    request_id  text NOT NULL,
    object      text NOT NULL,
    before      jsonb NOT NULL,
    after       jsonb NOT NULL
);

-- Version 2 (later) adds `releases` and `tickets` for the waiting room.
