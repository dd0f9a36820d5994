//! The queue's promises: positions are a permutation, FIFO after the opening, a uniform
//! shuffle, expiry skips, no admission beyond the rate or the places left, sold-out told to
//! everyone, a draw that verifies (and fails when anything in it is changed), and a restore that
//! keeps every place.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use kataar_waitroom::draw::{self, Verdict};
use kataar_waitroom::{Key, Queue, QueueConfig, QueueError, Status};
use proptest::prelude::*;
use std::collections::BTreeSet;

const T0: u64 = 1_800_000_000_000;
const OPEN: u64 = T0 + 60_000;

fn cfg(admit_per_s: f64) -> QueueConfig {
    QueueConfig {
        release_id: 9,
        created_at_ms: T0,
        opens_at_ms: OPEN,
        admit_per_s,
        pass_ttl_s: 300,
        keepalive_s: 30,
        tickets_max: 1_000_000,
        poll_budget_per_s: 1_000.0,
        poll_min_s: 2,
        poll_max_s: 60,
    }
}

fn queue(admit_per_s: f64, secret: u8) -> Queue {
    Queue::new(cfg(admit_per_s), [secret; 32], Key::new([1; 32]))
}

fn position(q: &mut Queue, index: u32, account: u64, now: u64) -> u64 {
    match q.poll(index, account, now).unwrap().status {
        Status::Waiting {
            position: Some(p), ..
        } => p,
        other => panic!("ticket {index} is not waiting with a position: {other:?}"),
    }
}

#[test]
fn positions_are_a_permutation_and_later_arrivals_queue_in_order() {
    let mut q = queue(10.0, 5);
    for a in 0..500u64 {
        let (i, fresh) = q.enqueue(1000 + a, T0 + a).unwrap();
        assert!(fresh);
        assert_eq!(i as u64, a);
        let before = q.poll(i, 1000 + a, T0 + a).unwrap();
        assert_eq!(
            before.status,
            Status::Waiting {
                position: None,
                eta_s: None
            }
        );
        assert!(before.poll_after_s >= 59, "{before:?}");
    }
    // Asking again gives the same ticket.
    assert_eq!(q.enqueue(1000, T0 + 1_000).unwrap(), (0, false));
    let step = q.advance(OPEN, 1_000_000);
    assert_eq!(step.opened, Some(500));
    let positions: BTreeSet<u64> = (0..500u32)
        .map(|i| position(&mut q, i, 1000 + u64::from(i), OPEN))
        .collect();
    assert_eq!(positions, (1..=500).collect());
    // The draw really shuffled: the arrival order is not kept.
    let kept = (0..500u32)
        .filter(|&i| position(&mut q, i, 1000 + u64::from(i), OPEN) == u64::from(i) + 1)
        .count();
    assert!(kept < 20, "{kept} of 500 kept their arrival place");
    // The pre-queue waits from the opening: admitted at once, it waited 0 s; a second later, 1 s.
    let first = q.advance(OPEN, 1_000_000);
    assert!(
        first.admitted.is_empty(),
        "no token yet at the opening instant"
    );
    let later = q.advance(OPEN + 1_500, 1_000_000);
    assert!(!later.admitted.is_empty());
    assert_eq!(later.waits_s.len(), later.admitted.len());
    assert!(later.waits_s.iter().all(|&w| w == 1), "{:?}", later.waits_s);
    // After the opening: arrival order, behind the pre-queue.
    for a in 0..50u64 {
        let (i, _) = q.enqueue(5000 + a, OPEN + 1_500 + a).unwrap();
        let gone = later.admitted.len() as u64;
        assert_eq!(
            position(&mut q, i, 5000 + a, OPEN + 1_500 + a),
            501 + a - gone
        );
    }
}

#[test]
fn a_ticket_answers_only_its_own_account() {
    let mut q = queue(10.0, 1);
    let (i, _) = q.enqueue(7, T0).unwrap();
    assert_eq!(q.poll(i, 8, T0), Err(QueueError::NotYours));
    assert_eq!(q.poll(i + 1, 7, T0), Err(QueueError::NoTicket));
}

