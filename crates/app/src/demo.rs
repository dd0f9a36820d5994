//! The demo drive: CoWIN's real state and district ids, a dozen centres across several
//! districts (free and paid, COVISHIELD and COVAXIN), a week of sessions for 18–44 and 45+
//! with dose 1/dose 2 and online/walk-in pools, and an administrator key.

use crate::durable::commit;
use crate::state::AppState;
use chrono::{Days, NaiveDate};
use kataar_api::ApiError;
use kataar_domain::*;
use kataar_identity::generate_operator_key;
use kataar_inventory::{NewSession, NewSlot};

/// CoWIN's 37 states: (id, English, Hindi).
pub const STATES: [(u64, &str, &str); 37] = [
    (
        1,
        "Andaman and Nicobar Islands",
        "अंडमान और निकोबार द्वीप समूह",
    ),
    (2, "Andhra Pradesh", "आंध्र प्रदेश"),
    (3, "Arunachal Pradesh", "अरुणाचल प्रदेश"),
    (4, "Assam", "असम"),
    (5, "Bihar", "बिहार"),
    (6, "Chandigarh", "चंडीगढ़"),
    (7, "Chhattisgarh", "छत्तीसगढ़"),
    (8, "Dadra and Nagar Haveli", "दादरा और नगर हवेली"),
    (9, "Delhi", "दिल्ली"),
    (10, "Goa", "गोवा"),
    (11, "Gujarat", "गुजरात"),
    (12, "Haryana", "हरियाणा"),
    (13, "Himachal Pradesh", "हिमाचल प्रदेश"),
    (14, "Jammu and Kashmir", "जम्मू और कश्मीर"),
    (15, "Jharkhand", "झारखंड"),
    (16, "Karnataka", "कर्नाटक"),
    (17, "Kerala", "केरल"),
    (18, "Ladakh", "लद्दाख"),
    (19, "Lakshadweep", "लक्षद्वीप"),
    (20, "Madhya Pradesh", "मध्य प्रदेश"),
    (21, "Maharashtra", "महाराष्ट्र"),
    (22, "Manipur", "मणिपुर"),
    (23, "Meghalaya", "मेघालय"),
    (24, "Mizoram", "मिजोरम"),
    (25, "Nagaland", "नगालैंड"),
    (26, "Odisha", "ओडिशा"),
    (27, "Puducherry", "पुदुचेरी"),
    (28, "Punjab", "पंजाब"),
    (29, "Rajasthan", "राजस्थान"),
    (30, "Sikkim", "सिक्किम"),
    (31, "Tamil Nadu", "तमिलनाडु"),
    (32, "Telangana", "तेलंगाना"),
    (33, "Tripura", "त्रिपुरा"),
    (34, "Uttar Pradesh", "उत्तर प्रदेश"),
    (35, "Uttarakhand", "उत्तराखंड"),
    (36, "West Bengal", "पश्चिम बंगाल"),
    (37, "Daman and Diu", "दमन और दीव"),
];

/// CoWIN districts the demo publishes: (id, state, English, Hindi).
pub const DISTRICTS: [(u64, u64, &str, &str); 16] = [
    (312, 20, "Bhopal", "भोपाल"),
    (314, 20, "Indore", "इंदौर"),
    (358, 20, "Rajgarh", "राजगढ़"),
    (313, 20, "Gwalior", "ग्वालियर"),
    (315, 20, "Jabalpur", "जबलपुर"),
    (97, 5, "Patna", "पटना"),
    (109, 7, "Raipur", "रायपुर"),
    (650, 34, "Gautam Buddha Nagar", "गौतम बुद्ध नगर"),
    (140, 9, "New Delhi", "नई दिल्ली"),
    (141, 9, "Central Delhi", "मध्य दिल्ली"),
    (395, 21, "Mumbai", "मुंबई"),
    (363, 21, "Pune", "पुणे"),
    (392, 21, "Thane", "ठाणे"),
    (294, 16, "BBMP", "बीबीएमपी"),
    (265, 16, "Bangalore Urban", "बैंगलोर शहरी"),
    (571, 31, "Chennai", "चेन्नई"),
];

