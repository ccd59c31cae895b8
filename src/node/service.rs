//! The service: turns requests, dependency results and timers into effects, using the engine.
//!
//! `Node` is sans-IO in the same way the engine is: it never reads a clock, never does
//! I/O and knows nothing of stdin or of the simulator's event queue. A driver feeds it
//! ([`Node::handle`], [`Node::on_call_result`], [`Node::on_timer`], [`Node::observe_cpu`])
//! and carries out the [`Effect`]s it drains: write a reply, call a dependency, set a
//! timer, record an event. Both drivers (the simulator and `brownout node`) run this
//! same code, so what a scenario shows is what the live node does.
//!
//! Call timeouts are the driver's to enforce, through the deadline each [`Call`]
//! carries: the simulator knows a call's latency when it starts it, so it schedules
//! either the answer or the timeout, never both, which halves its event traffic.

use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::engine::breaker::{BreakerEvent, BreakerState, CircuitBreaker, Permit};
use crate::engine::bulkhead::{Bulkhead, BulkheadConfig, BulkheadStats};
use crate::engine::cache::{CacheEvent, RefreshTicket, StaleCache, StaleReason};
use crate::engine::modes::{ModeController, ModeEvent};
use crate::engine::queue::{Enqueue, FailOutcome, QueueEvent, WriteId, WriteQueue};
use crate::engine::retry::{RetryEvent, RetryPolicy, RetryStats};
use crate::engine::ryw::{RecentWrites, RywConfig, RywEvent, RywStats, WriteState};
use crate::engine::{ConfigError, Span, Time};
use crate::seqmap::SeqMap;
pub use bulkhead::BulkheadEvent;

use super::config::{NodeConfig, ReadPolicy};
use super::data::StoreFull;
use super::plan::Slot;
use super::protocol::{
    DependencyStatus, ErrorCode, Ids, InBandFault, ModeRequest, Name, ProtocolError, Record,
    ReplyBody, Request, Resource,
};

mod bulkhead;
mod endpoint;
mod retry;
mod seed;
mod step;

use bulkhead::Held;
use endpoint::Declared;
use seed::{SeedRead, SeedRoutes};
use step::{ReadAnswer, ReadStart, WriteAnswer, WriteStart};

/// The driver's handle on one request, echoed on its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RequestId(pub u64);

/// The node's handle on one dependency call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct CallId(pub u64);

/// What a call asks of a dependency.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Read record `key`.
    Read {
        /// The record's id.
        key: u64,
    },
    /// Set record `key`'s name, unless the service holds a newer version.
    Write {
        /// The record's id.
        key: u64,
        /// The new name.
        name: Name,
        /// The write's version: its place in the order clients sent writes.
        version: u64,
    },
}

/// A call the driver must make to a dependency and answer with [`Node::on_call_result`].
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// Echo this in the result.
    pub id: CallId,
    /// Which dependency ([`Resource::dependency`]).
    pub dependency: usize,
    /// What to do.
    pub op: Op,
    /// The request said `service_unavailable`: the call must fail as if the service
    /// were down.
    pub force_down: bool,
    /// When the node stops waiting: if the dependency has not answered by then, the
    /// driver reports [`CallError::Timeout`] at this instant and drops the late answer.
    pub deadline: Time,
    /// Why the node makes it: a client's first attempt, a retry, a queued write's
    /// drain, a background refresh or a health probe. Drivers need not look at it (the
    /// live node does not); the simulator's report counts calls by it.
    pub kind: CallKind,
}

/// Why a [`Call`] is made: what puts load on a dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallKind {
    /// A client request's call, its first attempt (a seed read or write, a declared
    /// step, a write a request sends at once; a client call the half-open breaker
    /// admits as its probe is one of these too).
    Client = 0,
    /// A retry of a client call by the dependency's retry layer.
    Retry = 1,
    /// A queued write being drained (each drain attempt, first or again).
    Drain = 2,
    /// A background refresh of a stale cache entry (stale-while-revalidate).
    Refresh = 3,
    /// A health probe the node sends on behalf of a waiting queue while the breaker
    /// is half-open.
    Probe = 4,
}

impl CallKind {
    /// Every kind, in the order of their numbers.
    pub const ALL: [CallKind; 5] = [
        CallKind::Client,
        CallKind::Retry,
        CallKind::Drain,
        CallKind::Refresh,
        CallKind::Probe,
    ];

    /// Its name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            CallKind::Client => "client",
            CallKind::Retry => "retry",
            CallKind::Drain => "drain",
            CallKind::Refresh => "refresh",
            CallKind::Probe => "probe",
        }
    }
}

/// Why a dependency call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallError {
    /// The service is down (connection refused, 503).
    Unavailable,
    /// The service answered with an error.
    Error,
    /// No answer before the deadline.
    Timeout,
}

impl CallError {
    fn as_str(self) -> &'static str {
        match self {
            CallError::Unavailable => "unavailable",
            CallError::Error => "error",
            CallError::Timeout => "timeout",
        }
    }
}

/// A dependency's answer to a [`Call`].
#[derive(Debug, Clone, PartialEq)]
pub enum CallResult {
    /// A read found the record.
    Found(Record),
    /// A read found no such record (a healthy answer).
    NotFound,
    /// A write was acknowledged; the record as the service now holds it (the write's
    /// own value, or a newer one if this write arrived after it).
    Written(Record),
    /// A write was refused because the service's store is full: nothing was written.
    ///
    /// Not a [`CallError`]: the service is healthy and answered definitely, so the
    /// breaker counts it as a success, the client is told at once, and a queued write is
    /// dead-lettered rather than retried (a retry would meet the same refusal).
    Rejected(StoreFull),
    /// The call failed.
    Failed(CallError),
}

/// The text of the error reply to a write the service's store refused (`full`).
fn store_full_text(dep: &Dependency, key: u64, full: StoreFull) -> String {
    format!(
        "{} store is full; the write to {} {key} was not applied: {full}",
        dep.name,
        dep.noun()
    )
}