#[test]
fn the_bound_on_tickets_is_refused_at_the_bound() {
    let mut c = cfg(10.0);
    c.tickets_max = 3;
    let mut q = Queue::new(c, [0; 32], Key::new([1; 32]));
    for a in 0..3 {
        q.enqueue(a, T0).unwrap();
    }
    assert_eq!(q.enqueue(99, T0), Err(QueueError::Full));
    // The holders of the three still get their own.
    assert_eq!(q.enqueue(2, T0).unwrap(), (2, false));
}

/// Every permutation of four pre-queue tickets is equally likely over many releases' secrets:
/// chi-square with 23 degrees of freedom below 49.7 (p = 0.001).
#[test]
fn the_shuffle_is_uniform() {
    let draws = 24_000u32;
    let mut counts = std::collections::HashMap::<Vec<u32>, u32>::new();
    for n in 0..draws {
        let mut secret = [0u8; 32];
        secret[..4].copy_from_slice(&n.to_be_bytes());
        let mut order = vec![0u32, 1, 2, 3];
        draw::shuffle(&mut order, draw::sha256(&secret));
        *counts.entry(order).or_default() += 1;
    }
    assert_eq!(counts.len(), 24, "every permutation occurs");
    let expected = f64::from(draws) / 24.0;
    let chi2: f64 = counts
        .values()
        .map(|&c| (f64::from(c) - expected).powi(2) / expected)
        .sum();
    assert!(
        chi2 < 49.7,
        "chi-square {chi2:.1} over 23 degrees of freedom"
    );

    // And through the queue itself: the first arrival's admission rank is uniform over 10.
    let mut ranks = [0u32; 10];
    for s in 0..2_000u32 {
        let mut secret = [0u8; 32];
        secret[28..].copy_from_slice(&s.to_be_bytes());
        let mut q = Queue::new(cfg(10.0), secret, Key::new([2; 32]));
        for a in 0..10 {
            q.enqueue(a, T0).unwrap();
        }
        q.advance(OPEN, 100);
        ranks[q.rank_of(0).unwrap() as usize] += 1;
    }
    let expected = 200.0;
    let chi2: f64 = ranks
        .iter()
        .map(|&c| (f64::from(c) - expected).powi(2) / expected)
        .sum();
    // 9 degrees of freedom, p = 0.001.
    assert!(chi2 < 27.9, "chi-square {chi2:.1}: {ranks:?}");
}

#[test]
fn nothing_is_admitted_beyond_the_rate_or_the_places_left() {
    let mut q = queue(20.0, 3);
    for a in 0..2_000 {
        q.enqueue(a, T0).unwrap();
    }
    let mut admitted = 0usize;
    // Ten seconds in steps of 100 ms; everyone keeps polling.
    for k in 0..=100u64 {
        let now = OPEN + k * 100;
        admitted += q.advance(now, 1_000_000).admitted.len();
        for i in 0..2_000u32 {
            q.poll(i, u64::from(i), now).unwrap();
        }
    }
    // 20/s over 10 s, plus at most one second's bucket.
    assert!((180..=221).contains(&admitted), "{admitted}");

    // Places left bound the passes outstanding.
    let mut q = queue(1_000.0, 3);
    for a in 0..100 {
        q.enqueue(a, T0).unwrap();
    }
    q.advance(OPEN, 5);
    let step = q.advance(OPEN + 2_000, 5);
    assert_eq!(q.counts().admitted, 5, "{step:?}");
    // One of them books: its place is taken, so no new admission while 4 are outstanding and
    // 4 places are left.
    let first = first_ranked(&q);
    q.mark_booked(first);
    assert_eq!(q.advance(OPEN + 3_000, 4).admitted.len(), 0);
    // A cancellation frees a place: the next in line is admitted.
    assert_eq!(q.advance(OPEN + 4_000, 5).admitted.len(), 1);
}

