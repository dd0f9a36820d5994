//! The v2 reads: locations, genders and photo-ID types, calendars (7 days), the one-day flat
//! `findBy*` lists and `findByLatLong`. Served from memory, like v1's availability.
//!
//! A centre is listed in a calendar only with at least one session that matches (so
//! `sessions` is never empty, also under a `vaccine=` filter). Sessions listed: not cancelled,
//! dated from today (the drive's time zone) on. Capacities are the online pools'.

use super::wire::{self, V2Error};
use crate::state::AppState;
use crate::v1::public::centre_filter;
use axum::extract::{Path, State};
use axum::Json;
use chrono::NaiveDate;
use http::HeaderMap;
use kataar_domain::{Centre, CentreId, Dose, FeeType, StateId, Vaccine};
use kataar_identity::IdType;
use kataar_inventory::{CentreFilter, SessionView};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// `ttl` (hours) of the location and master-data answers, as CoWIN sent it.
pub const MASTER_DATA_TTL_H: u32 = 24;
/// Days a calendar answer spans from its `date`.
pub const CALENDAR_DAYS: u32 = 7;
/// Centres `findByLatLong` answers at most (the nearest first).
pub const LATLONG_CENTRES_MAX: usize = 20;

/// Gender ids of v2 (`gender_id`): (id, English, Hindi).
pub const GENDERS: [(u64, &str, &str); 3] = [
    (1, "Male", "पुरुष"),
    (2, "Female", "महिला"),
    (3, "Others", "अन्य"),
];

/// The Hindi name of a photo-ID type (`type_l`).
pub fn id_type_hi(t: IdType) -> &'static str {
    match t {
        IdType::Aadhaar => "आधार कार्ड",
        IdType::Pan => "पैन कार्ड",
        IdType::Passport => "पासपोर्ट",
        IdType::DrivingLicence => "ड्राइविंग लाइसेंस",
        IdType::VoterId => "मतदाता पहचान पत्र",
        IdType::RationCard => "राशन कार्ड",
        IdType::NprSmartCard => "एनपीआर स्मार्ट कार्ड",
    }
}

/// The v2 id of a photo-ID type (its position in [`IdType::ALL`], from 1).
pub fn id_type_number(t: IdType) -> u64 {
    IdType::ALL
        .iter()
        .position(|x| *x == t)
        .map_or(0, |i| i as u64 + 1)
}

/// The query string as a map (later repeats win).
pub fn query(raw: Option<String>) -> HashMap<String, String> {
    raw.map(|q| {
        form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.trim().to_string()))
            .collect()
    })
    .unwrap_or_default()
}

fn pick<'a>(english: &'a str, hindi: &'a str, hi: bool) -> &'a str {
    if hi && !hindi.is_empty() {
        hindi
    } else {
        english
    }
}

/// `GET /api/v2/admin/location/states`: every state, by name.
pub async fn states(State(state): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let hi = wire::wants_hindi(&headers);
    let mut list = state.inv.states();
    list.sort_by(|a, b| a.state_name.cmp(&b.state_name));
    let states: Vec<Value> = list
        .iter()
        .map(|s| {
            json!({
                "state_id": s.state_id.0,
                "state_name": s.state_name,
                "state_name_l": pick(&s.state_name, &s.state_name_hi, hi),
            })
        })
        .collect();
    Json(json!({ "states": states, "ttl": MASTER_DATA_TTL_H }))
}

