//! The simulator's event queue: a min-priority queue ordered by `(time, seq)`.
//!
//! Why the `seq`: many events fall on the same microsecond (a request and the fault
//! that starts at that instant, a burst of arrivals rounded to the same tick). A heap
//! alone pops equal keys in an order that depends on its internal layout, and so on
//! the whole history of pushes and pops. Each push therefore takes the next value of
//! a monotonic insertion counter, and `(time, seq)` is a total order: events at the
//! same time pop in the order they were pushed, on every machine and every run. That
//! tie-breaker is what makes a simulation with the same seed byte-identical.
//!
//! This is the simulator's hot loop, so the queue is a plain [`BinaryHeap`] of a
//! small entry with a hand-written `Ord` on `(time, seq)` only: the payload `E` needs
//! no ordering and is never compared. [`LanedQueue`] adds slots outside the heap for
//! sources with one pending event at a time (workload arrivals), in the same order.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::engine::Time;

/// A min-priority queue of events of type `E`, popped in `(time, seq)` order.
///
/// `seq` is the insertion counter: events pushed for the same time pop in insertion
/// order (first in, first out). Time may not run backwards: pushing an event earlier
/// than the last popped one is a simulator bug and panics.
#[derive(Debug, Clone)]
pub struct EventQueue<E> {
    heap: BinaryHeap<Entry<E>>,
    /// The `seq` of the next push; also the number of pushes so far.
    next_seq: u64,
    /// The time of the last popped event: the simulated "now".
    last_popped: Time,
}

/// One queued event; ordered by `(time, seq)` reversed, so that the max-heap
/// [`BinaryHeap`] pops the earliest first.
///
/// `(time, seq)` is packed into one `u128` (time in the high half), whose order is the
/// pair's: the heap compares entries on every level of every push and pop, and one
/// wide comparison has no branch on whether the times tie.
#[derive(Debug, Clone)]
struct Entry<E> {
    key: u128,
    event: E,
}

impl<E> Entry<E> {
    #[inline]
    fn time(&self) -> Time {
        (self.key >> 64) as Time
    }
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        // `seq` is unique per queue, so the key decides equality.
        self.key == other.key
    }
}

impl<E> Eq for Entry<E> {}

impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Entry<E> {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: the smallest (time, seq) is the heap's maximum.
        other.key.cmp(&self.key)
    }
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> EventQueue<E> {
    /// An empty queue.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty queue with room for `capacity` events before it reallocates.
    pub fn with_capacity(capacity: usize) -> Self {
        EventQueue {
            heap: BinaryHeap::with_capacity(capacity),
            next_seq: 0,
            last_popped: 0,
        }
    }

    /// Schedules `event` at time `at`, after every event already queued for `at`.
    ///
    /// # Panics
    ///
    /// If `at` is earlier than the time of the last popped event: simulated time
    /// would run backwards.
    #[inline]
    pub fn push(&mut self, at: Time, event: E) {
        let key = self.take_key(at);
        self.heap.push(Entry { key, event });
    }

    /// The `(time, seq)` key of an event pushed now for `at`, taking the next `seq`.
    #[inline]
    fn take_key(&mut self, at: Time) -> u128 {
        assert!(
            at >= self.last_popped,
            "event scheduled at {at} us, before the current time {} us",
            self.last_popped
        );
        let seq = self.next_seq;
        self.next_seq += 1;
        (u128::from(at) << 64) | u128::from(seq)
    }

    /// Removes and returns the earliest event with its time; `None` when empty.
    #[inline]
    pub fn pop(&mut self) -> Option<(Time, E)> {
        let entry = self.heap.pop()?;
        let time = entry.time();
        self.last_popped = time;
        Some((time, entry.event))
    }

    /// The key of the earliest queued event.
    #[inline]
    fn peek_key(&self) -> Option<u128> {
        self.heap.peek().map(|e| e.key)
    }

    /// The time of the earliest queued event, without removing it.
    #[inline]
    pub fn peek_time(&self) -> Option<Time> {
        self.heap.peek().map(Entry::time)
    }

    /// The number of queued events.
    #[inline]
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no event is queued.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The number of events pushed since the queue was created (popped or not).
    pub fn pushed(&self) -> u64 {
        self.next_seq
    }

    /// The time of the last popped event (0 before the first pop): the earliest
    /// time at which [`push`](Self::push) still accepts an event.
    pub fn now(&self) -> Time {
        self.last_popped
    }
}