/// The admitted place that ranks first.
fn first_ranked(q: &Queue) -> u32 {
    (0..q.len() as u32)
        .filter_map(|i| q.rank_of(i).map(|r| (r, i)))
        .min()
        .unwrap()
        .1
}

/// The account's most recent place.
fn current_of(q: &Queue, account: u64) -> Option<u32> {
    (0..q.len() as u32)
        .rev()
        .find(|&i| q.account_of(i) == Some(account))
}

#[test]
fn a_place_not_polled_is_skipped_and_its_holder_gets_a_new_one_at_the_end() {
    let mut q = queue(1.0, 4);
    for a in 0..3 {
        q.enqueue(a, T0).unwrap();
    }
    q.advance(OPEN, 100);
    let mut by_rank: Vec<u32> = (0..3).collect();
    by_rank.sort_by_key(|&i| q.rank_of(i).unwrap());
    let (first, second, third) = (by_rank[0], by_rank[1], by_rank[2]);
    // Only the third keeps polling; the first two go quiet for longer than their keep-alive.
    let late = OPEN + 200_000;
    for s in 0..200u64 {
        q.poll(third, u64::from(third), OPEN + s * 1_000).unwrap();
    }
    let step = q.advance(late, 100);
    assert_eq!(step.admitted.len(), 1);
    assert_eq!(step.admitted[0].0, third, "the quiet places are skipped");
    assert_eq!(q.counts().expired, 2);
    assert_eq!(
        q.poll(first, u64::from(first), late).unwrap().status,
        Status::Expired
    );
    // Coming back: a new ticket at the end.
    let (again, fresh) = q.enqueue(u64::from(second), late).unwrap();
    assert!(fresh);
    assert_eq!(again, 3);
    assert_eq!(position(&mut q, again, u64::from(second), late), 1);
}

#[test]
fn an_unused_pass_runs_out_and_the_place_goes_to_the_next() {
    let mut c = cfg(1.0);
    c.pass_ttl_s = 10;
    let mut q = Queue::new(c, [6; 32], Key::new([1; 32]));
    for a in 0..2 {
        q.enqueue(a, T0).unwrap();
    }
    q.advance(OPEN, 1);
    let s = q.advance(OPEN + 1_000, 1);
    assert_eq!(s.admitted.len(), 1);
    let (holder, expires) = s.admitted[0];
    assert_eq!(
        q.poll(holder, u64::from(holder), OPEN + 1_000)
            .unwrap()
            .status,
        Status::Admitted {
            pass_expires_ms: expires
        }
    );
    let other = 1 - holder;
    for k in 1..=12u64 {
        q.poll(other, u64::from(other), OPEN + k * 1_000).unwrap();
        let s = q.advance(OPEN + k * 1_000, 1);
        if OPEN + k * 1_000 < expires {
            assert!(s.admitted.is_empty());
        }
    }
    assert_eq!(
        q.poll(holder, u64::from(holder), OPEN + 12_000)
            .unwrap()
            .status,
        Status::Expired
    );
    assert!(matches!(
        q.poll(other, u64::from(other), OPEN + 12_000)
            .unwrap()
            .status,
        Status::Admitted { .. }
    ));
}

#[test]
fn sold_out_reaches_every_waiting_ticket() {
    let mut q = queue(5.0, 8);
    for a in 0..300 {
        q.enqueue(a, T0).unwrap();
    }
    q.advance(OPEN, 10);
    q.advance(OPEN + 1_000, 0);
    assert!(q.sold_out());
    let told = (0..300u32)
        .filter(|&i| {
            matches!(
                q.poll(i, u64::from(i), OPEN + 1_000).unwrap().status,
                Status::SoldOut | Status::Admitted { .. }
            )
        })
        .count();
    assert_eq!(told, 300);
}