/// `GET /api/v2/admin/location/districts/{state_id}`: a state's districts by name; `200` with
/// none for any numeric id.
pub async fn districts(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Result<Json<Value>, V2Error> {
    let id: u64 = raw
        .trim()
        .parse()
        .map_err(|_| V2Error::invalid("state_id must be a number"))?;
    let hi = wire::wants_hindi(&headers);
    let mut list = state.inv.districts(StateId(id));
    list.sort_by(|a, b| a.district_name.cmp(&b.district_name));
    let districts: Vec<Value> = list
        .iter()
        .map(|d| {
            json!({
                "district_id": d.district_id.0,
                "district_name": d.district_name,
                "district_name_l": pick(&d.district_name, &d.district_name_hi, hi),
            })
        })
        .collect();
    Ok(Json(
        json!({ "districts": districts, "ttl": MASTER_DATA_TTL_H }),
    ))
}

/// `GET /api/v2/registration/beneficiary/genders`.
pub async fn genders(headers: HeaderMap) -> Json<Value> {
    let hi = wire::wants_hindi(&headers);
    let genders: Vec<Value> = GENDERS
        .iter()
        .map(|(id, en, h)| json!({"id": id, "gender": en, "gender_l": pick(en, h, hi)}))
        .collect();
    Json(json!({ "genders": genders, "ttl": MASTER_DATA_TTL_H }))
}

/// `GET /api/v2/registration/beneficiary/idTypes`: one per v1 `id_type`.
pub async fn id_types(headers: HeaderMap) -> Json<Value> {
    let hi = wire::wants_hindi(&headers);
    let types: Vec<Value> = IdType::ALL
        .iter()
        .map(|t| {
            json!({
                "id": id_type_number(*t),
                "type": t.cowin_name(),
                "type_l": pick(t.cowin_name(), id_type_hi(*t), hi),
            })
        })
        .collect();
    Json(json!({ "types": types, "ttl": MASTER_DATA_TTL_H }))
}

/// What a calendar or find query selects.
struct Selection {
    filter: CentreFilter,
    from: NaiveDate,
    /// `None`: any vaccine; `Some(None)`: a vaccine no session has.
    vaccine: Option<Option<Vaccine>>,
}

fn selection(
    state: &AppState,
    q: &HashMap<String, String>,
    by: &str,
) -> Result<Selection, V2Error> {
    let number = |field: &str| -> Result<u64, V2Error> {
        q.get(field)
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| V2Error::invalid(format!("{field} must be a number")))
    };
    let filter = match by {
        "district_id" => centre_filter(Some(number(by)?), None, None),
        "center_id" => centre_filter(None, None, Some(number(by)?)),
        _ => centre_filter(
            None,
            Some(q.get("pincode").map_or("", String::as_str)),
            None,
        ),
    }
    .map_err(|_| V2Error::bad("APPOIN0018", "Invalid Pincode"))?;
    let from = match q.get("date").filter(|d| !d.is_empty()) {
        Some(d) => {
            wire::parse_date(d).ok_or_else(|| V2Error::invalid("date must be a date DD-MM-YYYY"))?
        }
        None => state.today(),
    };
    let vaccine = q
        .get("vaccine")
        .filter(|v| !v.is_empty())
        .map(|v| Vaccine::parse(v));
    Ok(Selection {
        filter,
        from,
        vaccine,
    })
}

/// The sessions of a centre a v2 answer lists.
fn listed(state: &AppState, centre: CentreId, sel: &Selection, days: u32) -> Vec<SessionView> {
    let today = state.today();
    let mut list: Vec<SessionView> = state
        .inv
        .centre_sessions(centre, sel.from, days)
        .into_iter()
        .filter(|s| !s.closed && s.session.date >= today)
        .filter(|s| match sel.vaccine {
            None => true,
            Some(v) => v == Some(s.session.vaccine),
        })
        .collect();
    list.sort_by_key(|s| (s.session.date, s.session.session_id.0));
    list
}

