//! One request's plan, executed sans-IO: which calls to start, which caches to ask,
//! when the reply is ready and how it was served.
//!
//! A [`PlanRun`] is the state of one request of a declared endpoint
//! ([`crate::model::service`]). It never touches a breaker, a cache or a clock: it
//! emits [`Action`]s (start a call with this timeout, look in this cache, stop waiting
//! for that call, done) and is fed the answers ([`PlanRun::on_answer`],
//! [`PlanRun::on_cache`]) and the deadline ([`PlanRun::on_deadline`]). The engine in
//! front of a dependency (breaker permits, the read policy's cache-first answers, the
//! write queue) lives with the caller, between [`Action::StartCall`] and its answer, so
//! a new mechanism (retries, bulkheads) slots in there without touching this module.
//!
//! The node (`node::service::endpoint`) runs it for a declared service's requests;
//! the seed service's requests still take the node's own path.
//!
//! # Semantics
//!
//! - `seq` runs its children in order, `par` starts them all and waits for all.
//! - A call that fails (the caller says why: error, timeout, unavailable, breaker open)
//!   tries its fallback chain in order: `cache` asks the caller ([`Action::TryCache`]),
//!   `call` starts another call, `static` serves a canned answer, `omit` leaves the part
//!   out. A step whose feature the mode disabled (or whose endpoint's feature is
//!   disabled) skips its call and goes straight to its chain. A not-found or rejected
//!   answer is definitive: no fallback can make the record exist or the store take it.
//! - A chain that runs out leaves the part missing: an optional part makes the reply
//!   partial, a required one makes the request fail at once (every call still
//!   outstanding is abandoned: the reply can only be an error, so nothing is gained by
//!   waiting for them).
//! - The deadline covers `[start, deadline)`. Each call's timeout is the smaller of the
//!   dependency's own and what is left. When the deadline passes, every call still
//!   outstanding is abandoned (its later answer ignored) and takes its chain; a
//!   fallback call is not started past the deadline (it counts as failed), nor is a
//!   call a `seq` reaches after it. Cache lookups are local and still answered.
//! - Features are read once, when the request starts: one request sees one mode.
//! - Exactly one [`Action::Done`] per run, and no action after it; the result is then
//!   [`PlanRun::outcome`].

use std::fmt;

use smallvec::SmallVec;

use crate::engine::{Span, Time};
use crate::model::service::{
    CallOp, DependencyId, EndpointId, Fallback, FeatureId, KeySpaceId, Leaf, Plan, Service, Step,
    StepId, MAX_FEATURES,
};

use super::protocol::ErrorCode;

/// One call or cache lookup of a run: the step it serves and its attempt (0: the
/// step's own call; `i + 1`: its fallback `i`). An answer for an attempt the step no
/// longer waits for (abandoned, superseded) is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot {
    /// The step.
    pub step: StepId,
    /// The attempt.
    pub attempt: u8,
}

/// Why a call failed, as the caller reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failure {
    /// The dependency answered with an error.
    Error,
    /// No answer within the call's timeout.
    Timeout,
    /// The dependency is down.
    Unavailable,
    /// The breaker refused the call; it was never made.
    BreakerOpen,
    /// The dependency's bulkhead had no slot for the call; it was never made.
    BulkheadFull,
}

impl Failure {
    /// `error`, `timeout`, `unavailable` or `breaker_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Error => "error",
            Failure::Timeout => "timeout",
            Failure::Unavailable => "unavailable",
            Failure::BreakerOpen => "breaker_open",
            Failure::BulkheadFull => "bulkhead_full",
        }
    }
}

/// A dependency's answer to an [`Action::StartCall`], as the caller reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Served by the dependency.
    Fresh,
    /// Served from the cache by the dependency's read policy (cache-first), without a call.
    FromCache {
        /// The entry's age.
        age: Span,
        /// Past its TTL (stale-while-revalidate).
        stale: bool,
    },
    /// A write accepted into the dependency's queue.
    Queued,
    /// A read found no such record: definitive, no fallback.
    NotFound,
    /// A write refused (the store or the queue is full): definitive, no fallback.
    Rejected,
    /// The call failed; the step tries its fallback chain.
    Failed(Failure),
}

