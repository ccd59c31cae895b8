//! The scenario as a TOML document the shrinker edits: made standalone, its random
//! faults written out, parts removed, times and rates changed, and written back.
//!
//! Every removable entry (fault, script entry, workload stream) carries a label that
//! names it as the original file did, kept beside the document in the entries' order,
//! so that the header can say what went and what changed whatever order edits came in.

use std::path::Path;
use std::time::Duration;

use toml::{Table, Value};

use crate::engine::Span;
use crate::model::Scenario;
use crate::sim::faults::FaultPlan;
use crate::sim::rng::{stream, Stream};

use super::MAX_EXPANDED_WINDOWS;

/// A scenario document and the labels of its entries.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Doc {
    table: Table,
    /// One per `[[fault]]` entry, in order.
    faults: Vec<String>,
    /// One per `[[script]]` entry, in order.
    scripts: Vec<String>,
    /// One per `[[workload]]` stream, in order.
    streams: Vec<String>,
    /// How much of the original run's beginning was cut off ([`Doc::without_head`]).
    head_cut: Span,
}

/// A part ddmin may remove.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Part {
    Fault(String),
    Script(String),
    Stream(String),
    Cpu,
}

/// A document with all but one expectation dropped.
pub(super) struct Pruned {
    pub doc: Doc,
    pub dropped_expectations: usize,
}

/// A document with its random faults written out as fixed ones.
pub(super) struct Expanded {
    pub doc: Doc,
    pub windows: usize,
}

/// What the shrunk document changed of the original, in words.
#[derive(Debug, Clone, Default)]
pub(super) struct Changes {
    removed: Vec<String>,
    shortened: Vec<String>,
}

impl Changes {
    pub fn removed(&self) -> Vec<String> {
        self.removed.clone()
    }

    pub fn shortened(&self) -> Vec<String> {
        self.shortened.clone()
    }
}

/// A span as a scenario writes it: `"1m 10s"`, `"2s 500ms"`.
pub(super) fn format_span(span: Span) -> String {
    humantime::format_duration(Duration::from_micros(span)).to_string()
}

/// A duration value of the document in microseconds.
pub(super) fn span_of(value: &Value) -> Option<Span> {
    let text = value.as_str()?;
    let d = humantime::parse_duration(text).ok()?;
    Span::try_from(d.as_micros()).ok()
}

/// A number value of the document.
pub(super) fn number_of(value: &Value) -> Option<f64> {
    match value {
        Value::Integer(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

/// `x` as a TOML number: an integer when it is whole, so that `rate = 40` stays `40`.
pub(super) fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        Value::Integer(x as i64)
    } else {
        Value::Float(x)
    }
}

fn entries<'t>(table: &'t Table, key: &str) -> &'t [Value] {
    table
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// `users outage`: what a fault does to what (its window is said apart, as it may
/// change).
fn describe_fault(fault: &Value) -> String {
    let get = |k: &str| fault.get(k).and_then(Value::as_str).unwrap_or("?");
    format!("{} {}", get("dependency"), get("kind"))
}

/// `2m..5m`, or `2m..the end`.
fn show_window((start, end): (Span, Option<Span>)) -> String {
    format!(
        "{}..{}",
        format_span(start),
        end.map_or_else(|| "the end".to_owned(), format_span)
    )
}

