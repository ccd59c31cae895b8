//! The live driver of `brownout node`: Maelstrom JSON lines on stdin and stdout, the
//! real monotonic clock, and an in-process backend standing in for the dependencies.
//!
//! It only moves bytes and time: every decision is the [`Node`]'s. A reader thread
//! feeds lines through a channel so that the main loop can also wake for the node's
//! timers (a queued write drains while no input arrives). At end of input the node
//! finishes its own work (outstanding calls, queued writes) by running its timers
//! forward, then the driver exits.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::Value;

use crate::engine::Time;
use crate::node::{
    parse_body, Call, CallError, CallResult, DataSet, Effect, Node, NodeConfig, Op, ProtocolError,
    ReplyBody, RequestId, Resource, Store, Timer,
};

/// The seed of the live node's jitter stream: fixed, so a replayed input behaves alike.
const LIVE_SEED: u64 = 0x6272_6f77_6e6f_7574;

/// How many timers the node may run after end of input before the driver gives up on
/// its remaining work (a guard against a configuration that never settles).
const MAX_TIMERS_AFTER_EOF: usize = 1_000_000;

/// Options of `brownout node`.
#[derive(Debug, Clone, Default)]
pub struct LiveOptions {
    /// Write every engine event to stderr as a JSON line.
    pub log_events: bool,
}

/// The in-process backend: each dependency's store, answering calls at once.
struct Backend {
    stores: Vec<Store>,
}

impl Backend {
    fn new(data: &DataSet) -> Self {
        Backend {
            stores: Resource::ALL
                .iter()
                .map(|&r| Store::new(r, data.collection(r)))
                .collect(),
        }
    }

    fn execute(&mut self, call: &Call) -> CallResult {
        if call.force_down {
            return CallResult::Failed(CallError::Unavailable);
        }
        let store = &mut self.stores[call.dependency];
        match &call.op {
            Op::Read { key } => match store.read(*key) {
                Some(record) => CallResult::Found(record),
                None => CallResult::NotFound,
            },
            Op::Write { key, name, version } => {
                CallResult::Written(store.write(*key, name.clone(), *version))
            }
        }
    }
}

/// Where a reply goes: the request's `src` becomes the reply's `dest`.
struct Route {
    client: String,
    node: String,
}

#[derive(Serialize)]
struct Envelope<'a> {
    src: &'a str,
    dest: &'a str,
    body: &'a ReplyBody,
}

struct Driver<W: Write, E: Write> {
    node: Node,
    backend: Backend,
    out: W,
    err: E,
    options: LiveOptions,
    start: Instant,
    routes: BTreeMap<RequestId, Route>,
    next_request: u64,
    /// Timers by (due time, insertion seq): the seq keeps same-instant timers in order.
    timers: BTreeMap<(Time, u64), Timer>,
    timer_seq: u64,
    node_id: Option<String>,
    line_no: u64,
    effects: Vec<Effect>,
}

/// Runs the live node over `input` until end of input; replies go to `out`, logs to `err`.
pub fn run<R, W, E>(
    config: &NodeConfig,
    data: &DataSet,
    input: R,
    out: W,
    err: E,
    options: LiveOptions,
) -> io::Result<()>
where
    R: BufRead + Send + 'static,
    W: Write,
    E: Write,
{
    let rng = ChaCha8Rng::seed_from_u64(LIVE_SEED);
    let node = Node::new(config, data.warm_records(), rng)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let mut driver = Driver {
        node,
        backend: Backend::new(data),
        out,
        err,
        options,
        start: Instant::now(),
        routes: BTreeMap::new(),
        next_request: 0,
        timers: BTreeMap::new(),
        timer_seq: 0,
        node_id: None,
        line_no: 0,
        effects: Vec::new(),
    };
    let lines = spawn_reader(input);
    loop {
        let wait = driver.next_timer().map(|at| {
            let now = driver.now();
            Duration::from_micros(at.saturating_sub(now))
        });
        let received = match wait {
            Some(wait) => lines.recv_timeout(wait),
            None => lines.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match received {
            Ok(Ok(line)) => {
                driver.fire_due_timers()?;
                driver.line(&line)?;
            }
            Ok(Err(e)) => {
                writeln!(driver.err, "brownout node: cannot read input: {e}")?;
                break;
            }
            Err(RecvTimeoutError::Timeout) => driver.fire_due_timers()?,
            Err(RecvTimeoutError::Disconnected) => break,
        }
        // Flush when no more input is waiting, so an interactive client sees its reply
        // at once while a piped file is still written in large blocks.
        if lines.try_recv_would_block() {
            driver.out.flush()?;
        }
    }
    driver.finish()?;
    driver.out.flush()
}

/// The reader thread's end of the channel, with a peek for "nothing waiting".
struct Lines {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    peeked: std::cell::RefCell<Option<io::Result<Vec<u8>>>>,
}

impl Lines {
    fn recv(&self) -> Result<io::Result<Vec<u8>>, mpsc::RecvError> {
        if let Some(v) = self.peeked.borrow_mut().take() {
            return Ok(v);
        }
        self.rx.recv()
    }

    fn recv_timeout(&self, wait: Duration) -> Result<io::Result<Vec<u8>>, RecvTimeoutError> {
        if let Some(v) = self.peeked.borrow_mut().take() {
            return Ok(v);
        }
        self.rx.recv_timeout(wait)
    }

    fn try_recv_would_block(&self) -> bool {
        let mut peeked = self.peeked.borrow_mut();
        if peeked.is_some() {
            return false;
        }
        match self.rx.try_recv() {
            Ok(v) => {
                *peeked = Some(v);
                false
            }
            Err(mpsc::TryRecvError::Empty) => true,
            // End of input: nothing more will come, so flushing now is right too.
            Err(mpsc::TryRecvError::Disconnected) => true,
        }
    }
}

fn spawn_reader<R: BufRead + Send + 'static>(mut input: R) -> Lines {
    // Bounded, so a fast producer cannot make the node buffer an unbounded backlog.
    let (tx, rx) = mpsc::sync_channel(4096);
    std::thread::spawn(move || loop {
        let mut line = Vec::new();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) => {
                if tx.send(Ok(line)).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
    });
    Lines {
        rx,
        peeked: std::cell::RefCell::new(None),
    }
}

