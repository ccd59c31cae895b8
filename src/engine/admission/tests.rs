//! Admission control: limits per tier, the wait queue's order, displacement, expiry,
//! and the tier guarantee over random traffic.

use proptest::prelude::*;

use super::*;

fn config(max_in_flight: u32, reserve_critical: u32, reserve_important: u32) -> AdmissionConfig {
    AdmissionConfig {
        max_in_flight,
        reserve_critical,
        reserve_important,
        queue: 0,
        max_wait: 0,
    }
}

#[test]
fn each_tier_stops_at_its_own_limit() {
    let mut a = Admission::new(config(10, 2, 3)).unwrap();
    // Optional requests take 5 slots, then are shed; important ones 8, critical 10.
    let mut admitted = [0; 3];
    for tier in [Tier::Optional, Tier::Important, Tier::Critical] {
        for n in 0..20 {
            match a.arrive(0, tier, n) {
                Arrival::Admitted(_) => admitted[tier.index()] += 1,
                Arrival::Shed(s) => assert_eq!(s.reason, ShedReason::Full),
                Arrival::Waiting { .. } => panic!("no wait queue"),
            }
        }
    }
    assert_eq!(admitted, [2, 3, 5]);
    assert_eq!(a.in_flight(), 10);
    let stats = a.stats();
    assert_eq!(stats.shed_full, [18, 17, 15]);
    assert_eq!(stats.peak_in_flight, 10);
}

#[test]
fn a_freed_slot_goes_to_the_highest_tier_waiting_then_in_arrival_order() {
    let mut a = Admission::new(AdmissionConfig {
        queue: 10,
        max_wait: 100,
        ..config(2, 0, 0)
    })
    .unwrap();
    assert_eq!(a.arrive(0, Tier::Important, "i0"), Arrival::Admitted("i0"));
    assert_eq!(a.arrive(0, Tier::Important, "i1"), Arrival::Admitted("i1"));
    for (at, tier, name) in [
        (1, Tier::Optional, "o1"),
        (2, Tier::Important, "i2"),
        (3, Tier::Optional, "o2"),
        (4, Tier::Critical, "c1"),
        (5, Tier::Important, "i3"),
    ] {
        let arrival = a.arrive(at, tier, name);
        assert_eq!(
            arrival,
            Arrival::Waiting {
                until: at + 100,
                displaced: None
            }
        );
    }
    let mut order = Vec::new();
    for _ in 0..5 {
        // Whoever was admitted is answered at once, in the next step.
        a.release(&mut order);
    }
    assert_eq!(order, ["c1", "i2", "i3", "o1", "o2"]);
    assert_eq!(a.stats().admitted_after_wait, [1, 2, 2]);
}

#[test]
fn a_full_wait_queue_displaces_the_newest_waiter_of_the_lowest_tier() {
    let mut a = Admission::new(AdmissionConfig {
        queue: 3,
        max_wait: 100,
        ..config(1, 0, 0)
    })
    .unwrap();
    assert!(matches!(
        a.arrive(0, Tier::Critical, "c0"),
        Arrival::Admitted(_)
    ));
    for (tier, name) in [
        (Tier::Optional, "o1"),
        (Tier::Optional, "o2"),
        (Tier::Important, "i1"),
    ] {
        assert!(matches!(
            a.arrive(1, tier, name),
            Arrival::Waiting {
                displaced: None,
                ..
            }
        ));
    }
    // Full: an important newcomer displaces the newest optional waiter.
    match a.arrive(7, Tier::Important, "i2") {
        Arrival::Waiting {
            displaced: Some(shed),
            ..
        } => {
            assert_eq!(shed.item, "o2");
            assert_eq!(shed.tier, Tier::Optional);
            assert_eq!(shed.reason, ShedReason::Displaced);
            assert_eq!(shed.waited, 6);
        }
        other => panic!("{other:?}"),
    }
    // An optional newcomer has nobody below it: it is shed itself.
    match a.arrive(8, Tier::Optional, "o3") {
        Arrival::Shed(shed) => assert_eq!((shed.item, shed.reason), ("o3", ShedReason::Full)),
        other => panic!("{other:?}"),
    }
    // A critical one displaces the last optional, then the newest important.
    assert!(matches!(
        a.arrive(9, Tier::Critical, "c1"),
        Arrival::Waiting {
            displaced: Some(Shed { item: "o1", .. }),
            ..
        }
    ));
    assert!(matches!(
        a.arrive(9, Tier::Critical, "c2"),
        Arrival::Waiting {
            displaced: Some(Shed { item: "i2", .. }),
            ..
        }
    ));
    // Only critical requests and one important wait now; a critical newcomer takes
    // the important one's place, and the next critical one is shed.
    assert!(matches!(
        a.arrive(9, Tier::Critical, "c3"),
        Arrival::Waiting {
            displaced: Some(Shed { item: "i1", .. }),
            ..
        }
    ));
    assert!(matches!(
        a.arrive(9, Tier::Critical, "c4"),
        Arrival::Shed(Shed {
            item: "c4",
            reason: ShedReason::Full,
            ..
        })
    ));
    let stats = a.stats();
    assert_eq!(stats.shed_displaced, [0, 2, 2]);
    assert_eq!(stats.shed_full, [1, 0, 1]);
}

