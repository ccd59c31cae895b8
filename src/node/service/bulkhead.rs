//! The bulkhead layer in front of a declared dependency: a plan's call takes one of
//! the dependency's slots, waits for one (at most its `max_wait`), or is refused.
//!
//! The bulkhead is the innermost layer, nearest the call: the breaker's permit is
//! taken first (a call the breaker refuses never reaches the bulkhead), and each retry
//! attempt takes a slot of its own. A refused call was never made: its permit is
//! given back to the breaker, or counted as a failure when the bulkhead says
//! `counts_as_failure`, and the request takes its fallback chain as for an open
//! breaker (`bulkhead_full`). A slot is held from the call until its answer (or its
//! timeout); the answer hands it to the oldest waiter.

use serde::Serialize;

use crate::engine::bulkhead::Entry;
use crate::engine::retry::{Denied, RetryEvent};
use crate::engine::{Span, Time};
use crate::node::plan::{Answer, Failure};

use super::{
    Call, CallError, CallId, CallKind, CallResult, Effect, Node, NodeEvent, Op, Pending, Purpose,
};
use super::{Permit, Timer};

/// A call the node would make, held while it waits for a bulkhead slot.
pub(super) struct Held {
    pub(super) pending: Pending,
    pub(super) op: Op,
    /// The call's timeout instant, set when it was first asked for: the time it waits
    /// for a slot is part of its timeout.
    pub(super) deadline: Time,
}

/// What a dependency's bulkhead did with a call, in the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum BulkheadEvent {
    /// Refused: every slot taken and no room (or no leave) to wait.
    Full {
        /// When.
        at: Time,
    },
    /// Refused after waiting its longest for a slot.
    Expired {
        /// When.
        at: Time,
        /// How long it waited.
        waited: Span,
    },
}

