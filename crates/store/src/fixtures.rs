//! Synthetic drive data for the store's tests, benchmarks, the `store-stream` binary and the
//! `load_scale` example. Not for production code paths: it invents names and keys.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use kataar_domain::*;

/// A fixed instant with microsecond precision (what both backends store exactly).
pub fn at(offset_s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_750_000_000 + offset_s, 123_456_000)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// A person key derived from a number (distinct numbers, distinct keys).
pub fn person_key(n: u64) -> PersonKey {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&n.to_le_bytes());
    key[31] = 0xA5;
    PersonKey(key)
}

/// State 1, district 312, centre 100.
pub fn geography() -> Vec<Event> {
    vec![
        Event::StateUpserted(State {
            state_id: StateId(1),
            state_name: "Madhya Pradesh".into(),
            state_name_hi: "मध्य प्रदेश".into(),
        }),
        Event::DistrictUpserted(District {
            district_id: DistrictId(312),
            state_id: StateId(1),
            district_name: "Bhopal".into(),
            district_name_hi: "भोपाल".into(),
        }),
        Event::CentreUpserted(Centre {
            centre_id: CentreId(100),
            name: "District Hospital".into(),
            address: "1 Hospital Road".into(),
            state_id: StateId(1),
            district_id: DistrictId(312),
            pincode: "462001".into(),
            block_name: "Huzur".into(),
            lat: 23.2599,
            long: 77.4126,
            fee_type: FeeType::Free,
            fee_rupees: 0,
        }),
    ]
}

/// A session at centre 100 with one slot per pool and one pool per slot (dose 1, online),
/// pool ids `first_pool_id..first_pool_id + pools`, slot ids the same numbers.
pub fn session(session_id: u64, first_pool_id: u64, pools: u64, capacity: u32) -> Event {
    let date = NaiveDate::from_ymd_opt(2026, 5, 1).unwrap_or(NaiveDate::MIN);
    let session = Session {
        session_id: SessionId(session_id),
        centre_id: CentreId(100),
        state_id: StateId(1),
        district_id: DistrictId(312),
        date,
        vaccine: Vaccine::Covaxin,
        min_age: 18,
        max_age: Some(44),
        opens_at: None,
        cancelled: false,
    };
    let ids = first_pool_id..first_pool_id + pools;
    let slots = ids
        .clone()
        .map(|id| Slot {
            slot_id: SlotId(id),
            session_id: SessionId(session_id),
            start: "09:00".into(),
            end: "11:00".into(),
        })
        .collect();
    let pools = ids
        .map(|id| Pool {
            pool_id: PoolId(id),
            session_id: SessionId(session_id),
            slot_id: SlotId(id),
            dose: Dose::One,
            channel: Channel::Online,
            capacity,
            booked: 0,
        })
        .collect();
    Event::SessionCreated {
        session,
        slots,
        pools,
    }
}

/// A live dose-1 booking of person `n` (also its beneficiary and account id) in `pool_id`
/// (whose slot has the same id) of `session_id`.
pub fn booking(booking_id: u64, n: u64, session_id: u64, pool_id: u64) -> Booking {
    Booking {
        booking_id: BookingId(booking_id),
        account_id: AccountId(n),
        beneficiary_id: BeneficiaryId(n),
        person_key: person_key(n),
        state_id: StateId(1),
        centre_id: CentreId(100),
        session_id: SessionId(session_id),
        slot_id: SlotId(pool_id),
        pool_id: PoolId(pool_id),
        dose: Dose::One,
        channel: Channel::Online,
        status: BookingStatus::Booked,
        token_number: u32::try_from(booking_id % 1_000_000).unwrap_or(0),
        created_at: at(10),
        updated_at: at(10),
    }
}
