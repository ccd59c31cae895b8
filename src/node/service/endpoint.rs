//! A declared endpoint's request, served through its plan.
//!
//! The [`PlanRun`] decides what a request does (which calls, in what order, which
//! fallbacks, when the deadline cuts it); this module is the engine between the run's
//! actions and their answers: the breaker's permit, the read policy's cache-first
//! answers, the write queue, the stale cache of a `cache` fallback. It is the place a
//! new mechanism (retries, bulkheads) slots in, between [`Action::StartCall`] and the
//! answer, without the executor or the drivers knowing.

use std::sync::Arc;

use rand_chacha::ChaCha8Rng;
use smallvec::SmallVec;

use crate::engine::admission::{Admission, AdmissionStats, Arrival, Shed, ShedReason};
use crate::engine::cache::StaleReason;
use crate::engine::compute::{Compute, ComputeConfig, ComputeStats};
use crate::engine::modes::{Mode, ModeConfig, ModeController};
use crate::engine::queue::Enqueue;
use crate::engine::ryw::WriteState;
use crate::engine::{ConfigError, HumanSpan, Span, Time};
use crate::intern::intern;
use crate::model::service::{
    CallOp, DependencyId, EndpointId, Fallback, KeySpaceId, Service, Step, StepId,
};
use crate::node::plan::{
    Action, Answer, CacheHit, Cause, Class, Disabled, Failure, Outcome, PlanRun, Slot, StepServed,
};
use crate::node::protocol::{EndpointReply, ErrorCode, Name, PartData, ReplyBody, ReplyMeta};
use crate::seqmap::SeqMap;

use super::step::{ReadAnswer, ReadStart, WriteAnswer, WriteStart};
use super::{
    CallError, CallResult, Dependency, Effect, Node, NodeStats, Op, Purpose, QueuedWrite,
    RequestId, Served, Timer,
};

/// A declared service's side of the node: the service, its requests in progress, and
/// the names its replies carry, interned once.
pub(super) struct Declared {
    service: Arc<Service>,
    runs: SeqMap<Run>,
    /// Actions the current run emitted, not yet carried out.
    actions: Vec<Action>,
    /// The batch being carried out (kept for its capacity).
    batch: Vec<Action>,
    /// Per endpoint, the names of its reply and parts.
    names: Vec<EndpointNames>,
    /// The features disabled, and the mode that mask was computed for: modes change
    /// rarely, so a request reads a mask instead of comparing feature names.
    disabled: (Mode, Disabled),
    /// Admission control, if the service declares it: what waits for a slot is the
    /// request as it arrived.
    admission: Option<Admission<Arrived>>,
    /// Requests a freed slot admitted, started once the input being handled is done:
    /// starting one inside another request's reply would mix the two runs' actions.
    admitted: Vec<Arrived>,
    /// Requests shed by the last expiry (kept for its capacity).
    shed: Vec<Shed<Arrived>>,
    /// The node's CPU, if the service declares it.
    compute: Option<Compute>,
    /// The last sample of a scenario's CPU curve: another tenant's load, added to
    /// what the node measures of its own.
    noise: f64,
    /// Whether the CPU sampling timer runs (started by the first request).
    sampling: bool,
    /// Replies held while the CPU works on them, with the slot they release.
    held: SeqMap<(RequestId, ReplyBody, Served)>,
}

/// A request of a declared endpoint as it arrived, before it has a run.
pub(super) struct Arrived {
    to: RequestId,
    msg_id: Option<u64>,
    endpoint: EndpointId,
    key: Option<u64>,
    value: Option<Name>,
    /// When it arrived: its deadline counts from here, however long it waited.
    at: Time,
}

/// The names one endpoint's replies use, interned when the node is built.
struct EndpointNames {
    reply_type: &'static str,
    /// Per step: the part's name in `data`, `missing` and `degraded` (unique within
    /// the endpoint: a second part of the same name is `name#2`).
    parts: Vec<&'static str>,
    /// Per step: a local step's answer, and each static fallback's text by index.
    answers: Vec<&'static str>,
    statics: Vec<Vec<&'static str>>,
}

