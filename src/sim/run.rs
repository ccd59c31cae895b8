//! One simulated run: the event loop that drives the [`Node`] with virtual time.
//!
//! The loop pops `(time, seq)`-ordered events — workload arrivals, scripted messages,
//! dependency answers, the node's timers, CPU samples and fault edges — feeds each to
//! the node, and turns the node's effects back into events. Every component draws from
//! its own random stream ([`super::rng::stream`]), so adding a workload stream does not move
//! the fault draws, and the same scenario and seed give the same bytes on any machine.
//!
//! A dependency call's outcome is decided when the call starts (latency, error, fault
//! condition at that instant), and exactly one event is scheduled for it: the answer,
//! or the timeout at the call's deadline when the answer would come later or never.

use std::io::{self, Write};
use std::sync::Arc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::engine::Time;
use crate::intern::intern;
use crate::model::service::{DependencyId, EndpointId};
use crate::model::{RequestKind, Scenario};
use crate::node::{
    parse_body_for, Call, CallError, CallId, CallResult, Effect, InBandFault, Name, Node, Op,
    Request, RequestId, Resource, Served, Store, Timer, WireRequest,
};
use crate::seqmap::SeqMap;

use super::dist::LatencySampler;
use super::faults::{FaultEdge, FaultPlan, RandomWindows};
use super::load::CpuCurve;
use super::queue::LanedQueue;
use super::report::{workload_kind_index, Metrics, Report};
use super::rng::{stream, Stream};
use super::trace::Trace;
use super::workload::{Arrivals, KeyDraw, KeySampler, Mix};

/// Queries a `search` request can carry: a fixed set so that the hot loop allocates nothing.
const QUERIES: [&str; 8] = [
    "shoes",
    "laptop",
    "coffee",
    "tent",
    "headphones",
    "desk",
    "bicycle",
    "kettle",
];

/// What a run should produce besides its report.
pub struct RunOptions<'w> {
    /// The master seed (the scenario's own unless overridden).
    pub seed: u64,
    /// Where to stream the trace, if anywhere.
    pub trace: Option<&'w mut dyn Write>,
    /// Keep a digest of the full trace (needed for snapshots and self-checks).
    pub digest: bool,
}

impl RunOptions<'_> {
    /// A run as `brownout SCENARIO --seed N` does it: the report only, no trace and no
    /// digest (what sweeps, shrinking and comparisons run, so a replay measures the
    /// same values).
    pub fn plain(seed: u64) -> Self {
        RunOptions {
            seed,
            trace: None,
            digest: false,
        }
    }
}

/// Simulates `scenario` with `options` and returns its report.
pub fn run(scenario: &Scenario, options: RunOptions<'_>) -> io::Result<Report> {
    let trace = Trace::new(options.trace, options.digest);
    let mut sim = Simulation::new(scenario, options.seed, trace)?;
    sim.run()?;
    sim.finish()
}

/// An event in the queue. Kept small (16 bytes) because the heap moves entries on
/// every push and pop: a dependency's answer waits in `answers` and the event only
/// carries its slot.
#[derive(Debug, Clone, Copy)]
enum Ev {
    Arrival(u32),
    Script(u32),
    Answer(u64),
    Timer(Timer),
    Cpu,
    Fault(u32),
    /// The next edge of random fault entry `i` (see [`RandomEdges`]).
    RandomFault(u32),
    /// A declared endpoint's request reaches its deadline ([`Timer::Deadline`]).
    Deadline(u64),
}

const _: () = assert!(std::mem::size_of::<Ev>() <= 16);

struct DependencySim {
    latency: LatencySampler,
    error_rate: f64,
    down_latency: u64,
    max_concurrency: Option<u32>,
    /// Calls the service is working on (those that hold a concurrency slot).
    busy: u32,
    store: Store,
    rng: ChaCha8Rng,
}

/// The edges of one random fault entry, scheduled one at a time from a copy of the
/// entry's window generator (the plan's own copy advances with the calls' queries).
struct RandomEdges {
    windows: RandomWindows,
    /// The current window has started (its end edge is the one scheduled).
    inside: bool,
}