/// Demo centres: (district, state, name, pincode, block, lat, long, paid, vaccine).
#[allow(clippy::type_complexity)]
const CENTRES: [(u64, u64, &str, &str, &str, f64, f64, bool, Vaccine); 13] = [
    (
        312,
        20,
        "JP Hospital",
        "462001",
        "Huzur",
        23.2332,
        77.4343,
        false,
        Vaccine::Covishield,
    ),
    (
        312,
        20,
        "Bansal Hospital",
        "462016",
        "Huzur",
        23.1957,
        77.4354,
        true,
        Vaccine::Covaxin,
    ),
    (
        314,
        20,
        "MY Hospital",
        "452001",
        "Indore",
        22.7146,
        75.8812,
        false,
        Vaccine::Covishield,
    ),
    (
        358,
        20,
        "CHC Biaora",
        "465661",
        "Biaora",
        23.9205,
        76.9110,
        false,
        Vaccine::Covaxin,
    ),
    (
        97,
        5,
        "PMCH Patna",
        "800001",
        "Patna Sadar",
        25.6207,
        85.1566,
        false,
        Vaccine::Covishield,
    ),
    (
        109,
        7,
        "AIIMS Raipur",
        "492001",
        "Raipur",
        21.2567,
        81.5794,
        false,
        Vaccine::Covaxin,
    ),
    (
        650,
        34,
        "District Hospital Noida",
        "201301",
        "Bisrakh",
        28.5700,
        77.3218,
        false,
        Vaccine::Covishield,
    ),
    (
        650,
        34,
        "Fortis Noida",
        "201301",
        "Bisrakh",
        28.6186,
        77.3725,
        true,
        Vaccine::Covishield,
    ),
    (
        140,
        9,
        "RML Hospital",
        "110001",
        "New Delhi",
        28.6262,
        77.2003,
        false,
        Vaccine::Covaxin,
    ),
    (
        395,
        21,
        "BKC Jumbo Centre",
        "400001",
        "Mumbai City",
        19.0660,
        72.8656,
        false,
        Vaccine::Covishield,
    ),
    (
        363,
        21,
        "Sassoon Hospital",
        "411001",
        "Pune City",
        18.5271,
        73.8716,
        false,
        Vaccine::Covishield,
    ),
    (
        294,
        16,
        "Victoria Hospital",
        "560001",
        "Bengaluru South",
        12.9637,
        77.5732,
        false,
        Vaccine::Covaxin,
    ),
    (
        571,
        31,
        "Rajiv Gandhi Government General Hospital",
        "600001",
        "Chennai",
        13.0811,
        80.2773,
        false,
        Vaccine::Covishield,
    ),
];

/// What the demo created.
#[derive(Debug)]
pub struct DemoDrive {
    /// The administrator key (shown once).
    pub admin_key: String,
    /// Centres published.
    pub centres: usize,
    /// Sessions published.
    pub sessions: usize,
}

/// Publishes the demo drive (call only on an empty store).
pub async fn load(state: &AppState) -> Result<DemoDrive, ApiError> {
    let inv = &state.inv;
    let states = STATES
        .iter()
        .map(|(id, en, hi)| State {
            state_id: StateId(*id),
            state_name: (*en).to_string(),
            state_name_hi: (*hi).to_string(),
        })
        .collect();
    let districts = DISTRICTS
        .iter()
        .map(|(id, st, en, hi)| District {
            district_id: DistrictId(*id),
            state_id: StateId(*st),
            district_name: (*en).to_string(),
            district_name_hi: (*hi).to_string(),
        })
        .collect();
    commit(state, inv.upsert_places(states, districts)).await?;
    let today = state.today();
    let mut sessions = 0;
    for (i, c) in CENTRES.iter().enumerate() {
        let (district, st, name, pincode, block, lat, long, paid, vaccine) = *c;
        let centre = Centre {
            centre_id: inv.ids.centre(),
            name: name.to_string(),
            address: format!("{name}, {block}"),
            state_id: StateId(st),
            district_id: DistrictId(district),
            pincode: pincode.to_string(),
            block_name: block.to_string(),
            lat,
            long,
            fee_type: if paid { FeeType::Paid } else { FeeType::Free },
            fee_rupees: match (paid, vaccine) {
                (false, _) => 0,
                (true, Vaccine::Covaxin) => 1410,
                (true, _) => 780,
            },
        };
        let centre = commit(state, inv.upsert_centre(centre)).await?;
        for day in 0..7u64 {
            let date = today
                .checked_add_days(Days::new(day))
                .unwrap_or(NaiveDate::MAX);
            for (min_age, max_age) in [(18u16, Some(44u16)), (45, None)] {
                let big = (i + day as usize) % 3 == 0;
                let slots = ["09:00", "11:00", "14:00"]
                    .iter()
                    .zip(["11:00", "13:00", "16:00"])
                    .map(|(start, end)| NewSlot {
                        start: (*start).to_string(),
                        end: end.to_string(),
                        dose1_online: if big { 50 } else { 20 },
                        dose1_walkin: 10,
                        dose2_online: if big { 30 } else { 10 },
                        dose2_walkin: 5,
                    })
                    .collect();
                let p = inv
                    .create_session(NewSession {
                        centre_id: centre.centre_id,
                        date,
                        vaccine,
                        min_age,
                        max_age,
                        opens_at: None,
                        slots,
                    })
                    .map_err(crate::errors::api_error)?;
                commit(state, p).await?;
                sessions += 1;
            }
        }
    }
    let (clear, hash) = generate_operator_key();
    let key = OperatorKey {
        operator_id: inv.ids.operator(),
        key_hash: hash,
        role: Role::Admin,
        centres: Vec::new(),
        name: "demo administrator".into(),
        created_at: state.now(),
    };
    commit(state, inv.add_operator_key(key)).await?;
    Ok(DemoDrive {
        admin_key: clear.expose_secret().to_string(),
        centres: CENTRES.len(),
        sessions,
    })
}