/// The centre fields of calendars and finds (`pincode`, `lat`, `long` numbers).
fn centre_fields(
    state: &AppState,
    c: &Centre,
    sessions: &[SessionView],
    hi: bool,
) -> Map<String, Value> {
    let st = state.inv.state(c.state_id);
    let di = state.inv.district(c.district_id);
    let (state_name, state_name_hi) = st.map_or((String::new(), String::new()), |s| {
        (s.state_name, s.state_name_hi)
    });
    let (district_name, district_name_hi) = di.map_or((String::new(), String::new()), |d| {
        (d.district_name, d.district_name_hi)
    });
    let starts = sessions
        .iter()
        .flat_map(|s| s.slots.iter().map(|sl| sl.slot.start.clone()));
    let ends = sessions
        .iter()
        .flat_map(|s| s.slots.iter().map(|sl| sl.slot.end.clone()));
    let from = starts.min().unwrap_or_else(|| "09:00".into());
    let to = ends.max().unwrap_or_else(|| "17:00".into());
    let mut m = Map::new();
    m.insert("center_id".into(), json!(c.centre_id.0));
    m.insert("name".into(), json!(c.name));
    m.insert("name_l".into(), json!(c.name));
    m.insert("address".into(), json!(c.address));
    m.insert("address_l".into(), json!(c.address));
    m.insert("state_name".into(), json!(state_name));
    m.insert(
        "state_name_l".into(),
        json!(pick(&state_name, &state_name_hi, hi)),
    );
    m.insert("district_name".into(), json!(district_name));
    m.insert(
        "district_name_l".into(),
        json!(pick(&district_name, &district_name_hi, hi)),
    );
    m.insert("block_name".into(), json!(c.block_name));
    m.insert("block_name_l".into(), json!(c.block_name));
    m.insert(
        "pincode".into(),
        c.pincode
            .parse::<u64>()
            .map_or(json!(c.pincode), |p| json!(p)),
    );
    m.insert("lat".into(), json!(c.lat));
    m.insert("long".into(), json!(c.long));
    m.insert("from".into(), json!(wire::clock_seconds(&from)));
    m.insert("to".into(), json!(wire::clock_seconds(&to)));
    m.insert(
        "fee_type".into(),
        json!(match c.fee_type {
            FeeType::Free => "Free",
            FeeType::Paid => "Paid",
        }),
    );
    m
}

/// A centre's fee as v2 writes it (`"0"` when free).
fn fee(c: &Centre) -> String {
    match c.fee_type {
        FeeType::Free => "0".into(),
        FeeType::Paid => c.fee_rupees.to_string(),
    }
}

/// A session's fields (capacities numbers, `session_id` a UUID-shaped string).
fn session_fields(s: &SessionView) -> Map<String, Value> {
    let r = &s.session;
    let d1 = s.online_available(Dose::One);
    let d2 = s.online_available(Dose::Two);
    let mut m = Map::new();
    m.insert(
        "session_id".into(),
        json!(wire::uuid_of(wire::SESSION_TAG, r.session_id.0)),
    );
    m.insert("date".into(), json!(wire::date(r.date)));
    m.insert("available_capacity".into(), json!(d1 + d2));
    m.insert("available_capacity_dose1".into(), json!(d1));
    m.insert("available_capacity_dose2".into(), json!(d2));
    m.insert("min_age_limit".into(), json!(r.min_age));
    if let Some(max) = r.max_age {
        m.insert("max_age_limit".into(), json!(max));
    }
    m.insert(
        "allow_all_age".into(),
        json!(r.min_age <= 18 && r.max_age.is_none()),
    );
    m.insert("vaccine".into(), json!(r.vaccine.name()));
    m.insert(
        "slots".into(),
        json!(s
            .slots
            .iter()
            .map(|sl| wire::slot_text(&sl.slot.start, &sl.slot.end))
            .collect::<Vec<_>>()),
    );
    m
}

/// A calendar centre: the centre fields, its sessions, and `vaccine_fees` when paid.
fn calendar_centre(state: &AppState, c: &Centre, sessions: &[SessionView], hi: bool) -> Value {
    let mut m = centre_fields(state, c, sessions, hi);
    m.insert(
        "sessions".into(),
        Value::Array(
            sessions
                .iter()
                .map(|s| Value::Object(session_fields(s)))
                .collect(),
        ),
    );
    if c.fee_type == FeeType::Paid {
        let mut vaccines: Vec<&str> = sessions.iter().map(|s| s.session.vaccine.name()).collect();
        vaccines.sort_unstable();
        vaccines.dedup();
        m.insert(
            "vaccine_fees".into(),
            json!(vaccines
                .iter()
                .map(|v| json!({"vaccine": v, "fee": fee(c)}))
                .collect::<Vec<_>>()),
        );
    }
    Value::Object(m)
}