impl<W: Write, E: Write> Driver<W, E> {
    fn now(&self) -> Time {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn next_timer(&self) -> Option<Time> {
        self.timers.keys().next().map(|&(at, _)| at)
    }

    fn line(&mut self, raw: &[u8]) -> io::Result<()> {
        self.line_no += 1;
        let trimmed = raw.trim_ascii();
        if trimmed.is_empty() {
            return Ok(());
        }
        let message: Value = match serde_json::from_slice(trimmed) {
            Ok(v) => v,
            Err(e) => {
                return writeln!(
                    self.err,
                    "brownout node: input line {}: not JSON ({e}); skipped",
                    self.line_no
                );
            }
        };
        let Some(client) = message.get("src").and_then(Value::as_str) else {
            return writeln!(
                self.err,
                "brownout node: input line {}: message has no string `src` to reply to; skipped",
                self.line_no
            );
        };
        let dest = message.get("dest").and_then(Value::as_str).unwrap_or("");
        let route = Route {
            client: client.to_owned(),
            node: self.node_id.clone().unwrap_or_else(|| dest.to_owned()),
        };
        let to = RequestId(self.next_request);
        self.next_request += 1;
        self.routes.insert(to, route);
        let now = self.now();
        let Some(body) = message.get("body") else {
            let error = ProtocolError {
                code: crate::node::ErrorCode::MalformedRequest,
                text: "message has no `body`".to_owned(),
            };
            self.node.refuse(to, None, error);
            return self.apply_effects(now);
        };
        let parsed = parse_body(body);
        match parsed.request {
            Ok(request) => {
                if let crate::node::Request::Init { node_id } = &request {
                    if !node_id.is_empty() {
                        self.node_id = Some(node_id.clone());
                    }
                }
                self.node.handle(now, to, parsed.msg_id, request);
            }
            Err(error) => self.node.refuse(to, parsed.msg_id, error),
        }
        self.apply_effects(now)
    }

    fn fire_due_timers(&mut self) -> io::Result<()> {
        loop {
            let now = self.now();
            let Some(entry) = self.timers.first_entry() else {
                return Ok(());
            };
            if entry.key().0 > now {
                return Ok(());
            }
            let timer = entry.remove();
            self.node.on_timer(now, timer);
            self.apply_effects(now)?;
        }
    }

    /// End of input: run the node's timers forward (without waiting for the real clock)
    /// until it has nothing left of its own to do.
    fn finish(&mut self) -> io::Result<()> {
        self.fire_due_timers()?;
        let mut fired = 0;
        while self.node.is_busy() && fired < MAX_TIMERS_AFTER_EOF {
            let Some(((at, _), timer)) = self.timers.pop_first() else {
                break;
            };
            let now = at.max(self.now());
            self.node.on_timer(now, timer);
            self.apply_effects(now)?;
            fired += 1;
        }
        if self.node.is_busy() {
            writeln!(
                self.err,
                "brownout node: input ended with work the node could not finish (writes still queued)"
            )?;
        }
        Ok(())
    }

    /// Carries out the node's effects; calls are answered at once by the backend, which
    /// may produce more effects, handled in the same loop.
    fn apply_effects(&mut self, now: Time) -> io::Result<()> {
        loop {
            let mut effects = std::mem::take(&mut self.effects);
            self.node.take_effects(&mut effects);
            if effects.is_empty() {
                self.effects = effects;
                return Ok(());
            }
            for effect in &effects {
                match effect {
                    Effect::Reply { to, body, .. } => {
                        let route = self.routes.remove(to);
                        let (src, dest) = route
                            .as_ref()
                            .map_or(("", ""), |r| (r.node.as_str(), r.client.as_str()));
                        serde_json::to_writer(&mut self.out, &Envelope { src, dest, body })?;
                        self.out.write_all(b"\n")?;
                    }
                    Effect::Call(call) => {
                        let result = self.backend.execute(call);
                        self.node.on_call_result(now, call.id, result);
                    }
                    Effect::Timer { at, timer } => {
                        self.timers.insert((*at, self.timer_seq), *timer);
                        self.timer_seq += 1;
                    }
                    Effect::Event(event) => {
                        if self.options.log_events {
                            serde_json::to_writer(&mut self.err, event)?;
                            self.err.write_all(b"\n")?;
                        }
                    }
                }
            }
            self.effects = effects;
            self.effects.clear();
        }
    }
}
