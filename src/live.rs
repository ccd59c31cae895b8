//! The live driver of `brownout node`: Maelstrom JSON lines on stdin and stdout, the
//! real monotonic clock, and an in-process backend standing in for the dependencies.
//!
//! It only moves bytes and time: every decision is the [`Node`]'s. A reader thread
//! feeds lines through a channel so that the main loop can also wake for the node's
//! timers (a queued write drains while no input arrives). At end of input the node
//! finishes its own work (outstanding calls, queued writes) by running its timers
//! forward, then the driver exits.
//!
//! Its memory does not grow with its input. Lines longer than
//! [`LiveOptions::max_line_bytes`] are skipped as they stream past, never held whole; the
//! reader sends lines in batches, a few batches ahead at most; and the in-process stores
//! take writes only up to [`LiveOptions::store`] beyond the data set, answering a write
//! past that with an error reply (the node's cache and write queues are bounded by their
//! own capacities, and nothing is kept per client once a request is answered).

use std::collections::BTreeMap;
use std::io::{self, BufRead, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::Value;

use crate::engine::modes::ModeConfig;
use crate::engine::Time;
use crate::model::{DependencyId, Service};
use crate::node::{
    parse_body_for, Call, CallError, CallResult, DataSet, Effect, Node, NodeConfig, ProtocolError,
    ReplyBody, RequestId, Resource, Store, StoreLimits, Timer,
};

/// The seed of the live node's jitter stream: fixed, so a replayed input behaves alike.
const LIVE_SEED: u64 = 0x6272_6f77_6e6f_7574;

/// How many timers the node may run after end of input before the driver gives up on
/// its remaining work (a guard against a configuration that never settles).
const MAX_TIMERS_AFTER_EOF: usize = 1_000_000;

/// Default longest input line, in bytes, its newline not counted: 1 MiB. A request
/// line is a few hundred bytes; a longer line is reported and skipped.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;

/// Default records that writes may create in each store beyond its data set: 100 000.
/// A record created by a write takes about 110 bytes besides its name.
pub const DEFAULT_MAX_NEW_RECORDS: u64 = 100_000;

/// Default bytes of names each store may hold beyond its data set's: 8 MiB.
///
/// With [`DEFAULT_MAX_NEW_RECORDS`] this keeps the whole node under about 45 MiB of
/// resident memory whatever the writes (the worst case is both stores full of names of
/// about 80 bytes, where both bounds bind at once), well under a 64 MiB budget.
pub const DEFAULT_MAX_NAME_BYTES: u64 = 8 << 20;

/// Batches of lines the reader thread may have read ahead of the node. A batch is what
/// one read of the input finished (at most the input's buffer, plus the line it
/// completes), so this and the line limit bound the input held in memory, while a few
/// batches of read-ahead keep both threads busy.
const READ_AHEAD_BATCHES: usize = 4;

/// Options of `brownout node`.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Write every engine event to stderr as a JSON line.
    pub log_events: bool,
    /// The longest input line taken, in bytes, its newline not counted.
    pub max_line_bytes: usize,
    /// What writes may add to each in-process store.
    pub store: StoreLimits,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            log_events: false,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            store: StoreLimits {
                max_new_records: DEFAULT_MAX_NEW_RECORDS,
                max_name_bytes: DEFAULT_MAX_NAME_BYTES,
            },
        }
    }
}

/// What a live node serves.
#[derive(Debug, Clone)]
pub enum Serving<'a> {
    /// The seed task's service, configured by `config`, its stores holding `data`.
    Seed {
        /// The engine's configuration.
        config: &'a NodeConfig,
        /// The data set.
        data: &'a DataSet,
    },
    /// A declared service with the mode controller `modes`. Each dependency's store
    /// holds the records of the key spaces its calls use ([`Service::collection`]).
    Declared {
        /// The service.
        service: Arc<Service>,
        /// The mode controller's configuration.
        modes: &'a ModeConfig,
    },
}

/// The in-process backend: each dependency's store, answering calls at once.
struct Backend {
    stores: Vec<Store>,
}

impl Backend {
    fn new(serving: &Serving<'_>, limits: StoreLimits) -> Self {
        let stores = match serving {
            Serving::Seed { data, .. } => Resource::ALL
                .iter()
                .map(|&r| Store::with_limits(r, data.collection(r), limits))
                .collect(),
            Serving::Declared { service, .. } => (0..service.dependencies.len())
                .map(|i| {
                    let collection = service.collection(DependencyId(i as u16));
                    Store::declared_with_limits(&collection, limits)
                })
                .collect(),
        };
        Backend { stores }
    }

