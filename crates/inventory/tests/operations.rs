//! Each operation's decisions and its two-phase effects.

#![allow(clippy::unwrap_used)]

mod common;
use chrono::Utc;
use common::*;
use kataar_domain::*;
use kataar_inventory::*;

fn setup() -> (Inventory, SessionView) {
    let inv = Inventory::empty();
    let c = centre(&inv);
    let s = session(&inv, c, day(2030, 1, 10), 2, 2);
    (inv, s)
}

fn avail(inv: &Inventory, s: &SessionView, slot: usize) -> u32 {
    inv.session(s.session.session_id).unwrap().slots[slot].online_available(Dose::One)
}

#[test]
fn book_takes_a_place_and_abort_gives_it_back() {
    let (inv, s) = setup();
    let (a, b) = person(&inv, 1);
    let p = inv
        .book(&request(a, b, &s, 0, Dose::One), |_| Ok(()))
        .unwrap();
    assert_eq!(p.events.len(), 1);
    assert_eq!(avail(&inv, &s, 0), 1);
    assert_eq!(p.value.token_number, 1);
    inv.finish(p.finisher, false);
    assert_eq!(avail(&inv, &s, 0), 2);
    assert!(inv.bookings_of(a).is_empty());
    // The person may book again after the undo, and the token is not reused.
    let p = inv
        .book(&request(a, b, &s, 0, Dose::One), |_| Ok(()))
        .unwrap();
    assert_eq!(p.value.token_number, 2);
    commit(&inv, p);
    assert_eq!(inv.bookings_of(a).len(), 1);
}

#[test]
fn refusals_come_in_contract_order() {
    let (inv, s) = setup();
    let (a, b) = person(&inv, 1);
    let (a2, _) = person(&inv, 2);
    // Another account's beneficiary is not found.
    let e = inv
        .book(&request(a2, b, &s, 0, Dose::One), |_| Ok(()))
        .unwrap_err();
    assert_eq!(e.code(), "not_found");
    // Past session: closed.
    let mut r = request(a, b, &s, 0, Dose::One);
    r.today = day(2030, 1, 11);
    assert_eq!(
        inv.book(&r, |_| Ok(())).unwrap_err().code(),
        "session_closed"
    );
    // The gate (waiting room) answers after not_open and session_closed.
    let e = inv
        .book(&request(a, b, &s, 0, Dose::One), |_| {
            Err(BookingError::QueueRequired)
        })
        .unwrap_err();
    assert_eq!(e.code(), "queue_required");
    // Dose 2 without dose 1.
    let e = inv
        .book(&request(a, b, &s, 0, Dose::Two), |_| Ok(()))
        .unwrap_err();
    assert_eq!(e.code(), "dose_sequence");
    commit(
        &inv,
        inv.book(&request(a, b, &s, 0, Dose::One), |_| Ok(()))
            .unwrap(),
    );
    let e = inv
        .book(&request(a, b, &s, 1, Dose::One), |_| Ok(()))
        .unwrap_err();
    assert_eq!(e.code(), "already_booked");
}

#[test]
fn pool_full_only_for_someone_who_could_book() {
    let (inv, s) = setup();
    for i in 0..2 {
        let (a, b) = person(&inv, i);
        commit(
            &inv,
            inv.book(&request(a, b, &s, 0, Dose::One), |_| Ok(()))
                .unwrap(),
        );
    }
    let (a, b) = person(&inv, 9);
    assert_eq!(
        inv.book(&request(a, b, &s, 0, Dose::One), |_| Ok(()))
            .unwrap_err()
            .code(),
        "pool_full"
    );
    assert_eq!(
        inv.book(&request(a, b, &s, 0, Dose::Two), |_| Ok(()))
            .unwrap_err()
            .code(),
        "dose_sequence"
    );
}