impl Doc {
    /// The scenario `text` (read from `path`) on its own: a service file it names is
    /// inlined as `[service]`, and `seed` is written in, so that a plain run of the
    /// document anywhere replays the seed.
    pub fn standalone(text: &str, path: &Path, seed: u64) -> Result<Doc, String> {
        let mut table: Table = text
            .parse()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some(Value::String(written)) = table.get("service") {
            let service_path = path.parent().unwrap_or(Path::new("")).join(written);
            let service_text = crate::scenario::read(&service_path).map_err(|e| e.to_string())?;
            let service: Table = service_text
                .parse()
                .map_err(|e| format!("{}: {e}", service_path.display()))?;
            table.insert("service".to_owned(), Value::Table(service));
        }
        let seed = i64::try_from(seed).map_err(|_| {
            format!(
                "seed {seed} does not fit in a TOML integer (at most {})",
                i64::MAX
            )
        })?;
        table.insert("seed".to_owned(), Value::Integer(seed));
        let faults = entries(&table, "fault")
            .iter()
            .enumerate()
            .map(|(i, f)| format!("fault {} ({})", i + 1, describe_fault(f)))
            .collect();
        let scripts = entries(&table, "script")
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let at = s.get("at").and_then(Value::as_str).unwrap_or("?");
                let kind = s
                    .get("body")
                    .and_then(|b| b.get("type"))
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                format!("script entry {} ({kind} at {at})", i + 1)
            })
            .collect();
        let streams = entries(&table, "workload")
            .iter()
            .enumerate()
            .map(|(i, w)| match w.get("name").and_then(Value::as_str) {
                Some(name) => format!("workload stream `{name}`"),
                None => format!("workload stream {}", i + 1),
            })
            .collect();
        Ok(Doc {
            table,
            faults,
            scripts,
            streams,
            head_cut: 0,
        })
    }

    /// The document as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(&self.table).expect("a table of TOML values serializes")
    }

    /// Sets the description the report prints.
    pub fn set_description(&mut self, text: String) {
        self.table
            .insert("description".to_owned(), Value::String(text));
    }

    /// The document with only the expectation `name` (a dotted path under `[expect]`,
    /// or `conservation`, which is always checked).
    pub fn only_expectation(&self, name: &str) -> Pruned {
        fn leaves(v: &Value) -> usize {
            match v {
                Value::Table(t) => t.values().map(leaves).sum(),
                _ => 1,
            }
        }
        let mut doc = self.clone();
        let Some(expect) = doc.table.remove("expect") else {
            return Pruned {
                doc,
                dropped_expectations: 0,
            };
        };
        let total = leaves(&expect);
        let mut path: Vec<&str> = name.split('.').collect();
        let leaf = path.pop().unwrap_or(name);
        let mut source = Some(&expect);
        for key in &path {
            source = source.and_then(|v| v.get(*key));
        }
        let kept = source.and_then(|t| t.get(leaf)).cloned();
        let dropped = total - usize::from(kept.is_some());
        if let Some(value) = kept {
            // Rebuild the nested tables down to the kept key.
            let mut built = Table::new();
            built.insert(leaf.to_owned(), value);
            for key in path.iter().rev() {
                let mut outer = Table::new();
                outer.insert((*key).to_owned(), Value::Table(built));
                built = outer;
            }
            doc.table.insert("expect".to_owned(), Value::Table(built));
        }
        Pruned {
            doc,
            dropped_expectations: dropped,
        }
    }

    pub fn has_random_faults(&self) -> bool {
        !entries(&self.table, "random_fault").is_empty()
    }

    /// The document with the windows that `seed` draws for its random faults as fixed
    /// `[[fault]]` entries after its own. `scenario` is the document parsed, whose
    /// random entries are the document's in order.
    ///
    /// The run is the same: a fault's effect is the same whether its window is fixed or
    /// drawn, fixed faults combine before random ones in entry order (so error rates
    /// add up in the same order), and the fault generator draws nothing else.
    pub fn expand_random_faults(&self, scenario: &Scenario, seed: u64) -> Result<Expanded, String> {
        let dependencies = scenario
            .random_faults
            .iter()
            .map(|f| f.dependency + 1)
            .max()
            .unwrap_or(0);
        let plan = FaultPlan::with_random(
            dependencies,
            Vec::new(),
            &scenario.random_faults,
            scenario.duration,
            &mut stream(seed, Stream::Faults),
        )
        .map_err(|e| e.to_string())?;
        let entries_in_file = entries(&self.table, "random_fault").to_vec();
        let mut doc = self.clone();
        let mut added = Vec::new();
        for (i, (windows, entry)) in plan.random().iter().zip(&entries_in_file).enumerate() {
            let mut windows = windows.clone();
            let mut k = 0;
            while let Some(w) = windows.current() {
                if added.len() == MAX_EXPANDED_WINDOWS {
                    return Err(format!(
                        "seed {seed}'s random faults draw more than {MAX_EXPANDED_WINDOWS} windows; \
                         shrink writes out at most that many (raise the random faults' `mtbf`, or shorten the run)"
                    ));
                }
                let mut fault = Table::new();
                for key in ["dependency", "kind"] {
                    if let Some(v) = entry.get(key) {
                        fault.insert(key.to_owned(), v.clone());
                    }
                }
                fault.insert("start".to_owned(), Value::String(format_span(w.start)));
                fault.insert("end".to_owned(), Value::String(format_span(w.end)));
                if let Some(params) = entry.as_table() {
                    for (key, v) in params {
                        if !matches!(key.as_str(), "dependency" | "kind" | "mtbf" | "mttr") {
                            fault.insert(key.clone(), v.clone());
                        }
                    }
                }
                k += 1;
                let value = Value::Table(fault);
                let label = format!(
                    "window {k} of random_fault {} ({})",
                    i + 1,
                    describe_fault(&value)
                );
                added.push((label, value));
                windows.advance();
            }
        }
        let windows = added.len();
        if !doc.table.contains_key("fault") {
            // Where the random faults were, not at the end of the file.
            let mut table = Table::new();
            for (key, value) in std::mem::take(&mut doc.table) {
                if key == "random_fault" {
                    table.insert("fault".to_owned(), Value::Array(Vec::new()));
                } else {
                    table.insert(key, value);
                }
            }
            doc.table = table;
        }
        doc.table.remove("random_fault");
        if let Some(Value::Array(list)) = doc.table.get_mut("fault") {
            for (label, value) in added {
                list.push(value);
                doc.faults.push(label);
            }
        }
        if doc.faults.is_empty() {
            doc.table.remove("fault");
        }
        Ok(Expanded { doc, windows })
    }

    /// Everything ddmin may remove, in file order.
    pub fn parts(&self) -> Vec<Part> {
        let mut parts: Vec<Part> = self.faults.iter().cloned().map(Part::Fault).collect();
        parts.extend(self.scripts.iter().cloned().map(Part::Script));
        parts.extend(self.streams.iter().cloned().map(Part::Stream));
        if self.table.contains_key("cpu") {
            parts.push(Part::Cpu);
        }
        parts
    }

    /// The document keeping, of `all`, only the parts in `keep`.
    pub fn keeping(&self, all: &[Part], keep: &[Part]) -> Doc {
        let mut doc = self.clone();
        let gone = |p: &Part| all.contains(p) && !keep.contains(p);
        let faults: Vec<bool> = doc
            .faults
            .iter()
            .map(|l| !gone(&Part::Fault(l.clone())))
            .collect();
        doc.retain("fault", &faults);
        let scripts: Vec<bool> = doc
            .scripts
            .iter()
            .map(|l| !gone(&Part::Script(l.clone())))
            .collect();
        doc.retain("script", &scripts);
        let streams: Vec<bool> = doc
            .streams
            .iter()
            .map(|l| !gone(&Part::Stream(l.clone())))
            .collect();
        doc.retain("workload", &streams);
        if gone(&Part::Cpu) {
            doc.table.remove("cpu");
        }
        doc
    }

    /// Keeps the entries of array `key` whose flag is set (and their labels); an array
    /// left empty goes.
    fn retain(&mut self, key: &str, keep: &[bool]) {
        let labels = match key {
            "fault" => &mut self.faults,
            "script" => &mut self.scripts,
            "workload" => &mut self.streams,
            _ => unreachable!("only labelled arrays are retained"),
        };
        let mut flags = keep.iter();
        labels.retain(|_| *flags.next().unwrap_or(&true));
        let empty = labels.is_empty();
        if let Some(Value::Array(list)) = self.table.get_mut(key) {
            let mut flags = keep.iter();
            list.retain(|_| *flags.next().unwrap_or(&true));
        }
        if empty {
            self.table.remove(key);
        }
    }

    /// The run's duration.
    pub fn duration(&self) -> Option<Span> {
        self.table.get("duration").and_then(span_of)
    }

    /// The document with the run cut to `end`: faults, script entries, rate phases and
    /// CPU points after it go, and windows, phases and ramps that cross it end at it
    /// (a ramp at the value it had reached there), so the run up to `end` is unchanged.
    pub fn with_duration(&self, end: Span) -> Doc {
        let mut doc = self.clone();
        doc.table
            .insert("duration".to_owned(), Value::String(format_span(end)));
        let at = |v: &Value, key: &str| v.get(key).and_then(span_of);
        // Faults: those starting at or after the end go, the others end by it.
        let keep: Vec<bool> = entries(&doc.table, "fault")
            .iter()
            .map(|f| at(f, "start").is_some_and(|s| s < end))
            .collect();
        doc.retain("fault", &keep);
        if let Some(Value::Array(faults)) = doc.table.get_mut("fault") {
            for f in faults {
                if at(f, "end").is_some_and(|e| e > end) {
                    if let Some(t) = f.as_table_mut() {
                        t.insert("end".to_owned(), Value::String(format_span(end)));
                    }
                }
            }
        }
        let keep: Vec<bool> = entries(&doc.table, "script")
            .iter()
            .map(|s| at(s, "at").is_some_and(|t| t <= end))
            .collect();
        doc.retain("script", &keep);
        if let Some(Value::Array(streams)) = doc.table.get_mut("workload") {
            for w in streams {
                if let Some(Value::Array(phases)) = w.get_mut("rate") {
                    cut_ramps(phases, end, "rps_from", "rps_to");
                }
            }
        }
        if let Some(Value::Array(points)) =
            doc.table.get_mut("cpu").and_then(|c| c.get_mut("points"))
        {
            points.retain(|p| at(p, "at").is_none_or(|t| t <= end));
            cut_ramps(points, end, "cpu_from", "cpu_to");
        }
        doc
    }

    /// The document with the first `cut` of the run cut off: every instant moves
    /// `cut` earlier, what ended by then goes, and what crosses it starts at 0 (a ramp
    /// at the value it had reached, a CPU step at the level it had set). A failure
    /// at the end of a run (a breaker that never closes) then needs no long run
    /// before it.
    pub fn without_head(&self, cut: Span) -> Doc {
        let mut doc = self.clone();
        let Some(duration) = self.duration() else {
            return doc;
        };
        if cut == 0 || cut >= duration {
            return doc;
        }
        doc.head_cut += cut;
        let span = |v: &Value, key: &str| v.get(key).and_then(span_of);
        let put = |t: &mut Table, key: &str, at: Span| {
            t.insert(key.to_owned(), Value::String(format_span(at)));
        };
        put(&mut doc.table, "duration", duration - cut);
        let keep: Vec<bool> = entries(&doc.table, "fault")
            .iter()
            .map(|f| span(f, "end").unwrap_or(duration) > cut)
            .collect();
        doc.retain("fault", &keep);
        if let Some(Value::Array(faults)) = doc.table.get_mut("fault") {
            for f in faults {
                let (start, end) = (span(f, "start"), span(f, "end"));
                if let Some(t) = f.as_table_mut() {
                    if let Some(start) = start {
                        put(t, "start", start.saturating_sub(cut));
                    }
                    if let Some(end) = end {
                        put(t, "end", end - cut);
                    }
                }
            }
        }
        let keep: Vec<bool> = entries(&doc.table, "script")
            .iter()
            .map(|s| span(s, "at").is_some_and(|at| at >= cut))
            .collect();
        doc.retain("script", &keep);
        if let Some(Value::Array(scripts)) = doc.table.get_mut("script") {
            for entry in scripts {
                if let (Some(at), Some(t)) = (span(entry, "at"), entry.as_table_mut()) {
                    put(t, "at", at - cut);
                }
            }
        }
        if let Some(Value::Array(streams)) = doc.table.get_mut("workload") {
            for w in streams {
                if let Some(Value::Array(phases)) = w.get_mut("rate") {
                    cut_ramps_before(phases, cut, "rps_from", "rps_to");
                }
            }
        }
        if let Some(Value::Array(points)) =
            doc.table.get_mut("cpu").and_then(|c| c.get_mut("points"))
        {
            // Of the steps before the cut only the last matters: it sets the level,
            // unless a ramp crossing the cut sets it.
            let crossed = points.iter().any(|p| {
                span(p, "from").is_some_and(|f| f < cut) && span(p, "to").is_some_and(|t| t > cut)
            });
            let last_before = points
                .iter()
                .rposition(|p| span(p, "at").is_some_and(|at| at < cut))
                .filter(|_| !crossed);
            let mut i = 0;
            points.retain(|p| {
                let keep = span(p, "at").is_none_or(|at| at >= cut) || Some(i) == last_before;
                i += 1;
                keep
            });
            for p in points.iter_mut() {
                if let (Some(at), Some(t)) = (span(p, "at"), p.as_table_mut()) {
                    put(t, "at", at.saturating_sub(cut));
                }
            }
            cut_ramps_before(points, cut, "cpu_from", "cpu_to");
        }
        if let Some(Value::Table(expect)) = doc.table.get_mut("expect") {
            // An instant, not a bound: it moves with the run.
            if let Some(by) = expect.get("queue_drained_by").and_then(span_of) {
                put(expect, "queue_drained_by", by.saturating_sub(cut));
            }
        }
        doc
    }

    /// The fault labelled `label`, its index.
    fn fault_index(&self, label: &str) -> Option<usize> {
        self.faults.iter().position(|l| l == label)
    }

    pub fn fault_labels(&self) -> &[String] {
        &self.faults
    }

    pub fn script_labels(&self) -> &[String] {
        &self.scripts
    }

    pub fn stream_labels(&self) -> &[String] {
        &self.streams
    }

    /// `(start, end)` of the fault labelled `label`; `end` none when it lasts to the
    /// end of the run.
    pub fn fault_window(&self, label: &str) -> Option<(Span, Option<Span>)> {
        let f = &entries(&self.table, "fault")[self.fault_index(label)?];
        Some((
            f.get("start").and_then(span_of)?,
            f.get("end").and_then(span_of),
        ))
    }

    /// The document with the fault labelled `label` from `start` to `end`.
    pub fn with_fault_window(&self, label: &str, start: Span, end: Span) -> Option<Doc> {
        let i = self.fault_index(label)?;
        let mut doc = self.clone();
        let fault = doc
            .table
            .get_mut("fault")?
            .as_array_mut()?
            .get_mut(i)?
            .as_table_mut()?;
        fault.insert("start".to_owned(), Value::String(format_span(start)));
        fault.insert("end".to_owned(), Value::String(format_span(end)));
        Some(doc)
    }

    /// When the script entry labelled `label` is sent.
    pub fn script_at(&self, label: &str) -> Option<Span> {
        let i = self.scripts.iter().position(|l| l == label)?;
        entries(&self.table, "script")[i]
            .get("at")
            .and_then(span_of)
    }

    pub fn with_script_at(&self, label: &str, at: Span) -> Option<Doc> {
        let i = self.scripts.iter().position(|l| l == label)?;
        let mut doc = self.clone();
        let entry = doc
            .table
            .get_mut("script")?
            .as_array_mut()?
            .get_mut(i)?
            .as_table_mut()?;
        entry.insert("at".to_owned(), Value::String(format_span(at)));
        Some(doc)
    }

    /// The stream labelled `label`'s rate value.
    pub fn rate(&self, label: &str) -> Option<&Value> {
        let i = self.streams.iter().position(|l| l == label)?;
        entries(&self.table, "workload")[i].get("rate")
    }

    /// The document with the stream labelled `label`'s rate replaced by `rate`.
    pub fn with_rate(&self, label: &str, rate: Value) -> Option<Doc> {
        let i = self.streams.iter().position(|l| l == label)?;
        let mut doc = self.clone();
        let stream = doc
            .table
            .get_mut("workload")?
            .as_array_mut()?
            .get_mut(i)?
            .as_table_mut()?;
        stream.insert("rate".to_owned(), rate);
        Some(doc)
    }

    /// What this document (the shrunk one) changed of `original`.
    pub fn changes_from(&self, original: &Doc) -> Changes {
        let mut changes = Changes::default();
        let removed = |all: &[String], left: &[String]| -> Vec<String> {
            all.iter().filter(|l| !left.contains(l)).cloned().collect()
        };
        changes.removed.extend(
            removed(&original.faults, &self.faults)
                .into_iter()
                .map(|l| match original.fault_window(&l) {
                    Some(w) => format!("{l}, {}", show_window(w)),
                    None => l,
                }),
        );
        changes
            .removed
            .extend(removed(&original.scripts, &self.scripts));
        changes
            .removed
            .extend(removed(&original.streams, &self.streams));
        if original.table.contains_key("cpu") && !self.table.contains_key("cpu") {
            changes.removed.push("the CPU curve ([cpu])".to_owned());
        }
        // Many removed windows of one random entry read better as a count.
        if changes.removed.len() > 12 {
            let total = changes.removed.len();
            changes.removed.truncate(10);
            changes.removed.push(format!("and {} more", total - 10));
        }
        if self.head_cut > original.head_cut {
            changes.shortened.push(format!(
                "the run's first {}: cut off, every later instant moved that much earlier (the windows below are in the new times)",
                format_span(self.head_cut - original.head_cut)
            ));
        }
        if let (Some(a), Some(b)) = (original.duration(), self.duration()) {
            if a != b {
                changes.shortened.push(format!(
                    "the run: duration {} -> {} (what came after cut off)",
                    format_span(a),
                    format_span(b)
                ));
            }
        }
        for label in &self.streams {
            let (Some(a), Some(b)) = (original.rate(label), self.rate(label)) else {
                continue;
            };
            if a != b {
                changes.shortened.push(format!(
                    "{label}: rate {} -> {}",
                    describe_rate(a),
                    describe_rate(b)
                ));
            }
        }
        for label in &self.faults {
            let (Some(a), Some(b)) = (original.fault_window(label), self.fault_window(label))
            else {
                continue;
            };
            if a != b {
                changes.shortened.push(format!(
                    "{label}: window {} -> {}",
                    show_window(a),
                    show_window(b)
                ));
            }
        }
        for label in &self.scripts {
            let (Some(a), Some(b)) = (original.script_at(label), self.script_at(label)) else {
                continue;
            };
            if a != b {
                changes.shortened.push(format!(
                    "{label}: sent at {} instead of {}",
                    format_span(b),
                    format_span(a)
                ));
            }
        }
        changes
    }
}