/// An [`EventQueue`] with lanes: a source that never has more than one event pending
/// (a workload stream's next arrival) keeps it in a slot of its own, outside the heap.
///
/// Why: arrivals are two thirds of a simulation's events, and each is scheduled just
/// ahead of everything else pending, so pushing it sifted it up the whole heap and
/// popping it sifted a replacement down again. A lane's event instead takes its `seq`
/// from the same counter when it is pushed, and [`pop`](Self::pop) returns the least
/// `(time, seq)` among the heap's top and the lanes: the pop order is exactly the one
/// pushing everything into the heap would give (a property test checks this).
#[derive(Debug, Clone)]
pub struct LanedQueue<E> {
    queue: EventQueue<E>,
    lanes: Vec<Option<(u128, E)>>,
}

impl<E> LanedQueue<E> {
    /// An empty queue with `lanes` lanes and room for `capacity` heap events.
    pub fn new(capacity: usize, lanes: usize) -> Self {
        LanedQueue {
            queue: EventQueue::with_capacity(capacity),
            lanes: (0..lanes).map(|_| None).collect(),
        }
    }

    /// Schedules `event` at `at` in the heap (see [`EventQueue::push`]).
    #[inline]
    pub fn push(&mut self, at: Time, event: E) {
        self.queue.push(at, event);
    }

    /// Schedules `event` at `at` in `lane`, ordered exactly as [`push`](Self::push)
    /// would order it.
    ///
    /// # Panics
    ///
    /// If the lane already holds an event, or `at` is in the past.
    #[inline]
    pub fn push_lane(&mut self, lane: usize, at: Time, event: E) {
        assert!(
            self.lanes[lane].is_none(),
            "lane {lane} already holds an event"
        );
        let key = self.queue.take_key(at);
        self.lanes[lane] = Some((key, event));
    }

    /// Removes and returns the earliest event, from the heap or a lane.
    #[inline]
    pub fn pop(&mut self) -> Option<(Time, E)> {
        let mut earliest: Option<(usize, u128)> = None;
        for (lane, slot) in self.lanes.iter().enumerate() {
            if let Some((key, _)) = slot {
                if earliest.is_none_or(|(_, k)| *key < k) {
                    earliest = Some((lane, *key));
                }
            }
        }
        match earliest {
            Some((lane, key)) if self.queue.peek_key().is_none_or(|k| key < k) => {
                let (_, event) = self.lanes[lane].take()?;
                let time = (key >> 64) as Time;
                self.queue.last_popped = time;
                Some((time, event))
            }
            _ => self.queue.pop(),
        }
    }

    /// The number of queued events, lanes included.
    pub fn len(&self) -> usize {
        self.queue.len() + self.lanes.iter().filter(|l| l.is_some()).count()
    }