#[test]
fn age_band_refuses_the_young() {
    let inv = Inventory::empty();
    let c = centre(&inv);
    let p = inv
        .create_session(NewSession {
            centre_id: c,
            date: day(2030, 1, 10),
            vaccine: Vaccine::Covishield,
            min_age: 45,
            max_age: None,
            opens_at: None,
            slots: vec![NewSlot {
                start: "09:00".into(),
                end: "11:00".into(),
                dose1_online: 5,
                dose1_walkin: 0,
                dose2_online: 0,
                dose2_walkin: 0,
            }],
        })
        .unwrap();
    let sid = commit(&inv, p).session_id;
    let s = inv.session(sid).unwrap();
    let (a, b) = person(&inv, 1);
    let e = inv
        .book(&request(a, b, &s, 0, Dose::One), |_| Ok(()))
        .unwrap_err();
    assert_eq!(e.code(), "not_eligible");
}

#[test]
fn cancel_frees_the_place_only_when_committed() {
    let (inv, s) = setup();
    let (a, b) = person(&inv, 1);
    let booking = commit(
        &inv,
        inv.book(&request(a, b, &s, 0, Dose::One), |_| Ok(()))
            .unwrap(),
    );
    let p = inv
        .cancel(booking.booking_id, &Scope::Account(a), Utc::now())
        .unwrap();
    // Not yet committed: the place is still taken and the booking cannot change again.
    assert_eq!(avail(&inv, &s, 0), 1);
    assert_eq!(
        inv.check_in(booking.booking_id, &Scope::All, Utc::now())
            .unwrap_err()
            .code(),
        "booking_state"
    );
    commit(&inv, p);
    assert_eq!(avail(&inv, &s, 0), 2);
    // Cancelling again answers the cancelled booking, with nothing to commit.
    let again = inv
        .cancel(booking.booking_id, &Scope::Account(a), Utc::now())
        .unwrap();
    assert!(again.events.is_empty());
    inv.finish(again.finisher, true);
    // The person may book the same dose again.
    commit(
        &inv,
        inv.book(&request(a, b, &s, 1, Dose::One), |_| Ok(()))
            .unwrap(),
    );
    // Another account sees nothing.
    let (a2, _) = person(&inv, 2);
    assert_eq!(
        inv.cancel(booking.booking_id, &Scope::Account(a2), Utc::now())
            .unwrap_err()
            .code(),
        "not_found"
    );
}

#[test]
fn reschedule_moves_as_one_step_or_not_at_all() {
    let (inv, s) = setup();
    let (a, b) = person(&inv, 1);
    let booking = commit(
        &inv,
        inv.book(&request(a, b, &s, 0, Dose::One), |_| Ok(()))
            .unwrap(),
    );
    let target = s.slots[1].slot.slot_id;
    let sid = s.session.session_id;
    let p = inv
        .reschedule(
            booking.booking_id,
            a,
            sid,
            target,
            Utc::now(),
            today(),
            |_| Ok(()),
        )
        .unwrap();
    assert_eq!(avail(&inv, &s, 0), 1);
    assert_eq!(avail(&inv, &s, 1), 1);
    inv.finish(p.finisher, false);
    assert_eq!(avail(&inv, &s, 0), 1);
    assert_eq!(avail(&inv, &s, 1), 2);
    assert_eq!(
        inv.booking(booking.booking_id, &Scope::All)
            .unwrap()
            .slot_id,
        s.slots[0].slot.slot_id
    );
    let p = inv
        .reschedule(
            booking.booking_id,
            a,
            sid,
            target,
            Utc::now(),
            today(),
            |_| Ok(()),
        )
        .unwrap();
    let moved = commit(&inv, p);
    assert_eq!(moved.booking_id, booking.booking_id);
    assert_eq!(moved.slot_id, target);
    assert_eq!(avail(&inv, &s, 0), 2);
    assert_eq!(avail(&inv, &s, 1), 1);
    assert_eq!(
        inv.booking(booking.booking_id, &Scope::All)
            .unwrap()
            .slot_id,
        target
    );
}