/// A rate in words: a number, or its phases' peak.
fn describe_rate(rate: &Value) -> String {
    match rate {
        Value::Array(phases) => {
            let peak = phases
                .iter()
                .flat_map(|p| ["rps", "rps_from", "rps_to"].map(|k| p.get(k).and_then(number_of)))
                .flatten()
                .fold(0.0_f64, f64::max);
            format!("{} phase(s) peaking at {peak} per second", phases.len())
        }
        other => format!("{} per second", number_of(other).unwrap_or(0.0)),
    }
}

/// Phases or CPU ramps (`from`, `to`, and a `from_key` -> `to_key` ramp) with the
/// first `cut` cut off: those over by then go, one crossing it starts at 0 at the value
/// it had reached, the others move `cut` earlier.
fn cut_ramps_before(items: &mut Vec<Value>, cut: Span, from_key: &str, to_key: &str) {
    let at = |v: &Value, key: &str| v.get(key).and_then(span_of);
    items.retain(|p| at(p, "to").is_none_or(|to| to > cut));
    for p in items.iter_mut() {
        let (Some(from), Some(to)) = (at(p, "from"), at(p, "to")) else {
            continue;
        };
        let Some(t) = p.as_table_mut() else { continue };
        if from < cut {
            if let (Some(a), Some(b)) = (
                t.get(from_key).and_then(number_of),
                t.get(to_key).and_then(number_of),
            ) {
                let reached = a + (b - a) * (cut - from) as f64 / (to - from) as f64;
                t.insert(from_key.to_owned(), number((reached * 1e6).round() / 1e6));
            }
        }
        t.insert(
            "from".to_owned(),
            Value::String(format_span(from.saturating_sub(cut))),
        );
        t.insert("to".to_owned(), Value::String(format_span(to - cut)));
    }
}

/// Phases or CPU ramps (`from`, `to`, and a `from_key` -> `to_key` ramp) cut at `end`:
/// those from `end` on go, one crossing it ends there at the value it reaches there.
fn cut_ramps(items: &mut Vec<Value>, end: Span, from_key: &str, to_key: &str) {
    let at = |v: &Value, key: &str| v.get(key).and_then(span_of);
    items.retain(|p| at(p, "from").is_none_or(|f| f < end));
    for p in items.iter_mut() {
        let (Some(from), Some(to)) = (at(p, "from"), at(p, "to")) else {
            continue;
        };
        if to <= end {
            continue;
        }
        let Some(t) = p.as_table_mut() else { continue };
        if let (Some(a), Some(b)) = (
            t.get(from_key).and_then(number_of),
            t.get(to_key).and_then(number_of),
        ) {
            let reached = a + (b - a) * (end - from) as f64 / (to - from) as f64;
            // Rounded to a millionth: the file stays readable, the ramp the same.
            let reached = (reached * 1e6).round() / 1e6;
            t.insert(to_key.to_owned(), number(reached));
        }
        t.insert("to".to_owned(), Value::String(format_span(end)));
    }
}