/// What the cache had for an [`Action::TryCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheHit {
    /// The entry's age.
    pub age: Span,
    /// Past its TTL.
    pub stale: bool,
}

/// Why a step took its fallback chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    /// Its call failed.
    Failed(Failure),
    /// Its feature (or its endpoint's) is disabled by the mode.
    Disabled,
    /// The deadline passed before it was answered.
    Deadline,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Failed(Failure::BreakerOpen) => f.write_str("circuit open"),
            Cause::Failed(Failure::BulkheadFull) => f.write_str("bulkhead full"),
            Cause::Failed(failure) => write!(f, "call failed ({})", failure.as_str()),
            Cause::Disabled => f.write_str("disabled by the current mode"),
            Cause::Deadline => f.write_str("deadline passed"),
        }
    }
}

/// How one leaf step was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepServed {
    /// By its dependency.
    Fresh,
    /// By the node itself (a local step).
    Local,
    /// A write accepted into the queue.
    Queued,
    /// From the cache, within its TTL.
    Cached {
        /// The entry's age.
        age: Span,
    },
    /// From the cache, past its TTL.
    Stale {
        /// The entry's age.
        age: Span,
    },
    /// By the node's own pending write of the key, where the stale cache was asked
    /// (read-your-writes).
    PendingWrite {
        /// How long ago the node queued or applied the write.
        age: Span,
    },
    /// By fallback `index` of its chain (a call or a static answer).
    Fallback {
        /// The index in the chain.
        index: u8,
    },
    /// Left out (`omit`).
    Omitted,
    /// Nothing served it.
    Missing {
        /// Why its own call did not.
        cause: Cause,
    },
    /// The record does not exist.
    NotFound,
    /// The write was refused.
    Rejected,
}

impl StepServed {
    fn is_failure(self) -> bool {
        matches!(
            self,
            StepServed::Missing { .. } | StepServed::NotFound | StepServed::Rejected
        )
    }

    /// How the part was served, in one word (`fresh`, `local`, `queued`, `cached`,
    /// `stale`, `pending_write`, `fallback`, `omitted`, `missing`, `not_found`, `rejected`).
    pub fn as_str(self) -> &'static str {
        match self {
            StepServed::Fresh => "fresh",
            StepServed::Local => "local",
            StepServed::Queued => "queued",
            StepServed::Cached { .. } => "cached",
            StepServed::Stale { .. } => "stale",
            StepServed::PendingWrite { .. } => "pending_write",
            StepServed::Fallback { .. } => "fallback",
            StepServed::Omitted => "omitted",
            StepServed::Missing { .. } => "missing",
            StepServed::NotFound => "not_found",
            StepServed::Rejected => "rejected",
        }
    }

    /// Anything but a fresh (or local) answer.
    pub fn is_degraded(self) -> bool {
        !matches!(self, StepServed::Fresh | StepServed::Local)
    }

    fn class(self, optional: bool) -> Class {
        match self {
            StepServed::Fresh | StepServed::Local => Class::Fresh,
            StepServed::Cached { .. } => Class::Cached,
            StepServed::Stale { .. } => Class::Stale,
            StepServed::PendingWrite { .. } => Class::PendingWrite,
            StepServed::Fallback { .. } => Class::Fallback,
            StepServed::Queued => Class::Queued,
            StepServed::Omitted => Class::Partial,
            _ if optional => Class::Partial,
            StepServed::Rejected => Class::Rejected,
            StepServed::Missing { .. } | StepServed::NotFound => Class::Error,
        }
    }
}

