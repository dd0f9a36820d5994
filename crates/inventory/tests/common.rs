//! Shared setup for the inventory's tests: a drive with one centre and sessions, and people.

#![allow(clippy::unwrap_used, dead_code)]

use chrono::{NaiveDate, Utc};
use kataar_domain::*;
use kataar_inventory::*;

pub fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

pub fn today() -> NaiveDate {
    day(2030, 1, 1)
}

pub fn commit<T>(inv: &Inventory, p: Prepared<T>) -> T {
    inv.finish(p.finisher, true);
    p.value
}

pub fn centre(inv: &Inventory) -> CentreId {
    let c = Centre {
        centre_id: inv.ids.centre(),
        name: "PHC Kolar Road".into(),
        address: "Kolar Road".into(),
        state_id: StateId(20),
        district_id: DistrictId(312),
        pincode: "462001".into(),
        block_name: "Huzur".into(),
        lat: 23.2,
        long: 77.4,
        fee_type: FeeType::Free,
        fee_rupees: 0,
    };
    commit(inv, inv.upsert_centre(c)).centre_id
}

/// A session on `date` with `slots` slots, each pool of capacity `cap`.
pub fn session(
    inv: &Inventory,
    centre: CentreId,
    date: NaiveDate,
    slots: usize,
    cap: u32,
) -> SessionView {
    let p = inv
        .create_session(NewSession {
            centre_id: centre,
            date,
            vaccine: Vaccine::Covaxin,
            min_age: 18,
            max_age: None,
            opens_at: None,
            slots: (0..slots)
                .map(|i| NewSlot {
                    start: format!("{:02}:00", 9 + i),
                    end: format!("{:02}:00", 10 + i),
                    dose1_online: cap,
                    dose1_walkin: cap,
                    dose2_online: cap,
                    dose2_walkin: cap,
                })
                .collect(),
        })
        .unwrap();
    let id = commit(inv, p).session_id;
    inv.session(id).unwrap()
}

pub fn key(i: u64) -> PersonKey {
    let mut k = [0u8; 32];
    k[..8].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
    k[8..16].copy_from_slice(&i.to_le_bytes());
    PersonKey(k)
}

/// A fresh account with one beneficiary; returns (account, beneficiary).
pub fn person(inv: &Inventory, i: u64) -> (AccountId, BeneficiaryId) {
    let account = match inv.ensure_account(Some(&format!("9{i:09}")), Utc::now()) {
        AccountLookup::New(p) => commit(inv, p),
        AccountLookup::Existing(a) => a,
    };
    let b = inv
        .add_beneficiary(
            account.account_id,
            NewBeneficiary {
                person_key: key(i),
                name: format!("Person {i}"),
                birth_year: 1990,
                gender: Gender::Female,
                id_type: "aadhaar".into(),
                id_masked: "XXXX-XXXX-0000".into(),
            },
            Utc::now(),
        )
        .unwrap();
    (account.account_id, commit(inv, b).beneficiary_id)
}

pub fn request(
    a: AccountId,
    b: BeneficiaryId,
    s: &SessionView,
    slot: usize,
    dose: Dose,
) -> BookRequest {
    BookRequest {
        account_id: a,
        beneficiary_id: b,
        session_id: s.session.session_id,
        slot_id: s.slots[slot].slot.slot_id,
        dose,
        now: Utc::now(),
        today: today(),
    }
}