struct StreamSim {
    arrivals: Arrivals,
    mix: Mix,
    kinds: Vec<RequestKind>,
    users: KeySampler,
    products: KeySampler,
    rng: ChaCha8Rng,
    writes: u64,
    /// A declared service's endpoints, by their place in the mix (empty for the seed
    /// service, whose requests are `kinds`), and where each one's keys come from: an
    /// index into `key_samplers`, one per key space the stream's requests use (a zipf
    /// table is built once per space, however many endpoints share it).
    endpoints: Vec<EndpointId>,
    endpoint_keys: Vec<Option<usize>>,
    key_samplers: Vec<KeySampler>,
    /// The next arrival's request, drawn when the arrival is scheduled (see
    /// [`StreamSim::draw_next`]).
    next: Drawn,
}

/// A request's random choices.
#[derive(Debug, Clone, Copy)]
struct Drawn {
    kind: RequestKind,
    /// The key (or user) the request names; unused by a search.
    key: KeyDraw,
    /// Index into [`QUERIES`] of a search's query.
    query: u8,
    /// A declared service's request: the endpoint's place in the stream's mix.
    endpoint: u16,
}

impl StreamSim {
    /// The sampler of the key a request of `kind` names; none for a search. (A
    /// function of the fields, not `&self`, so that the stream's RNG can be borrowed
    /// beside it.)
    fn keys_for<'a>(
        kind: RequestKind,
        users: &'a KeySampler,
        products: &'a KeySampler,
    ) -> Option<&'a KeySampler> {
        match kind {
            RequestKind::GetUser | RequestKind::UpdateUser | RequestKind::GetRecommendations => {
                Some(users)
            }
            RequestKind::GetProduct | RequestKind::UpdateProduct => Some(products),
            RequestKind::Search => None,
        }
    }

    /// Draws the next arrival's request when the arrival is scheduled rather than when
    /// it comes, so that the key's table entry is on its way into the CPU's cache
    /// meanwhile. The stream draws in the same order either way (an arrival time, then
    /// that arrival's choices, then the next arrival time), so a seed gives the same
    /// requests.
    #[inline]
    fn draw_next(&mut self) {
        if !self.endpoints.is_empty() {
            return self.draw_next_endpoint();
        }
        let kind = self.kinds[self.mix.pick(&mut self.rng)];
        let (key, query) = match Self::keys_for(kind, &self.users, &self.products) {
            Some(keys) => (keys.draw(&mut self.rng), 0),
            None => (
                KeyDraw::default(),
                self.rng.random_range(0..QUERIES.len() as u8),
            ),
        };
        self.next = Drawn {
            kind,
            key,
            query,
            endpoint: 0,
        };
    }

    /// [`StreamSim::draw_next`] for a declared service: an endpoint, then its key.
    /// Out of line, so that the seed service's draw stays small enough to inline.
    #[inline(never)]
    fn draw_next_endpoint(&mut self) {
        let i = self.mix.pick(&mut self.rng);
        let key = match self.endpoint_keys[i] {
            Some(space) => self.key_samplers[space].draw(&mut self.rng),
            None => KeyDraw::default(),
        };
        self.next = Drawn {
            kind: RequestKind::GetUser,
            key,
            query: 0,
            endpoint: i as u16,
        };
    }
}

/// A dependency's answer, decided when the call started, waiting for its delivery.
struct Answer {
    id: CallId,
    result: CallResult,
    dependency: u8,
    /// The call holds one of the service's concurrency slots until delivery.
    holds_slot: bool,
    /// The service refused the call because it was at its concurrency limit.
    overloaded: bool,
}

/// A request waiting for its reply.
struct InFlight {
    at: Time,
    /// Index into [`report::KINDS`](super::report::KINDS).
    kind: u8,
    script: Option<u32>,
}

struct Simulation<'s, 'w> {
    scenario: &'s Scenario,
    seed: u64,
    /// Each workload stream's next arrival waits in the lane of the stream's index.
    events: LanedQueue<Ev>,
    node: Node,
    deps: Vec<DependencySim>,
    faults: FaultPlan,
    edges: Vec<FaultEdge>,
    random_edges: Vec<RandomEdges>,
    cpu: Option<(CpuCurve, ChaCha8Rng)>,
    streams: Vec<StreamSim>,
    in_flight: SeqMap<InFlight>,
    /// Answers decided when their call started, waiting for their delivery event.
    answers: SeqMap<Answer>,
    effects: Vec<Effect>,
    /// [`QUERIES`], allocated once: a search request clones one (a reference count)
    /// rather than allocating its query.
    queries: Vec<Arc<str>>,
    trace: Trace<'w>,
    metrics: Metrics,
    processed: u64,
    /// Each dependency's name, for trace lines.
    dep_names: Vec<&'static str>,
    /// A declared service's endpoint names, for trace lines (empty for the seed's).
    endpoint_names: Vec<&'static str>,
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}