#[test]
fn the_published_draw_verifies_and_any_change_is_caught() {
    let mut q = queue(5.0, 42);
    let commitment = q.commitment_hex();
    for a in 0..200 {
        q.enqueue(a, T0 + a).unwrap();
    }
    assert!(
        q.published_draw().is_none(),
        "nothing is published before the opening"
    );
    q.advance(OPEN, 100);
    let (secret, tickets, order) = q.published_draw().unwrap();
    assert_eq!(
        draw::verify(&commitment, &secret, &tickets, &order),
        Verdict::Matches
    );
    // The order is the queue's admission order.
    for (rank, id) in order.iter().enumerate() {
        let (_, index) = Key::new([1; 32]).parse_ticket(id).unwrap();
        assert_eq!(q.rank_of(index), Some(rank as u32));
    }
    let mut other = secret;
    other[0] ^= 1;
    assert_eq!(
        draw::verify(&commitment, &other, &tickets, &order),
        Verdict::CommitmentMismatch
    );
    let mut fewer = tickets.clone();
    fewer.remove(17);
    assert!(matches!(
        draw::verify(&commitment, &secret, &fewer, &order),
        Verdict::OrderMismatch { .. }
    ));
    let mut unsorted = tickets.clone();
    unsorted.swap(3, 4);
    assert_eq!(
        draw::verify(&commitment, &secret, &unsorted, &order),
        Verdict::ListNotSorted
    );
    let mut swapped = order.clone();
    swapped.swap(10, 11);
    assert_eq!(
        draw::verify(&commitment, &secret, &tickets, &swapped),
        Verdict::OrderMismatch { rank: 10 }
    );
}