/// How a request was served: the worst of its steps, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// Every part fresh.
    Fresh,
    /// Some part from the cache within its TTL.
    Cached,
    /// Some part from the cache past its TTL.
    Stale,
    /// Some part from the node's own pending write (read-your-writes).
    PendingWrite,
    /// Some part from a fallback.
    Fallback,
    /// Some optional part missing or omitted.
    Partial,
    /// A write accepted into a queue.
    Queued,
    /// A write refused.
    Rejected,
    /// A required part missing.
    Error,
}

/// Why a request failed: a required part was missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunError {
    /// The step that was missing.
    pub step: StepId,
    /// The Maelstrom error code (11: temporarily unavailable, 20: no such key).
    pub code: u16,
    /// What was missing and why, lowercase, no trailing period.
    pub text: String,
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The worst of the steps.
    pub class: Class,
    /// Some optional part is missing or omitted.
    pub partial: bool,
    /// Every leaf step that finished, in plan order, with how it was served. After an
    /// error, steps not reached (or abandoned) are absent.
    pub steps: SmallVec<[(StepId, StepServed); INLINE_STEPS]>,
    /// Set when a required part was missing.
    pub error: Option<RunError>,
    /// The deadline passed before the run was done.
    pub deadline_passed: bool,
}

impl Outcome {
    /// The parts missing or omitted (for the reply's `missing`).
    pub fn missing(&self) -> impl Iterator<Item = StepId> + '_ {
        self.steps
            .iter()
            .filter(|(_, s)| s.is_failure() || *s == StepServed::Omitted)
            .map(|(id, _)| *id)
    }

    /// The parts not served fresh (for the reply's `degraded`).
    pub fn degraded(&self) -> impl Iterator<Item = StepId> + '_ {
        self.steps
            .iter()
            .filter(|(_, s)| s.is_degraded())
            .map(|(id, _)| *id)
    }

    /// The parts served from the cache past its TTL, with the entries' ages (for the
    /// reply's `stale`).
    pub fn stale(&self) -> impl Iterator<Item = (StepId, Span)> + '_ {
        self.steps.iter().filter_map(|(id, s)| match s {
            StepServed::Stale { age } => Some((*id, *age)),
            _ => None,
        })
    }
}

/// Something the caller must do for the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Call `dependency` and report the answer with [`PlanRun::on_answer`] (a breaker
    /// refusal, the read policy's cache answer and the queue's acceptance included).
    StartCall {
        /// Echo this.
        slot: Slot,
        /// Whom.
        dependency: DependencyId,
        /// What.
        op: CallOp,
        /// The key's space; `None`: the request's key.
        key_space: Option<KeySpaceId>,
        /// The call's effective timeout: the dependency's own, or what is left of the
        /// deadline if that is less. Always positive.
        timeout: Span,
    },
    /// Look up `dependency`'s stale cache and report with [`PlanRun::on_cache`] before
    /// the next input (the lookup is local: it is not cut by the deadline).
    TryCache {
        /// Echo this.
        slot: Slot,
        /// Whose cache.
        dependency: DependencyId,
        /// The key's space; `None`: the request's key.
        key_space: Option<KeySpaceId>,
        /// Why the cache is asked (the cache's stale reason).
        cause: Cause,
    },
    /// The run no longer waits for this call (deadline passed, or the request failed);
    /// its answer, when it comes, is ignored. The caller still settles the call itself
    /// (its breaker permit) when the driver reports it. It may name the call whose
    /// answer is being reported, when that answer came at or past the deadline.
    Abandon {
        /// The call.
        slot: Slot,
    },
    /// The run is over: its result is [`PlanRun::outcome`]. (Computed on demand
    /// rather than carried here, so that an action is a few words, moved through the
    /// caller's buffers at every step.)
    Done,
}

/// The features disabled when a request starts, as a bit mask ([`MAX_FEATURES`] bits).
/// The caller can compute it once per mode change rather than once per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Disabled(pub u64);

impl Disabled {
    /// Nothing disabled.
    pub const NONE: Disabled = Disabled(0);