impl<'s, 'w> Simulation<'s, 'w> {
    fn new(scenario: &'s Scenario, seed: u64, trace: Trace<'w>) -> io::Result<Self> {
        let (node, deps, dep_names, endpoint_names) = match &scenario.service {
            None => Self::seed_service(scenario, seed)?,
            Some(service) => {
                let node = Node::with_service(
                    service.clone(),
                    &scenario.node.modes,
                    stream(seed, Stream::Engine),
                )
                .map_err(invalid)?;
                let deps = service
                    .dependencies
                    .iter()
                    .enumerate()
                    .map(|(i, dep)| {
                        let sim = &dep.sim;
                        Ok(DependencySim {
                            latency: sim.latency.sampler().map_err(invalid)?,
                            error_rate: sim.error_rate,
                            down_latency: sim.down_latency,
                            max_concurrency: sim.max_concurrency,
                            busy: 0,
                            store: Store::declared(&service.collection(DependencyId(i as u16))),
                            rng: stream(seed, Stream::NamedDependency(dep.stream_key())),
                        })
                    })
                    .collect::<io::Result<Vec<_>>>()?;
                let names = service
                    .dependencies
                    .iter()
                    .map(|d| intern(&d.name))
                    .collect();
                let endpoints = service.endpoints.iter().map(|e| intern(&e.name)).collect();
                (node, deps, names, endpoints)
            }
        };
        let faults = FaultPlan::with_random(
            deps.len(),
            scenario.faults.clone(),
            &scenario.random_faults,
            scenario.duration,
            &mut stream(seed, Stream::Faults),
        )
        .map_err(invalid)?;
        let edges = faults.edges();
        let random_edges = faults
            .random()
            .iter()
            .map(|windows| RandomEdges {
                windows: windows.clone(),
                inside: false,
            })
            .collect();
        let cpu = match &scenario.cpu {
            Some(config) => Some((
                CpuCurve::new(config.clone()).map_err(invalid)?,
                stream(seed, Stream::Cpu),
            )),
            None => None,
        };
        let streams = scenario
            .workload
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let weights: Vec<f64> = if w.endpoints.is_empty() {
                    w.mix.iter().map(|&(_, weight)| weight).collect()
                } else {
                    w.endpoints.iter().map(|&(_, weight)| weight).collect()
                };
                let mut spaces = Vec::new();
                let mut key_samplers = Vec::new();
                let mut endpoint_keys = Vec::new();
                if let Some(service) = &scenario.service {
                    for &(e, _) in &w.endpoints {
                        let Some(space) = service.endpoint(e).key else {
                            endpoint_keys.push(None);
                            continue;
                        };
                        let place = match spaces.iter().position(|&s| s == space) {
                            Some(place) => place,
                            None => {
                                let keys = &service.key_spaces[space.index()].keys;
                                key_samplers.push(keys.sampler().map_err(invalid)?);
                                spaces.push(space);
                                spaces.len() - 1
                            }
                        };
                        endpoint_keys.push(Some(place));
                    }
                }
                Ok(StreamSim {
                    endpoints: w.endpoints.iter().map(|&(e, _)| e).collect(),
                    endpoint_keys,
                    key_samplers,
                    arrivals: Arrivals::new(&w.rate).map_err(invalid)?,
                    mix: Mix::new(&weights).map_err(invalid)?,
                    kinds: w.mix.iter().map(|&(kind, _)| kind).collect(),
                    users: w.user_keys.sampler().map_err(invalid)?,
                    products: w.product_keys.sampler().map_err(invalid)?,
                    rng: stream(seed, Stream::Workload(i as u32)),
                    writes: 0,
                    next: Drawn {
                        kind: RequestKind::GetUser,
                        key: KeyDraw::default(),
                        query: 0,
                        endpoint: 0,
                    },
                })
            })
            .collect::<io::Result<Vec<_>>>()?;
        let metrics = Metrics::new(scenario);
        Ok(Simulation {
            scenario,
            seed,
            events: LanedQueue::new(1024, streams.len()),
            node,
            deps,
            faults,
            edges,
            random_edges,
            cpu,
            streams,
            in_flight: SeqMap::new(),
            answers: SeqMap::new(),
            effects: Vec::new(),
            queries: QUERIES.iter().map(|&q| Arc::from(q)).collect(),
            trace,
            metrics,
            processed: 0,
            dep_names,
            endpoint_names,
        })
    }

    /// The node and simulated dependencies of the built-in seed service.
    #[allow(clippy::type_complexity)]
    fn seed_service(
        scenario: &Scenario,
        seed: u64,
    ) -> io::Result<(
        Node,
        Vec<DependencySim>,
        Vec<&'static str>,
        Vec<&'static str>,
    )> {
        let node = Node::new(
            &scenario.node,
            scenario.data.warm_records(),
            stream(seed, Stream::Engine),
        )
        .map_err(invalid)?;
        let deps = Resource::ALL
            .iter()
            .zip(&scenario.dependencies)
            .enumerate()
            .map(|(i, (&resource, dep))| {
                Ok(DependencySim {
                    latency: dep.latency.sampler().map_err(invalid)?,
                    error_rate: dep.error_rate,
                    down_latency: dep.down_latency,
                    max_concurrency: dep.max_concurrency,
                    busy: 0,
                    store: Store::new(resource, scenario.data.collection(resource)),
                    rng: stream(seed, Stream::Dependency(i as u32)),
                })
            })
            .collect::<io::Result<Vec<_>>>()?;
        let names = Resource::ALL.iter().map(|r| r.as_str()).collect();
        Ok((node, deps, names, Vec::new()))
    }

    fn run(&mut self) -> io::Result<()> {
        // Events the node produced while warming its cache (evictions) belong at t=0.
        self.apply_effects(0)?;
        for (i, edge) in self.edges.iter().enumerate() {
            self.events.push(edge.at, Ev::Fault(i as u32));
        }
        for (i, entry) in self.random_edges.iter().enumerate() {
            if let Some(w) = entry.windows.current() {
                self.events.push(w.start, Ev::RandomFault(i as u32));
            }
        }
        for (i, message) in self.scenario.script.iter().enumerate() {
            self.events.push(message.at, Ev::Script(i as u32));
        }
        if self.cpu.is_some() {
            self.events.push(0, Ev::Cpu);
        }
        for i in 0..self.streams.len() {
            self.schedule_arrival(i);
        }
        let end = self.scenario.duration;
        while let Some((now, event)) = self.events.pop() {
            if now > end {
                break;
            }
            self.processed += 1;
            self.metrics.advance(now, &self.node);
            match event {
                Ev::Arrival(i) => {
                    self.arrival(now, i as usize)?;
                    self.schedule_arrival(i as usize);
                }
                Ev::Script(i) => self.script(now, i)?,
                Ev::Answer(slot) => {
                    let Answer {
                        id,
                        result,
                        dependency,
                        holds_slot,
                        overloaded,
                    } = self
                        .answers
                        .remove(slot)
                        .expect("every answer event has its answer");
                    if holds_slot {
                        self.deps[usize::from(dependency)].busy -= 1;
                    }
                    self.metrics.answer(usize::from(dependency), &result);
                    if overloaded {
                        self.metrics.overload(usize::from(dependency));
                    }
                    if self.trace.enabled() {
                        self.trace.record(
                            now,
                            &AnswerLine {
                                kind: "answer",
                                call: id.0,
                                result: if overloaded {
                                    "overloaded"
                                } else {
                                    result_name(&result)
                                },
                            },
                        )?;
                    }
                    self.node.on_call_result(now, id, result);
                }
                Ev::Timer(timer) => self.node.on_timer(now, timer),
                Ev::Deadline(run) => self.node.on_timer(now, Timer::Deadline { run }),
                Ev::Cpu => {
                    let (curve, rng) = self.cpu.as_mut().expect("cpu events need a curve");
                    let cpu = curve.sample(now, rng);
                    let next = now + curve.every();
                    self.node.observe_cpu(now, cpu);
                    if next <= end {
                        self.events.push(next, Ev::Cpu);
                    }
                }
                Ev::Fault(i) => {
                    let edge = &self.edges[i as usize];
                    let fault = &self.faults.faults()[edge.fault_index];
                    let line = FaultLine {
                        kind: FaultLine::kind(edge.started),
                        dependency: self.dep_names[edge.dependency],
                        fault: fault.kind.as_str(),
                        index: Some(edge.fault_index),
                        random_fault: None,
                        window: None,
                    };
                    self.metrics.fault_edge(
                        now,
                        edge.dependency,
                        &fault.kind,
                        edge.started,
                        fault.end,
                    );
                    self.trace.record(now, &line)?;
                }
                Ev::RandomFault(i) => self.random_fault_edge(now, i)?,
            }
            self.apply_effects(now)?;
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<Report> {
        let end = self.scenario.duration;
        // What is still waiting has waited until the end, and was served by nobody.
        for (id, request) in self.in_flight.drain_in_order() {
            let waited = end - request.at;
            self.metrics.unanswered(request.kind, waited);
            if self.trace.enabled() {
                self.trace.record(
                    end,
                    &UnansweredLine {
                        kind: "unanswered",
                        id,
                        waited,
                    },
                )?;
            }
        }
        self.trace.flush()?;
        Ok(self.metrics.report(
            self.scenario,
            self.seed,
            &self.node,
            end,
            self.processed,
            self.trace.digest().map(|d| d.hex()),
        ))
    }

    /// Random fault entry `i`'s window starts or ends now; the entry's next edge is
    /// scheduled.
    fn random_fault_edge(&mut self, now: Time, i: u32) -> io::Result<()> {
        let edges = &mut self.random_edges[i as usize];
        let window = edges
            .windows
            .current()
            .expect("an edge is scheduled only for a window");
        let started = !edges.inside;
        let entry = edges.windows.entry();
        self.metrics
            .fault_edge(now, entry.dependency, &entry.kind, started, window.end);
        self.trace.record(
            now,
            &FaultLine {
                kind: FaultLine::kind(started),
                dependency: self.dep_names[entry.dependency],
                fault: entry.kind.as_str(),
                index: None,
                random_fault: Some(i),
                window: Some(window.ordinal),
            },
        )?;
        let next = if started {
            edges.inside = true;
            Some(window.end)
        } else {
            edges.inside = false;
            edges.windows.advance();
            edges.windows.current().map(|w| w.start)
        };
        if let Some(at) = next {
            self.events.push(at, Ev::RandomFault(i));
        }
        Ok(())
    }

    fn schedule_arrival(&mut self, i: usize) {
        let s = &mut self.streams[i];
        if let Some(at) = s.arrivals.next(&mut s.rng) {
            if at <= self.scenario.duration {
                s.draw_next();
                self.events.push_lane(i, at, Ev::Arrival(i as u32));
            }
        }
    }

    fn arrival(&mut self, now: Time, i: usize) -> io::Result<()> {
        if !self.streams[i].endpoints.is_empty() {
            return self.endpoint_arrival(now, i);
        }
        let s = &mut self.streams[i];
        let Drawn {
            kind, key, query, ..
        } = s.next;
        let key = StreamSim::keys_for(kind, &s.users, &s.products).map_or(0, |keys| keys.key(key));
        let request = match kind {
            RequestKind::GetUser => Request::Read {
                resource: Resource::Users,
                key,
                fault: InBandFault::default(),
            },
            RequestKind::GetProduct => Request::Read {
                resource: Resource::Products,
                key,
                fault: InBandFault::default(),
            },
            RequestKind::UpdateUser | RequestKind::UpdateProduct => {
                let resource = if kind == RequestKind::UpdateUser {
                    Resource::Users
                } else {
                    Resource::Products
                };
                s.writes += 1;
                Request::Write {
                    resource,
                    key,
                    name: Name::Revised(resource, key, s.writes),
                    fault: InBandFault::default(),
                }
            }
            RequestKind::GetRecommendations => Request::Recommendations { user_id: key },
            RequestKind::Search => Request::Search {
                query: self.queries[usize::from(query)].clone(),
            },
        };
        let to = self.new_request(now, workload_kind_index(kind), None);
        let msg_id = Some(to.0);
        if self.trace.enabled() {
            let name = &self.scenario.workload[i].name;
            self.trace.record(
                now,
                &RequestLine {
                    kind: "request",
                    id: to.0,
                    source: name,
                    body: WireRequest {
                        msg_id,
                        request: &request,
                    },
                },
            )?;
        }
        self.node.handle(now, to, msg_id, request);
        Ok(())
    }

    /// A workload request of a declared service's endpoint (out of line, as
    /// [`StreamSim::draw_next_endpoint`]).
    #[inline(never)]
    fn endpoint_arrival(&mut self, now: Time, i: usize) -> io::Result<()> {
        let s = &mut self.streams[i];
        let drawn = s.next;
        let place = usize::from(drawn.endpoint);
        let endpoint = s.endpoints[place];
        let key = s.endpoint_keys[place].map(|space| s.key_samplers[space].key(drawn.key));
        let to = self.new_request(now, endpoint.0 as u8, None);
        self.metrics.request();
        let msg_id = Some(to.0);
        if self.trace.enabled() {
            let name = &self.scenario.workload[i].name;
            self.trace.record(
                now,
                &RequestLine {
                    kind: "request",
                    id: to.0,
                    source: name,
                    body: EndpointRequest {
                        kind: self.endpoint_names[endpoint.index()],
                        msg_id,
                        key,
                    },
                },
            )?;
        }
        self.node
            .handle_endpoint(now, to, msg_id, endpoint, key, None);
        Ok(())
    }

    fn script(&mut self, now: Time, index: u32) -> io::Result<()> {
        let message = &self.scenario.script[index as usize];
        let parsed = parse_body_for(self.scenario.service.as_deref(), &message.body);
        let kind = match &parsed.request {
            Ok(Request::Endpoint { endpoint, .. }) => {
                self.metrics.request();
                endpoint.0 as u8
            }
            Ok(request) => self.metrics.kind_index(request.type_name()),
            Err(_) => self.metrics.kind_index("invalid"),
        };
        let to = self.new_request(now, kind, Some(index));
        self.trace.record(
            now,
            &RequestLine {
                kind: "request",
                id: to.0,
                source: "script",
                body: &message.body,
            },
        )?;
        match parsed.request {
            Ok(request) => self.node.handle(now, to, parsed.msg_id, request),
            Err(error) => self.node.refuse(to, parsed.msg_id, error),
        }
        Ok(())
    }

    fn new_request(&mut self, now: Time, kind: u8, script: Option<u32>) -> RequestId {
        RequestId(self.in_flight.insert(InFlight {
            at: now,
            kind,
            script,
        }))
    }

    fn apply_effects(&mut self, now: Time) -> io::Result<()> {
        let mut effects = std::mem::take(&mut self.effects);
        self.node.take_effects(&mut effects);
        // By reference, then cleared: moving each effect out of the buffer copied it
        // (112 bytes) onto the stack, and that copy stalled on every event.
        for effect in &effects {
            match *effect {
                Effect::Reply {
                    to,
                    ref body,
                    served,
                } => {
                    let Some(request) = self.in_flight.remove(to.0) else {
                        continue;
                    };
                    let latency = now - request.at;
                    self.metrics
                        .reply(request.kind, served, latency, request.script, now, body);
                    if self.trace.enabled() {
                        self.trace.record(
                            now,
                            &ReplyLine {
                                kind: "reply",
                                id: to.0,
                                latency,
                                served,
                                body,
                            },
                        )?;
                    }
                }
                Effect::Call(ref call) => {
                    if self.trace.enabled() {
                        self.trace.record(
                            now,
                            &CallLine {
                                kind: "call",
                                call: call.id.0,
                                dependency: self.dep_names[call.dependency],
                                op: &call.op,
                                force_down: call.force_down,
                                deadline: call.deadline,
                            },
                        )?;
                    }
                    let (at, result, holds_slot, overloaded) = self.dependency_answer(now, call);
                    self.metrics.call(call.dependency, call.kind, now);
                    let slot = self.answers.insert(Answer {
                        id: call.id,
                        result,
                        dependency: call.dependency as u8,
                        holds_slot,
                        overloaded,
                    });
                    self.events.push(at, Ev::Answer(slot));
                }
                Effect::Timer {
                    at,
                    timer: Timer::Deadline { run },
                } => self.events.push(at, Ev::Deadline(run)),
                Effect::Timer { at, timer } => self.events.push(at, Ev::Timer(timer)),
                Effect::Event(ref event) => {
                    self.metrics.event(now, event, &self.node);
                    if self.trace.enabled() {
                        self.trace.record(
                            now,
                            &EventLine {
                                kind: "event",
                                event,
                            },
                        )?;
                    }
                }
            }
        }
        effects.clear();
        // Put the (now empty) buffer back, keeping its capacity. The placeholder `take`
        // left is an unallocated `Vec::new()`: forgetting it frees nothing and skips a
        // call to drop glue on every event (1% of a long run).
        std::mem::forget(std::mem::replace(&mut self.effects, effects));
        Ok(())
    }

    /// Decides a call's outcome now and when it is delivered, whether it holds one of
    /// the service's concurrency slots until then, and whether the service refused it
    /// as overloaded (the trace says so): a down or overloaded service
    /// refuses fast, a hang or an answer slower than the deadline becomes a timeout at
    /// the deadline, otherwise the answer (or an injected error) arrives after the
    /// latency.
    fn dependency_answer(&mut self, now: Time, call: &Call) -> (Time, CallResult, bool, bool) {
        let condition = self.faults.condition(call.dependency, now);
        let dep = &mut self.deps[call.dependency];
        let down = call.force_down || condition.down;
        let overloaded = !down && dep.max_concurrency.is_some_and(|max| dep.busy >= max);
        if down || overloaded {
            let at = now.saturating_add(dep.down_latency).min(call.deadline);
            let result = if at == call.deadline {
                CallResult::Failed(CallError::Timeout)
            } else {
                CallResult::Failed(CallError::Unavailable)
            };
            return (at, result, false, overloaded);
        }
        dep.busy += 1;
        let (at, result) = Self::serve(dep, now, call, &condition);
        (at, result, true, false)
    }

    /// The answer of a service that took the call.
    fn serve(
        dep: &mut DependencySim,
        now: Time,
        call: &Call,
        condition: &super::faults::Condition,
    ) -> (Time, CallResult) {
        if condition.hang {
            return (call.deadline, CallResult::Failed(CallError::Timeout));
        }
        // Saturating: spans are bounded (MAX_SPAN), so this is a guard, not a case.
        let latency = dep
            .latency
            .sample(&mut dep.rng)
            .saturating_add(condition.added_latency);
        let error_rate = 1.0 - (1.0 - dep.error_rate) * (1.0 - condition.extra_error_rate);
        let failed = error_rate > 0.0 && dep.rng.random::<f64>() < error_rate;
        let at = now.saturating_add(latency);
        if failed {
            if at >= call.deadline {
                return (call.deadline, CallResult::Failed(CallError::Timeout));
            }
            return (at, CallResult::Failed(CallError::Error));
        }
        // The service does the work even when the client has stopped waiting: a write
        // that times out may still be applied (and a retry then applies it again).
        let result = dep.store.execute(&call.op);
        if at >= call.deadline {
            (call.deadline, CallResult::Failed(CallError::Timeout))
        } else {
            (at, result)
        }
    }
}

fn result_name(result: &CallResult) -> &'static str {
    match result {
        CallResult::Found(_) => "found",
        CallResult::NotFound => "not_found",
        CallResult::Written(_) => "written",
        CallResult::Rejected(_) => "rejected",
        CallResult::Failed(CallError::Unavailable) => "unavailable",
        CallResult::Failed(CallError::Error) => "error",
        CallResult::Failed(CallError::Timeout) => "timeout",
    }
}