#[test]
fn dose_two_after_interval_on_same_vaccine() {
    let inv = Inventory::empty();
    let c = centre(&inv);
    let s1 = session(&inv, c, today(), 1, 5);
    let early = session(&inv, c, day(2030, 1, 20), 1, 5);
    let due = session(&inv, c, day(2030, 1, 29), 1, 5);
    let (a, b) = person(&inv, 1);
    let bk = commit(
        &inv,
        inv.book(&request(a, b, &s1, 0, Dose::One), |_| Ok(()))
            .unwrap(),
    );
    let scope = Scope::All;
    commit(
        &inv,
        inv.check_in(bk.booking_id, &scope, Utc::now()).unwrap(),
    );
    let e = inv
        .administer(
            bk.booking_id,
            &scope,
            Vaccine::Covishield,
            "B1".into(),
            OperatorId(1),
            Utc::now(),
            today(),
        )
        .unwrap_err();
    assert_eq!(e.code(), "vaccine_mismatch");
    commit(
        &inv,
        inv.administer(
            bk.booking_id,
            &scope,
            Vaccine::Covaxin,
            "B1".into(),
            OperatorId(1),
            Utc::now(),
            today(),
        )
        .unwrap(),
    );
    let view = inv.beneficiary(a, b).unwrap();
    assert_eq!(view.doses.len(), 1);
    let e = inv
        .book(&request(a, b, &early, 0, Dose::Two), |_| Ok(()))
        .unwrap_err();
    assert_eq!(
        e,
        BookingError::DoseInterval {
            earliest_date: day(2030, 1, 29)
        }
    );
    assert_eq!(
        inv.book(&request(a, b, &due, 0, Dose::One), |_| Ok(()))
            .unwrap_err()
            .code(),
        "dose_sequence"
    );
    commit(
        &inv,
        inv.book(&request(a, b, &due, 0, Dose::Two), |_| Ok(()))
            .unwrap(),
    );
}

#[test]
fn one_photo_id_one_account_and_four_per_account() {
    let inv = Inventory::empty();
    let (a, _) = person(&inv, 1);
    let (a2, _) = person(&inv, 2);
    let nb = |i: u64| NewBeneficiary {
        person_key: key(i),
        name: "X".into(),
        birth_year: 1980,
        gender: Gender::Male,
        id_type: "pan".into(),
        id_masked: "XXXXXX123X".into(),
    };
    assert_eq!(
        inv.add_beneficiary(a2, nb(1), Utc::now())
            .unwrap_err()
            .code(),
        "id_already_registered"
    );
    assert_eq!(
        inv.add_beneficiary(a, nb(1), Utc::now())
            .unwrap_err()
            .code(),
        "beneficiary_exists"
    );
    for i in 10..13 {
        commit(&inv, inv.add_beneficiary(a, nb(i), Utc::now()).unwrap());
    }
    assert_eq!(
        inv.add_beneficiary(a, nb(20), Utc::now())
            .unwrap_err()
            .code(),
        "beneficiary_limit"
    );
    // Removing one makes room; the removed ID is free again.
    let id = inv.beneficiaries(a)[3].beneficiary.beneficiary_id;
    commit(&inv, inv.remove_beneficiary(a, id).unwrap());
    commit(&inv, inv.add_beneficiary(a2, nb(12), Utc::now()).unwrap());
}

#[test]
fn walkin_takes_walkin_pool_then_online() {
    let (inv, s) = setup();
    let nb = |i: u64| NewBeneficiary {
        person_key: key(100 + i),
        name: "W".into(),
        birth_year: 1970,
        gender: Gender::Other,
        id_type: "voter_id".into(),
        id_masked: "XXXXXX1234".into(),
    };
    let mut channels = Vec::new();
    for i in 0..5 {
        let r = inv.walkin(
            s.session.session_id,
            s.slots[0].slot.slot_id,
            Dose::One,
            nb(i),
            None,
            &Scope::All,
            Utc::now(),
            today(),
        );
        match r {
            Ok(p) => {
                let b = commit(&inv, p);
                assert_eq!(b.status, BookingStatus::CheckedIn);
                channels.push(b.channel);
            }
            Err(e) => assert_eq!(e.code(), "pool_full"),
        }
    }
    assert_eq!(
        channels,
        vec![
            Channel::Walkin,
            Channel::Walkin,
            Channel::Online,
            Channel::Online
        ]
    );
    // A failed walk-in of a new person leaves no beneficiary behind.
    assert!(inv.beneficiary_by_person(&key(104)).is_none());
}

