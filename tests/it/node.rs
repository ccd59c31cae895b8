//! `brownout node` as a client sees it: the real binary, JSON lines on its stdin, replies
//! read from its stdout, logs from its stderr.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_brownout");

/// How long any one wait may take before the test calls the node hung.
const PATIENCE: Duration = Duration::from_secs(10);

/// A running `brownout node` with its pipes.
struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    stderr: JoinHandle<String>,
}

/// A node that has exited: its status, the replies it wrote that nobody read yet, its log.
struct Finished {
    status: ExitStatus,
    replies: Vec<Value>,
    stderr: String,
}

impl Session {
    fn start(args: &[&str]) -> Session {
        let mut child = Command::new(BIN)
            .arg("node")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the brownout binary starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            stderr.read_to_string(&mut text).unwrap();
            text
        });
        Session {
            stdin: child.stdin.take(),
            child,
            stdout: rx,
            stderr,
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// The next reply line, parsed.
    fn recv(&mut self) -> Value {
        let line = self
            .stdout
            .recv_timeout(PATIENCE)
            .expect("the node answers within the time limit");
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"))
    }

    /// Closes stdin and waits for the node to exit.
    fn finish(mut self) -> Finished {
        drop(self.stdin.take());
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > PATIENCE {
                let _ = self.child.kill();
                panic!("the node did not exit within {PATIENCE:?} of end of input");
            }
            thread::sleep(Duration::from_millis(5));
        };
        let stderr = self.stderr.join().unwrap();
        let replies = self
            .stdout
            .iter()
            .map(|line| {
                serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"))
            })
            .collect();
        assert!(
            !stderr.contains("panicked"),
            "the node panicked; its stderr:\n{stderr}"
        );
        Finished {
            status,
            replies,
            stderr,
        }
    }
}

/// Feeds `input` to a fresh node (from another thread, so a node that writes while we
/// write cannot deadlock us), then end of input; returns how it ended.
fn run_bytes(args: &[&str], input: Vec<u8>) -> Finished {
    let mut session = Session::start(args);
    let mut stdin = session.stdin.take().unwrap();
    let writer = thread::spawn(move || {
        // The node may legitimately stop reading early only by exiting; a broken pipe
        // would show up as a failed assertion on its replies.
        let _ = stdin.write_all(&input);
    });
    let finished = session.finish();
    writer.join().unwrap();
    finished
}

fn run(lines: &[Value]) -> Finished {
    let mut input = Vec::new();
    for line in lines {
        serde_json::to_writer(&mut input, line).unwrap();
        input.push(b'\n');
    }
    run_bytes(&[], input)
}

/// A message from `client` to `api` with `body`.
fn msg(body: Value) -> Value {
    json!({"src": "client", "dest": "api", "body": body})
}

/// Checks the envelope of a reply to a message from `client` to `node`, returns the body.
fn body_of(reply: &Value, node: &str, client: &str) -> Value {
    assert_eq!(reply["src"], node, "{reply}");
    assert_eq!(reply["dest"], client, "{reply}");
    assert_eq!(
        reply.as_object().unwrap().len(),
        3,
        "extra envelope keys: {reply}"
    );
    reply["body"].clone()
}

/// The one reply of a run, checked to be a clean exit.
fn only_reply(finished: &Finished) -> Value {
    assert!(finished.status.success(), "exit {:?}", finished.status);
    assert_eq!(finished.replies.len(), 1, "{:?}", finished.replies);
    body_of(&finished.replies[0], "api", "client")
}

// ----- the seed task -----

/// The seed task's sample inputs and expected outputs, verbatim.
const SEED_CASES: [(&str, &str); 3] = [
    (
        r#"{"src": "client", "dest": "api", "body": {"type": "get_user", "msg_id": 1, "user_id": 123, "force_failures": 6}}"#,
        r#"{"type": "user_response", "in_reply_to": 1, "user": {"id": 123, "name": "John Doe"}, "circuit_state": "open", "from_cache": true}"#,
    ),
    (
        r#"{"src": "client", "dest": "api", "body": {"type": "get_product", "msg_id": 1, "product_id": 123, "service_unavailable": true}}"#,
        r#"{"type": "product_response", "in_reply_to": 1, "product": {"id": 123, "name": "Product"}, "_cached": true}"#,
    ),
    (
        r#"{"src": "client", "dest": "api", "body": {"type": "set_mode", "msg_id": 3, "mode": "degraded", "cpu_usage": 85}}"#,
        r#"{"type": "mode_changed", "in_reply_to": 3, "mode": "degraded", "disabled_features": ["recommendations", "search"]}"#,
    ),
];