#[test]
fn a_waiter_is_shed_when_its_wait_ends_and_not_before() {
    let mut a = Admission::new(AdmissionConfig {
        queue: 5,
        max_wait: 50,
        ..config(1, 0, 0)
    })
    .unwrap();
    assert!(matches!(
        a.arrive(0, Tier::Important, 0),
        Arrival::Admitted(_)
    ));
    assert!(matches!(
        a.arrive(10, Tier::Important, 1),
        Arrival::Waiting { until: 60, .. }
    ));
    assert!(matches!(
        a.arrive(20, Tier::Critical, 2),
        Arrival::Waiting { until: 70, .. }
    ));
    assert_eq!(a.next_expiry(), Some(60));
    let mut shed = Vec::new();
    a.expire(59, &mut shed);
    assert!(shed.is_empty());
    a.expire(60, &mut shed);
    assert_eq!(shed.len(), 1);
    assert_eq!((shed[0].item, shed[0].waited), (1, 50));
    assert_eq!(shed[0].reason, ShedReason::Expired);
    assert_eq!(a.next_expiry(), Some(70));
    let mut admitted = Vec::new();
    a.release(&mut admitted);
    assert_eq!(admitted, [2]);
    assert_eq!(a.next_expiry(), None);
    assert_eq!(a.stats().shed_expired, [0, 1, 0]);
}

#[test]
fn incoherent_limits_are_refused_with_the_field() {
    let bad = [
        (config(0, 0, 0), "max_in_flight"),
        (config(10, 5, 5), "reserve_critical"),
        (
            AdmissionConfig {
                queue: 3,
                ..config(10, 0, 0)
            },
            "max_wait",
        ),
        (
            AdmissionConfig {
                queue: MAX_QUEUE + 1,
                max_wait: 1,
                ..config(10, 0, 0)
            },
            "queue",
        ),
    ];
    for (config, field) in bad {
        let err = Admission::<()>::new(config).err().expect("refused");
        assert_eq!(err.field, field);
    }
}

#[derive(Debug, Clone)]
enum Step {
    Arrive(Tier),
    /// Answer the request admitted `n`-th among those in flight (mod their count).
    Answer(usize),
    /// Let time pass.
    Wait(u64),
}

fn tier() -> impl Strategy<Value = Tier> {
    prop_oneof![
        Just(Tier::Critical),
        Just(Tier::Important),
        Just(Tier::Optional)
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => tier().prop_map(Step::Arrive),
        2 => any::<usize>().prop_map(Step::Answer),
        1 => (1u64..40).prop_map(Step::Wait),
    ]
}