/// A timer the node asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Timer {
    /// Housekeeping: a breaker may move from open to half-open, a queued write may be due.
    Wake,
    /// A declared endpoint's request `run` reaches its deadline.
    Deadline {
        /// The request's run.
        run: u64,
    },
    /// A failed call's retry falls due.
    Retry {
        /// The waiting retry.
        wait: u64,
    },
    /// A request waiting for a slot may have waited its longest (admission control).
    Admission,
    /// The node's measured CPU is due to be sampled for the mode controller.
    Cpu,
    /// A reply held while the node's CPU works on it (`[compute]` with slowdown) is
    /// ready.
    Reply {
        /// The held reply.
        held: u64,
    },
    /// A call waiting for a slot in dependency `dependency`'s bulkhead may have waited
    /// its longest.
    Bulkhead {
        /// The dependency.
        dependency: u32,
    },
}

/// How a request was served; the simulator's report counts these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "served", rename_all = "snake_case")]
pub enum Served {
    /// Straight from the dependency.
    Fresh,
    /// From the cache, within its TTL (the breaker was open, the call failed, or the
    /// read policy is cache-first).
    Cached {
        /// Age of the entry.
        age: Span,
    },
    /// From the cache, past its TTL (stale-if-error or stale-while-revalidate).
    Stale {
        /// Age of the entry.
        age: Span,
    },
    /// From the node's own latest write of the key, queued or applied within the
    /// read-your-writes window, where the stale cache (or an error) would have answered.
    PendingWrite {
        /// How long ago the node queued or applied the write.
        age: Span,
    },
    /// A feature disabled by the current mode answered with its fallback (or, for a
    /// declared endpoint, some part was served by its fallback chain).
    Fallback,
    /// A declared endpoint's reply with an optional part missing or omitted.
    Partial,
    /// A write applied now.
    Applied,
    /// A write accepted into the queue.
    Queued {
        /// Queue depth after it.
        depth: usize,
    },
    /// A write shed because the queue is full.
    Rejected,
    /// A request shed by the node's admission control: no slot for its tier (code 11).
    Shed,
    /// An error reply.
    Error {
        /// The Maelstrom code.
        code: u16,
    },
    /// A control message (`init`, `set_mode`, `status`).
    Control,
}

impl Served {
    /// Whether the client got what it asked for (data, possibly stale or degraded, or an
    /// accepted write). The simulator's availability counts these, but leaves refused
    /// requests (error codes 10, 12, 20: the client's mistake, not the outage) out of
    /// both sides of the ratio.
    pub fn is_available(self) -> bool {
        !matches!(self, Served::Rejected | Served::Shed | Served::Error { .. })
    }
}

/// An engine event, tagged with the dependency it concerns.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum NodeEvent {
    /// A breaker transition.
    Breaker {
        /// The dependency's name.
        dependency: &'static str,
        /// What happened.
        event: BreakerEvent,
    },
    /// A cache event (stale serve, eviction, ...).
    Cache {
        /// The dependency's name.
        dependency: &'static str,
        /// What happened.
        event: CacheEvent<u64>,
    },
    /// A write-queue event.
    Queue {
        /// The dependency's name.
        dependency: &'static str,
        /// What happened.
        event: QueueEvent,
    },
    /// A mode change.
    Mode {
        /// What happened.
        event: ModeEvent,
    },
    /// What the retry layer decided about a failed call.
    Retry {
        /// The dependency's name.
        dependency: &'static str,
        /// What happened.
        event: RetryEvent,
    },
    /// A dependency's bulkhead refused a call.
    Bulkhead {
        /// The dependency's name.
        dependency: &'static str,
        /// What happened.
        event: BulkheadEvent,
    },
    /// Read-your-writes answered a read from a pending write, or forgot one.
    ReadYourWrites {
        /// The dependency's name.
        dependency: &'static str,
        /// What happened.
        event: RywEvent,
    },
}

/// Something the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send a reply to the request `to`.
    Reply {
        /// The request answered.
        to: RequestId,
        /// The reply body.
        body: ReplyBody,
        /// How the request was served.
        served: Served,
    },
    /// Make a dependency call.
    Call(Call),
    /// Call [`Node::on_timer`] at `at` (timers are never cancelled; a late or redundant
    /// one is harmless).
    Timer {
        /// When.
        at: Time,
        /// Which.
        timer: Timer,
    },
    /// Record a state transition.
    Event(NodeEvent),
}

/// A write waiting in a dependency's queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedWrite {
    /// The record's id.
    pub key: u64,
    /// The name to set.
    pub name: Name,
    /// The write's version (see [`Op::Write`]).
    pub version: u64,
}

/// Why a call is outstanding.
#[derive(Debug, Clone)]
enum Purpose {
    /// A client read; answer it.
    Read { to: RequestId, msg_id: Option<u64> },
    /// A background refresh (stale-while-revalidate); nobody waits for it.
    Refresh { ticket: RefreshTicket<u64> },
    /// A health probe sent on behalf of a waiting queue while the breaker is half-open.
    Probe,
    /// A client write; answer it.
    Write {
        to: RequestId,
        msg_id: Option<u64>,
        write: QueuedWrite,
    },
    /// A queued write being drained.
    Drain { write: WriteId },
    /// A read call of a declared endpoint's request.
    Step { run: u64, slot: Slot },
    /// A write call of a declared endpoint's request; queued if it fails and the
    /// dependency has a queue.
    StepWrite {
        run: u64,
        slot: Slot,
        write: QueuedWrite,
    },
}

impl Purpose {
    /// The kind of a call made for this purpose, as its first attempt.
    #[inline(always)]
    fn call_kind(&self) -> CallKind {
        match self {
            Purpose::Refresh { .. } => CallKind::Refresh,
            Purpose::Probe => CallKind::Probe,
            Purpose::Drain { .. } => CallKind::Drain,
            Purpose::Read { .. }
            | Purpose::Write { .. }
            | Purpose::Step { .. }
            | Purpose::StepWrite { .. } => CallKind::Client,
        }
    }
}