impl EndpointNames {
    fn new(service: &Service, endpoint: EndpointId) -> EndpointNames {
        let ep = service.endpoint(endpoint);
        let plan = &ep.plan;
        let mut parts: Vec<&'static str> = Vec::with_capacity(plan.steps.len());
        for i in 0..plan.steps.len() {
            let name = plan.part_name(service, StepId(i as u16)).unwrap_or("");
            let mut unique = name.to_owned();
            let mut n = 1;
            while !name.is_empty() && parts.contains(&unique.as_str()) {
                n += 1;
                unique = format!("{name}#{n}");
            }
            parts.push(intern(&unique));
        }
        fn leaf(step: &Step) -> Option<&crate::model::service::Leaf> {
            match step {
                Step::Call(call) => Some(&call.leaf),
                Step::Local(local) => Some(&local.leaf),
                Step::Seq(_) | Step::Par(_) => None,
            }
        }
        EndpointNames {
            reply_type: intern(&format!("{}_ok", ep.name)),
            parts,
            answers: plan
                .steps
                .iter()
                .map(|step| match step {
                    Step::Local(local) => intern(&local.answer),
                    _ => "",
                })
                .collect(),
            statics: plan
                .steps
                .iter()
                .map(|step| {
                    leaf(step).map_or_else(Vec::new, |leaf| {
                        leaf.fallback
                            .iter()
                            .map(|f| match f {
                                Fallback::Static(text) => intern(text),
                                _ => "",
                            })
                            .collect()
                    })
                })
                .collect(),
        }
    }
}

/// One request of a declared endpoint, in progress.
struct Run {
    plan: PlanRun,
    to: RequestId,
    msg_id: Option<u64>,
    key: Option<u64>,
    /// What its writes write.
    value: Option<Name>,
    /// What the parts answered so far, by step (a later answer for the same step
    /// replaces an earlier one: only answers the run still waited for are kept).
    /// Inline for two parts: most requests need no allocation for it.
    data: SmallVec<[(StepId, PartData); 2]>,
    /// The queue depth after the last write it queued.
    queue_depth: usize,
    /// Why a write of the run was refused, for the error reply: the step and the
    /// reason (a full queue, a full store).
    refusal: Option<(StepId, String)>,
}

impl Run {
    /// Keeps what `slot` answered for the reply, if the run still waits for it (a
    /// later answer for the same step replaces an earlier one); whether it did.
    fn keep(&mut self, slot: Slot, data: PartData) -> bool {
        if !self.plan.is_waiting(slot) {
            return false;
        }
        self.data.retain(|(step, _)| *step != slot.step);
        self.data.push((slot.step, data));
        true
    }
}

/// Why a failed call's answer is what the plan sees.
fn failure(error: CallError) -> Failure {
    match error {
        CallError::Unavailable => Failure::Unavailable,
        CallError::Error => Failure::Error,
        CallError::Timeout => Failure::Timeout,
    }
}

/// The stale cache's reason for a `cache` fallback taken because of `cause`.
fn stale_reason(cause: Cause) -> StaleReason {
    match cause {
        Cause::Failed(Failure::BreakerOpen) => StaleReason::BreakerOpen,
        Cause::Failed(_) | Cause::Deadline | Cause::Disabled => StaleReason::DependencyFailed,
    }
}

