//! Every bound of the system in one place, each with its unit and why it has its value.
//! Configurable bounds start from these defaults; relations between them are checked at
//! compile time at the bottom of the file.

/// Beneficiaries per account (CoWIN's rule: a family of four on one phone). At the bound:
/// `409 beneficiary_limit`.
pub const BENEFICIARIES_PER_ACCOUNT_MAX: usize = 4;

/// Length of an `Idempotency-Key` in bytes (printable ASCII). Longer: `400 invalid_request`.
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 64;

/// How long an idempotency record of a success is kept, in seconds (the contract promises at
/// least 24 h).
pub const IDEMPOTENCY_TTL_S: u64 = 26 * 3600;

/// How long an idempotency record of a refusal (a 4xx answer: nothing changed) is kept, in
/// seconds. A client's retries within it get the same answer; after it the key runs again.
/// Minutes, not a day, so that a flood of failing attempts cannot pile up.
pub const IDEMPOTENCY_REFUSED_TTL_S: u64 = 10 * 60;

/// Idempotency records one account may hold. A new key at the bound evicts the account's
/// oldest refusal; with only successes (kept 24 h) and running claims left, the write is
/// `429 too_many_requests` until one expires. A family of four booking, rescheduling and
/// cancelling both doses stays far below it.
pub const IDEMPOTENCY_RECORDS_PER_ACCOUNT_MAX: usize = 64;

/// Idempotency records one operator key may hold ([`crate::OperatorId::idempotency_scope`]):
/// the console sends a key with every action, and a busy centre checks in, vaccinates and
/// registers walk-ins by the thousand in a day, each kept 24 h. At the bound as for an account
/// (oldest refusal evicted, else `429 too_many_requests`). About 1 KiB each with its answer, so
/// one key holds at most ~20 MiB.
pub const IDEMPOTENCY_RECORDS_PER_OPERATOR_KEY_MAX: usize = 20_000;

/// Estimated heap bytes of the whole in-memory idempotency index (256 MiB). Past it the oldest
/// refusals are evicted, and a new refusal is not remembered when none is left; successes are
/// kept for their 24 h (about 250 bytes each besides the answer).
pub const IDEMPOTENCY_INDEX_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Slots in one session (a day of 30-minute slots is 24). More: `400 invalid_request`.
pub const SLOTS_PER_SESSION_MAX: usize = 48;

/// Places in one pool. More: `400 invalid_request` (a single slot of one centre never
/// vaccinates more than this).
pub const POOL_CAPACITY_MAX: u32 = 100_000;

/// Length of free-text fields (names, addresses, batch numbers) in characters.
pub const TEXT_CHARS_MAX: usize = 200;

/// Days an availability or capacity query may span.
pub const QUERY_DAYS_MAX: u32 = 14;

/// Default page size for list endpoints.
pub const PAGE_LIMIT_DEFAULT: usize = 50;

/// Largest page size for list endpoints. More: `400 invalid_request`.
pub const PAGE_LIMIT_MAX: usize = 500;

/// Writes in one store batch (one transaction), counted as the requests that made them: a
/// booking counts one (its booking and idempotency record are two events), as does a
/// cancellation, a check-in or a new account. Bigger batches amortise the commit further but
/// hold callers longer; 512 reaches the group-commit plateau measured on 2 cores.
pub const BATCH_BOOKINGS_MAX: usize = 512;

/// Events in one store batch: the bound on one transaction's statements, above the events of
/// [`BATCH_BOOKINGS_MAX`] ordinary writes (a booking is two) so that bookings, not events,
/// decide a batch's size. A single write with more events is committed alone.
pub const BATCH_EVENTS_MAX: usize = 4_096;

/// Events waiting for the writer. When full, writes are refused with `503 store_unavailable`
/// at once instead of queueing without bound (the memory bound of the write path).
pub const WRITER_QUEUE_EVENTS_MAX: usize = 65_536;

/// Deadline of one batch commit in milliseconds. Past it the commit is in doubt and the writer
/// reads back before answering anyone.
pub const COMMIT_TIMEOUT_MS: u64 = 5_000;

/// Oldest accepted birth year.
pub const BIRTH_YEAR_MIN: u16 = 1900;

/// Sessions in one launch release. More: `400 invalid_request`.
pub const RELEASE_SESSIONS_MAX: usize = 1_000;

/// The shortest and longest validity of a waiting-room pass, in seconds (a release's
/// `pass_ttl_s`; default [`PASS_TTL_S_DEFAULT`]). Outside: `400 invalid_request`.
pub const PASS_TTL_S_MIN: u32 = 30;
/// See [`PASS_TTL_S_MIN`].
pub const PASS_TTL_S_MAX: u32 = 3_600;
/// A release's pass validity when it names none, in seconds.
pub const PASS_TTL_S_DEFAULT: u32 = 300;
/// The longest a queue poll may ask to be held open (`GET /v1/queue/{id}?wait_s=`), seconds.
/// Above: `400 invalid_request`. The server holds no longer than its `queue_keepalive_s` and
/// two seconds short of its `request_timeout_s` either.
pub const QUEUE_WAIT_S_MAX: u32 = 25;

/// The highest admission rate a release may ask for, admissions per second. Above:
/// `400 invalid_request`.
pub const ADMIT_PER_S_MAX: u32 = 100_000;

const _: () = assert!(BATCH_EVENTS_MAX <= WRITER_QUEUE_EVENTS_MAX);
const _: () = assert!(2 * BATCH_BOOKINGS_MAX <= BATCH_EVENTS_MAX);
const _: () = assert!(PAGE_LIMIT_DEFAULT <= PAGE_LIMIT_MAX);
const _: () = assert!(BENEFICIARIES_PER_ACCOUNT_MAX >= 1);
const _: () = assert!(IDEMPOTENCY_REFUSED_TTL_S < IDEMPOTENCY_TTL_S);
const _: () = assert!(IDEMPOTENCY_RECORDS_PER_ACCOUNT_MAX >= 2 * BENEFICIARIES_PER_ACCOUNT_MAX);
// An operator key does the work of many accounts in a day.
const _: () =
    assert!(IDEMPOTENCY_RECORDS_PER_OPERATOR_KEY_MAX > IDEMPOTENCY_RECORDS_PER_ACCOUNT_MAX);
const _: () = assert!(PASS_TTL_S_MIN <= PASS_TTL_S_DEFAULT && PASS_TTL_S_DEFAULT <= PASS_TTL_S_MAX);