    /// The features of `service` for which `disabled` says yes.
    pub fn from_fn(service: &Service, disabled: impl Fn(FeatureId) -> bool) -> Disabled {
        const _: () = assert!(MAX_FEATURES <= 64);
        let mut mask = 0;
        for i in 0..service.features.len() {
            if disabled(FeatureId(i as u16)) {
                mask |= 1 << i;
            }
        }
        Disabled(mask)
    }

    /// Whether `feature` is disabled.
    pub fn contains(self, feature: FeatureId) -> bool {
        self.0 >> feature.0 & 1 == 1
    }
}

/// Where a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not started, or given up (abandoned when the request failed).
    Idle,
    /// A `seq` running child `next`.
    Seq { next: u16 },
    /// A `par` waiting for `remaining` children.
    Par { remaining: u16 },
    /// A leaf waiting for the answer to `attempt`; `cause`: why its own call did not
    /// serve it, for a fallback call.
    Calling { attempt: u8, cause: Option<Cause> },
    /// A leaf waiting for the cache lookup `attempt`.
    Caching { attempt: u8, cause: Cause },
    /// A leaf that is done.
    Finished(StepServed),
}

/// One request's run through its endpoint's plan.
#[derive(Debug, Clone)]
pub struct PlanRun {
    endpoint: EndpointId,
    deadline: Option<Time>,
    disabled: Disabled,
    /// The deadline has passed: no call starts any more.
    expired: bool,
    done: bool,
    /// Indexed by [`StepId`]: one small `Copy` entry per step, held inline for plans of
    /// up to [`INLINE_STEPS`] steps, so that a run of a small plan allocates nothing.
    states: SmallVec<[State; INLINE_STEPS]>,
    /// Why the run failed, once it has.
    error: Option<RunError>,
}

/// Plans of up to this many steps run without allocating.
pub const INLINE_STEPS: usize = 6;

impl PlanRun {
    /// Starts a request of `endpoint` at `now`, with the features in `disabled` off;
    /// pushes the first actions onto `out` (a [`Action::Done`] already, if nothing needs
    /// waiting for). The deadline is the endpoint's, counted from `now`.
    pub fn start(
        service: &Service,
        endpoint: EndpointId,
        now: Time,
        disabled: Disabled,
        out: &mut Vec<Action>,
    ) -> PlanRun {
        PlanRun::start_arrived(service, endpoint, now, now, disabled, out)
    }

    /// As [`PlanRun::start`], at `now`, for a request that arrived at `arrived` and
    /// waited since (for an admission slot): its deadline counts from its arrival, so
    /// its calls' timeouts are cut at what is left of it.
    pub fn start_arrived(
        service: &Service,
        endpoint: EndpointId,
        arrived: Time,
        now: Time,
        disabled: Disabled,
        out: &mut Vec<Action>,
    ) -> PlanRun {
        let ep = service.endpoint(endpoint);
        let mut run = PlanRun {
            endpoint,
            deadline: ep.deadline.map(|d| arrived.saturating_add(d)),
            disabled,
            expired: false,
            done: false,
            states: smallvec::smallvec![State::Idle; ep.plan.steps.len()],
            error: None,
        };
        let mut exec = Exec::new(&mut run, service, now, out);
        exec.start_step(ep.plan.root);
        run
    }

    /// The endpoint being served.
    pub fn endpoint(&self) -> EndpointId {
        self.endpoint
    }

    /// When the run's budget ends, if it has one: call [`PlanRun::on_deadline`] then.
    pub fn deadline(&self) -> Option<Time> {
        self.deadline
    }

    /// Whether the run still waits for the answer to `slot` (a call or a cache
    /// lookup): an answer it no longer waits for is ignored, and so is its data.
    pub fn is_waiting(&self, slot: Slot) -> bool {
        !self.done
            && match self.states.get(slot.step.index()) {
                Some(&State::Calling { attempt, .. }) | Some(&State::Caching { attempt, .. }) => {
                    attempt == slot.attempt
                }
                _ => false,
            }
    }

