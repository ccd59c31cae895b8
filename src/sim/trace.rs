//! The trace: every event of a run as one JSON line, streamed, with a running digest.
//!
//! Lines are `{"t":<microseconds>,"type":...}`. The digest ([`TraceDigest`], a hash of
//! each line's values) lets a snapshot pin every reply of a run without storing the
//! trace, and lets a run check itself by comparing the digests of two runs; it is fed
//! the line's values directly, so a digest without a trace file writes no JSON. When
//! neither a file nor a digest is wanted, nothing is serialized at all: tracing costs
//! nothing when off.

use std::io::{self, Write};

use serde::Serialize;

use super::digest::TraceDigest;
use crate::engine::Time;

/// Where trace lines go.
pub struct Trace<'w> {
    out: Option<&'w mut dyn Write>,
    digest: Option<TraceDigest>,
    line: Vec<u8>,
    lines: u64,
}

impl<'w> Trace<'w> {
    /// A trace that writes to `out` (if any) and keeps a digest (if `digest`).
    pub fn new(out: Option<&'w mut dyn Write>, digest: bool) -> Self {
        Trace {
            out,
            digest: digest.then(TraceDigest::default),
            line: Vec::with_capacity(256),
            lines: 0,
        }
    }

    /// Whether lines are wanted at all; callers skip building them when not.
    #[inline]
    pub fn enabled(&self) -> bool {
        self.out.is_some() || self.digest.is_some()
    }

    /// Records `item` (a struct or map serializing to a JSON object) at time `t`.
    pub fn record(&mut self, t: Time, item: &impl Serialize) -> io::Result<()> {
        if !self.enabled() {
            return Ok(());
        }
        if let Some(d) = &mut self.digest {
            d.line(t, item).map_err(io::Error::other)?;
        }
        if let Some(out) = &mut self.out {
            self.line.clear();
            self.line.extend_from_slice(b"{\"t\":");
            self.line
                .extend_from_slice(itoa::Buffer::new().format(t).as_bytes());
            let start = self.line.len();
            serde_json::to_writer(&mut self.line, item).map_err(io::Error::other)?;
            // Splice the item's object into ours: drop its opening brace, keep the comma.
            debug_assert_eq!(self.line.get(start), Some(&b'{'));
            if self.line.len() - start > 2 {
                self.line[start] = b',';
            } else {
                self.line.truncate(start);
                self.line.push(b'}');
            }
            self.line.push(b'\n');
            out.write_all(&self.line)?;
        }
        self.lines += 1;
        Ok(())
    }

    /// Lines recorded so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// The digest so far, if one is kept.
    pub fn digest(&self) -> Option<TraceDigest> {
        self.digest
    }

    /// Flushes the output.
    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.out {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_carry_time_first_and_the_digest_hashes_their_values() {
        let mut out = Vec::new();
        let mut trace = Trace::new(Some(&mut out), true);
        trace.record(5, &json!({"type":"x","a":1})).unwrap();
        trace.record(1_000_000, &json!({})).unwrap();
        let digest = trace.digest().unwrap();
        drop(trace);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "{\"t\":5,\"a\":1,\"type\":\"x\"}\n{\"t\":1000000}\n");
        // The same lines digested without a file: the same digest.
        let mut alone = Trace::new(None, true);
        alone.record(5, &json!({"type":"x","a":1})).unwrap();
        alone.record(1_000_000, &json!({})).unwrap();
        assert_eq!(alone.digest(), Some(digest));
        let mut expected = TraceDigest::default();
        expected.line(5, &json!({"type":"x","a":1})).unwrap();
        expected.line(1_000_000, &json!({})).unwrap();
        assert_eq!(digest, expected);
    }

    #[test]
    fn disabled_trace_records_nothing() {
        let mut trace = Trace::new(None, false);
        assert!(!trace.enabled());
        trace.record(1, &json!({"type":"x"})).unwrap();
        assert_eq!(trace.lines(), 0);
        assert_eq!(trace.digest(), None);
    }
}
