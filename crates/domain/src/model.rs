//! The records of a drive. Plain data: the engine owns the live copies, the store the durable
//! ones, and both speak these types.

use crate::ids::*;
use crate::vaccine::Vaccine;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Dose 1 or dose 2. Serialised as the number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum Dose {
    /// The first dose.
    One,
    /// The second dose: same vaccine, after the minimum interval.
    Two,
}

impl Dose {
    /// Both doses, in order.
    pub const ALL: [Dose; 2] = [Dose::One, Dose::Two];

    /// 1 or 2.
    pub fn number(self) -> u8 {
        match self {
            Dose::One => 1,
            Dose::Two => 2,
        }
    }

    /// 0 or 1: for arrays indexed by dose.
    pub fn index(self) -> usize {
        usize::from(self.number() - 1)
    }

    /// From 1 or 2.
    pub fn from_number(n: u8) -> Option<Dose> {
        match n {
            1 => Some(Dose::One),
            2 => Some(Dose::Two),
            _ => None,
        }
    }
}

impl TryFrom<u8> for Dose {
    type Error = String;
    fn try_from(n: u8) -> Result<Dose, String> {
        Dose::from_number(n).ok_or_else(|| format!("dose must be 1 or 2, not {n}"))
    }
}

impl From<Dose> for u8 {
    fn from(d: Dose) -> u8 {
        d.number()
    }
}

/// Who a pool's places are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Booked by citizens through the API.
    Online,
    /// Kept for people registered at the centre by staff.
    Walkin,
}

impl Channel {
    /// The wire and storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Online => "online",
            Channel::Walkin => "walkin",
        }
    }

    /// Parses [`Channel::as_str`].
    pub fn parse(text: &str) -> Option<Channel> {
        match text {
            "online" => Some(Channel::Online),
            "walkin" => Some(Channel::Walkin),
            _ => None,
        }
    }
}

/// Where a booking is in its life: `booked → checked_in → administered`, or `cancelled`, or
/// `no_show`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BookingStatus {
    /// Holds a place; the person has not arrived yet.
    Booked,
    /// The person is at the centre.
    CheckedIn,
    /// The dose was given and recorded.
    Administered,
    /// Given up by the citizen, or the session was cancelled; the place went back.
    Cancelled,
    /// The session's day passed without the person.
    NoShow,
}

impl BookingStatus {
    /// The wire and storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            BookingStatus::Booked => "booked",
            BookingStatus::CheckedIn => "checked_in",
            BookingStatus::Administered => "administered",
            BookingStatus::Cancelled => "cancelled",
            BookingStatus::NoShow => "no_show",
        }
    }

    /// Parses [`BookingStatus::as_str`].
    pub fn parse(text: &str) -> Option<BookingStatus> {
        match text {
            "booked" => Some(BookingStatus::Booked),
            "checked_in" => Some(BookingStatus::CheckedIn),
            "administered" => Some(BookingStatus::Administered),
            "cancelled" => Some(BookingStatus::Cancelled),
            "no_show" => Some(BookingStatus::NoShow),
            _ => None,
        }
    }

    /// Live bookings are the ones the dedup rule counts: at most one per (person, dose).
    pub fn is_live(self) -> bool {
        matches!(self, BookingStatus::Booked | BookingStatus::CheckedIn)
    }

    /// Whether the booking still consumes its pool's capacity (everything but `cancelled`).
    pub fn holds_place(self) -> bool {
        !matches!(self, BookingStatus::Cancelled)
    }
}

/// Gender as the beneficiary form records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gender {
    /// Male.
    Male,
    /// Female.
    Female,
    /// Other.
    Other,
}

impl Gender {
    /// The wire and storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Male => "male",
            Gender::Female => "female",
            Gender::Other => "other",
        }
    }

    /// Parses [`Gender::as_str`].
    pub fn parse(text: &str) -> Option<Gender> {
        match text {
            "male" => Some(Gender::Male),
            "female" => Some(Gender::Female),
            "other" => Some(Gender::Other),
            _ => None,
        }
    }
}

/// Free (government) or paid (private) centre.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeeType {
    /// No fee.
    Free,
    /// The citizen pays the centre.
    Paid,
}

impl FeeType {
    /// The wire and storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            FeeType::Free => "free",
            FeeType::Paid => "paid",
        }
    }

    /// Parses [`FeeType::as_str`].
    pub fn parse(text: &str) -> Option<FeeType> {
        match text {
            "free" => Some(FeeType::Free),
            "paid" => Some(FeeType::Paid),
            _ => None,
        }
    }
}