    fn execute(&mut self, call: &Call) -> CallResult {
        if call.force_down {
            return CallResult::Failed(CallError::Unavailable);
        }
        self.stores[call.dependency].execute(&call.op)
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
    /// The declared service served, if not the seed's: requests parse against it.
    service: Option<Arc<Service>>,
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
    serving: Serving<'_>,
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
    let node = match &serving {
        Serving::Seed { config, data } => Node::new(config, data.warm_records(), rng),
        Serving::Declared { service, modes } => Node::with_service(service.clone(), modes, rng),
    }
    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let mut driver = Driver {
        service: node.service().cloned(),
        node,
        backend: Backend::new(&serving, options.store),
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
    let lines = spawn_reader(input, driver.options.max_line_bytes);
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
            Ok(Input::Lines(batch)) => {
                let mut rest = &batch[..];
                while !rest.is_empty() {
                    let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
                    let (line, tail) = rest.split_at(end);
                    rest = tail;
                    driver.fire_due_timers()?;
                    driver.line(line)?;
                }
            }
            Ok(Input::TooLong(len)) => {
                driver.fire_due_timers()?;
                driver.line_no += 1;
                writeln!(
                    driver.err,
                    "brownout node: input line {}: {len} bytes, over the limit of {} \
                     (--max-line-bytes); skipped",
                    driver.line_no, driver.options.max_line_bytes
                )?;
            }
            Ok(Input::Failed(e)) => {
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

/// What the reader thread hands the driver, in input order.
#[derive(Debug)]
enum Input {
    /// Complete lines, each with its newline (the input's last line may lack it).
    Lines(Vec<u8>),
    /// A line longer than the limit, skipped as it was read: its length in bytes,
    /// the newline not counted.
    TooLong(u64),
    /// Reading failed; nothing follows.
    Failed(io::Error),
}

/// The reader thread's end of the channel, with a peek for "nothing waiting".
struct Lines {
    rx: mpsc::Receiver<Input>,
    peeked: std::cell::RefCell<Option<Input>>,
}

impl Lines {
    fn recv(&self) -> Result<Input, mpsc::RecvError> {
        if let Some(v) = self.peeked.borrow_mut().take() {
            return Ok(v);
        }
        self.rx.recv()
    }

    fn recv_timeout(&self, wait: Duration) -> Result<Input, RecvTimeoutError> {
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

fn spawn_reader<R: BufRead + Send + 'static>(input: R, max_line_bytes: usize) -> Lines {
    // Bounded, so a fast producer cannot make the node buffer an unbounded backlog.
    let (tx, rx) = mpsc::sync_channel(READ_AHEAD_BATCHES);
    std::thread::spawn(move || read_lines(input, max_line_bytes, |item| tx.send(item).is_ok()));
    Lines {
        rx,
        peeked: std::cell::RefCell::new(None),
    }
}

/// Reads `input` to its end and hands it to `send` as [`Input`]s, in order, until
/// `send` returns `false`: after each read, the lines it finished, in one batch; a line
/// longer than `max_line_bytes` as [`Input::TooLong`], once its end has been read.
///
/// Lines are cut from the input's own buffer, so a batch holds at most what one read
/// returned plus the start of the line it finished; a line found to be too long is
/// dropped from memory at once and the rest of it discarded as it is read.
fn read_lines<R: BufRead>(
    mut input: R,
    max_line_bytes: usize,
    mut send: impl FnMut(Input) -> bool,
) {
    // Complete lines, then the start of an unfinished one from `line_start` on.
    let mut batch: Vec<u8> = Vec::new();
    let mut line_start = 0;
    // While a too-long line is being skipped: its length so far.
    let mut skipping: Option<u64> = None;
    loop {
        let chunk = match input.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // An unfinished line is lost with the input; the finished ones count.
                batch.truncate(line_start);
                if !batch.is_empty() && !send(Input::Lines(batch)) {
                    return;
                }
                send(Input::Failed(e));
                return;
            }
        };
        if chunk.is_empty() {
            // End of input: the last line counts even without a newline.
            if !batch.is_empty() && !send(Input::Lines(batch)) {
                return;
            }
            if let Some(len) = skipping {
                send(Input::TooLong(len));
            }
            return;
        }
        let read = chunk.len();
        let mut rest = chunk;
        while !rest.is_empty() {
            let newline = memchr::memchr(b'\n', rest);
            // This read's part of the current line, its newline not counted.
            let part = newline.unwrap_or(rest.len());
            if let Some(len) = skipping.as_mut() {
                *len += part as u64;
            } else if batch.len() - line_start + part > max_line_bytes {
                skipping = Some((batch.len() - line_start + part) as u64);
                batch.truncate(line_start);
            } else {
                batch.extend_from_slice(&rest[..newline.map_or(part, |i| i + 1)]);
            }
            let Some(i) = newline else { break };
            rest = &rest[i + 1..];
            if let Some(len) = skipping.take() {
                // The lines before it go first, so that the driver sees input order.
                if !batch.is_empty() && !send(Input::Lines(std::mem::take(&mut batch))) {
                    return;
                }
                if !send(Input::TooLong(len)) {
                    return;
                }
            }
            line_start = batch.len();
        }
        input.consume(read);
        // The lines this read finished go now; an unfinished one waits for the next.
        if line_start > 0 {
            let mut next = Vec::with_capacity(read + (batch.len() - line_start));
            next.extend_from_slice(&batch[line_start..]);
            batch.truncate(line_start);
            if !send(Input::Lines(std::mem::replace(&mut batch, next))) {
                return;
            }
            line_start = 0;
        }
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
        let parsed = parse_body_for(self.service.as_deref(), body);
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
            if timer == Timer::Cpu {
                // The CPU's sampling renews itself forever and is no work of a
                // request's: past end of input, it would only use up the timers the
                // held replies need.
                continue;
            }
            let now = at.max(self.now());
            self.node.on_timer(now, timer);
            self.apply_effects(now)?;
            fired += 1;
        }
        if self.node.is_busy() {
            writeln!(
                self.err,
                "brownout node: input ended with work the node could not finish (writes still queued, or requests still waiting)"
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What [`read_lines`] hands on from `input` read `buffer` bytes at a time, with
    /// consecutive batches joined (how lines fall into batches depends on the reads).
    fn read(input: &[u8], buffer: usize, max_line_bytes: usize) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut joining = false;
        let reader = io::BufReader::with_capacity(buffer, input);
        read_lines(reader, max_line_bytes, |item| {
            match item {
                Input::Lines(batch) => {
                    assert!(!batch.is_empty(), "an empty batch was sent");
                    let text = String::from_utf8(batch).unwrap();
                    match out.last_mut() {
                        Some(last) if joining => last.push_str(&text),
                        _ => out.push(text),
                    }
                    joining = true;
                    return true;
                }
                Input::TooLong(len) => out.push(format!("<{len} bytes skipped>")),
                Input::Failed(e) => out.push(format!("<failed: {e}>")),
            }
            joining = false;
            true
        });
        out
    }

    /// The same, the obvious way: the whole input split at its newlines.
    fn expected(input: &[u8], max_line_bytes: usize) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut joining = false;
        for line in input.split_inclusive(|&b| b == b'\n') {
            let len = line.len() - usize::from(line.ends_with(b"\n"));
            if len > max_line_bytes {
                out.push(format!("<{len} bytes skipped>"));
                joining = false;
                continue;
            }
            let text = std::str::from_utf8(line).unwrap();
            match out.last_mut() {
                Some(last) if joining => last.push_str(text),
                _ => out.push(text.to_owned()),
            }
            joining = true;
        }
        out
    }

    #[test]
    fn lines_are_handed_on_whole_and_a_last_line_without_newline_counts() {
        assert_eq!(read(b"a\nbb\nccc", 64, 10), ["a\nbb\nccc"]);
        assert_eq!(read(b"", 64, 10), Vec::<String>::new());
        assert_eq!(read(b"\n\n", 1, 10), ["\n\n"]);
    }

    #[test]
    fn a_line_over_the_limit_is_skipped_in_its_place_and_its_length_reported() {
        assert_eq!(
            read(b"12345\n123456\n", 64, 5),
            ["12345\n", "<6 bytes skipped>"]
        );
        let mut input = b"ab\n".to_vec();
        input.extend_from_slice(&[b'x'; 10]);
        input.extend_from_slice(b"\ncd\n");
        for buffer in [1, 3, 4, 64] {
            assert_eq!(
                read(&input, buffer, 5),
                ["ab\n", "<10 bytes skipped>", "cd\n"],
                "buffer {buffer}"
            );
        }
        // At the end of input, without a newline.
        assert_eq!(read(b"ok\nyyyyyyyy", 4, 5), ["ok\n", "<8 bytes skipped>"]);
    }

    #[test]
    fn a_line_longer_than_any_read_is_reported_with_its_full_length() {
        /// One line of `.0` bytes, with no newline.
        struct Filler(u64);
        impl io::Read for Filler {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(usize::try_from(self.0).unwrap_or(usize::MAX));
                buf[..n].fill(b'z');
                self.0 -= n as u64;
                Ok(n)
            }
        }
        let reader = io::BufReader::with_capacity(1 << 16, Filler(64 << 20));
        let mut items = Vec::new();
        read_lines(reader, 1 << 20, |item| {
            items.push(item);
            true
        });
        assert!(
            matches!(items[..], [Input::TooLong(len)] if len == 64 << 20),
            "{items:?}"
        );
    }

    #[test]
    fn reading_matches_splitting_the_whole_input_whatever_the_reads() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..200 {
            let len = rand::Rng::random_range(&mut rng, 0..200);
            let input: Vec<u8> = (0..len)
                .map(|_| {
                    if rand::Rng::random_bool(&mut rng, 0.15) {
                        b'\n'
                    } else {
                        b'a'
                    }
                })
                .collect();
            let max = rand::Rng::random_range(&mut rng, 1..12);
            let buffer = rand::Rng::random_range(&mut rng, 1..40);
            assert_eq!(
                read(&input, buffer, max),
                expected(&input, max),
                "input {:?}, buffer {buffer}, limit {max}",
                String::from_utf8_lossy(&input)
            );
        }
    }

    #[test]
    fn the_reader_stops_when_the_driver_has_gone() {
        let mut sent = 0;
        let reader = io::BufReader::with_capacity(2, &b"a\nb\nc\nd\n"[..]);
        read_lines(reader, 10, |_| {
            sent += 1;
            false
        });
        assert_eq!(sent, 1);
    }
}