    /// The run's result. Meaningful once [`Action::Done`] has been emitted (before,
    /// it is what the run would reply if it stopped now).
    pub fn outcome(&self, service: &Service) -> Outcome {
        let plan = &service.endpoint(self.endpoint).plan;
        let mut class = Class::Fresh;
        let mut partial = false;
        let mut steps = SmallVec::new();
        for (i, state) in self.states.iter().enumerate() {
            if let State::Finished(served) = *state {
                let id = StepId(i as u16);
                let step_class = served.class(leaf_of(plan, id).optional);
                partial |= step_class == Class::Partial;
                class = class.max(step_class);
                steps.push((id, served));
            }
        }
        Outcome {
            class,
            partial,
            steps,
            error: self.error.clone(),
            deadline_passed: self.expired,
        }
    }

    /// Whether [`Action::Done`] has been emitted.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The answer to the call `slot`. Answers to calls the run no longer waits for are
    /// ignored (no action).
    pub fn on_answer(
        &mut self,
        service: &Service,
        slot: Slot,
        answer: Answer,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        let mut exec = Exec::new(self, service, now, out);
        if !exec.enter() {
            return;
        }
        let Some(&State::Calling { attempt, cause }) = exec.run.states.get(slot.step.index())
        else {
            return;
        };
        if attempt != slot.attempt {
            return;
        }
        let id = slot.step;
        // A fallback call's success is that fallback's, whatever the dependency said.
        let by = |served| {
            if attempt == 0 {
                served
            } else {
                StepServed::Fallback { index: attempt - 1 }
            }
        };
        match answer {
            Answer::Fresh => exec.finish_leaf(id, by(StepServed::Fresh)),
            Answer::FromCache { age, stale } => exec.finish_leaf(
                id,
                by(if stale {
                    StepServed::Stale { age }
                } else {
                    StepServed::Cached { age }
                }),
            ),
            Answer::Queued => exec.finish_leaf(id, by(StepServed::Queued)),
            Answer::NotFound => exec.finish_leaf(id, StepServed::NotFound),
            Answer::Rejected => exec.finish_leaf(id, StepServed::Rejected),
            Answer::Failed(failure) => {
                let cause = cause.unwrap_or(Cause::Failed(failure));
                exec.fallback(id, usize::from(attempt), cause);
            }
        }
    }

    /// What the cache had for the lookup `slot`.
    pub fn on_cache(
        &mut self,
        service: &Service,
        slot: Slot,
        hit: Option<CacheHit>,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        let served = hit.map(|CacheHit { age, stale }| {
            if stale {
                StepServed::Stale { age }
            } else {
                StepServed::Cached { age }
            }
        });
        self.on_lookup(service, slot, served, now, out);
    }

    /// The lookup `slot` was answered by the node's own pending write of the key
    /// (read-your-writes), queued or applied `age` ago, instead of the stale cache.
    pub fn on_pending_write(
        &mut self,
        service: &Service,
        slot: Slot,
        age: Span,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        let served = Some(StepServed::PendingWrite { age });
        self.on_lookup(service, slot, served, now, out);
    }

    /// How the lookup `slot` was served, or `None` if it missed.
    fn on_lookup(
        &mut self,
        service: &Service,
        slot: Slot,
        served: Option<StepServed>,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        let mut exec = Exec::new(self, service, now, out);
        if !exec.enter() {
            return;
        }
        let Some(&State::Caching { attempt, cause }) = exec.run.states.get(slot.step.index())
        else {
            return;
        };
        if attempt != slot.attempt {
            return;
        }
        match served {
            Some(served) => exec.finish_leaf(slot.step, served),
            None => exec.fallback(slot.step, usize::from(attempt), cause),
        }
    }

    /// The deadline timer. Harmless before the deadline (nothing happens) or after the
    /// run is done; every other entry point also notices a passed deadline by itself.
    pub fn on_deadline(&mut self, service: &Service, now: Time, out: &mut Vec<Action>) {
        let mut exec = Exec::new(self, service, now, out);
        exec.enter();
    }
}

/// A run with what one input needs at hand.
struct Exec<'a> {
    run: &'a mut PlanRun,
    service: &'a Service,
    plan: &'a Plan,
    now: Time,
    out: &'a mut Vec<Action>,
}

