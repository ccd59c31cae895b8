//! The retry layer in front of a dependency: a failed client call waits its backoff
//! and goes again, within the dependency's [`RetryPolicy`] and the request's deadline.
//!
//! Only client calls are retried (a seed read or write, a declared plan's call): a
//! background refresh, a health probe and a queued write's drain have their own
//! retry rules (the cache's next reader, the breaker's next probe, the queue's
//! backoff). Where it sits is the dependency's [`Pipeline`]: outside the breaker (the
//! default), each attempt takes its own permit, so the breaker sees every attempt,
//! and a retry that falls due while the breaker is open is not made; inside it, the
//! call's one permit covers every attempt and the breaker hears only the last
//! outcome. The failure the caller finally sees is the last attempt's.
//!
//! [`Pipeline`]: crate::engine::retry::Pipeline

use crate::engine::retry::{Decision, Denied, FailureKind, RetryEvent};
use crate::engine::Time;
use crate::node::plan::{Answer, Failure};

use super::{CallError, Effect, Held, Node, NodeEvent, Op, Pending, Purpose, Timer};

fn kind(error: CallError) -> FailureKind {
    match error {
        CallError::Timeout => FailureKind::Timeout,
        CallError::Error => FailureKind::Error,
        CallError::Unavailable => FailureKind::Unavailable,
    }
}

impl Node {
    /// Whether call `pending`, failed with `error` at `now`, is retried: `Ok` if it
    /// waits for its retry, `Err` (giving it back) if its caller takes the failure now.
    pub(super) fn try_retry(
        &mut self,
        now: Time,
        pending: Pending,
        error: CallError,
    ) -> Result<(), Pending> {
        let deadline = match &pending.purpose {
            Purpose::Read { .. } | Purpose::Write { .. } => None,
            Purpose::Step { run, slot } | Purpose::StepWrite { run, slot, .. } => {
                match self.part_deadline(*run, *slot) {
                    Some(deadline) => deadline,
                    // The run no longer waits for the part: nobody would use the retry.
                    None => return Err(pending),
                }
            }
            Purpose::Refresh { .. } | Purpose::Probe | Purpose::Drain { .. } => {
                return Err(pending)
            }
        };
        let index = pending.dependency as usize;
        // A timeout outside the retry bounds every attempt and backoff.
        let deadline = if self.deps[index].timeout_outside_retry {
            Some(deadline.map_or(pending.call_deadline, |d| d.min(pending.call_deadline)))
        } else {
            deadline
        };
        let attempt = u32::from(pending.attempt);
        if let Purpose::Step { run, slot } | Purpose::StepWrite { run, slot, .. } = pending.purpose
        {
            // The step's own cap, below the policy's: as the policy's, it ends the
            // call's attempts without a word.
            if self
                .step_max_attempts(run, slot)
                .is_some_and(|max| attempt >= max)
            {
                return Err(pending);
            }
        }
        let dep = &mut self.deps[index];
        let Some(retry) = dep.retry.as_mut() else {
            return Err(pending);
        };
        let event = match retry.decide(now, attempt, kind(error), deadline, &mut self.rng) {
            Decision::GiveUp => return Err(pending),
            Decision::Denied(reason) => {
                let event = RetryEvent::Denied {
                    at: now,
                    attempt,
                    reason,
                };
                self.retry_event(index, event);
                return Err(pending);
            }
            Decision::Retry(backoff) => {
                let at = now.saturating_add(backoff);
                let event = RetryEvent::Scheduled {
                    at: now,
                    attempt,
                    backoff,
                };
                let wait = self.retries.insert(pending);
                self.effects.push(Effect::Timer {
                    at,
                    timer: Timer::Retry { wait },
                });
                (index, event)
            }
        };
        self.retry_event(event.0, event.1);
        Ok(())
    }