/// A well-mixed 64-bit function (splitmix64's finalizer): maps a request's key to the
/// key of a call in another key space, the same key to the same key every time.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Node {
    /// A node serving the declared `service`, with `modes`, drawing jitter from `rng`.
    /// Its caches start empty.
    pub fn with_service(
        service: Arc<Service>,
        modes: &ModeConfig,
        rng: ChaCha8Rng,
    ) -> Result<Node, ConfigError> {
        modes.validate()?;
        let mut deps = Vec::with_capacity(service.dependencies.len());
        for spec in &service.dependencies {
            let prefix =
                |e: ConfigError| ConfigError::new(format!("{}.{}", spec.name, e.field), e.reason);
            if spec.engine.timeout == 0 {
                return Err(ConfigError::new(
                    format!("{}.timeout", spec.name),
                    "must be greater than zero",
                ));
            }
            deps.push(Dependency::new(intern(&spec.name), None, &spec.engine).map_err(prefix)?);
        }
        let modes = ModeController::new(modes.clone())?;
        let admission = service
            .admission
            .clone()
            .map(Admission::new)
            .transpose()
            .map_err(|e| ConfigError::new(format!("admission.{}", e.field), e.reason))?;
        let compute = service
            .compute
            .clone()
            .map(Compute::new)
            .transpose()
            .map_err(|e| ConfigError::new(format!("compute.{}", e.field), e.reason))?;
        let names = (0..service.endpoints.len())
            .map(|i| EndpointNames::new(&service, EndpointId(i as u16)))
            .collect();
        let disabled = (
            modes.mode(),
            Disabled::from_fn(&service, |f| {
                !modes.is_enabled(&service.features[f.index()])
            }),
        );
        Ok(Node {
            deps,
            seed: None,
            retries: SeqMap::new(),
            declared: Some(Box::new(Declared {
                service,
                runs: SeqMap::new(),
                actions: Vec::new(),
                batch: Vec::new(),
                names,
                disabled,
                admission,
                admitted: Vec::new(),
                shed: Vec::new(),
                compute,
                noise: 0.0,
                sampling: false,
                held: SeqMap::new(),
            })),
            modes,
            rng,
            pending: SeqMap::new(),
            next_version: 0,
            effects: Vec::new(),
            next_wake: None,
            stats: NodeStats::default(),
        })
    }

    /// The declared service this node serves, if it serves one (not the seed's).
    pub fn service(&self) -> Option<&Arc<Service>> {
        self.declared.as_ref().map(|d| &d.service)
    }

    /// The name of the service this node serves.
    pub(super) fn service_name(&self) -> &str {
        self.declared
            .as_ref()
            .map_or("the seed service", |d| d.service.name.as_str())
    }

    /// Handles one request of the declared `endpoint` at `now`, for record `key` (if
    /// the endpoint has keys); its writes write `value` (a generated name if `None`).
    ///
    /// # Panics
    ///
    /// If the node serves no declared service or `endpoint` is not one of its.
    pub fn handle_endpoint(
        &mut self,
        now: Time,
        to: RequestId,
        msg_id: Option<u64>,
        endpoint: EndpointId,
        key: Option<u64>,
        value: Option<Name>,
    ) {
        let decl = self
            .declared
            .as_mut()
            .expect("handle_endpoint needs a declared service");
        let arrived = Arrived {
            to,
            msg_id,
            endpoint,
            key,
            value,
            at: now,
        };
        match decl.admission.as_mut() {
            None => self.start_run(now, arrived),
            Some(admission) => {
                let tier = decl.service.endpoint(endpoint).tier;
                match admission.arrive(now, tier, arrived) {
                    Arrival::Admitted(arrived) => self.start_run(now, arrived),
                    Arrival::Waiting { displaced, .. } => {
                        self.arm_admission_timer();
                        if let Some(shed) = displaced {
                            self.shed_reply(shed);
                        }
                    }
                    Arrival::Shed(shed) => self.shed_reply(shed),
                }
            }
        }
        self.after(now);
    }

    /// Starts the run of a request admitted at `now`.
    #[inline(always)]
    fn start_run(&mut self, now: Time, arrived: Arrived) {
        let Arrived {
            to,
            msg_id,
            endpoint,
            key,
            value,
            at,
        } = arrived;
        let mode = self.modes.mode();
        let decl = self.declared.as_mut().expect("a declared service");
        if let Some(compute) = decl.compute.as_mut() {
            compute.charge(now, decl.service.endpoint(endpoint).cpu);
            if !decl.sampling {
                decl.sampling = true;
                let at = now.saturating_add(compute.sample_every());
                self.effects.push(Effect::Timer {
                    at,
                    timer: Timer::Cpu,
                });
            }
        }
        if decl.disabled.0 != mode {
            let modes = &self.modes;
            let service = &decl.service;
            decl.disabled = (
                mode,
                Disabled::from_fn(service, |f| !modes.is_enabled(&service.features[f.index()])),
            );
        }
        let mut plan = PlanRun::start_arrived(
            &decl.service,
            endpoint,
            at,
            now,
            decl.disabled.1,
            &mut decl.actions,
        );
        let deadline = plan.deadline();
        if deadline.is_some_and(|d| d <= now) {
            // It waited for a slot past its whole budget: what the run started is not
            // carried out (the run no longer waits for it), and it replies at once.
            plan.on_deadline(&decl.service, now, &mut decl.actions);
        }
        let id = decl.runs.insert(Run {
            plan,
            to,
            msg_id,
            key,
            value,
            data: SmallVec::new(),
            queue_depth: 0,
            refusal: None,
        });
        self.drive(now, id);
        let decl = self.declared.as_mut().expect("checked above");
        if let (Some(at), Some(_)) = (deadline, decl.runs.get_mut(id)) {
            self.effects.push(Effect::Timer {
                at,
                timer: Timer::Deadline { run: id },
            });
        }
    }

    /// Starts the requests freed slots admitted, in order (each may finish at once and
    /// admit more).
    #[inline(never)]
    pub(super) fn start_admitted(&mut self, now: Time) {
        loop {
            let decl = self.declared.as_mut().expect("only a declared node admits");
            if decl.admitted.is_empty() {
                return;
            }
            let batch = std::mem::take(&mut decl.admitted);
            for arrived in batch {
                self.start_run(now, arrived);
            }
        }
    }

    /// Whether requests admitted by a freed slot wait to start.
    #[inline(always)]
    pub(super) fn has_admitted(&self) -> bool {
        self.declared
            .as_ref()
            .is_some_and(|d| !d.admitted.is_empty())
    }

    /// Sheds the requests that waited their longest for a slot.
    pub(super) fn on_admission_timer(&mut self, now: Time) {
        let Some(decl) = self.declared.as_mut() else {
            return;
        };
        let Some(admission) = decl.admission.as_mut() else {
            return;
        };
        let mut shed = std::mem::take(&mut decl.shed);
        admission.expire(now, &mut shed);
        for s in shed.drain(..) {
            self.shed_reply(s);
        }
        if let Some(decl) = self.declared.as_mut() {
            decl.shed = shed;
        }
        self.arm_admission_timer();
    }

    /// Asks for the one expiry timer of the admission queue, if a waiter needs it and
    /// none is outstanding.
    fn arm_admission_timer(&mut self) {
        let at = self
            .declared
            .as_mut()
            .and_then(|d| d.admission.as_mut())
            .and_then(Admission::arm_timer);
        if let Some(at) = at {
            self.effects.push(Effect::Timer {
                at,
                timer: Timer::Admission,
            });
        }
    }

    /// The reply to a request admission control shed: error 11, saying why.
    fn shed_reply(&mut self, shed: Shed<Arrived>) {
        let decl = self.declared.as_ref().expect("a declared service");
        let admission = decl.admission.as_ref().expect("shed by admission control");
        let config = admission.config();
        let name = &decl.service.endpoint(shed.item.endpoint).name;
        let tier = shed.tier.as_str();
        let why = match shed.reason {
            ShedReason::Full => format!(
                "the node is at its limit for {tier} requests ({} in flight) and has no \
                 room for it to wait",
                config.limit(shed.tier)
            ),
            ShedReason::Displaced => format!(
                "it waited {} for a slot and a request of a higher tier took its place",
                HumanSpan(shed.waited)
            ),
            ShedReason::Expired => format!(
                "it waited {} for a slot and none came free",
                HumanSpan(shed.waited)
            ),
        };
        let text = format!("{name}: shed ({tier} tier): {why}; retry later");
        let body = ReplyBody::Error {
            in_reply_to: shed.item.msg_id,
            code: ErrorCode::TemporarilyUnavailable,
            text,
        };
        self.reply(shed.item.to, body, Served::Shed);
    }

    /// The admission control's counts, if the service declares it.
    pub fn admission_stats(&self) -> Option<AdmissionStats> {
        self.declared
            .as_ref()?
            .admission
            .as_ref()
            .map(Admission::stats)
    }

    /// The deadline of request `run` (a harmless no-op once it is answered).
    pub(super) fn on_deadline(&mut self, now: Time, run: u64) {
        let Some(decl) = self.declared.as_mut() else {
            return;
        };
        let Some(r) = decl.runs.get_mut(run) else {
            return;
        };
        r.plan.on_deadline(&decl.service, now, &mut decl.actions);
        self.drive(now, run);
    }

    /// The answer to a read call of request `run`'s step.
    pub(super) fn on_step_read(
        &mut self,
        now: Time,
        run: u64,
        slot: Slot,
        dependency: usize,
        key: u64,
        result: CallResult,
    ) {
        let (answer, data) = match self.read_answer(now, dependency, key, result) {
            ReadAnswer::Found(record) => (Answer::Fresh, Some(PartData::Record(record))),
            ReadAnswer::NotFound => (Answer::NotFound, None),
            ReadAnswer::Failed(error) => (Answer::Failed(failure(error)), None),
        };
        self.answer(now, run, slot, answer, data);
        self.drive(now, run);
    }

    /// The answer to a write call of request `run`'s step.
    pub(super) fn on_step_write(
        &mut self,
        now: Time,
        run: u64,
        slot: Slot,
        dependency: usize,
        write: QueuedWrite,
        result: CallResult,
    ) {
        let key = write.key;
        match self.write_answer(now, dependency, key, result) {
            WriteAnswer::Applied(held) => {
                if let Some(name) = held {
                    let state = WriteState::Applied;
                    self.remember_write(now, dependency, key, write.version, name, state);
                }
                let data = PartData::Written {
                    id: key,
                    queued: false,
                };
                self.answer(now, run, slot, Answer::Fresh, Some(data));
            }
            WriteAnswer::Rejected(full) => {
                let reason = super::store_full_text(&self.deps[dependency], key, full);
                self.refuse_step(run, slot, reason);
                self.answer(now, run, slot, Answer::Rejected, None)
            }
            WriteAnswer::Failed(_)
                if self.deps[dependency].has_queue && self.is_waiting(run, slot) =>
            {
                // As the seed's writes: held for one backoff step rather than retried
                // into the same failure at once.
                let not_before = self.retry_after_failure(now, dependency);
                let answer = self.enqueue_step_write(now, run, slot, dependency, write, not_before);
                self.answer(now, run, slot, answer, None);
            }
            WriteAnswer::Failed(error) => {
                self.answer(now, run, slot, Answer::Failed(failure(error)), None)
            }
        }
        self.drive(now, run);
    }

    /// The deadline of request `run`, if it still waits for `slot` (`None` inside:
    /// the endpoint has none); `None` if it does not.
    pub(super) fn part_deadline(&mut self, run: u64, slot: Slot) -> Option<Option<Time>> {
        let r = self.declared.as_mut()?.runs.get_mut(run)?;
        r.plan.is_waiting(slot).then(|| r.plan.deadline())
    }

    /// The most attempts request `run`'s call at `slot` may make, if its step caps
    /// them below its dependency's policy.
    pub(super) fn step_max_attempts(&mut self, run: u64, slot: Slot) -> Option<u32> {
        let decl = self.declared.as_mut()?;
        let endpoint = decl.runs.get_mut(run)?.plan.endpoint();
        match &decl.service.endpoint(endpoint).plan.steps[slot.step.index()] {
            Step::Call(call) => call.leaf.max_attempts,
            _ => None,
        }
    }

    /// Whether request `run` still waits for `slot`.
    fn is_waiting(&mut self, run: u64, slot: Slot) -> bool {
        self.declared
            .as_mut()
            .and_then(|d| d.runs.get_mut(run))
            .is_some_and(|r| r.plan.is_waiting(slot))
    }

    /// Feeds `answer` to request `run`'s plan (keeping `data` if the run still waited
    /// for it). What follows is carried out by the caller's [`Node::drive`], in order
    /// after the actions already emitted.
    pub(super) fn answer(
        &mut self,
        now: Time,
        run: u64,
        slot: Slot,
        answer: Answer,
        data: Option<PartData>,
    ) {
        let Some(decl) = self.declared.as_mut() else {
            return;
        };
        let Some(r) = decl.runs.get_mut(run) else {
            return;
        };
        if let Some(data) = data {
            r.keep(slot, data);
        }
        r.plan
            .on_answer(&decl.service, slot, answer, now, &mut decl.actions);
    }

    /// Carries out request `run`'s actions until it waits for something.
    pub(super) fn drive(&mut self, now: Time, run: u64) {
        loop {
            let decl = self.declared.as_mut().expect("a declared run");
            if decl.actions.is_empty() {
                return;
            }
            let mut batch = std::mem::take(&mut decl.batch);
            std::mem::swap(&mut batch, &mut decl.actions);
            for action in batch.drain(..) {
                self.act(now, run, action);
            }
            self.declared.as_mut().expect("a declared run").batch = batch;
        }
    }

    fn act(&mut self, now: Time, run: u64, action: Action) {
        // An action emitted before the run gave up on its slot (the request failed,
        // or the deadline passed, later in the same batch) is not carried out.
        if let Action::StartCall { slot, .. } | Action::TryCache { slot, .. } = action {
            if !self.is_waiting(run, slot) {
                return;
            }
        }
        match action {
            Action::StartCall {
                slot,
                dependency,
                op,
                key_space,
                timeout,
            } => {
                let key = self.call_key(run, key_space);
                match op {
                    CallOp::Read => self.start_step_read(now, run, slot, dependency, key, timeout),
                    CallOp::Write => {
                        self.start_step_write(now, run, slot, dependency, key, timeout)
                    }
                }
            }
            Action::TryCache {
                slot,
                dependency,
                key_space,
                cause,
            } => {
                let key = self.call_key(run, key_space);
                // Read-your-writes: the node's own newer write wins over the stale cache.
                if let Some((record, age)) = self.pending_write(now, dependency.index(), key) {
                    let decl = self.declared.as_mut().expect("a declared run");
                    if let Some(r) = decl.runs.get_mut(run) {
                        r.keep(slot, PartData::Record(record));
                        r.plan
                            .on_pending_write(&decl.service, slot, age, now, &mut decl.actions);
                    }
                    return;
                }
                let dep = &mut self.deps[dependency.index()];
                let (hit, data) = if dep.has_cache {
                    match dep.cache.serve_stale(key, now, stale_reason(cause)) {
                        Ok(served) => (
                            Some(CacheHit {
                                age: served.age,
                                stale: served.stale,
                            }),
                            Some(PartData::Record(served.value.clone())),
                        ),
                        Err(_) => (None, None),
                    }
                } else {
                    (None, None)
                };
                let decl = self.declared.as_mut().expect("a declared run");
                if let Some(r) = decl.runs.get_mut(run) {
                    if let Some(data) = data {
                        r.keep(slot, data);
                    }
                    r.plan
                        .on_cache(&decl.service, slot, hit, now, &mut decl.actions);
                }
            }
            // The call stays outstanding: its answer still settles its breaker permit
            // (and fills the cache), and the run ignores it.
            Action::Abandon { .. } => {}
            Action::Done => self.finish_run(now, run),
        }
    }

    /// The key a call of request `run` uses: the request's own, or, for a call in
    /// another key space, the request's key mapped into that space (the same request
    /// key always to the same key there; a request without a key maps its run id).
    fn call_key(&mut self, run: u64, space: Option<KeySpaceId>) -> u64 {
        let decl = self.declared.as_mut().expect("a declared run");
        let r = decl.runs.get_mut(run).expect("a run in progress");
        let own = decl.service.endpoint(r.plan.endpoint()).key;
        match (space, r.key) {
            (None, Some(key)) => key,
            (Some(space), Some(key)) if Some(space) == own => key,
            (space, key) => {
                let n = space.or(own).map_or(u64::MAX, |s| {
                    decl.service.key_spaces[s.index()].keys.count()
                });
                let base = key.unwrap_or(run);
                let salt = u64::from(space.map_or(0, |s| s.0) + 1) << 48;
                1 + mix(base ^ salt) % n.max(1)
            }
        }
    }

    fn start_step_read(
        &mut self,
        now: Time,
        run: u64,
        slot: Slot,
        dependency: DependencyId,
        key: u64,
        timeout: Span,
    ) {
        let index = dependency.index();
        match self.begin_read(now, index, key) {
            ReadStart::Cached { record, age, stale } => {
                let answer = Answer::FromCache { age, stale };
                self.answer(now, run, slot, answer, Some(PartData::Record(record)));
            }
            ReadStart::Call(permit) => {
                let purpose = Purpose::Step { run, slot };
                let deadline = now.saturating_add(timeout);
                self.step_call(now, index, key, permit, Op::Read { key }, purpose, deadline);
            }
            ReadStart::BreakerOpen => {
                let answer = Answer::Failed(Failure::BreakerOpen);
                self.answer(now, run, slot, answer, None);
            }
        }
    }

    fn start_step_write(
        &mut self,
        now: Time,
        run: u64,
        slot: Slot,
        dependency: DependencyId,
        key: u64,
        timeout: Span,
    ) {
        let index = dependency.index();
        self.next_version += 1;
        let version = self.next_version;
        let name = {
            let decl = self.declared.as_mut().expect("a declared run");
            let r = decl.runs.get_mut(run).expect("a run in progress");
            r.value.clone().unwrap_or(Name::RecordRevised(key, version))
        };
        let write = QueuedWrite { key, name, version };
        // Unless its queue says `in_order`, a declared write does not wait behind the
        // queued ones while the dependency takes calls (see `QueueConfig::in_order`).
        match self.begin_write(now, index) {
            WriteStart::Call(permit) => {
                let op = Op::Write {
                    key,
                    name: write.name.clone(),
                    version,
                };
                let purpose = Purpose::StepWrite { run, slot, write };
                let deadline = now.saturating_add(timeout);
                self.step_call(now, index, key, permit, op, purpose, deadline);
            }
            WriteStart::Queue => {
                let answer = self.enqueue_step_write(now, run, slot, index, write, now);
                self.answer(now, run, slot, answer, None);
            }
            WriteStart::BreakerOpen => {
                let answer = Answer::Failed(Failure::BreakerOpen);
                self.answer(now, run, slot, answer, None);
            }
        }
    }

    /// Puts a step's write into its dependency's queue: `Queued` (recording the part and
    /// the depth) or `Rejected` when the queue is full.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn enqueue_step_write(
        &mut self,
        now: Time,
        run: u64,
        slot: Slot,
        index: usize,
        write: QueuedWrite,
        not_before: Time,
    ) -> Answer {
        let key = write.key;
        let remembered = self
            .remembers_writes(index)
            .then(|| (write.version, write.name.clone()));
        let dep = &mut self.deps[index];
        match dep.queue.enqueue_not_before(write, now, not_before) {
            Enqueue::Accepted { .. } => {
                let depth = dep.queue.depth();
                if let Some((version, name)) = remembered {
                    self.remember_write(now, index, key, version, name, WriteState::Queued);
                }
                if let Some(r) = self.declared.as_mut().and_then(|d| d.runs.get_mut(run)) {
                    let queued = PartData::Written {
                        id: key,
                        queued: true,
                    };
                    if r.keep(slot, queued) {
                        r.queue_depth = depth;
                    }
                }
                Answer::Queued
            }
            Enqueue::Rejected { depth } => {
                let reason = format!(
                    "{} cannot take it now and its write queue is full ({depth} writes \
                     waiting); the write to {} {key} was not accepted, retry later",
                    dep.name,
                    dep.noun()
                );
                self.refuse_step(run, slot, reason);
                Answer::Rejected
            }
        }
    }

    /// Records why request `run`'s write for `slot` was refused, if the run still
    /// waits for it.
    fn refuse_step(&mut self, run: u64, slot: Slot, reason: String) {
        if let Some(r) = self.declared.as_mut().and_then(|d| d.runs.get_mut(run)) {
            if r.plan.is_waiting(slot) {
                r.refusal = Some((slot.step, reason));
            }
        }
    }

    /// Request `run` is over: its reply goes out.
    fn finish_run(&mut self, now: Time, run: u64) {
        let decl = self.declared.as_mut().expect("a declared run");
        let Some(r) = decl.runs.remove(run) else {
            return;
        };
        let outcome = r.plan.outcome(&decl.service);
        let endpoint = r.plan.endpoint();
        let names = &decl.names[endpoint.index()];
        let (body, served) = match &outcome.error {
            Some(error) => {
                let code = if error.code == ErrorCode::KeyDoesNotExist.code() {
                    ErrorCode::KeyDoesNotExist
                } else {
                    ErrorCode::TemporarilyUnavailable
                };
                let served = if outcome.class == Class::Rejected {
                    Served::Rejected
                } else {
                    Served::Error { code: error.code }
                };
                let endpoint_name = &decl.service.endpoint(endpoint).name;
                let text = match &r.refusal {
                    Some((step, reason)) if *step == error.step => format!(
                        "{endpoint_name}: required part `{}` was refused: {reason}",
                        names.parts[step.index()]
                    ),
                    _ => format!("{endpoint_name}: {}", error.text),
                };
                let body = ReplyBody::Error {
                    in_reply_to: r.msg_id,
                    code,
                    text,
                };
                (body, served)
            }
            None => reply(names, &r, &outcome),
        };
        let to = r.to;
        if let Some(compute) = decl.compute.as_mut() {
            // The node's own work on the request takes longer the busier its CPU:
            // the endpoint's, and what serving its parts from their fallbacks cost.
            let ep = decl.service.endpoint(endpoint);
            let fallbacks: Span = outcome
                .steps
                .iter()
                .filter(|(_, served)| {
                    matches!(
                        served,
                        StepServed::Fallback { .. }
                            | StepServed::Stale { .. }
                            | StepServed::PendingWrite { .. }
                    )
                })
                .map(|&(step, _)| match &ep.plan.steps[step.index()] {
                    Step::Call(call) => call.leaf.fallback_cpu,
                    Step::Local(local) => local.leaf.fallback_cpu,
                    Step::Seq(_) | Step::Par(_) => 0,
                })
                .fold(0, Span::saturating_add);
            compute.charge(now, fallbacks);
            let took = compute.stretched(now, ep.cpu.saturating_add(fallbacks));
            if took > 0 {
                let held = decl.held.insert((to, body, served));
                self.effects.push(Effect::Timer {
                    at: now.saturating_add(took),
                    timer: Timer::Reply { held },
                });
                return;
            }
        }
        self.send_run_reply(to, body, served);
    }

    /// Sends a finished request's reply and releases its admission slot.
    fn send_run_reply(&mut self, to: RequestId, body: ReplyBody, served: Served) {
        let decl = self.declared.as_mut().expect("a declared run");
        if let Some(admission) = decl.admission.as_mut() {
            // Its slot goes to whoever waits, started once this input is handled.
            admission.release(&mut decl.admitted);
        }
        self.reply(to, body, served);
    }

    /// A reply held while the CPU worked on it is ready.
    pub(super) fn on_reply_timer(&mut self, held: u64) {
        let Some(decl) = self.declared.as_mut() else {
            return;
        };
        if let Some((to, body, served)) = decl.held.remove(held) {
            self.send_run_reply(to, body, served);
        }
    }

    /// Whether declared requests wait for something of the node's own: a slot, or
    /// their reply's CPU time (the CPU's sampling timer is not work left).
    pub(super) fn declared_busy(&self) -> bool {
        self.declared.as_ref().is_some_and(|d| {
            !d.held.is_empty() || d.admission.as_ref().is_some_and(|a| a.waiting() > 0)
        })
    }

    /// Whether the node measures its own CPU.
    pub(super) fn has_compute(&self) -> bool {
        self.declared.as_ref().is_some_and(|d| d.compute.is_some())
    }

    /// Records a scripted CPU curve's sample, added to the measured CPU.
    pub(super) fn set_noise(&mut self, cpu: f64) {
        if let Some(decl) = self.declared.as_mut() {
            decl.noise = cpu;
        }
    }

    /// Charges the node's CPU for handling an answer from dependency `index`.
    #[inline(always)]
    pub(super) fn charge_call(&mut self, now: Time, index: usize) {
        let cost = self.deps[index].cpu_per_call;
        if cost > 0 {
            if let Some(compute) = self.declared.as_mut().and_then(|d| d.compute.as_mut()) {
                compute.charge(now, cost);
            }
        }
    }

    /// Samples the measured CPU (plus the curve's) for the mode controller, and asks
    /// for the next sample.
    pub(super) fn on_cpu_timer(&mut self, now: Time) {
        let Some(decl) = self.declared.as_mut() else {
            return;
        };
        let Some(compute) = decl.compute.as_mut() else {
            return;
        };
        let cpu = compute.sample(now) + decl.noise;
        let next = now.saturating_add(compute.sample_every());
        let _ = self.modes.sample(cpu, now);
        self.effects.push(Effect::Timer {
            at: next,
            timer: Timer::Cpu,
        });
    }

    /// What the node's CPU did, if it measures it: its configuration and counters.
    pub fn compute(&self) -> Option<(&ComputeConfig, ComputeStats)> {
        let compute = self.declared.as_ref()?.compute.as_ref()?;
        Some((compute.config(), compute.stats()))
    }
}