#[test]
fn capacity_changes_respect_booked_and_commit_order() {
    let (inv, s) = setup();
    let pool = PoolId(s.slots[0].pools[0].pool_id);
    let (a, b) = person(&inv, 1);
    commit(
        &inv,
        inv.book(&request(a, b, &s, 0, Dose::One), |_| Ok(()))
            .unwrap(),
    );
    assert_eq!(
        inv.set_capacity(pool, 0, &Scope::All).unwrap_err().code(),
        "capacity_below_booked"
    );
    // An increase is offered only once committed.
    let p = inv.set_capacity(pool, 5, &Scope::All).unwrap();
    assert_eq!(inv.pool(pool).unwrap().capacity, 2);
    commit(&inv, p);
    assert_eq!(inv.pool(pool).unwrap().capacity, 5);
    // A decrease is taken at once and given back on failure.
    let p = inv.set_capacity(pool, 1, &Scope::All).unwrap();
    assert_eq!(inv.pool(pool).unwrap().capacity, 1);
    inv.finish(p.finisher, false);
    assert_eq!(inv.pool(pool).unwrap().capacity, 5);
    // A move is atomic and stays within one session.
    let walkin = PoolId(s.slots[0].pools[1].pool_id);
    let views = commit(
        &inv,
        inv.move_capacity(pool, walkin, 4, &Scope::All).unwrap(),
    );
    assert_eq!(views.len(), 2);
    assert_eq!(inv.pool(pool).unwrap().capacity, 1);
    assert_eq!(inv.pool(walkin).unwrap().capacity, 6);
    assert_eq!(
        inv.move_capacity(pool, walkin, 1, &Scope::All)
            .unwrap_err()
            .code(),
        "capacity_below_booked"
    );
    // A centre operator of another centre sees nothing.
    assert_eq!(
        inv.set_capacity(pool, 3, &Scope::Centres(vec![CentreId(999)]))
            .unwrap_err()
            .code(),
        "not_found"
    );
}

#[test]
fn session_cancel_cancels_its_bookings() {
    let (inv, s) = setup();
    let sid = s.session.session_id;
    let (a, b) = person(&inv, 1);
    let bk = commit(
        &inv,
        inv.book(&request(a, b, &s, 0, Dose::One), |_| Ok(()))
            .unwrap(),
    );
    inv.close_session(sid, &Scope::All).unwrap();
    let (a2, b2) = person(&inv, 2);
    assert_eq!(
        inv.book(&request(a2, b2, &s, 0, Dose::One), |_| Ok(()))
            .unwrap_err()
            .code(),
        "session_closed"
    );
    assert_eq!(inv.session_inflight(sid), 0);
    let cancelled = commit(&inv, inv.cancel_session(sid, Utc::now()).unwrap());
    assert_eq!(cancelled, vec![bk.booking_id]);
    assert_eq!(
        inv.booking(bk.booking_id, &Scope::All).unwrap().status,
        BookingStatus::Cancelled
    );
    assert!(inv.session(sid).unwrap().session.cancelled);
    assert_eq!(avail(&inv, &s, 0), 2);
}