#[test]
fn seed_exchanges_are_answered_exactly_each_on_a_fresh_node() {
    for (input, expected) in SEED_CASES {
        let finished = run_bytes(&[], format!("{input}\n").into_bytes());
        let body = only_reply(&finished);
        let expected: Value = serde_json::from_str(expected).unwrap();
        assert_eq!(body, expected, "for {input}");
        assert_eq!(finished.stderr, "", "a clean run logs nothing");
    }
}

#[test]
fn seed_exchanges_are_answered_exactly_in_sequence_on_one_node() {
    let mut session = Session::start(&[]);
    for (i, (input, expected)) in SEED_CASES.into_iter().enumerate() {
        let mut request: Value = serde_json::from_str(input).unwrap();
        let mut expected: Value = serde_json::from_str(expected).unwrap();
        request["body"]["msg_id"] = json!(i + 1);
        expected["in_reply_to"] = json!(i + 1);
        session.send(&request.to_string());
        // Each reply comes before the next request is written: the node flushes when
        // its input runs dry, as an interactive client needs.
        let reply = session.recv();
        assert_eq!(body_of(&reply, "api", "client"), expected);
    }
    let finished = session.finish();
    assert!(finished.status.success());
    assert!(finished.replies.is_empty());
}

// ----- the Maelstrom handshake -----

#[test]
fn init_is_answered_and_names_the_node_from_then_on() {
    let finished = run(&[
        json!({"src":"c0","dest":"n1","body":{"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1"]}}),
        json!({"src":"c1","dest":"someone-else","body":{"type":"get_user","msg_id":2,"user_id":123}}),
    ]);
    assert!(finished.status.success());
    assert_eq!(finished.replies.len(), 2);
    assert_eq!(
        body_of(&finished.replies[0], "n1", "c0"),
        json!({"type":"init_ok","in_reply_to":1})
    );
    let body = body_of(&finished.replies[1], "n1", "c1");
    assert_eq!(body["type"], "user_response");
    assert_eq!(body["in_reply_to"], 2);
}

#[test]
fn a_node_that_never_gets_init_still_serves() {
    let body = only_reply(&run(&[msg(
        json!({"type":"get_user","msg_id":7,"user_id":123}),
    )]));
    assert_eq!(
        body,
        json!({"type":"user_response","in_reply_to":7,"user":{"id":123,"name":"John Doe"},
               "circuit_state":"closed","from_cache":false})
    );
}

// ----- error paths -----

#[test]
fn a_line_that_is_not_json_is_logged_and_skipped() {
    let finished = run_bytes(
        &[],
        b"this is not json\n\n{\"src\":\"client\",\"dest\":\"api\",\"body\":{\"type\":\"status\",\"msg_id\":1}}\n"
            .to_vec(),
    );
    let body = only_reply(&finished);
    assert_eq!(body["type"], "status_ok");
    assert!(
        finished.stderr.contains("input line 1: not JSON"),
        "{}",
        finished.stderr
    );
    assert_eq!(finished.stderr.lines().count(), 1, "{}", finished.stderr);
}