/// The reply to a request that succeeded (possibly degraded or partial), and how it
/// was served: the worst of its parts.
fn reply(names: &EndpointNames, run: &Run, outcome: &Outcome) -> (ReplyBody, Served) {
    let mut data = SmallVec::new();
    let mut meta = ReplyMeta {
        partial: outcome.partial,
        deadline_passed: outcome.deadline_passed,
        ..ReplyMeta::default()
    };
    // The oldest cached, stale and pending-write part.
    let mut oldest = (0, 0, 0);
    let part_of = |step: StepId| {
        run.data
            .iter()
            .rev()
            .find(|(s, _)| *s == step)
            .map(|(_, d)| d.clone())
    };
    for &(step, served) in &outcome.steps {
        let part = names.parts[step.index()];
        meta.served.push((part, served.as_str()));
        if served.is_degraded() {
            meta.degraded.push(part);
        }
        let value = match served {
            StepServed::Fresh
            | StepServed::Cached { .. }
            | StepServed::Stale { .. }
            | StepServed::PendingWrite { .. } => part_of(step),
            StepServed::Queued => part_of(step),
            StepServed::Local => Some(PartData::Text(names.answers[step.index()])),
            StepServed::Fallback { index } => match names.statics[step.index()][usize::from(index)]
            {
                "" => part_of(step),
                text => Some(PartData::Text(text)),
            },
            StepServed::Omitted | StepServed::Missing { .. } => {
                meta.missing.push(part);
                None
            }
            StepServed::NotFound | StepServed::Rejected => None,
        };
        match served {
            StepServed::Cached { age } => oldest.0 = oldest.0.max(age),
            StepServed::Stale { age } => {
                oldest.1 = oldest.1.max(age);
                meta.stale.push((part, age));
            }
            StepServed::PendingWrite { age } => oldest.2 = oldest.2.max(age),
            _ => {}
        }
        if let Some(value) = value {
            data.push((part, value));
        }
    }
    let served = match outcome.class {
        Class::Fresh => Served::Fresh,
        Class::Cached => Served::Cached { age: oldest.0 },
        Class::Stale => Served::Stale { age: oldest.1 },
        Class::PendingWrite => Served::PendingWrite { age: oldest.2 },
        Class::Fallback => Served::Fallback,
        Class::Partial => Served::Partial,
        Class::Queued => Served::Queued {
            depth: run.queue_depth,
        },
        // A refused or missing required part is an error, handled by the caller.
        Class::Rejected | Class::Error => Served::Error {
            code: ErrorCode::TemporarilyUnavailable.code(),
        },
    };
    let body = ReplyBody::Endpoint(Box::new(EndpointReply {
        reply_type: names.reply_type,
        in_reply_to: run.msg_id,
        key: run.key,
        data,
        meta,
    }));
    (body, served)
}

#[cfg(test)]
mod tests;