proptest! {
    /// Over any traffic: a critical request is shed only when no lower tier waits and
    /// no lower tier could take a slot; nobody is admitted past their tier's limit;
    /// every request is admitted, waiting or shed exactly once (conservation).
    #[test]
    fn critical_is_shed_only_when_no_lower_tier_is_served(
        max_in_flight in 1u32..8,
        reserve_critical in 0u32..3,
        reserve_important in 0u32..3,
        queue in 0u32..5,
        steps in proptest::collection::vec(step(), 1..200),
    ) {
        prop_assume!(reserve_critical + reserve_important < max_in_flight);
        let config = AdmissionConfig {
            max_in_flight,
            reserve_critical,
            reserve_important,
            queue,
            max_wait: 25,
        };
        let mut a = Admission::new(config.clone()).unwrap();
        let mut now = 0;
        let mut next = 0u64;
        let mut in_flight: Vec<(u64, Tier)> = Vec::new();
        let (mut arrived, mut shed_count, mut answered) = (0u64, 0u64, 0u64);
        let mut admitted = Vec::new();
        let mut shed = Vec::new();
        let check_shed = |s: &Shed<(u64, Tier)>, a: &Admission<(u64, Tier)>| {
            if s.tier == Tier::Critical {
                prop_assert_eq!(a.waiting_in(Tier::Important), 0);
                prop_assert_eq!(a.waiting_in(Tier::Optional), 0);
                prop_assert!(!a.has_slot(Tier::Important));
                prop_assert!(!a.has_slot(Tier::Optional));
            }
            Ok(())
        };
        for step in steps {
            match step {
                Step::Arrive(tier) => {
                    arrived += 1;
                    next += 1;
                    let before = a.in_flight();
                    match a.arrive(now, tier, (next, tier)) {
                        Arrival::Admitted(item) => {
                            prop_assert!(before < config.limit(tier));
                            in_flight.push(item);
                        }
                        Arrival::Waiting { displaced, .. } => {
                            if let Some(s) = displaced {
                                prop_assert!(s.tier > tier, "only a lower tier is displaced");
                                shed_count += 1;
                            }
                        }
                        Arrival::Shed(s) => {
                            check_shed(&s, &a)?;
                            shed_count += 1;
                        }
                    }
                }
                Step::Answer(n) => {
                    if in_flight.is_empty() {
                        continue;
                    }
                    in_flight.remove(n % in_flight.len());
                    answered += 1;
                    a.release(&mut admitted);
                    for item in admitted.drain(..) {
                        prop_assert!(a.in_flight() <= config.limit(item.1));
                        in_flight.push(item);
                    }
                }
                Step::Wait(d) => {
                    now += d;
                    a.expire(now, &mut shed);
                    for s in shed.drain(..) {
                        prop_assert_eq!(s.reason, ShedReason::Expired);
                        prop_assert!(s.waited >= 25);
                        shed_count += 1;
                    }
                }
            }
            prop_assert_eq!(a.in_flight() as usize, in_flight.len());
            prop_assert!(a.waiting() <= queue);
            prop_assert_eq!(
                arrived,
                in_flight.len() as u64 + u64::from(a.waiting()) + shed_count + answered
            );
            let s = a.stats();
            let admitted: u64 = s.admitted.iter().chain(&s.admitted_after_wait).sum();
            prop_assert_eq!(admitted, in_flight.len() as u64 + answered);
        }
    }
}

#[test]
fn one_expiry_timer_at_a_time_whatever_the_waiters() {
    let mut a = Admission::new(AdmissionConfig {
        queue: 10,
        max_wait: 50,
        ..config(1, 0, 0)
    })
    .unwrap();
    assert!(matches!(
        a.arrive(0, Tier::Important, 0),
        Arrival::Admitted(_)
    ));
    assert_eq!(a.arm_timer(), None, "nobody waits");
    for n in 1..=5 {
        assert!(matches!(
            a.arrive(n, Tier::Important, n),
            Arrival::Waiting { .. }
        ));
    }
    assert_eq!(a.arm_timer(), Some(51), "the oldest waiter's end");
    assert_eq!(a.arm_timer(), None, "already armed");
    let mut shed = Vec::new();
    a.expire(51, &mut shed);
    assert_eq!(shed.len(), 1);
    assert_eq!(a.arm_timer(), Some(52), "re-armed for the next");
}