#[derive(Debug, Clone)]
struct Pending {
    /// Which dependency (u32, not usize: with the two small fields below it takes
    /// the eight bytes the index alone took, and a pending call is moved on every
    /// answer).
    dependency: u32,
    key: u64,
    permit: Permit,
    purpose: Purpose,
    /// Which attempt of the call this is (1 = the first; retries follow; at most
    /// [`MAX_ATTEMPTS`](crate::engine::retry::MAX_ATTEMPTS)).
    attempt: u8,
    /// The request's in-band `service_unavailable`: every attempt fails as down.
    force_down: bool,
    /// It holds a slot of its dependency's bulkhead, given back when it is answered.
    in_bulkhead: bool,
    /// The first attempt's timeout instant (its start plus the dependency's timeout,
    /// cut at the request's deadline), kept across attempts: where the dependency's
    /// timeout is outside its retry layer, it bounds the whole call.
    call_deadline: Time,
}

/// One dependency's engine state.
struct Dependency {
    /// Its name in events, replies and errors.
    name: &'static str,
    /// The seed resource it serves; `None` for a declared service's dependency.
    resource: Option<Resource>,
    timeout: Span,
    read_policy: ReadPolicy,
    breaker: CircuitBreaker,
    cache: StaleCache<u64, Record>,
    /// Whether it has a cache. A declared dependency may have none: its `cache` then
    /// is a one-entry one that nothing reads or fills, so the hot path keeps one shape.
    has_cache: bool,
    queue: WriteQueue<QueuedWrite>,
    /// Whether it has a write queue (see `has_cache`).
    has_queue: bool,
    /// Whether a new write waits behind queued ones ([`QueueConfig::in_order`]
    /// of a dependency with a queue).
    ///
    /// [`QueueConfig::in_order`]: crate::engine::queue::QueueConfig::in_order
    writes_in_order: bool,
    /// How its failed client calls are retried, if they are.
    retry: Option<Box<RetryPolicy>>,
    /// The breaker is outside the retry layer ([`Pipeline::BreakerThenRetry`]): one
    /// permit covers a call's attempts, and only the last one's outcome reaches it.
    ///
    /// [`Pipeline::BreakerThenRetry`]: crate::engine::retry::Pipeline::BreakerThenRetry
    breaker_outside_retry: bool,
    /// Its timeout is outside the retry layer ([`TimeoutScope::WholeCall`]): one
    /// timeout for all of a call's attempts (see [`Pending::call_deadline`]).
    ///
    /// [`TimeoutScope::WholeCall`]: crate::engine::retry::TimeoutScope::WholeCall
    timeout_outside_retry: bool,
    /// The bound on its client calls in flight, if it has one.
    bulkhead: Option<Box<Bulkhead<Held>>>,
    /// The node's CPU time per call to it (counted with `[compute]` only).
    cpu_per_call: Span,
    /// Read-your-writes, if configured: the latest write per key it queued or applied.
    ryw: Option<Box<RecentWrites<Name>>>,
}

impl Dependency {
    /// The seed resource of a dependency the seed's requests reach.
    fn resource(&self) -> Resource {
        self.resource
            .expect("only the seed service's requests name a resource, and it has both")
    }

    /// What one of its records is called in error texts.
    fn noun(&self) -> &'static str {
        self.resource.map_or("record", Resource::noun)
    }
}

/// Counters the node keeps about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NodeStats {
    /// Dependency calls started.
    pub calls: u64,
    /// Forced failures recorded through a breaker (`force_failures`).
    pub forced_failures: u64,
    /// Background refreshes started.
    pub refreshes: u64,
    /// Health probes started for a waiting queue.
    pub probes: u64,
}

/// The service: one breaker, cache and write queue per dependency, one mode controller.
pub struct Node {
    /// Indexed by [`Resource::dependency`] for the seed service, by [`DependencyId`]
    /// for a declared one.
    deps: Vec<Dependency>,
    /// A declared service's requests in progress; `None` for the seed service.
    declared: Option<Box<Declared>>,
    /// The seed service's requests, resolved against its plans; `None` for a
    /// declared service.
    seed: Option<SeedRoutes>,
    modes: ModeController,
    rng: ChaCha8Rng,
    pending: SeqMap<Pending>,
    /// Failed calls waiting for their retry ([`Timer::Retry`]).
    retries: SeqMap<Pending>,
    /// The version of the last write accepted from a client (see [`Op::Write`]).
    next_version: u64,
    effects: Vec<Effect>,
    /// The earliest wake already asked of the driver and not yet fired, so that the
    /// node does not flood the driver's timer queue with duplicates.
    next_wake: Option<Time>,
    stats: NodeStats,
}

impl Node {
    /// A node with `config`, its caches preloaded with `warm` at time 0, drawing jitter
    /// from `rng` (owned by the driver's seeding scheme).
    pub fn new(
        config: &NodeConfig,
        warm: impl IntoIterator<Item = (Resource, Record)>,
        rng: ChaCha8Rng,
    ) -> Result<Node, ConfigError> {
        config.validate()?;
        let (routes, deps) = SeedRoutes::build(config)?;
        let mut deps = Vec::from(deps);
        for (resource, record) in warm {
            deps[resource.dependency()]
                .cache
                .insert(record.id, record, 0);
        }
        let mut node = Node {
            deps,
            declared: None,
            seed: Some(routes),
            modes: ModeController::new(config.modes.clone())?,
            rng,
            pending: SeqMap::new(),
            retries: SeqMap::new(),
            next_version: 0,
            effects: Vec::new(),
            next_wake: None,
            stats: NodeStats::default(),
        };
        // Warming may have evicted; those events are part of the run's record.
        node.collect_events();
        Ok(node)
    }

