//! The v1 JSON shapes.

use chrono::{DateTime, SecondsFormat, Utc};
use kataar_domain::rules::NextDose;
use kataar_domain::*;
use kataar_inventory::{BeneficiaryView, Inventory, PoolView, SessionView, Totals};
use serde_json::{json, Value};

/// RFC 3339 UTC with seconds and a `Z`.
pub fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A booking as citizens and operators see it.
pub fn booking(inv: &Inventory, b: &Booking) -> Value {
    let (date, vaccine, slot) = match inv.session_slot(b.session_id, b.slot_id) {
        Some((session, slot)) => (
            json!(session.date.format("%Y-%m-%d").to_string()),
            json!(session.vaccine.name()),
            json!({"start": slot.start, "end": slot.end}),
        ),
        None => (Value::Null, Value::Null, Value::Null),
    };
    json!({
        "booking_id": b.booking_id.0,
        "status": b.status.as_str(),
        "beneficiary_id": b.beneficiary_id.0,
        "session_id": b.session_id.0,
        "slot_id": b.slot_id.0,
        "centre_id": b.centre_id.0,
        "date": date,
        "slot": slot,
        "vaccine": vaccine,
        "dose": b.dose.number(),
        "token_number": b.token_number,
        "created_at": instant(b.created_at),
    })
}

/// A beneficiary with doses, next dose and bookings.
pub fn beneficiary(inv: &Inventory, v: &BeneficiaryView) -> Value {
    let b = &v.beneficiary;
    let status = match v.doses.len() {
        0 => "not_vaccinated",
        1 => "partially_vaccinated",
        _ => "vaccinated",
    };
    let next = match v.next {
        NextDose::First => json!({"dose": 1, "vaccine": null, "earliest_date": null}),
        NextDose::Second {
            vaccine,
            earliest_date,
        } => json!({
            "dose": 2,
            "vaccine": vaccine.name(),
            "earliest_date": earliest_date.format("%Y-%m-%d").to_string(),
        }),
        NextDose::Complete => Value::Null,
    };
    json!({
        "beneficiary_id": b.beneficiary_id.0,
        "name": b.name,
        "birth_year": b.birth_year,
        "gender": b.gender.as_str(),
        "id_type": b.id_type,
        "id_masked": b.id_masked,
        "vaccination_status": status,
        "doses": v.doses.iter().map(|d| json!({
            "dose": d.dose.number(),
            "vaccine": d.vaccine.name(),
            "date": d.date.format("%Y-%m-%d").to_string(),
            "centre_id": d.centre_id.0,
        })).collect::<Vec<_>>(),
        "next_dose": next,
        "bookings": v.bookings.iter().map(|x| booking(inv, x)).collect::<Vec<_>>(),
    })
}

/// A centre's public fields.
pub fn centre(c: &Centre) -> Value {
    json!({
        "centre_id": c.centre_id.0,
        "name": c.name,
        "address": c.address,
        "state_id": c.state_id.0,
        "district_id": c.district_id.0,
        "pincode": c.pincode,
        "block_name": c.block_name,
        "lat": c.lat,
        "long": c.long,
        "fee_type": c.fee_type.as_str(),
    })
}

/// A pool's counters (operators).
pub fn pool(p: &PoolView) -> Value {
    json!({
        "pool_id": p.pool_id,
        "slot_id": p.slot_id,
        "dose": p.dose,
        "channel": p.channel,
        "capacity": p.capacity,
        "booked": p.booked,
        "checked_in": p.checked_in,
        "administered": p.administered,
        "no_show": p.no_show,
        "available": p.available,
    })
}

/// Summed counters.
pub fn totals(t: &Totals) -> Value {
    json!({
        "capacity": t.capacity,
        "booked": t.booked,
        "checked_in": t.checked_in,
        "administered": t.administered,
        "no_show": t.no_show,
        "available": t.available,
    })
}

/// A session as operators see it (with live pool counters).
pub fn admin_session(s: &SessionView) -> Value {
    let r = &s.session;
    json!({
        "session_id": r.session_id.0,
        "centre_id": r.centre_id.0,
        "date": r.date.format("%Y-%m-%d").to_string(),
        "vaccine": r.vaccine.name(),
        "min_age": r.min_age,
        "max_age": r.max_age,
        "opens_at": r.opens_at.map(instant),
        "cancelled": r.cancelled,
        "slots": s.slots.iter().map(|sl| json!({
            "slot_id": sl.slot.slot_id.0,
            "start": sl.slot.start,
            "end": sl.slot.end,
            "pools": sl.pools.iter().map(|p| json!({
                "pool_id": p.pool_id,
                "dose": p.dose,
                "channel": p.channel,
                "capacity": p.capacity,
                "booked": p.booked,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