#[derive(Serialize)]
struct RequestLine<'a, B: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: u64,
    source: &'a str,
    body: B,
}

/// A declared endpoint's request as a client would send it.
#[derive(Serialize)]
struct EndpointRequest {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    msg_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<u64>,
}

#[derive(Serialize)]
struct ReplyLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: u64,
    latency: u64,
    served: Served,
    body: &'a crate::node::ReplyBody,
}

/// A request with no reply by the end of the run.
#[derive(Serialize)]
struct UnansweredLine {
    #[serde(rename = "type")]
    kind: &'static str,
    id: u64,
    waited: u64,
}

#[derive(Serialize)]
struct CallLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    call: u64,
    dependency: &'static str,
    op: &'a Op,
    force_down: bool,
    deadline: Time,
}

#[derive(Serialize)]
struct AnswerLine {
    #[serde(rename = "type")]
    kind: &'static str,
    call: u64,
    result: &'static str,
}

#[derive(Serialize)]
struct EventLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    event: &'a crate::node::NodeEvent,
}

/// A fault window starting or ending: a fixed fault by its index in the file, a
/// random one by its entry's index and the window's ordinal.
#[derive(Serialize)]
struct FaultLine {
    #[serde(rename = "type")]
    kind: &'static str,
    dependency: &'static str,
    fault: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    random_fault: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    window: Option<u64>,
}

impl FaultLine {
    fn kind(started: bool) -> &'static str {
        if started {
            "fault_start"
        } else {
            "fault_end"
        }
    }
}