/// A state of India (CoWIN's ids and names).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// CoWIN's id.
    pub state_id: StateId,
    /// English name.
    pub state_name: String,
    /// Hindi name (served as `state_name_l` to `hi` clients).
    pub state_name_hi: String,
}

/// A district of a state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct District {
    /// CoWIN's id.
    pub district_id: DistrictId,
    /// The state it belongs to.
    pub state_id: StateId,
    /// English name.
    pub district_name: String,
    /// Hindi name.
    pub district_name_hi: String,
}

/// A vaccination centre.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Centre {
    /// Its id.
    pub centre_id: CentreId,
    /// Display name.
    pub name: String,
    /// Street address.
    pub address: String,
    /// State (every table carries it: the partitioning key).
    pub state_id: StateId,
    /// District.
    pub district_id: DistrictId,
    /// Six-digit pincode.
    pub pincode: String,
    /// Block (sub-district).
    pub block_name: String,
    /// Latitude in degrees.
    pub lat: f64,
    /// Longitude in degrees.
    pub long: f64,
    /// Free or paid.
    pub fee_type: FeeType,
    /// The fee in rupees for paid centres (0 when free).
    pub fee_rupees: u32,
}

/// One centre, one date, one vaccine, one age band, a list of slots.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Its id.
    pub session_id: SessionId,
    /// The centre.
    pub centre_id: CentreId,
    /// Copied from the centre (partitioning key).
    pub state_id: StateId,
    /// Copied from the centre (index key).
    pub district_id: DistrictId,
    /// The calendar day, in the drive's time zone.
    pub date: NaiveDate,
    /// The vaccine given.
    pub vaccine: Vaccine,
    /// Youngest age admitted (age = session year - birth year).
    pub min_age: u16,
    /// Oldest age admitted; `None` for no upper bound.
    pub max_age: Option<u16>,
    /// Announced opening for a launch; booking is `not_open` before it.
    pub opens_at: Option<DateTime<Utc>>,
    /// Cancelled by an operator: closed for booking, its bookings cancelled.
    pub cancelled: bool,
}

/// A time slot of a session, e.g. 09:00–11:00.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Slot {
    /// Its id.
    pub slot_id: SlotId,
    /// The session.
    pub session_id: SessionId,
    /// Start, `HH:MM`.
    pub start: String,
    /// End, `HH:MM`.
    pub end: String,
}

/// The unit of capacity: slot x dose x channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    /// Its id.
    pub pool_id: PoolId,
    /// The session.
    pub session_id: SessionId,
    /// The slot.
    pub slot_id: SlotId,
    /// Which dose it is for.
    pub dose: Dose,
    /// Online or walk-in.
    pub channel: Channel,
    /// Places in total.
    pub capacity: u32,
    /// Places held by bookings that are not cancelled (`booked <= capacity`, always).
    pub booked: u32,
}

/// A citizen account: one mobile number (walk-ins registered without one have `None`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// Its id.
    pub account_id: AccountId,
    /// Ten digits, normalised.
    pub mobile: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A person on an account. The clear photo-ID number is never kept: only its keyed hash and
/// the masked form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Beneficiary {
    /// Its id.
    pub beneficiary_id: BeneficiaryId,
    /// The account it is on.
    pub account_id: AccountId,
    /// HMAC of the normalised photo-ID.
    pub person_key: PersonKey,
    /// Name as on the ID.
    pub name: String,
    /// Year of birth.
    pub birth_year: u16,
    /// Gender.
    pub gender: Gender,
    /// Photo-ID type code (`aadhaar`, `pan`, ...).
    pub id_type: String,
    /// The masked number, e.g. `XXXX-XXXX-1234`.
    pub id_masked: String,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