impl<'a> Exec<'a> {
    fn new(
        run: &'a mut PlanRun,
        service: &'a Service,
        now: Time,
        out: &'a mut Vec<Action>,
    ) -> Self {
        let plan = &service.endpoint(run.endpoint).plan;
        Exec {
            run,
            service,
            plan,
            now,
            out,
        }
    }

    /// Notices a passed deadline; whether the run still takes input.
    fn enter(&mut self) -> bool {
        if self.run.done {
            return false;
        }
        if !self.run.expired && self.run.deadline.is_some_and(|d| self.now >= d) {
            self.expire();
        }
        !self.run.done
    }

    fn expire(&mut self) {
        self.run.expired = true;
        for i in 0..self.run.states.len() {
            if self.run.done {
                return;
            }
            if let State::Calling { attempt, cause } = self.run.states[i] {
                let step = StepId(i as u16);
                self.out.push(Action::Abandon {
                    slot: Slot { step, attempt },
                });
                self.fallback(step, usize::from(attempt), cause.unwrap_or(Cause::Deadline));
            }
        }
    }

    fn leaf(&self, id: StepId) -> &'a Leaf {
        leaf_of(self.plan, id)
    }

    fn disabled(&self, leaf: &Leaf) -> bool {
        let endpoint = self.service.endpoint(self.run.endpoint).feature;
        [endpoint, leaf.feature]
            .into_iter()
            .flatten()
            .any(|f| self.run.disabled.contains(f))
    }

    fn start_step(&mut self, id: StepId) {
        let plan = self.plan;
        match plan.step(id) {
            Step::Seq(children) => {
                self.run.states[id.index()] = State::Seq { next: 0 };
                self.start_step(children[0]);
            }
            Step::Par(children) => {
                self.run.states[id.index()] = State::Par {
                    remaining: children.len() as u16,
                };
                for &child in children {
                    if self.run.done {
                        return;
                    }
                    self.start_step(child);
                }
            }
            Step::Call(call) => {
                if self.disabled(&call.leaf) {
                    self.fallback(id, 0, Cause::Disabled);
                } else if !self.call(id, 0, call.dependency, call.op, None) {
                    self.fallback(id, 0, Cause::Deadline);
                }
            }
            Step::Local(local) => {
                if self.disabled(&local.leaf) {
                    self.fallback(id, 0, Cause::Disabled);
                } else {
                    self.finish_leaf(id, StepServed::Local);
                }
            }
        }
    }

    /// Starts attempt `attempt` of step `id` as a call, unless the deadline has passed
    /// (then: `false`, nothing started).
    fn call(
        &mut self,
        id: StepId,
        attempt: u8,
        dependency: DependencyId,
        op: CallOp,
        cause: Option<Cause>,
    ) -> bool {
        let own = self.service.dependency(dependency).engine.timeout;
        let timeout = match self.run.deadline {
            Some(deadline) => own.min(deadline.saturating_sub(self.now)),
            None => own,
        };
        if self.run.expired || timeout == 0 {
            return false;
        }
        self.run.states[id.index()] = State::Calling { attempt, cause };
        self.out.push(Action::StartCall {
            slot: Slot { step: id, attempt },
            dependency,
            op,
            key_space: self.key_space(id),
            timeout,
        });
        true
    }

    fn key_space(&self, id: StepId) -> Option<KeySpaceId> {
        match self.plan.step(id) {
            Step::Call(call) => call.key_space,
            _ => None,
        }
    }

    /// Tries step `id`'s fallbacks from index `from` on, because of `cause`.
    fn fallback(&mut self, id: StepId, from: usize, cause: Cause) {
        let leaf = self.leaf(id);
        for (index, fallback) in leaf.fallback.iter().enumerate().skip(from) {
            // At most MAX_FALLBACKS (16) links: the attempt fits a u8.
            let attempt = (index + 1) as u8;
            match fallback {
                Fallback::Cache => {
                    let Step::Call(call) = self.plan.step(id) else {
                        unreachable!("validation allows a cache fallback on calls only");
                    };
                    self.run.states[id.index()] = State::Caching { attempt, cause };
                    self.out.push(Action::TryCache {
                        slot: Slot { step: id, attempt },
                        dependency: call.dependency,
                        key_space: call.key_space,
                        cause,
                    });
                    return;
                }
                Fallback::Call { dependency, op } => {
                    if self.call(id, attempt, *dependency, *op, Some(cause)) {
                        return;
                    }
                }
                Fallback::Static(_) => {
                    let index = index as u8;
                    return self.finish_leaf(id, StepServed::Fallback { index });
                }
                Fallback::Omit => return self.finish_leaf(id, StepServed::Omitted),
            }
        }
        self.finish_leaf(id, StepServed::Missing { cause });
    }

    fn finish_leaf(&mut self, id: StepId, served: StepServed) {
        self.run.states[id.index()] = State::Finished(served);
        if served.is_failure() && !self.leaf(id).optional {
            self.fail(id, served);
        } else {
            self.complete(id);
        }
    }

    /// Step `id` is over (served, or an optional part missing): its parent moves on.
    fn complete(&mut self, id: StepId) {
        let plan = self.plan;
        let Some(parent) = plan.parents[id.index()] else {
            self.run.done = true;
            self.out.push(Action::Done);
            return;
        };
        match (plan.step(parent), self.run.states[parent.index()]) {
            (Step::Seq(children), State::Seq { next }) => {
                let next = next + 1;
                if let Some(&child) = children.get(usize::from(next)) {
                    self.run.states[parent.index()] = State::Seq { next };
                    self.start_step(child);
                } else {
                    self.complete(parent);
                }
            }
            (Step::Par(_), State::Par { remaining }) => {
                self.run.states[parent.index()] = State::Par {
                    remaining: remaining - 1,
                };
                if remaining == 1 {
                    self.complete(parent);
                }
            }
            (step, state) => unreachable!("parent {step:?} in state {state:?}"),
        }
    }

    /// A required part is missing: the request fails now.
    fn fail(&mut self, id: StepId, served: StepServed) {
        self.run.done = true;
        for i in 0..self.run.states.len() {
            if let State::Calling { attempt, .. } = self.run.states[i] {
                let step = StepId(i as u16);
                self.out.push(Action::Abandon {
                    slot: Slot { step, attempt },
                });
                self.run.states[i] = State::Idle;
            }
        }
        let part = self.plan.part_name(self.service, id).unwrap_or("?");
        let tried = self.leaf(id).fallback.len();
        let (code, text) = match served {
            StepServed::NotFound => (
                ErrorCode::KeyDoesNotExist,
                format!("required part `{part}` does not exist"),
            ),
            StepServed::Rejected => (
                ErrorCode::TemporarilyUnavailable,
                format!("required part `{part}` was refused: the write was not accepted"),
            ),
            StepServed::Missing { cause } if tried > 0 => (
                ErrorCode::TemporarilyUnavailable,
                format!(
                    "required part `{part}` is missing: {cause}, and none of its {tried} \
                     fallbacks served it"
                ),
            ),
            StepServed::Missing { cause } => (
                ErrorCode::TemporarilyUnavailable,
                format!("required part `{part}` is missing: {cause}"),
            ),
            _ => unreachable!("{served:?} is not a failure"),
        };
        self.run.error = Some(RunError {
            step: id,
            code: code.code(),
            text,
        });
        self.out.push(Action::Done);
    }
}

/// The leaf attributes of step `id` (a call or a local step).
fn leaf_of(plan: &Plan, id: StepId) -> &Leaf {
    match plan.step(id) {
        Step::Call(call) => &call.leaf,
        Step::Local(local) => &local.leaf,
        Step::Seq(_) | Step::Par(_) => unreachable!("step {id:?} is not a leaf"),
    }
}

#[cfg(test)]
mod tests;