impl Node {
    /// Makes a plan step's call, through its dependency's bulkhead if it has one.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn step_call(
        &mut self,
        now: Time,
        index: usize,
        key: u64,
        permit: Permit,
        op: Op,
        purpose: Purpose,
        deadline: Time,
    ) {
        if self.deps[index].bulkhead.is_none() {
            return self.call_until(index, key, permit, op, false, purpose, deadline);
        }
        let held = Held {
            pending: Pending {
                dependency: index as u32,
                key,
                permit,
                purpose,
                attempt: 1,
                force_down: false,
                in_bulkhead: false,
                call_deadline: deadline,
            },
            op,
            deadline,
        };
        self.enter_bulkhead(now, held, false);
    }

    /// Makes `held`'s call now.
    pub(super) fn make_call(&mut self, held: Held) {
        let Held {
            mut pending,
            op,
            deadline,
        } = held;
        let index = pending.dependency as usize;
        pending.in_bulkhead = self.deps[index].bulkhead.is_some();
        let force_down = pending.force_down;
        // Only client calls pass here: a plan's first attempts and their retries.
        let kind = if pending.attempt > 1 {
            CallKind::Retry
        } else {
            CallKind::Client
        };
        self.stats.calls += 1;
        let id = CallId(self.pending.insert(pending));
        self.effects.push(Effect::Call(Call {
            id,
            dependency: index,
            op,
            force_down,
            deadline,
            kind,
        }));
    }

    /// `held` asks its dependency's bulkhead for a slot at `now`. `drive`: whether a
    /// refusal's answer is carried out here (a timer or an answer), or by the run's
    /// own drive loop, which is carrying out the action that asked.
    #[inline(never)]
    pub(super) fn enter_bulkhead(&mut self, now: Time, held: Held, drive: bool) {
        let index = held.pending.dependency as usize;
        let bulkhead = self.deps[index]
            .bulkhead
            .as_mut()
            .expect("only a dependency with a bulkhead");
        match bulkhead.enter(now, held) {
            Entry::Enter(held) => self.make_call(held),
            Entry::Wait { .. } => self.arm_bulkhead_timer(index),
            Entry::Full(held) => {
                self.refuse_held(now, held, BulkheadEvent::Full { at: now }, drive);
            }
        }
    }

    /// A call holding a slot of dependency `index`'s bulkhead was answered: the slot
    /// goes to the oldest waiter whose request still wants its call.
    #[inline(never)]
    pub(super) fn leave_bulkhead(&mut self, now: Time, index: usize) {
        loop {
            let dep = &mut self.deps[index];
            let Some(bulkhead) = dep.bulkhead.as_mut() else {
                return;
            };
            let Some(held) = bulkhead.leave() else {
                return;
            };
            if self.still_wanted(&held.pending.purpose) {
                return self.make_call(held);
            }
            // Its request ended while it waited: not made.
            self.drop_unwanted(now, &held.pending);
        }
    }

    /// A call that waited for a slot is not made: its request ended meanwhile. Its
    /// permit is settled as a retry whose request ended would be.
    fn drop_unwanted(&mut self, now: Time, pending: &Pending) {
        self.give_back_permit(now, pending, false);
        if pending.attempt > 1 {
            let index = pending.dependency as usize;
            if let Some(retry) = self.deps[index].retry.as_mut() {
                retry.on_request_ended();
            }
            let event = RetryEvent::Denied {
                at: now,
                attempt: u32::from(pending.attempt) - 1,
                reason: Denied::RequestEnded,
            };
            self.retry_event(index, event);
        }
    }

    /// The permit of a call that was never made goes back to the breaker, unless the
    /// breaker must hear a failure: the earlier attempt's, when the breaker is outside
    /// the retry (its one permit covers every attempt, and only the last outcome
    /// reaches it), or the refusal itself, when the bulkhead counts refusals.
    fn give_back_permit(&mut self, now: Time, pending: &Pending, refused: bool) {
        let dep = &mut self.deps[pending.dependency as usize];
        let counts = refused
            && dep
                .bulkhead
                .as_ref()
                .is_some_and(|b| b.config().counts_as_failure);
        if counts || (pending.attempt > 1 && dep.breaker_outside_retry) {
            dep.breaker.on_failure(pending.permit, now, &mut self.rng);
        } else {
            dep.breaker.release(pending.permit);
        }
    }

    /// Whether the request a call is for still waits for it.
    fn still_wanted(&mut self, purpose: &Purpose) -> bool {
        match *purpose {
            Purpose::Step { run, slot } | Purpose::StepWrite { run, slot, .. } => {
                self.part_deadline(run, slot).is_some()
            }
            _ => true,
        }
    }

    /// Calls that waited their longest for a slot of dependency `index` are refused.
    pub(super) fn on_bulkhead_timer(&mut self, now: Time, index: usize) {
        let Some(bulkhead) = self.deps.get_mut(index).and_then(|d| d.bulkhead.as_mut()) else {
            return;
        };
        // A waiter refused at its expiry waited exactly `max_wait`.
        let waited = bulkhead.config().max_wait;
        let mut refused = Vec::new();
        bulkhead.expire(now, &mut refused);
        for held in refused {
            let event = BulkheadEvent::Expired { at: now, waited };
            self.refuse_held(now, held, event, true);
        }
        self.arm_bulkhead_timer(index);
    }

    /// Asks for the one expiry timer of dependency `index`'s bulkhead, if a waiter
    /// needs it and none is outstanding.
    fn arm_bulkhead_timer(&mut self, index: usize) {
        let at = self.deps[index]
            .bulkhead
            .as_mut()
            .and_then(|b| b.arm_timer());
        if let Some(at) = at {
            self.effects.push(Effect::Timer {
                at,
                timer: Timer::Bulkhead {
                    dependency: index as u32,
                },
            });
        }
    }

    /// The bulkhead refused `held`: its permit goes back to the breaker (or counts as
    /// a failure), the refusal is in the trace, and its request takes `bulkhead_full`.
    fn refuse_held(&mut self, now: Time, held: Held, event: BulkheadEvent, drive: bool) {
        let pending = held.pending;
        if !self.still_wanted(&pending.purpose) {
            // Its request ended while it waited (its deadline, a sibling's failure):
            // nobody takes the refusal, and a write is not queued for it.
            return self.drop_unwanted(now, &pending);
        }
        let index = pending.dependency as usize;
        self.give_back_permit(now, &pending, true);
        let dep = &self.deps[index];
        let dependency = dep.name;
        self.effects
            .push(Effect::Event(NodeEvent::Bulkhead { dependency, event }));
        match pending.purpose {
            Purpose::Step { run, slot } => {
                self.answer(now, run, slot, Answer::Failed(Failure::BulkheadFull), None);
                if drive {
                    self.drive(now, run);
                }
            }
            Purpose::StepWrite { run, slot, write } => {
                let answer = if self.deps[index].has_queue {
                    self.enqueue_step_write(now, run, slot, index, write, now)
                } else {
                    Answer::Failed(Failure::BulkheadFull)
                };
                self.answer(now, run, slot, answer, None);
                if drive {
                    self.drive(now, run);
                }
            }
            // Only a declared service's dependencies have bulkheads, and only its plan
            // calls (and their retries) pass them; anything else fails as unmade.
            _ => self.settle(now, pending, CallResult::Failed(CallError::Unavailable)),
        }
    }
}