/// A beneficiary's place in a pool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Booking {
    /// Its id; stays the same across a reschedule.
    pub booking_id: BookingId,
    /// The account that booked it.
    pub account_id: AccountId,
    /// The person booked.
    pub beneficiary_id: BeneficiaryId,
    /// The person's key (dedup).
    pub person_key: PersonKey,
    /// Partitioning key.
    pub state_id: StateId,
    /// The centre.
    pub centre_id: CentreId,
    /// The session.
    pub session_id: SessionId,
    /// The slot.
    pub slot_id: SlotId,
    /// The pool whose place it holds.
    pub pool_id: PoolId,
    /// Dose 1 or 2.
    pub dose: Dose,
    /// Online or walk-in pool.
    pub channel: Channel,
    /// Where it is in its life.
    pub status: BookingStatus,
    /// Dense per session, never reused.
    pub token_number: u32,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A dose that was given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DoseRecord {
    /// Who received it.
    pub beneficiary_id: BeneficiaryId,
    /// Dose 1 or 2.
    pub dose: Dose,
    /// Which vaccine.
    pub vaccine: Vaccine,
    /// The vial batch.
    pub batch: String,
    /// The calendar day given (drive time zone).
    pub date: NaiveDate,
    /// Where.
    pub centre_id: CentreId,
    /// The booking it fulfilled.
    pub booking_id: BookingId,
    /// The operator who recorded it.
    pub operator_id: OperatorId,
    /// When it was recorded.
    pub administered_at: DateTime<Utc>,
}

/// What an operator key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything.
    Admin,
    /// Only the listed centres.
    Centre,
}

impl Role {
    /// The wire and storage form.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Centre => "centre",
        }
    }

    /// Parses [`Role::as_str`].
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "admin" => Some(Role::Admin),
            "centre" => Some(Role::Centre),
            _ => None,
        }
    }
}

/// An operator key. Only the hash of the key is kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperatorKey {
    /// Its id (appears in the audit log).
    pub operator_id: OperatorId,
    /// Hex SHA-256 of the clear key.
    pub key_hash: String,
    /// Admin or centre.
    pub role: Role,
    /// The centres a `centre` key may act on.
    pub centres: Vec<CentreId>,
    /// A label for people.
    pub name: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// The original answer to a write, kept under its `Idempotency-Key`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// The account that sent it, or an operator key's
    /// [`crate::OperatorId::idempotency_scope`] (above [`crate::ID_MAX`]).
    pub account_id: AccountId,
    /// The client's key (1–64 printable ASCII characters).
    pub key: String,
    /// Hex SHA-256 of the request (method, path and body), to detect a different body.
    pub request_hash: String,
    /// The HTTP status answered.
    pub status: u16,
    /// The body answered.
    pub response: serde_json::Value,
    /// When it was first answered (kept at least 24 h).
    pub created_at: DateTime<Utc>,
}

/// One operator action, append-only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the log (dense, increasing).
    pub audit_id: u64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub operator_id: OperatorId,
    /// What, e.g. `session.create`, `booking.check_in`.
    pub action: String,
    /// The request that did it.
    pub request_id: String,
    /// The object, e.g. `booking:42`.
    pub object: String,
    /// State before (`null` for creations).
    pub before: serde_json::Value,
    /// State after.
    pub after: serde_json::Value,
}

/// A launch release: sessions announced to open at one instant, booked through one waiting
/// room.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Release {
    /// Its id.
    pub release_id: ReleaseId,
    /// The sessions it opens.
    pub session_ids: Vec<SessionId>,
    /// The opening: tickets taken before it are drawn, later ones queue in arrival order.
    pub opens_at: DateTime<Utc>,
    /// Admissions per second asked for (`None`: the booking lane's rate).
    pub admit_per_s: Option<u32>,
    /// How long an admission pass is valid, seconds.
    pub pass_ttl_s: u32,
    /// Hex of 32 random bytes; the draw's secret is HMAC-SHA256(the server's draw key, it), so
    /// the store never holds the secret itself.
    pub draw_nonce: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A waiting-room ticket: place `index` of a release, held by an account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueueTicket {
    /// The release.
    pub release_id: ReleaseId,
    /// The place, in arrival order from 0.
    pub index: u32,
    /// The holder.
    pub account_id: AccountId,
    /// When it was taken.
    pub created_at: DateTime<Utc>,
}

/// A release as loaded: its definition and how far its queue had got.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReleaseState {
    /// The definition.
    pub release: Release,
    /// The pre-queue's size once it closed at the opening.
    pub prequeue: Option<u32>,
    /// Ranks admitted or passed over.
    pub cursor: u32,
}

/// An admission from a release's queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueueAdmission {
    /// The release.
    pub release_id: ReleaseId,
    /// The place admitted.
    pub index: u32,
    /// When its pass expires.
    pub expires_at: DateTime<Utc>,
}