#[test]
fn the_draw_is_the_documented_algorithm() {
    // Recomputed here from the description alone: sort, hash the list, seed, Fisher-Yates.
    let secret = [9u8; 32];
    let ids: Vec<String> = ["b", "a", "d", "c", "e"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let (sorted, order) = draw::draw(&secret, ids);
    assert_eq!(sorted, ["a", "b", "c", "d", "e"]);
    let list = draw::sha256(b"a\nb\nc\nd\ne\n");
    let mut seed_input = secret.to_vec();
    seed_input.extend_from_slice(&list);
    let mut g = draw::Generator::new(draw::sha256(&seed_input));
    let mut expected = sorted.clone();
    for i in (1..expected.len()).rev() {
        let j = g.below(i as u64 + 1) as usize;
        expected.swap(i, j);
    }
    assert_eq!(order, expected);
}

/// Takes tickets, opens, admits for a while, then rebuilds from what would be durable; every
/// place keeps its rank, and the state of every admitted ticket is kept.
#[test]
fn a_restore_keeps_every_place() {
    let mut q = queue(50.0, 11);
    let mut durable = Vec::new();
    for a in 0..400u64 {
        let (i, _) = q.enqueue(10_000 + a, T0 + a).unwrap();
        // One in fifty never commits.
        if a % 50 == 7 {
            q.withdraw(i);
        } else {
            durable.push((i, 10_000 + a, T0 + a));
        }
    }
    let opened = q.advance(OPEN, 1_000).opened;
    for a in 0..100u64 {
        let (i, _) = q.enqueue(20_000 + a, OPEN + 1 + a).unwrap();
        durable.push((i, 20_000 + a, OPEN + 1 + a));
    }
    let mut admissions = Vec::new();
    let mut cursor = 0;
    for k in 1..=30u64 {
        for &(i, a, _) in &durable {
            let _ = q.poll(i, a, OPEN + k * 100);
        }
        let s = q.advance(OPEN + k * 100, 1_000);
        admissions.extend(s.admitted);
        cursor = s.cursor;
    }
    let now = OPEN + 3_100;
    let r = Queue::restore(
        cfg(50.0),
        [11; 32],
        Key::new([1; 32]),
        durable.iter().rev().copied().collect(),
        opened,
        cursor,
        &admissions,
        now,
    );
    assert_eq!(r.counts().admitted, q.counts().admitted);
    for &(i, a, _) in &durable {
        assert_eq!(r.rank_of(i), q.rank_of(i), "ticket {i}");
        let mut r2 = r.clone();
        assert_eq!(
            r2.poll(i, a, now).unwrap().status,
            q.poll(i, a, now).unwrap().status,
            "ticket {i}"
        );
    }
    assert_eq!(r.published_draw(), q.published_draw());
}

#[test]
fn poll_intervals_keep_the_whole_queue_within_its_budget() {
    for waiting in [10u64, 1_000, 100_000] {
        let mut q = queue(100.0, 2);
        for a in 0..waiting {
            q.enqueue(a, T0).unwrap();
        }
        q.advance(OPEN, u64::MAX);
        let total: f64 = (1..=waiting)
            .map(|p| 1.0 / f64::from(q.poll_after(p)))
            .sum();
        let budget = 1_000.0;
        // Either the budget holds, or everyone already waits the longest interval.
        assert!(
            total <= budget * 1.01 || (1..=waiting).all(|p| q.poll_after(p) == 60),
            "{waiting} waiting poll {total:.0}/s"
        );
        assert!(q.poll_after(1) >= 2 && q.poll_after(waiting) <= 60);
        assert!(q.poll_after(1) <= q.poll_after(waiting));
    }
}

proptest! {
    /// Random arrivals, polls, admissions and bookings: the admission order is the rank order,
    /// passes outstanding never exceed the places left, and every rank is held once.
    #[test]
    fn admission_follows_the_ranks(
        ops in proptest::collection::vec((0u8..4, 0u64..60, 0u64..40), 1..300)
    ) {
        let mut q = queue(7.0, 1);
        let mut now = T0;
        let mut admitted: Vec<u32> = Vec::new();
        let mut available = 30u64;
        for (kind, account, dt) in ops {
            now += dt * 100;
            match kind {
                0 => { let _ = q.enqueue(account, now); }
                1 => {
                    if let Some(index) = current_of(&q, account) {
                        let _ = q.poll(index, account, now);
                    }
                }
                2 => {
                    // The first admitted holder who has not booked yet books a place.
                    let before = q.counts().booked;
                    if let Some(&i) = admitted.iter().find(|&&i| {
                        let mut probe = q.clone();
                        probe.mark_booked(i);
                        probe.counts().booked > before
                    }) {
                        q.mark_booked(i);
                        available -= 1;
                    }
                }
                _ => {
                    let s = q.advance(now, available);
                    for (i, _) in s.admitted { admitted.push(i); }
                    prop_assert!(
                        q.counts().outstanding <= available,
                        "{} passes outstanding for {} places", q.counts().outstanding, available
                    );
                }
            }
        }
        let ranks: Vec<u32> = admitted.iter().map(|&i| q.rank_of(i).unwrap()).collect();
        prop_assert!(ranks.windows(2).all(|w| w[0] < w[1]), "{ranks:?}");
        let all: BTreeSet<u32> = (0..q.len() as u32).filter_map(|i| q.rank_of(i)).collect();
        prop_assert_eq!(all.len(), (0..q.len() as u32).filter(|&i| q.rank_of(i).is_some()).count());
    }
}

/// Tickets taken before the opening are told to come back spread over `poll_max_s` after it,
/// the first ones as much as the last, so the opening's first polls stay near
/// tickets / `poll_max_s` per second.
#[test]
fn first_polls_after_the_opening_are_spread() {
    let mut q = queue(10.0, 7);
    let mut per_second = [0u32; 61];
    for a in 0..6_000u64 {
        let now = T0 + a * 5;
        let (i, _) = q.enqueue(a, now).unwrap();
        let answer = q.poll(i, a, now).unwrap();
        let lands = (now / 1000 + u64::from(answer.poll_after_s)) - OPEN / 1000;
        assert!(lands <= 60, "{a}: {lands}");
        per_second[lands as usize] += 1;
    }
    // 6,000 over 60 s is 100 a second; no second gets more than twice that.
    let peak = per_second.iter().copied().max().unwrap();
    assert!(peak <= 200, "{peak}: {per_second:?}");
}

/// A restart long before the opening: holders who come back at the opening, as they were told,
/// still hold their places.
#[test]
fn a_restore_before_the_opening_keeps_the_pre_queue() {
    let mut c = cfg(10.0);
    c.opens_at_ms = T0 + 3_600_000;
    let mut q = Queue::new(c.clone(), [3; 32], Key::new([1; 32]));
    let mut durable = Vec::new();
    for a in 0..20u64 {
        let (i, _) = q.enqueue(a, T0).unwrap();
        durable.push((i, a, T0));
    }
    let mut r = Queue::restore(
        c,
        [3; 32],
        Key::new([1; 32]),
        durable,
        None,
        0,
        &[],
        T0 + 60_000,
    );
    let open = T0 + 3_600_000;
    r.advance(open, 100);
    for i in 0..20u32 {
        let status = r.poll(i, u64::from(i), open + 5_000).unwrap().status;
        assert!(
            matches!(
                status,
                Status::Waiting {
                    position: Some(_),
                    ..
                }
            ),
            "{i}: {status:?}"
        );
    }
}

/// While nothing is left, waiting tickets read sold_out at every poll and keep their place; a
/// freed place goes to the first of them.
#[test]
fn sold_out_tickets_stay_in_line_for_a_freed_place() {
    let mut q = queue(5.0, 8);
    for a in 0..3 {
        q.enqueue(a, T0).unwrap();
    }
    q.advance(OPEN, 1);
    let first = q.advance(OPEN + 1_000, 1).admitted[0].0;
    q.mark_booked(first);
    // Five minutes of sold out, polled every minute as told.
    for m in 1..=5u64 {
        let now = OPEN + m * 60_000;
        q.advance(now, 0);
        for i in (0..3u32).filter(|&i| i != first) {
            assert_eq!(
                q.poll(i, u64::from(i), now).unwrap().status,
                Status::SoldOut
            );
        }
    }
    // A cancellation frees a place.
    let now = OPEN + 301_000;
    let s = q.advance(now, 1);
    assert_eq!(s.admitted.len(), 1, "{s:?}");
}

#[test]
fn a_withdrawn_admission_gives_its_place_back_and_the_opening_starts_without_a_burst() {
    let mut q = queue(10.0, 2);
    for a in 0..50 {
        q.enqueue(a, T0).unwrap();
    }
    // A minute of steps before the opening saves nothing up.
    for k in 0..600u64 {
        q.advance(T0 + k * 100, 1_000);
    }
    let at_opening = q.advance(OPEN, 1_000);
    assert_eq!(at_opening.admitted.len(), 0);
    let s = q.advance(OPEN + 1_000, 1);
    assert_eq!(s.admitted.len(), 1);
    q.withdraw(s.admitted[0].0);
    assert_eq!(q.counts().outstanding, 0);
    assert_eq!(q.advance(OPEN + 2_000, 1).admitted.len(), 1);
}

/// Once its pass has run out (used or not), asking again gives a new ticket at the end; before,
/// the same one.
#[test]
fn after_its_pass_runs_out_an_account_gets_a_new_ticket() {
    let mut c = cfg(10.0);
    c.pass_ttl_s = 30;
    let mut q = Queue::new(c, [4; 32], Key::new([1; 32]));
    for a in 0..3 {
        q.enqueue(a, T0).unwrap();
    }
    q.advance(OPEN, 10);
    let s = q.advance(OPEN + 1_000, 10);
    let (place, expires) = s.admitted[0];
    let holder = u64::from(place);
    q.mark_booked(place);
    assert_eq!(q.enqueue(holder, expires - 1_000).unwrap(), (place, false));
    let (again, fresh) = q.enqueue(holder, expires + 1_000).unwrap();
    assert!(fresh && again == 3, "{again} {fresh}");
}