#[test]
fn snapshot_round_trip_rebuilds_the_same_state() {
    let (inv, s) = setup();
    let mut events = Vec::new();
    // Rebuild from the events the operations emitted, as the store would.
    let mut snap = Snapshot {
        centres: inv.centres(),
        ..Snapshot::default()
    };
    let view = inv.session(s.session.session_id).unwrap();
    snap.sessions.push(view.session.clone());
    for sv in &view.slots {
        snap.slots.push(sv.slot.clone());
        for p in &sv.pools {
            snap.pools.push(Pool {
                pool_id: PoolId(p.pool_id),
                session_id: view.session.session_id,
                slot_id: sv.slot.slot_id,
                dose: Dose::from_number(p.dose).unwrap(),
                channel: Channel::parse(&p.channel).unwrap(),
                capacity: p.capacity,
                booked: 0,
            });
        }
    }
    let (a, b) = person(&inv, 1);
    snap.accounts.push(inv.account(a).unwrap());
    snap.beneficiaries
        .push(inv.beneficiary(a, b).unwrap().beneficiary);
    let p = inv
        .book(&request(a, b, &s, 0, Dose::One), |_| Ok(()))
        .unwrap();
    events.extend(p.events.clone());
    commit(&inv, p);
    for e in &events {
        if let Event::BookingCreated(bk) = e {
            snap.bookings.push(bk.clone());
            for pool in snap.pools.iter_mut() {
                if pool.pool_id == bk.pool_id {
                    pool.booked += 1;
                }
            }
        }
    }
    let rebuilt = Inventory::from_snapshot(snap.clone()).unwrap();
    let mut x = rebuilt.pool_counts();
    let mut y = inv.pool_counts();
    x.sort();
    y.sort();
    assert_eq!(x, y);
    assert_eq!(
        rebuilt
            .book(&request(a, b, &s, 1, Dose::One), |_| Ok(()))
            .unwrap_err()
            .code(),
        "already_booked"
    );
    // A snapshot whose counters disagree with its bookings is refused: a pool counting fewer
    // than its bookings, or a pool counting places no booking holds.
    let booked_at = snap.pools.iter().position(|p| p.booked == 1).unwrap();
    let empty_at = snap.pools.iter().position(|p| p.booked == 0).unwrap();
    let mut fewer = snap.clone();
    fewer.pools[booked_at].booked = 0;
    let err = Inventory::from_snapshot(fewer).unwrap_err();
    assert!(err.contains("has 1 bookings holding places"), "{err}");
    let mut phantom = snap;
    phantom.pools[empty_at].booked = 2;
    let err = Inventory::from_snapshot(phantom).unwrap_err();
    assert!(err.contains("but has 0 bookings holding places"), "{err}");
}

#[test]
fn book_all_is_all_or_none() {
    let (inv, s) = setup();
    // One account with three beneficiaries; the slot has 2 online places for dose 1.
    let (a, b1) = person(&inv, 1);
    let b2 = beneficiary_of(&inv, a, 2);
    let b3 = beneficiary_of(&inv, a, 3);
    let three = [
        request(a, b1, &s, 0, Dose::One),
        request(a, b2, &s, 0, Dose::One),
        request(a, b3, &s, 0, Dose::One),
    ];
    let e = inv.book_all(&three, |_| Ok(())).unwrap_err();
    assert_eq!(e.code(), "pool_full");
    assert_eq!(
        avail(&inv, &s, 0),
        2,
        "the places taken first are given back"
    );
    assert!(inv.bookings_of(a).is_empty());
    // Two fit: both are booked in one batch.
    let p = inv.book_all(&three[..2], |_| Ok(())).unwrap();
    assert_eq!(p.events.len(), 2);
    assert_eq!(p.value.len(), 2);
    assert_eq!(avail(&inv, &s, 0), 0);
    commit(&inv, p);
    assert_eq!(inv.bookings_of(a).len(), 2);
    // A failed commit undoes both.
    let (a2, c1) = person(&inv, 4);
    let c2 = beneficiary_of(&inv, a2, 5);
    let p = inv
        .book_all(
            &[
                request(a2, c1, &s, 1, Dose::One),
                request(a2, c2, &s, 1, Dose::One),
            ],
            |_| Ok(()),
        )
        .unwrap();
    assert_eq!(avail(&inv, &s, 1), 0);
    inv.finish(p.finisher, false);
    assert_eq!(avail(&inv, &s, 1), 2);
    assert!(inv.bookings_of(a2).is_empty());
}

/// Another beneficiary (person `i`) on account `a`.
fn beneficiary_of(inv: &Inventory, a: AccountId, i: u64) -> BeneficiaryId {
    let b = inv
        .add_beneficiary(
            a,
            NewBeneficiary {
                person_key: key(i),
                name: format!("Person {i}"),
                birth_year: 1990,
                gender: Gender::Male,
                id_type: "aadhaar".into(),
                id_masked: "XXXX-XXXX-0000".into(),
            },
            Utc::now(),
        )
        .unwrap();
    commit(inv, b).beneficiary_id
}