    /// The effects produced since the last drain, in the order they happened.
    pub fn drain_effects(&mut self) -> std::vec::Drain<'_, Effect> {
        self.effects.drain(..)
    }

    /// Moves the effects produced since the last call into `out` (which must be empty)
    /// without copying them: the two buffers swap, so both keep their capacity.
    pub fn take_effects(&mut self, out: &mut Vec<Effect>) {
        debug_assert!(out.is_empty());
        std::mem::swap(&mut self.effects, out);
    }

    /// Handles one request at `now`. `msg_id` is echoed as `in_reply_to`.
    pub fn handle(&mut self, now: Time, to: RequestId, msg_id: Option<u64>, request: Request) {
        if self.seed.is_none() && request.is_seed_endpoint() {
            let text = format!(
                "{} is a request of the seed service; this node serves {}",
                request.type_name(),
                self.service_name()
            );
            self.refuse_with(to, msg_id, ErrorCode::NotSupported, text);
            self.after(now);
            return;
        }
        match request {
            Request::Init { .. } => self.reply(
                to,
                ReplyBody::InitOk {
                    in_reply_to: msg_id,
                },
                Served::Control,
            ),
            Request::Read {
                resource,
                key,
                fault,
            } => {
                let route = self.seed_routes().reads[resource.dependency()];
                self.read(now, to, msg_id, route, key, fault)
            }
            Request::Write {
                resource,
                key,
                name,
                fault,
            } => {
                let index = self.seed_routes().writes[resource.dependency()];
                self.write(now, to, msg_id, index, key, name, fault)
            }
            Request::SetMode { mode, cpu_usage } => {
                // A mode pins the controller (a manual override); without one, the
                // thresholds decide, so any earlier pin is released first.
                match mode {
                    Some(ModeRequest::Manual(mode)) => {
                        self.modes.set_manual(mode, now);
                    }
                    Some(ModeRequest::Auto) | None => {
                        self.modes.clear_manual(now);
                    }
                }
                if let Some(cpu) = cpu_usage {
                    // The parser only lets finite percentages through.
                    let _ = self.modes.sample(cpu, now);
                }
                let body = ReplyBody::ModeChanged {
                    in_reply_to: msg_id,
                    mode: self.modes.mode().as_str(),
                    disabled_features: self.modes.disabled_features().to_vec(),
                };
                self.reply(to, body, Served::Control);
            }
            Request::Recommendations { user_id } => {
                let (enabled, served) = self.feature(self.seed_routes().features[0]);
                // A stand-in for a recommender: deterministic, cheap, plausible. Wrapping:
                // a client may send any id up to u64::MAX.
                let recommendations = if enabled {
                    (1..=3)
                        .map(|k| user_id.wrapping_mul(31).wrapping_add(k * 7) % 1000 + 1)
                        .collect()
                } else {
                    Ids::default()
                };
                let body = ReplyBody::RecommendationsResponse {
                    in_reply_to: msg_id,
                    user_id,
                    recommendations,
                    degraded: !enabled,
                };
                self.reply(to, body, served);
            }
            Request::Search { query } => {
                let (enabled, served) = self.feature(self.seed_routes().features[1]);
                // A stand-in for a search index: the same query finds the same ids.
                let results = if enabled {
                    let seed = query
                        .bytes()
                        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
                    (0..3)
                        .map(|k| seed.wrapping_add(k * 13) % 1000 + 1)
                        .collect()
                } else {
                    Ids::default()
                };
                let body = ReplyBody::SearchResponse {
                    in_reply_to: msg_id,
                    query,
                    results,
                    degraded: !enabled,
                };
                self.reply(to, body, served);
            }
            Request::Status => {
                let body = self.status(msg_id);
                self.reply(to, body, Served::Control);
            }
            Request::Endpoint {
                endpoint,
                key,
                value,
            } => {
                if self.declared.is_some() {
                    // Answers and asks for its own housekeeping.
                    return self.handle_endpoint(now, to, msg_id, endpoint, key, value);
                }
                let text = "this node serves the seed service, which has no declared endpoints";
                self.refuse_with(to, msg_id, ErrorCode::NotSupported, text.to_owned());
            }
        }
        self.after(now);
    }

    /// The seed service's routes (a seed request reaches here only on a seed node).
    #[inline(always)]
    fn seed_routes(&self) -> &SeedRoutes {
        self.seed
            .as_ref()
            .expect("seed requests are refused by a declared service's node")
    }

    /// Whether a failed read of the seed's dependency `index` falls back to its cache.
    fn seed_stale_fallback(&self, index: usize) -> bool {
        self.seed_routes().reads[self.deps[index].resource().dependency()].stale_fallback
    }

    /// Whether non-critical `feature` is on in the current mode, and how a reply that
    /// uses it is served: fresh when on, the feature's fallback when the mode disables it.
    fn feature(&self, feature: &str) -> (bool, Served) {
        if self.modes.is_enabled(feature) {
            (true, Served::Fresh)
        } else {
            (false, Served::Fallback)
        }
    }

    /// Answers a request that could not be parsed or is not supported.
    pub fn refuse(&mut self, to: RequestId, msg_id: Option<u64>, error: ProtocolError) {
        let code = error.code.code();
        self.reply(to, ReplyBody::error(msg_id, error), Served::Error { code });
    }

    /// Feeds a CPU sample (percent) to the mode controller.
    pub fn observe_cpu(&mut self, now: Time, cpu: f64) {
        if self.has_compute() {
            // The node measures its own CPU: the curve is another tenant's load on
            // the same machine, added to each measured sample.
            self.set_noise(cpu);
        } else {
            // A sample the controller refuses (NaN, negative) changes nothing; the
            // load curves that feed this are clamped, so it does not happen in
            // practice.
            let _ = self.modes.sample(cpu, now);
        }
        self.after(now);
    }

    /// Handles a timer set earlier.
    pub fn on_timer(&mut self, now: Time, timer: Timer) {
        match timer {
            Timer::Wake => {
                if self.next_wake.is_some_and(|at| at <= now) {
                    self.next_wake = None;
                }
            }
            Timer::Deadline { run } => self.on_deadline(now, run),
            Timer::Retry { wait } => self.on_retry(now, wait),
            Timer::Admission => self.on_admission_timer(now),
            Timer::Cpu => self.on_cpu_timer(now),
            Timer::Reply { held } => self.on_reply_timer(held),
            Timer::Bulkhead { dependency } => self.on_bulkhead_timer(now, dependency as usize),
        }
        self.after(now);
    }

    /// Handles a dependency's answer (or the driver's timeout) to call `id`. Answers to
    /// unknown calls are ignored.
    pub fn on_call_result(&mut self, now: Time, id: CallId, result: CallResult) {
        let Some(pending) = self.pending.remove(id.0) else {
            return;
        };
        if pending.in_bulkhead {
            self.leave_bulkhead(now, pending.dependency as usize);
        }
        if self.declared.is_some() {
            self.charge_call(now, pending.dependency as usize);
        }
        let dep = &mut self.deps[pending.dependency as usize];
        match result {
            CallResult::Failed(error) if dep.retry.is_some() => {
                return self.on_failure_with_retry(now, pending, error);
            }
            CallResult::Failed(_) => {
                dep.breaker.on_failure(pending.permit, now, &mut self.rng);
            }
            _ => {
                dep.breaker.on_success(pending.permit, now, &mut self.rng);
            }
        }
        self.settle(now, pending, result);
    }

    /// A failed call of a dependency that retries: it waits for its retry, or its
    /// caller takes the failure now. Apart from the common path, which it would slow.
    #[inline(never)]
    fn on_failure_with_retry(&mut self, now: Time, pending: Pending, error: CallError) {
        let dep = &mut self.deps[pending.dependency as usize];
        // With the breaker outside the retry, it hears of the attempt only if it is
        // the last.
        let outside = dep.breaker_outside_retry;
        if !outside {
            dep.breaker.on_failure(pending.permit, now, &mut self.rng);
        }
        match self.try_retry(now, pending, error) {
            Ok(()) => self.after(now),
            Err(pending) => {
                if outside {
                    let dep = &mut self.deps[pending.dependency as usize];
                    dep.breaker.on_failure(pending.permit, now, &mut self.rng);
                }
                self.settle(now, pending, CallResult::Failed(error));
            }
        }
    }

    /// What a call's answer does for whoever made it, then the housekeeping.
    #[inline(always)]
    fn settle(&mut self, now: Time, pending: Pending, result: CallResult) {
        let Pending {
            dependency,
            key,
            purpose,
            ..
        } = pending;
        let dependency = dependency as usize;
        let dep = &mut self.deps[dependency];
        match purpose {
            Purpose::Read { to, msg_id } => match self.read_answer(now, dependency, key, result) {
                ReadAnswer::Found(record) => {
                    let body = self.record_reply(dependency, msg_id, record, false, false);
                    self.reply(to, body, Served::Fresh);
                }
                ReadAnswer::NotFound => {
                    let noun = self.deps[dependency].noun();
                    self.refuse_with(
                        to,
                        msg_id,
                        ErrorCode::KeyDoesNotExist,
                        format!("{noun} {key} does not exist"),
                    );
                }
                ReadAnswer::Failed(error) => {
                    let name = self.deps[dependency].name;
                    let why = error.as_str();
                    let reason = format_args!("{name} service failed ({why})");
                    let stale = StaleReason::DependencyFailed;
                    self.serve_from_cache(now, to, msg_id, dependency, key, stale, reason);
                }
            },
            Purpose::Refresh { ticket } => {
                let value = match result {
                    CallResult::Found(record) => Some(record),
                    _ => None,
                };
                dep.cache.end_refresh(ticket, now, value);
            }
            Purpose::Probe => {}
            Purpose::Write { to, msg_id, write } => {
                match self.write_answer(now, dependency, key, result) {
                    WriteAnswer::Applied(held) => {
                        if let Some(name) = held {
                            let state = WriteState::Applied;
                            self.remember_write(now, dependency, key, write.version, name, state);
                        }
                        let dep = &self.deps[dependency];
                        let body = ReplyBody::WriteOk {
                            in_reply_to: msg_id,
                            resource: dep.resource(),
                            id: key,
                            queued: false,
                            queue_depth: dep.queue.depth(),
                        };
                        self.reply(to, body, Served::Applied);
                    }
                    WriteAnswer::Rejected(full) => {
                        let text = store_full_text(&self.deps[dependency], key, full);
                        self.refuse_with(to, msg_id, ErrorCode::TemporarilyUnavailable, text);
                    }
                    WriteAnswer::Failed(_) => {
                        // The call failed: hold the write for one backoff step rather than
                        // retrying into the same failure at once. Its version keeps a later
                        // write to the same record from being overwritten when it drains.
                        let not_before = self.retry_after_failure(now, dependency);
                        self.enqueue_write(now, to, msg_id, dependency, write, not_before);
                    }
                }
            }
            Purpose::Drain { write } => match self.write_answer(now, dependency, key, result) {
                WriteAnswer::Applied(held) => {
                    let applied = self.deps[dependency].queue.on_applied(write, now);
                    if let (Some(w), Some(name)) = (applied, held) {
                        let state = WriteState::Applied;
                        self.remember_write(now, dependency, w.key, w.version, name, state);
                    }
                }
                WriteAnswer::Rejected(full) => {
                    let dep = &mut self.deps[dependency];
                    // The client was told the write was queued; it cannot be applied,
                    // so it goes to the dead letters at once (with the reason), where
                    // the queue's conservation still counts it.
                    let text = store_full_text(dep, key, full);
                    if dep.queue.on_rejected(write, &text, now) && dep.ryw.is_some() {
                        self.forget_dead_letter(now, dependency);
                    }
                }
                WriteAnswer::Failed(error) => {
                    let dep = &mut self.deps[dependency];
                    let outcome = dep
                        .queue
                        .on_failed(write, error.as_str(), now, &mut self.rng);
                    if outcome == Some(FailOutcome::DeadLettered) && dep.ryw.is_some() {
                        self.forget_dead_letter(now, dependency);
                    }
                }
            },
            Purpose::Step { run, slot } => {
                self.on_step_read(now, run, slot, dependency, key, result);
            }
            Purpose::StepWrite { run, slot, write } => {
                self.on_step_write(now, run, slot, dependency, write, result);
            }
        }
        self.after(now);
    }

    /// Whether the node still has work of its own: calls outstanding, retries
    /// waiting or writes queued.
    pub fn is_busy(&self) -> bool {
        !self.pending.is_empty()
            || !self.retries.is_empty()
            || self.deps.iter().any(|d| {
                !d.queue.is_empty() || d.bulkhead.as_ref().is_some_and(|b| b.waiting() > 0)
            })
            || self.declared_busy()
    }

    /// The node's counters.
    pub fn stats(&self) -> NodeStats {
        self.stats
    }

    /// The mode controller (read-only), for reports.
    pub fn modes(&self) -> &ModeController {
        &self.modes
    }

    /// The bulkhead of dependency `index`, if it has one: its limits and counters.
    pub fn bulkhead(&self, index: usize) -> Option<(&BulkheadConfig, BulkheadStats)> {
        self.deps[index]
            .bulkhead
            .as_ref()
            .map(|b| (b.config(), b.stats()))
    }

    /// The retry counters of dependency `index`, if it retries, for reports.
    pub fn retry_stats(&self, index: usize) -> Option<RetryStats> {
        self.deps[index].retry.as_ref().map(|r| r.stats())
    }

    /// The breaker of dependency `index`, for reports.
    pub fn breaker(&self, index: usize) -> &CircuitBreaker {
        &self.deps[index].breaker
    }

    /// The cache of dependency `index`, for reports.
    pub fn cache(&self, index: usize) -> &StaleCache<u64, Record> {
        &self.deps[index].cache
    }

    /// The write queue of dependency `index`, for reports.
    pub fn queue(&self, index: usize) -> &WriteQueue<QueuedWrite> {
        &self.deps[index].queue
    }

    /// Read-your-writes of dependency `index`, if configured: its settings and counters.
    pub fn read_your_writes(&self, index: usize) -> Option<(RywConfig, RywStats)> {
        self.deps[index]
            .ryw
            .as_ref()
            .map(|r| (*r.config(), r.stats()))
    }

    fn read(
        &mut self,
        now: Time,
        to: RequestId,
        msg_id: Option<u64>,
        route: SeedRead,
        key: u64,
        fault: InBandFault,
    ) {
        let index = route.dependency;
        self.force_failures(now, index, fault.force_failures);
        match self.begin_read(now, index, key) {
            ReadStart::Cached { record, age, stale } => {
                let served = if stale {
                    Served::Stale { age }
                } else {
                    Served::Cached { age }
                };
                let body = self.record_reply(index, msg_id, record, true, false);
                self.reply(to, body, served);
            }
            ReadStart::Call(permit) => self.start_call(
                now,
                index,
                key,
                permit,
                Op::Read { key },
                fault.service_unavailable,
                Purpose::Read { to, msg_id },
            ),
            ReadStart::BreakerOpen => self.read_breaker_open(now, to, msg_id, index, key),
        }
    }

    /// A seed read the open breaker refused: the stale cache answers, or an error.
    fn read_breaker_open(
        &mut self,
        now: Time,
        to: RequestId,
        msg_id: Option<u64>,
        index: usize,
        key: u64,
    ) {
        let name = self.deps[index].name;
        let reason = format_args!("{name} service unavailable (circuit open)");
        let stale = StaleReason::BreakerOpen;
        self.serve_from_cache(now, to, msg_id, index, key, stale, reason);
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &mut self,
        now: Time,
        to: RequestId,
        msg_id: Option<u64>,
        index: usize,
        key: u64,
        name: Name,
        fault: InBandFault,
    ) {
        self.force_failures(now, index, fault.force_failures);
        self.next_version += 1;
        let write = QueuedWrite {
            key,
            name,
            version: self.next_version,
        };
        // The seed's queues keep writes in order: writes already waiting go first, so
        // that they reach the service in the order clients sent them.
        match self.begin_write(now, index) {
            WriteStart::Call(permit) => {
                let op = Op::Write {
                    key,
                    name: write.name.clone(),
                    version: write.version,
                };
                let purpose = Purpose::Write { to, msg_id, write };
                self.start_call(
                    now,
                    index,
                    key,
                    permit,
                    op,
                    fault.service_unavailable,
                    purpose,
                );
            }
            WriteStart::Queue | WriteStart::BreakerOpen => {
                self.enqueue_write(now, to, msg_id, index, write, now)
            }
        }
    }

    /// The seed task's in-band fault: `count` calls that each fail, recorded through the
    /// breaker as real failures; a call the breaker refuses is not made, so not counted.
    /// Every request passes through here; almost all ask for no forced failure, so
    /// the check is inlined and the loop is not.
    #[inline]
    fn force_failures(&mut self, now: Time, index: usize, count: u32) {
        if count > 0 {
            self.force_failures_slow(now, index, count);
        }
    }

    #[inline(never)]
    fn force_failures_slow(&mut self, now: Time, index: usize, count: u32) {
        let dep = &mut self.deps[index];
        for _ in 0..count {
            let Ok(permit) = dep.breaker.try_acquire(now, &mut self.rng) else {
                break;
            };
            dep.breaker.on_failure(permit, now, &mut self.rng);
            self.stats.forced_failures += 1;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn enqueue_write(
        &mut self,
        now: Time,
        to: RequestId,
        msg_id: Option<u64>,
        index: usize,
        write: QueuedWrite,
        not_before: Time,
    ) {
        let remembered = self
            .remembers_writes(index)
            .then(|| (write.version, write.name.clone()));
        let dep = &mut self.deps[index];
        let resource = dep.resource();
        let key = write.key;
        match dep.queue.enqueue_not_before(write, now, not_before) {
            Enqueue::Accepted { .. } => {
                let depth = dep.queue.depth();
                if let Some((version, name)) = remembered {
                    self.remember_write(now, index, key, version, name, WriteState::Queued);
                }
                let body = ReplyBody::WriteOk {
                    in_reply_to: msg_id,
                    resource,
                    id: key,
                    queued: true,
                    queue_depth: depth,
                };
                self.reply(to, body, Served::Queued { depth });
            }
            Enqueue::Rejected { depth } => {
                let body = ReplyBody::error(
                    msg_id,
                    ProtocolError {
                        code: ErrorCode::TemporarilyUnavailable,
                        text: format!(
                            "{} service is unavailable and its write queue is full ({depth} writes \
                             waiting); the write to {} {key} was not accepted, retry later",
                            resource.as_str(),
                            resource.noun()
                        ),
                    },
                );
                self.reply(to, body, Served::Rejected);
            }
        }
    }

    /// Serves a read from the cache because the dependency could not (`reason`), or
    /// answers with an informative error when the cache has nothing servable.
    ///
    /// `reason` is only formatted into that error: most stale reads are served, and
    /// formatting it up front cost a string allocation on each of them.
    #[allow(clippy::too_many_arguments)]
    fn serve_from_cache(
        &mut self,
        now: Time,
        to: RequestId,
        msg_id: Option<u64>,
        index: usize,
        key: u64,
        stale: StaleReason,
        reason: std::fmt::Arguments<'_>,
    ) {
        if !self.seed_stale_fallback(index) {
            let noun = self.deps[index].noun();
            let text = format!("{reason}; {noun} {key}: its plan has no fallback");
            return self.refuse_with(to, msg_id, ErrorCode::TemporarilyUnavailable, text);
        }
        if let Some((record, age)) = self.pending_write(now, index, key) {
            let body = self.record_reply(index, msg_id, record, true, true);
            return self.reply(to, body, Served::PendingWrite { age });
        }
        let dep = &mut self.deps[index];
        let noun = dep.noun();
        match dep.cache.serve_stale(key, now, stale) {
            Ok(hit) => {
                let served = if hit.stale {
                    Served::Stale { age: hit.age }
                } else {
                    Served::Cached { age: hit.age }
                };
                let record = hit.value.clone();
                let body = self.record_reply(index, msg_id, record, true, false);
                self.reply(to, body, served);
            }
            Err(refusal) => {
                let text = format!("{reason}; {noun} {key}: {refusal}");
                self.refuse_with(to, msg_id, ErrorCode::TemporarilyUnavailable, text);
            }
        }
    }

    fn record_reply(
        &self,
        index: usize,
        msg_id: Option<u64>,
        record: Record,
        from_cache: bool,
        pending_write: bool,
    ) -> ReplyBody {
        let dep = &self.deps[index];
        match dep.resource() {
            Resource::Users => ReplyBody::UserResponse {
                in_reply_to: msg_id,
                user: record,
                circuit_state: dep.breaker.state().as_str(),
                from_cache,
                pending_write,
            },
            Resource::Products => ReplyBody::ProductResponse {
                in_reply_to: msg_id,
                product: record,
                cached: from_cache,
                pending_write,
            },
        }
    }

    fn status(&self, msg_id: Option<u64>) -> ReplyBody {
        ReplyBody::StatusOk {
            in_reply_to: msg_id,
            mode: self.modes.mode().as_str(),
            manual_mode: self.modes.is_manual(),
            disabled_features: self.modes.disabled_features().to_vec(),
            dependencies: self
                .deps
                .iter()
                .map(|d| DependencyStatus {
                    name: d.name.to_owned(),
                    circuit_state: d.breaker.state().as_str(),
                    cache_entries: d.cache.len(),
                    stale_serves: d.cache.stats().stale_serves,
                    queue_depth: d.queue.depth(),
                    dead_letters: d.queue.stats().dead_lettered,
                })
                .collect(),
        }
    }

    /// Starts a background refresh if the breaker admits it; otherwise gives the ticket
    /// back so the next reader may try.
    fn start_refresh(&mut self, now: Time, index: usize, key: u64, ticket: RefreshTicket<u64>) {
        let dep = &mut self.deps[index];
        match dep.breaker.try_acquire(now, &mut self.rng) {
            Ok(permit) => {
                let purpose = Purpose::Refresh { ticket };
                self.start_call(now, index, key, permit, Op::Read { key }, false, purpose);
            }
            Err(_) => {
                dep.cache.end_refresh(ticket, now, None);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn start_call(
        &mut self,
        now: Time,
        index: usize,
        key: u64,
        permit: Permit,
        op: Op,
        force_down: bool,
        purpose: Purpose,
    ) {
        let deadline = now.saturating_add(self.deps[index].timeout);
        self.call_until(index, key, permit, op, force_down, purpose, deadline);
    }

    /// Starts a call that the driver times out at `deadline` (the dependency's own
    /// timeout for the seed's calls, what is left of a request's budget for a
    /// declared step's).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn call_until(
        &mut self,
        index: usize,
        key: u64,
        permit: Permit,
        op: Op,
        force_down: bool,
        purpose: Purpose,
        deadline: Time,
    ) {
        self.stats.calls += 1;
        let kind = purpose.call_kind();
        let id = CallId(self.pending.insert(Pending {
            dependency: index as u32,
            key,
            permit,
            purpose,
            attempt: 1,
            force_down,
            in_bulkhead: false,
            call_deadline: deadline,
        }));
        self.effects.push(Effect::Call(Call {
            id,
            dependency: index,
            op,
            force_down,
            deadline,
            kind,
        }));
    }

    #[inline(always)]
    fn reply(&mut self, to: RequestId, body: ReplyBody, served: Served) {
        self.collect_events();
        self.effects.push(Effect::Reply { to, body, served });
    }

    fn refuse_with(&mut self, to: RequestId, msg_id: Option<u64>, code: ErrorCode, text: String) {
        self.refuse(to, msg_id, ProtocolError { code, text });
    }

    /// Whether `check` holds for every dependency. The checks after every input go
    /// through here: for the seed service's two dependencies, the slice pattern gives
    /// the compiler a fixed length to unroll (as the fixed array the node had before
    /// it served declared services did; the loop cost 8% of a long simulation's
    /// instructions).
    #[inline(always)]
    fn all_deps(&self, check: impl Fn(&Dependency) -> bool) -> bool {
        match &self.deps[..] {
            [a, b] => check(a) && check(b),
            deps => deps.iter().all(check),
        }
    }

    /// Housekeeping after every input: move breakers whose open time has elapsed, drain
    /// queues that can drain, then ask for a wake at the next instant anything is due.
    ///
    /// The common case is checked inline, because this runs after every input: no
    /// queued writes and no breaker timing out, so there is nothing to move, pump or
    /// wake for. The rest is a call of its own: as one function, the register saves
    /// and restores of the whole housekeeping were paid on every input, and the
    /// housekeeping was 9% of a long simulation's instructions.
    #[inline(always)]
    fn after(&mut self, now: Time) {
        if self.has_admitted() {
            self.start_admitted(now);
        }
        let idle = self.all_deps(|d| d.queue.is_empty() && !d.breaker.has_timeout());
        if idle {
            self.collect_events();
        } else {
            self.housekeeping(now);
        }
    }

    /// [`Node::after`] when a queue holds writes or a breaker waits for a timeout.
    #[inline(never)]
    fn housekeeping(&mut self, now: Time) {
        for index in 0..self.deps.len() {
            if self.deps[index]
                .breaker
                .poll_timeout()
                .is_some_and(|at| at <= now)
            {
                self.deps[index].breaker.handle_timeout(now, &mut self.rng);
            }
            self.pump_queue(now, index);
        }
        self.collect_events();
        // The next instant something of the node's own falls due: a breaker's open time
        // ending, or (only while the breaker lets writes through) a queued write's
        // backoff or rate limit expiring. Instants not after `now` are skipped: the pump
        // above has just done everything it could at `now`, and what it could not do
        // waits for an input (a call result), not for time.
        let mut due: Option<Time> = None;
        for dep in &self.deps {
            let breaker = dep.breaker.poll_timeout();
            let queue = if !dep.queue.is_empty() && dep.breaker.state() == BreakerState::Closed {
                dep.queue.poll_timeout(now)
            } else {
                None
            };
            for at in [breaker, queue]
                .into_iter()
                .flatten()
                .filter(|&at| at > now)
            {
                due = Some(due.map_or(at, |d| d.min(at)));
            }
        }
        if let Some(at) = due {
            if self.next_wake.is_none_or(|w| at < w) {
                self.next_wake = Some(at);
                self.effects.push(Effect::Timer {
                    at,
                    timer: Timer::Wake,
                });
            }
        }
    }

    /// Sends queued writes on while the dependency is healthy. A closed breaker drains at
    /// the queue's rate; a half-open one first gets a health probe (a read of the head
    /// write's record), so that a queue never burns its retries on a service that is
    /// still down, and a node with no read traffic still notices recovery.
    fn pump_queue(&mut self, now: Time, index: usize) {
        loop {
            let dep = &mut self.deps[index];
            if dep.queue.is_empty() {
                return;
            }
            match dep.breaker.state() {
                BreakerState::Open => return,
                BreakerState::HalfOpen => {
                    let Some(key) = dep.queue.front().map(|w| w.key) else {
                        return;
                    };
                    if let Ok(permit) = dep.breaker.try_acquire(now, &mut self.rng) {
                        self.stats.probes += 1;
                        let op = Op::Read { key };
                        self.start_call(now, index, key, permit, op, false, Purpose::Probe);
                    }
                    return;
                }
                BreakerState::Closed => {
                    if dep.queue.poll_timeout(now).is_none_or(|at| at > now) {
                        return;
                    }
                    let Ok(permit) = dep.breaker.try_acquire(now, &mut self.rng) else {
                        return;
                    };
                    let Some(dispatch) = dep.queue.poll_dispatch(now) else {
                        unreachable!("the queue said a dispatch is due now");
                    };
                    let key = dispatch.write.key;
                    let op = Op::Write {
                        key,
                        name: dispatch.write.name.clone(),
                        version: dispatch.write.version,
                    };
                    let purpose = Purpose::Drain { write: dispatch.id };
                    self.start_call(now, index, key, permit, op, false, purpose);
                }
            }
        }
    }

    /// Moves every engine event into the effect list, tagged with its dependency.
    ///
    /// Called after every input, and almost always with nothing to collect: the check
    /// is inlined into the caller and the draining is a call of its own, taken only
    /// when there is something to drain (draining empty outboxes unconditionally was
    /// 5% of a long simulation, and the call alone, with its register saves, 2%).
    #[inline]
    fn collect_events(&mut self) {
        let pending = self.modes.has_events()
            || !self.all_deps(|d| {
                !(d.breaker.has_events() || d.cache.has_events() || d.queue.has_events())
            });
        if pending {
            self.drain_engine_events();
        }
    }

    #[cold]
    #[inline(never)]
    fn drain_engine_events(&mut self) {
        for dep in &mut self.deps {
            let name = dep.name;
            for event in dep.breaker.drain_events() {
                self.effects.push(Effect::Event(NodeEvent::Breaker {
                    dependency: name,
                    event,
                }));
            }
            for event in dep.cache.drain_events() {
                self.effects.push(Effect::Event(NodeEvent::Cache {
                    dependency: name,
                    event,
                }));
            }
            for event in dep.queue.drain_events() {
                self.effects.push(Effect::Event(NodeEvent::Queue {
                    dependency: name,
                    event,
                }));
            }
        }
        for event in self.modes.drain_events() {
            self.effects.push(Effect::Event(NodeEvent::Mode { event }));
        }
    }
}