    /// Whether no event is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_time_order() {
        let mut q = EventQueue::new();
        q.push(30, "c");
        q.push(10, "a");
        q.push(20, "b");
        assert_eq!(q.len(), 3);
        assert_eq!(q.peek_time(), Some(10));
        assert_eq!(q.pop(), Some((10, "a")));
        assert_eq!(q.pop(), Some((20, "b")));
        assert_eq!(q.pop(), Some((30, "c")));
        assert_eq!(q.pop(), None);
        assert!(q.is_empty());
        assert_eq!(q.peek_time(), None);
    }

    #[test]
    fn same_time_pops_in_insertion_order() {
        let mut q = EventQueue::new();
        for i in 0..100 {
            q.push(5, i);
        }
        q.push(4, -1);
        assert_eq!(q.pop(), Some((4, -1)));
        for i in 0..100 {
            assert_eq!(q.pop(), Some((5, i)));
        }
    }

    #[test]
    fn same_time_push_during_pop_goes_after_queued_ones() {
        let mut q = EventQueue::new();
        q.push(7, 'a');
        q.push(7, 'b');
        assert_eq!(q.pop(), Some((7, 'a')));
        q.push(7, 'c');
        assert_eq!(q.pop(), Some((7, 'b')));
        assert_eq!(q.pop(), Some((7, 'c')));
        assert_eq!(q.pushed(), 3);
        assert_eq!(q.now(), 7);
    }

    #[test]
    fn payload_needs_no_ordering() {
        struct Opaque(#[allow(dead_code)] u8);
        let mut q = EventQueue::new();
        q.push(2, Opaque(2));
        q.push(1, Opaque(1));
        assert_eq!(q.pop().map(|(t, _)| t), Some(1));
    }

    #[test]
    fn a_lane_event_ties_like_a_heap_event() {
        let mut q = LanedQueue::new(0, 1);
        q.push(5, "heap first");
        q.push_lane(0, 5, "lane second");
        q.push(5, "heap third");
        assert_eq!(q.len(), 3);
        assert_eq!(q.pop(), Some((5, "heap first")));
        assert_eq!(q.pop(), Some((5, "lane second")));
        q.push_lane(0, 5, "lane again, after the third");
        assert_eq!(q.pop(), Some((5, "heap third")));
        assert_eq!(q.pop(), Some((5, "lane again, after the third")));
        assert_eq!(q.pop(), None);
        assert!(q.is_empty());
    }

    #[test]
    #[should_panic(expected = "already holds an event")]
    fn a_lane_holds_one_event() {
        let mut q = LanedQueue::new(0, 1);
        q.push_lane(0, 1, ());
        q.push_lane(0, 2, ());
    }

    #[test]
    #[should_panic(expected = "before the current time")]
    fn pushing_into_the_past_panics() {
        let mut q = EventQueue::new();
        q.push(10, ());
        q.pop();
        q.push(9, ());
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        /// Push at `now + delay`.
        Push(u64),
        Pop,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![(0u64..5).prop_map(Op::Push), Just(Op::Pop)]
    }

    proptest! {
        /// Against a model that keeps a list and pops the minimum (time, insertion
        /// number) by linear scan.
        #[test]
        fn matches_sorted_list_model(ops in proptest::collection::vec(op(), 0..200)) {
            let mut q = EventQueue::new();
            let mut model: Vec<(Time, u64)> = Vec::new();
            let mut now = 0;
            let mut n = 0u64;
            for op in ops {
                match op {
                    Op::Push(delay) => {
                        q.push(now + delay, n);
                        model.push((now + delay, n));
                        n += 1;
                    }
                    Op::Pop => {
                        let expected = model
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, &k)| k)
                            .map(|(i, _)| i)
                            .map(|i| model.remove(i));
                        let got = q.pop();
                        prop_assert_eq!(got, expected);
                        if let Some((t, _)) = got {
                            now = t;
                        }
                    }
                }
                prop_assert_eq!(q.len(), model.len());
                prop_assert_eq!(q.peek_time(), model.iter().map(|k| k.0).min());
            }
        }

        /// A laned queue pops in exactly the order of a plain queue given the same
        /// pushes, whichever of them went to lanes.
        #[test]
        fn lanes_pop_like_the_plain_queue(
            ops in proptest::collection::vec((0u64..5, 0usize..4, any::<bool>()), 0..300)
        ) {
            let mut laned = LanedQueue::new(0, 3);
            let mut plain = EventQueue::new();
            let mut lane_busy = [false; 3];
            let mut now = 0;
            for (n, (delay, lane, pop)) in ops.into_iter().enumerate() {
                if pop {
                    let got = laned.pop();
                    prop_assert_eq!(got, plain.pop());
                    if let Some((t, (_, from_lane))) = got {
                        now = t;
                        if let Some(l) = from_lane {
                            lane_busy[l] = false;
                        }
                    }
                } else if lane < 3 && !lane_busy[lane] {
                    laned.push_lane(lane, now + delay, (n, Some(lane)));
                    plain.push(now + delay, (n, Some(lane)));
                    lane_busy[lane] = true;
                } else {
                    laned.push(now + delay, (n, None));
                    plain.push(now + delay, (n, None));
                }
                prop_assert_eq!(laned.len(), plain.len());
            }
        }
    }
}