/// The error body the node answers `body` with.
fn error_for(body: Value) -> (u64, String) {
    let reply = only_reply(&run(&[msg(body)]));
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["in_reply_to"], 5, "{reply}");
    assert_eq!(reply.as_object().unwrap().len(), 4, "{reply}");
    (
        reply["code"].as_u64().unwrap(),
        reply["text"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn an_unknown_type_is_error_10() {
    let (code, text) = error_for(json!({"type":"teleport","msg_id":5}));
    assert_eq!(code, 10);
    assert!(text.contains("`teleport`"), "{text}");
}

#[test]
fn malformed_requests_are_error_12_naming_the_field() {
    for (body, field) in [
        (json!({"type":"get_user","msg_id":5}), "`user_id`"),
        (
            json!({"type":"get_user","msg_id":5,"user_id":"abc"}),
            "`user_id`",
        ),
        (
            json!({"type":"get_product","msg_id":5,"product_id":-1}),
            "`product_id`",
        ),
        (
            json!({"type":"get_user","msg_id":5,"user_id":1,"force_failures":"six"}),
            "`force_failures`",
        ),
        (
            json!({"type":"get_user","msg_id":5,"user_id":1,"service_unavailable":1}),
            "`service_unavailable`",
        ),
        (
            json!({"type":"update_user","msg_id":5,"user_id":1}),
            "`name`",
        ),
        (
            json!({"type":"set_mode","msg_id":5,"mode":"panic"}),
            "`mode`",
        ),
        (
            json!({"type":"set_mode","msg_id":5,"cpu_usage":"high"}),
            "`cpu_usage`",
        ),
    ] {
        let (code, text) = error_for(body.clone());
        assert_eq!(code, 12, "{body}: {text}");
        assert!(text.contains(field), "{body}: {text}");
    }
    let (code, text) = error_for(json!({"type":"set_mode","msg_id":5,"mode":"panic"}));
    assert_eq!(code, 12);
    assert!(
        text.contains("panic") && text.contains("degraded"),
        "{text}"
    );
}

#[test]
fn an_uncached_item_while_its_service_is_down_is_error_11() {
    let (code, text) =
        error_for(json!({"type":"get_user","msg_id":5,"user_id":42,"service_unavailable":true}));
    assert_eq!(code, 11);
    assert!(
        text.contains("user 42") && text.contains("nothing cached"),
        "{text}"
    );
}

#[test]
fn an_unknown_item_is_error_20() {
    let (code, text) = error_for(json!({"type":"get_product","msg_id":5,"product_id":42}));
    assert_eq!(code, 20);
    assert_eq!(text, "product 42 does not exist");
}

// ----- writes -----

#[test]
fn a_queued_write_is_drained_and_then_read_back() {
    let mut session = Session::start(&[]);
    session.send(
        &msg(
            json!({"type":"update_user","msg_id":1,"user_id":123,"name":"Jane Roe",
                    "service_unavailable":true}),
        )
        .to_string(),
    );
    assert_eq!(
        body_of(&session.recv(), "api", "client"),
        json!({"type":"write_ok","in_reply_to":1,"resource":"users","id":123,
               "queued":true,"queue_depth":1})
    );
    // The write waits one backoff step (at most 100ms) and drains on a timer, or when the
    // next input arrives after that. Ask until it shows, with a generous limit.
    let started = Instant::now();
    let mut msg_id = 2;
    let user = loop {
        thread::sleep(Duration::from_millis(300));
        session.send(&msg(json!({"type":"get_user","msg_id":msg_id,"user_id":123})).to_string());
        let body = body_of(&session.recv(), "api", "client");
        assert_eq!(body["in_reply_to"], msg_id);
        if body["user"]["name"] == "Jane Roe" || started.elapsed() > Duration::from_secs(3) {
            break body;
        }
        msg_id += 1;
    };
    assert_eq!(
        user,
        json!({"type":"user_response","in_reply_to":msg_id,"user":{"id":123,"name":"Jane Roe"},
               "circuit_state":"closed","from_cache":false})
    );
    session.send(&msg(json!({"type":"status","msg_id":99})).to_string());
    let status = body_of(&session.recv(), "api", "client");
    assert_eq!(status["dependencies"][0]["queue_depth"], 0);
    let finished = session.finish();
    assert!(finished.status.success());
    assert_eq!(finished.stderr, "");
}

#[test]
fn writes_queued_behind_an_open_breaker_are_finished_at_end_of_input() {
    let finished = run_bytes(
        &["--log-events"],
        [
            msg(json!({"type":"get_user","msg_id":1,"user_id":123,"force_failures":6})),
            msg(json!({"type":"update_user","msg_id":2,"user_id":123,"name":"A"})),
            msg(json!({"type":"update_user","msg_id":3,"user_id":7,"name":"B"})),
        ]
        .iter()
        .map(|m| format!("{m}\n"))
        .collect::<String>()
        .into_bytes(),
    );
    assert!(finished.status.success());
    let queued: Vec<_> = finished.replies[1..]
        .iter()
        .map(|r| {
            (
                r["body"]["queued"].clone(),
                r["body"]["queue_depth"].clone(),
            )
        })
        .collect();
    assert_eq!(
        queued,
        vec![(json!(true), json!(1)), (json!(true), json!(2))]
    );
    assert!(
        !finished.stderr.contains("could not finish"),
        "{}",
        finished.stderr
    );
    // The event log shows the breaker's whole cycle and both writes applied, in order.
    let events: Vec<Value> = finished
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let breaker: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["source"] == "breaker")
        .map(|e| {
            (
                e["event"]["from"].as_str().unwrap(),
                e["event"]["to"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        breaker,
        [
            ("closed", "open"),
            ("open", "half_open"),
            ("half_open", "closed")
        ]
    );
    let applied: Vec<u64> = events
        .iter()
        .filter(|e| e["source"] == "queue" && e["event"]["kind"] == "applied")
        .map(|e| e["event"]["id"].as_u64().unwrap())
        .collect();
    assert_eq!(applied, [0, 1]);
}

#[test]
fn a_write_past_the_store_limit_is_error_11_and_the_node_keeps_serving() {
    let mut session = Session::start(&["--max-new-records", "2", "--max-name-bytes", "16"]);
    let mut ask = |body: Value| {
        session.send(&msg(body).to_string());
        body_of(&session.recv(), "api", "client")
    };
    for (msg_id, id) in [(1, 1), (2, 2)] {
        let body = ask(json!({"type":"update_user","msg_id":msg_id,"user_id":id,"name":"A"}));
        assert_eq!(body["type"], "write_ok", "{body}");
    }
    let body = ask(json!({"type":"update_user","msg_id":3,"user_id":3,"name":"A"}));
    assert_eq!(
        body,
        json!({"type":"error","in_reply_to":3,"code":11,
               "text":"users store is full; the write to user 3 was not applied: it holds the \
                       2 records that writes may create beyond its data set (writes to records \
                       it holds are still taken)"})
    );
    // A name that would pass the byte limit: 2 bytes held, 16 allowed, and renaming
    // user 1 to 16 bytes would hold 17.
    let body = ask(json!({"type":"update_user","msg_id":4,"user_id":1,"name":"x".repeat(16)}));
    assert_eq!(
        (body["type"].clone(), body["code"].clone()),
        (json!("error"), json!(11))
    );
    assert!(
        body["text"].as_str().unwrap().contains(
            "a name of 16 bytes would take the names it holds past the limit of 16 bytes"
        ),
        "{body}"
    );
    // The node goes on serving: the refused record is not there, the others take writes
    // and are read back, and the products store has its own room.
    let body = ask(json!({"type":"get_user","msg_id":5,"user_id":3}));
    assert_eq!(
        (body["type"].clone(), body["code"].clone()),
        (json!("error"), json!(20))
    );
    let body = ask(json!({"type":"update_user","msg_id":6,"user_id":2,"name":"Bea"}));
    assert_eq!(body["type"], "write_ok");
    let body = ask(json!({"type":"get_user","msg_id":7,"user_id":2}));
    assert_eq!(body["user"], json!({"id":2,"name":"Bea"}));
    let body = ask(json!({"type":"update_product","msg_id":8,"product_id":3,"name":"P"}));
    assert_eq!(body["type"], "write_ok");
    let body = ask(json!({"type":"status","msg_id":9}));
    assert_eq!(body["dependencies"][0]["circuit_state"], "closed");
    let finished = session.finish();
    assert!(finished.status.success());
    assert_eq!(finished.stderr, "");
}

#[test]
fn a_queued_write_past_the_store_limit_is_dead_lettered_not_retried() {
    let finished = run_bytes(
        &["--max-new-records", "0", "--log-events"],
        [msg(
            json!({"type":"update_user","msg_id":1,"user_id":7,"name":"A",
                        "service_unavailable":true}),
        )]
        .iter()
        .map(|m| format!("{m}\n"))
        .collect::<String>()
        .into_bytes(),
    );
    assert!(finished.status.success());
    assert_eq!(finished.replies[0]["body"]["queued"], true);
    let queue: Vec<String> = finished
        .stderr
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter(|e| e["source"] == "queue")
        .map(|e| e["event"]["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(queue, ["enqueued", "dispatched", "dead_lettered"]);
}

/// A stdin line of `len` bytes of a valid request (a write whose name fills the line),
/// written in pieces, so neither side ever holds it whole.
fn write_long_request(out: &mut (impl Write + ?Sized), len: usize) {
    let head = br#"{"src":"client","dest":"api","body":{"type":"update_user","msg_id":2,"user_id":5,"name":""#;
    let tail = br#""}}"#;
    out.write_all(head).unwrap();
    let mut left = len - head.len() - tail.len();
    let piece = [b'n'; 1 << 16];
    while left > 0 {
        let n = left.min(piece.len());
        out.write_all(&piece[..n]).unwrap();
        left -= n;
    }
    out.write_all(tail).unwrap();
    out.write_all(b"\n").unwrap();
}

#[test]
fn an_over_long_line_is_reported_skipped_and_the_next_line_answered() {
    let mut input = Vec::new();
    input
        .extend_from_slice(br#"{"src":"client","dest":"api","body":{"type":"status","msg_id":1}}"#);
    input.push(b'\n');
    write_long_request(&mut input, 5000);
    input.extend_from_slice(
        br#"{"src":"client","dest":"api","body":{"type":"get_user","msg_id":3,"user_id":5}}"#,
    );
    input.push(b'\n');
    let finished = run_bytes(&["--max-line-bytes", "4KiB"], input);
    assert!(finished.status.success());
    let bodies: Vec<Value> = finished
        .replies
        .iter()
        .map(|r| body_of(r, "api", "client"))
        .collect();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert_eq!(bodies[0]["type"], "status_ok");
    // The skipped write never happened: user 5 does not exist.
    assert_eq!(
        (bodies[1]["in_reply_to"].clone(), bodies[1]["code"].clone()),
        (json!(3), json!(20))
    );
    assert_eq!(
        finished.stderr,
        "brownout node: input line 2: 5000 bytes, over the limit of 4096 (--max-line-bytes); \
         skipped\n"
    );
}

/// The peak resident memory of process `pid` in KiB (`VmHWM`, Linux).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("Linux reports VmHWM");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// What a node said to a stream of writes, counted as the replies came.
#[derive(Debug, Default)]
struct Tally {
    written: u64,
    refused: u64,
    other: u64,
    last_refusal: String,
}

/// Streams the lines `write_input` writes into a fresh `brownout node` with `args`, reads
/// its replies as they come, and returns its peak resident memory in KiB (read when it
/// has answered `replies` lines, just before its stdin is closed), the replies counted
/// and its stderr.
fn peak_rss_while_streaming(
    args: &[&str],
    replies: u64,
    write_input: impl FnOnce(&mut dyn Write) + Send + 'static,
) -> (u64, Tally, String) {
    let mut child = Command::new(BIN)
        .arg("node")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let writer = thread::spawn(move || {
        let mut stdin = std::io::BufWriter::with_capacity(1 << 16, stdin);
        write_input(&mut stdin);
        stdin.flush().unwrap();
        // Handed back open: closing it would let the node exit before we look.
        stdin.into_inner().unwrap()
    });
    let (done_tx, done_rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut tally = Tally::default();
        let mut lines = BufReader::with_capacity(1 << 16, stdout);
        let mut line = String::new();
        let mut seen = 0;
        while lines.read_line(&mut line).unwrap() > 0 {
            if line.contains(r#""type":"write_ok""#) {
                tally.written += 1;
            } else if line.contains(r#""code":11"#) && line.contains("store is full") {
                tally.refused += 1;
                if tally.last_refusal.is_empty() {
                    tally.last_refusal = line.clone();
                }
            } else {
                tally.other += 1;
            }
            seen += 1;
            if seen == replies {
                done_tx.send(()).unwrap();
            }
            line.clear();
        }
        tally
    });
    let stdin = writer.join().unwrap();
    done_rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the node answers every write");
    let peak = peak_rss_kib(child.id());
    drop(stdin);
    assert!(child.wait().unwrap().success());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (peak, reader.join().unwrap(), stderr)
}

/// `count` `update_user` writes to distinct ids, each with a name of `name_len` bytes.
fn distinct_writes(count: u64, name_len: usize) -> impl FnOnce(&mut dyn Write) + Send {
    move |out| {
        let name = "n".repeat(name_len);
        for i in 1..=count {
            writeln!(
                out,
                r#"{{"src":"c","dest":"n","body":{{"type":"update_user","msg_id":{i},"user_id":{},"name":"{name}"}}}}"#,
                1000 + i
            )
            .unwrap();
        }
    }
}

/// Peak memory is read in KiB.
const KIB_PER_MIB: u64 = 1024;

#[test]
fn two_million_writes_to_distinct_ids_keep_the_node_under_64_mib() {
    let count = 2_000_000;
    let (peak, tally, stderr) = peak_rss_while_streaming(&[], count, distinct_writes(count, 12));
    eprintln!("{count} writes with 12-byte names: peak resident memory {peak} KiB");
    assert!(peak < 64 * KIB_PER_MIB, "peak resident memory {peak} KiB");
    assert_eq!(stderr, "");
    // The default bound: 100 000 records created by writes, then every write refused.
    assert_eq!(
        (tally.written, tally.refused, tally.other),
        (100_000, count - 100_000, 0)
    );
    assert!(
        tally
            .last_refusal
            .contains("it holds the 100000 records that writes may create"),
        "{}",
        tally.last_refusal
    );
}

/// `count` writes to distinct ids with 1 KiB names: the node stays under 64 MiB, and the
/// default 8 MiB of names beyond the data set takes 8 192 of them.
fn writes_with_1_kib_names(count: u64) {
    let (peak, tally, stderr) = peak_rss_while_streaming(&[], count, distinct_writes(count, 1024));
    eprintln!("{count} writes with 1 KiB names: peak resident memory {peak} KiB");
    assert!(peak < 64 * KIB_PER_MIB, "peak resident memory {peak} KiB");
    assert_eq!(stderr, "");
    assert_eq!(
        (tally.written, tally.refused, tally.other),
        (8192, count - 8192, 0)
    );
    assert!(
        tally
            .last_refusal
            .contains("a name of 1024 bytes would take the names it holds"),
        "{}",
        tally.last_refusal
    );
}

#[test]
fn writes_with_1_kib_names_keep_the_node_under_64_mib() {
    // The issue's case: 300 000 of them took the node to 321 MB.
    writes_with_1_kib_names(300_000);
}

#[test]
#[ignore = "streams 2.2 GB through the node (5 s or more in a debug build); the 300 000-write \
            test covers the bound, run this one with --ignored to measure"]
fn two_million_writes_with_1_kib_names_keep_the_node_under_64_mib() {
    writes_with_1_kib_names(2_000_000);
}

#[test]
fn a_200_mb_line_is_skipped_without_being_held() {
    let len = 200_000_000;
    let (peak, tally, stderr) = peak_rss_while_streaming(&[], 1, move |out| {
        write_long_request(out, len);
        writeln!(
            out,
            r#"{{"src":"c","dest":"n","body":{{"type":"update_user","msg_id":3,"user_id":1,"name":"A"}}}}"#
        )
        .unwrap();
    });
    assert!(peak < 64 * KIB_PER_MIB, "peak resident memory {peak} KiB");
    assert_eq!((tally.written, tally.refused, tally.other), (1, 0, 0));
    assert_eq!(
        stderr,
        "brownout node: input line 1: 200000000 bytes, over the limit of 1048576 \
         (--max-line-bytes); skipped\n"
    );
}

// ----- robustness -----

#[test]
fn garbage_input_is_survived_and_the_next_request_answered() {
    let mut input = Vec::new();
    // Random binary: invalid UTF-8, NULs, stray newlines.
    let mut noise = vec![0u8; 64 * 1024];
    ChaCha8Rng::seed_from_u64(7).fill_bytes(&mut noise);
    input.extend_from_slice(&noise);
    input.extend_from_slice(b"\n\0\0\0\n\xff\xfe{\"src\":\"c\xff\"}\n");
    // A huge line.
    input.resize(input.len() + (4 << 20), b'x');
    input.push(b'\n');
    // Nesting far deeper than any parser should recurse.
    input.resize(input.len() + 100_000, b'[');
    input.push(b'\n');
    input.extend_from_slice(b"{\"src\":\"client\",\"dest\":\"api\",\"body\":");
    input.resize(input.len() + 100_000, b'[');
    input.extend_from_slice(b"}\n");
    // Valid JSON, wrong shapes.
    for line in [
        "5",
        "null",
        "[]",
        r#""a string""#,
        r#"{"src":1}"#,
        r#"{"dest":"api","body":{"type":"status","msg_id":1}}"#,
        r#"{"src":"client","dest":"api","body":5}"#,
        r#"{"src":"client","dest":"api"}"#,
        r#"{"src":"client","dest":"api","body":{"type":"get_user","msg_id":1.5,"user_id":1}}"#,
        r#"{"src":"client","dest":"api","body":{"type":"get_user","msg_id":2,"user_id":18446744073709551616}}"#,
        r#"{"src":"client","dest":"api","body":{"type":"get_user","msg_id":3,"user_id":1,"force_failures":4000000000}}"#,
        r#"{"src":"client","dest":"api","body":{"type":"set_mode","msg_id":4,"cpu_usage":1e400}}"#,
    ] {
        input.extend_from_slice(line.as_bytes());
        input.push(b'\n');
    }
    input.extend_from_slice(
        br#"{"src":"client","dest":"api","body":{"type":"get_user","msg_id":99,"user_id":123}}"#,
    );
    // No final newline: the last line still counts.
    let finished = run_bytes(&[], input);
    assert!(finished.status.success(), "exit {:?}", finished.status);
    let bodies: Vec<Value> = finished
        .replies
        .iter()
        .map(|r| body_of(r, "api", "client"))
        .collect();
    let codes: Vec<(Value, Value)> = bodies
        .iter()
        .map(|b| (b["type"].clone(), b["code"].clone()))
        .collect();
    // body 5, no body, msg_id 1.5, user_id too big, force_failures too big: each an error
    // 12; the 1e400 line is not JSON (serde_json refuses out-of-range numbers); then the
    // valid request.
    let error_12 = (json!("error"), json!(12));
    assert_eq!(
        codes,
        vec![
            error_12.clone(),
            error_12.clone(),
            error_12.clone(),
            error_12.clone(),
            error_12,
            (json!("user_response"), Value::Null)
        ],
        "{bodies:?}"
    );
    assert_eq!(bodies[5]["in_reply_to"], 99);
    assert_eq!(bodies[5]["user"]["name"], "John Doe");
    // Every skipped line is reported.
    assert!(finished.stderr.contains("not JSON"));
    assert!(finished.stderr.contains("no string `src`"));
}

#[test]
fn end_of_input_ends_the_node_with_exit_0() {
    let finished = run_bytes(&[], Vec::new());
    assert!(finished.status.success());
    assert!(finished.replies.is_empty());
    assert_eq!(finished.stderr, "");

    let finished = run(&[msg(json!({"type":"status","msg_id":1}))]);
    assert!(finished.status.success());
    assert_eq!(finished.replies.len(), 1);
}

#[test]

fn config_file_sets_the_engine_and_the_data_set() {
    let dir = std::env::temp_dir().join(format!("brownout-node-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("node.toml");
    std::fs::write(
        &path,
        r#"
name = "live-node"
duration = "1s"

[data.users]
count = 3
warm = true
records = [{ id = 7, name = "Alice" }]

[dependencies.users.breaker]
policy = "consecutive"
failure_threshold = 2
"#,
    )
    .unwrap();
    let mut session = Session::start(&["--config", path.to_str().unwrap()]);
    session.send(&msg(json!({"type":"get_user","msg_id":1,"user_id":7})).to_string());
    let body = body_of(&session.recv(), "api", "client");
    assert_eq!(body["user"], json!({"id":7,"name":"Alice"}));
    // Threshold 2: two forced failures open the breaker; the generated user 2 is warm.
    session.send(
        &msg(json!({"type":"get_user","msg_id":2,"user_id":2,"force_failures":2})).to_string(),
    );
    let body = body_of(&session.recv(), "api", "client");
    assert_eq!(
        body,
        json!({"type":"user_response","in_reply_to":2,"user":{"id":2,"name":"User 2"},
               "circuit_state":"open","from_cache":true})
    );
    let finished = session.finish();
    assert!(finished.status.success());

    // `--set` changes the file as a run's would: threshold 3, two failures do not open.
    let mut session = Session::start(&[
        "--config",
        path.to_str().unwrap(),
        "--set",
        "dependencies.users.breaker.failure_threshold=3",
    ]);
    session.send(
        &msg(json!({"type":"get_user","msg_id":2,"user_id":2,"force_failures":2})).to_string(),
    );
    let body = body_of(&session.recv(), "api", "client");
    assert_eq!(body["circuit_state"], "closed", "{body}");
    assert!(session.finish().status.success());
    // A key the file cannot have is bad input, naming the --set argument.
    let finished = run_bytes(
        &[
            "--config",
            path.to_str().unwrap(),
            "--set",
            "dependencies.users.breaker.treshold=3",
        ],
        Vec::new(),
    );
    assert_eq!(finished.status.code(), Some(2));
    assert!(
        finished
            .stderr
            .contains("--set dependencies.users.breaker.treshold=3"),
        "{}",
        finished.stderr
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unreadable_config_file_is_bad_input() {
    let output = Command::new(BIN)
        .args(["node", "--config", "/nonexistent/brownout/node.toml"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("/nonexistent/brownout/node.toml"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

// ----- a declared service, live -----

/// `brownout node --service services/shop.toml` serves the shop's endpoints, with the
/// reply shape every declared endpoint has, refuses the seed's requests, and keeps
/// the control messages.
#[test]
fn a_declared_service_is_served_live_with_its_endpoints() {
    let shop = Path::new(env!("CARGO_MANIFEST_DIR")).join("services/shop.toml");
    let lines = [
        msg(json!({"type": "product_page", "msg_id": 1, "key": 7})),
        msg(json!({"type": "checkout", "msg_id": 2, "key": 9, "value": "card 4242"})),
        msg(json!({"type": "home", "msg_id": 3})),
        msg(json!({"type": "get_user", "msg_id": 4, "user_id": 1})),
        msg(json!({"type": "product_page", "msg_id": 5})),
        msg(json!({"type": "set_mode", "msg_id": 6, "mode": "degraded"})),
        msg(json!({"type": "product_page", "msg_id": 7, "key": 7})),
    ];
    let mut input = Vec::new();
    for line in &lines {
        serde_json::to_writer(&mut input, line).unwrap();
        input.push(b'\n');
    }
    let finished = run_bytes(&["--service", shop.to_str().unwrap()], input);
    assert!(finished.status.success(), "exit {:?}", finished.status);
    let bodies: Vec<Value> = finished
        .replies
        .iter()
        .map(|r| body_of(r, "api", "client"))
        .collect();
    assert_eq!(bodies.len(), lines.len(), "{bodies:?}");
    let fresh_meta = json!({"partial": false, "missing": [], "degraded": [], "stale": {},
                            "deadline_passed": false,
                            "served": {"inventory": "fresh", "recommendations": "fresh"}});
    assert_eq!(
        bodies[0],
        json!({"type": "product_page_ok", "in_reply_to": 1, "key": 7,
               "data": {"inventory": {"id": 7, "name": "Record 7"},
                        "recommendations": {"id": 7, "name": "Record 7"}},
               "_meta": fresh_meta})
    );
    assert_eq!(bodies[1]["type"], "checkout_ok");
    assert_eq!(
        bodies[1]["data"]["payments"],
        json!({"id": 9, "queued": false})
    );
    assert_eq!(
        bodies[1]["data"]["orders"],
        json!({"id": 9, "queued": false})
    );
    assert_eq!(bodies[2]["type"], "home_ok");
    assert!(
        bodies[2].get("key").is_none(),
        "home has no key: {}",
        bodies[2]
    );
    assert_eq!(bodies[3]["code"], 10);
    assert_eq!(
        bodies[3]["text"],
        "unsupported message type `get_user`; this node serves shop (product_page, home, \
         checkout) and init, set_mode, status"
    );
    assert_eq!(bodies[4]["code"], 12);
    assert_eq!(
        bodies[4]["text"],
        "missing field `key`: a `product_page` request names its record"
    );
    assert_eq!(bodies[5]["disabled_features"], json!(["recommendations"]));
    // Degraded: recommendations are switched off, and the page says so. Its cache had
    // product 7 from the first page, so the chain's first fallback serves it.
    assert_eq!(bodies[6]["_meta"]["degraded"], json!(["recommendations"]));
    assert_eq!(bodies[6]["data"]["recommendations"]["id"], 7);
    assert_eq!(finished.stderr, "");
}

#[test]
fn a_missing_service_file_is_exit_2_naming_it() {
    let finished = run_bytes(&["--service", "services/no-such.toml"], Vec::new());
    assert_eq!(finished.status.code(), Some(2));
    assert!(
        finished
            .stderr
            .contains("cannot read the service file services/no-such.toml"),
        "{}",
        finished.stderr
    );
}

/// A live node measuring its CPU holds each reply for its CPU time: end of input
/// must still see every reply out, not drop the held ones.
#[test]
fn held_replies_of_a_node_with_compute_go_out_before_it_exits() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/cpu-follows-load.toml"
    );
    let lines = [
        msg(json!({"type": "product_page", "msg_id": 1, "key": 5})),
        msg(json!({"type": "checkout", "msg_id": 2, "key": 9})),
    ];
    let mut input = Vec::new();
    for line in &lines {
        serde_json::to_writer(&mut input, line).unwrap();
        input.push(b'\n');
    }
    let finished = run_bytes(&["--config", path], input);
    assert!(finished.status.success(), "exit {:?}", finished.status);
    let types: Vec<Value> = finished
        .replies
        .iter()
        .map(|r| body_of(r, "api", "client")["type"].clone())
        .collect();
    assert_eq!(types, [json!("product_page_ok"), json!("checkout_ok")]);
}