    /// Retry `wait` falls due at `now`: the next attempt goes, if the request still
    /// wants it and the breaker lets it through.
    pub(super) fn on_retry(&mut self, now: Time, wait: u64) {
        let Some(pending) = self.retries.remove(wait) else {
            return;
        };
        let deadline = match &pending.purpose {
            Purpose::Step { run, slot } | Purpose::StepWrite { run, slot, .. } => {
                match self.part_deadline(*run, *slot) {
                    Some(deadline) => deadline,
                    // The request ended meanwhile (another part failed it, or its
                    // deadline passed) and no longer waits for this one: the retry is
                    // not made, and says so. A breaker outside the retry still hears
                    // of the failure.
                    None => {
                        let dep = &mut self.deps[pending.dependency as usize];
                        if dep.breaker_outside_retry {
                            dep.breaker.on_failure(pending.permit, now, &mut self.rng);
                        }
                        if let Some(retry) = dep.retry.as_mut() {
                            retry.on_request_ended();
                        }
                        let event = RetryEvent::Denied {
                            at: now,
                            attempt: u32::from(pending.attempt),
                            reason: Denied::RequestEnded,
                        };
                        self.retry_event(pending.dependency as usize, event);
                        return;
                    }
                }
            }
            _ => None,
        };
        let index = pending.dependency as usize;
        let dep = &mut self.deps[index];
        // A breaker outside the retry already let the call in: its permit covers
        // every attempt. Inside, each attempt asks again.
        let permit = if dep.breaker_outside_retry {
            Ok(pending.permit)
        } else {
            dep.breaker.try_acquire(now, &mut self.rng).map_err(drop)
        };
        match permit {
            Ok(permit) => {
                let op = match &pending.purpose {
                    Purpose::Write { write, .. } | Purpose::StepWrite { write, .. } => Op::Write {
                        key: write.key,
                        name: write.name.clone(),
                        version: write.version,
                    },
                    _ => Op::Read { key: pending.key },
                };
                // Each attempt has the dependency's timeout, cut at the request's
                // deadline; or, with the timeout outside the retry, what is left of the
                // first attempt's.
                let call_deadline = if dep.timeout_outside_retry {
                    pending.call_deadline
                } else {
                    let timeout = now.saturating_add(dep.timeout);
                    deadline.map_or(timeout, |d| d.min(timeout))
                };
                let held = Held {
                    pending: Pending {
                        permit,
                        attempt: pending.attempt + 1,
                        ..pending
                    },
                    op,
                    deadline: call_deadline,
                };
                if dep.bulkhead.is_some() {
                    self.enter_bulkhead(now, held, true);
                } else {
                    self.make_call(held);
                }
            }
            Err(_) => {
                if let Some(retry) = dep.retry.as_mut() {
                    retry.on_breaker_refused();
                }
                let event = RetryEvent::Denied {
                    at: now,
                    attempt: u32::from(pending.attempt),
                    reason: Denied::BreakerOpen,
                };
                self.retry_event(index, event);
                self.settle_breaker_open(now, pending);
            }
        }
    }

    /// A client call whose retry the breaker refused: its caller takes the open
    /// breaker, as if the call had never been allowed.
    fn settle_breaker_open(&mut self, now: Time, pending: Pending) {
        let Pending {
            dependency,
            key,
            purpose,
            ..
        } = pending;
        let index = dependency as usize;
        match purpose {
            Purpose::Read { to, msg_id } => self.read_breaker_open(now, to, msg_id, index, key),
            Purpose::Write { to, msg_id, write } => {
                self.enqueue_write(now, to, msg_id, index, write, now);
            }
            Purpose::Step { run, slot } => {
                self.answer(now, run, slot, Answer::Failed(Failure::BreakerOpen), None);
                self.drive(now, run);
            }
            Purpose::StepWrite { run, slot, write } => {
                let answer = if self.deps[index].has_queue {
                    self.enqueue_step_write(now, run, slot, index, write, now)
                } else {
                    Answer::Failed(Failure::BreakerOpen)
                };
                self.answer(now, run, slot, answer, None);
                self.drive(now, run);
            }
            Purpose::Refresh { .. } | Purpose::Probe | Purpose::Drain { .. } => {}
        }
    }

    pub(super) fn retry_event(&mut self, index: usize, event: RetryEvent) {
        // After the breaker's events of the same failure, which came first.
        self.collect_events();
        let dependency = self.deps[index].name;
        self.effects
            .push(Effect::Event(NodeEvent::Retry { dependency, event }));
    }
}