fn calendar_centres(state: &AppState, sel: &Selection, hi: bool) -> Vec<Value> {
    let mut out = Vec::new();
    for id in state.inv.centre_ids(&sel.filter) {
        let Some(c) = state.inv.centre(id) else {
            continue;
        };
        let sessions = listed(state, id, sel, CALENDAR_DAYS);
        if sessions.is_empty() {
            continue;
        }
        out.push(calendar_centre(state, &c, &sessions, hi));
    }
    out
}

/// `calendarByDistrict` and `calendarByPin` (`by` names the query parameter).
pub fn calendar(
    state: &AppState,
    headers: &HeaderMap,
    raw: Option<String>,
    by: &str,
) -> Result<Json<Value>, V2Error> {
    let q = query(raw);
    let sel = selection(state, &q, by)?;
    let centers = calendar_centres(state, &sel, wire::wants_hindi(headers));
    Ok(Json(json!({ "centers": centers })))
}

/// `calendarByCenter`: `{"centers": {…}}`, one object; `{}` when the centre has no session
/// in the seven days.
pub fn calendar_by_center(
    state: &AppState,
    headers: &HeaderMap,
    raw: Option<String>,
) -> Result<Json<Value>, V2Error> {
    let q = query(raw);
    let sel = selection(state, &q, "center_id")?;
    let one = calendar_centres(state, &sel, wire::wants_hindi(headers))
        .into_iter()
        .next();
    Ok(Json(match one {
        Some(c) => json!({ "centers": c }),
        None => json!({}),
    }))
}

/// `findByDistrict` and `findByPin`: one day, one flat entry per session.
pub fn find(
    state: &AppState,
    headers: &HeaderMap,
    raw: Option<String>,
    by: &str,
) -> Result<Json<Value>, V2Error> {
    let q = query(raw);
    let sel = selection(state, &q, by)?;
    let hi = wire::wants_hindi(headers);
    let mut out = Vec::new();
    for id in state.inv.centre_ids(&sel.filter) {
        let Some(c) = state.inv.centre(id) else {
            continue;
        };
        for s in listed(state, id, &sel, 1) {
            let mut m = centre_fields(state, &c, std::slice::from_ref(&s), hi);
            m.insert("fee".into(), json!(fee(&c)));
            m.extend(session_fields(&s));
            out.push(Value::Object(m));
        }
    }
    Ok(Json(json!({ "sessions": out })))
}

/// `findByLatLong`: the nearest centres (at most [`LATLONG_CENTRES_MAX`]); here `pincode`,
/// `lat` and `long` are strings.
pub fn find_by_lat_long(state: &AppState, raw: Option<String>) -> Result<Json<Value>, V2Error> {
    let q = query(raw);
    let coord = |field: &str, bound: f64| -> Result<f64, V2Error> {
        q.get(field)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite() && v.abs() <= bound)
            .ok_or_else(|| V2Error::invalid(format!("{field} must be a number of degrees")))
    };
    let (lat, long) = (coord("lat", 90.0)?, coord("long", 180.0)?);
    let mut centres: Vec<(f64, Centre)> = state
        .inv
        .centres()
        .into_iter()
        .map(|c| (km_between(lat, long, c.lat, c.long), c))
        .collect();
    centres.sort_by(|a, b| a.0.total_cmp(&b.0));
    let list: Vec<Value> = centres
        .into_iter()
        .take(LATLONG_CENTRES_MAX)
        .map(|(_, c)| {
            let st = state
                .inv
                .state(c.state_id)
                .map(|s| s.state_name)
                .unwrap_or_default();
            let di = state
                .inv
                .district(c.district_id)
                .map(|d| d.district_name)
                .unwrap_or_default();
            json!({
                "center_id": c.centre_id.0,
                "name": c.name,
                "district_name": di,
                "state_name": st,
                "location": c.address,
                "pincode": c.pincode,
                "block_name": c.block_name,
                "lat": c.lat.to_string(),
                "long": c.long.to_string(),
            })
        })
        .collect();
    Ok(Json(json!({ "centers": list })))
}

/// Great-circle distance in kilometres.
fn km_between(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    6371.0 * 2.0 * a.sqrt().asin()
}
