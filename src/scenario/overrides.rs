//! `--set key=value`: a change to a scenario made on the command line, read as if the
//! file said it.
//!
//! An override is put into toml's spanned tree of the document before anything is
//! deserialized, so it goes through exactly the checks a value written in the file
//! goes through (unknown keys, value syntax and range, the cross-field validation of
//! `build`). Its value and any key or table it adds carry a *marker* span, past the end
//! of the file's text, one per override: an error that points there is reported as
//! the override's (`--set KEY=VALUE: what was expected`), not at a line of the file.
//! A replaced key keeps its own span, so a table keyed by name keeps its order (the
//! order of names is the order of ids, which random streams and reports follow) and a
//! `--set` that repeats the file's value changes nothing; an error a later check
//! reports at that key (by its dotted path) is recognised as the override's too.
//!
//! Keys are the file's dotted keys, with `[i]` for an element of an array of tables
//! (`workload[0].rate`, as error messages write them). In a scenario with a declared
//! service, a key under `service.` or one that starts with a table only a service has
//! (`dependencies`, `endpoints`, `keys`, `features`, `admission`, `compute`) is set in
//! the service: in the scenario's `[service]`, or in the service file it names
//! (`--set dependencies.payments.timeout=1s` changes `services/shop.toml` as read for
//! this run; the file on disk is never written).
//!
//! An override may replace a value, add a key to a table, or add the tables on its
//! path, but it never adds an entry to a service's tables of names (`dependencies`,
//! `endpoints`, `keys`) nor an element to an array: a typo there would silently
//! declare something new, so it is refused with the names that exist. (A misspelt
//! key of any other table is refused as the file's would be, with the keys the table
//! may have.)

use std::ops::Range;

use toml::de::{DeArray, DeTable, DeValue};
use toml::Spanned;

use super::ScenarioError;

/// Tables a service has and a scenario does not: a key that starts with one of them
/// is set in the scenario's service.
const SERVICE_TABLES: [&str; 6] = [
    "dependencies",
    "endpoints",
    "keys",
    "features",
    "admission",
    "compute",
];

/// A service's tables whose keys are names the file chooses. (A scenario's
/// `expect.endpoints` and `expect.dependencies` are not among them: a name there must
/// be one the service declares, which `build` checks.)
const SERVICE_NAMED: [&str; 3] = ["dependencies", "endpoints", "keys"];

/// One `--set KEY=VALUE` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// The argument as written (`KEY=VALUE`): messages and replay commands repeat it.
    pub arg: String,
    /// The dotted key.
    pub key: String,
    /// The value's text: TOML if it parses as a TOML value, else a string.
    value: String,
}

impl Override {
    /// Parses `KEY=VALUE` (the key a dotted path of bare keys, `[i]` indices allowed).
    pub fn parse(arg: &str) -> Result<Override, String> {
        let Some((key, value)) = arg.split_once('=') else {
            return Err(format!(
                "`{arg}` is not KEY=VALUE; for example --set dependencies.payments.timeout=2s"
            ));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("`{arg}`: the key before `=` is empty"));
        }
        for segment in key.split('.') {
            let (name, rest) = segment.split_once('[').unwrap_or((segment, ""));
            let bare = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            let indices_ok = rest.is_empty()
                || rest.strip_suffix(']').is_some_and(|inner| {
                    inner
                        .split("][")
                        .all(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
                });
            if !bare || !indices_ok {
                return Err(format!(
                    "`{arg}`: `{key}` is not a dotted key; write bare keys separated by dots, \
                     with [N] for an element of an array (workload[0].rate)"
                ));
            }
        }
        Ok(Override {
            arg: arg.to_owned(),
            key: key.to_owned(),
            value: value.trim().to_owned(),
        })
    }

    /// Whether this override set the key at dotted `path` (in the scenario's
    /// coordinates, `service.` for a service's keys) or a table holding it.
    pub fn covers(&self, path: &str) -> bool {
        // A service's key is `service.`-prefixed in a budget's paths when the
        // scenario has a declared service; in a seed scenario `dependencies` is the
        // scenario's own. Either reading that matches is this override.
        under(path, &self.key) || under(path, &format!("service.{}", self.key))
    }

    /// The error this override caused: `--set KEY=VALUE: message`.
    fn error(&self, message: impl std::fmt::Display) -> ScenarioError {
        ScenarioError {
            // Not a file: an override's errors are named by the argument, which the
            // error's display puts where a file's name would be.
            path: format!("--set {}", self.arg).into(),
            position: None,
            message: message.to_string(),
        }
    }
}

/// The `--set` arguments of one run, in order (a later one wins over an earlier one
/// for the same key, as it replaces the value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides(pub Vec<Override>);

impl Overrides {
    /// No overrides.
    pub fn none() -> &'static Overrides {
        static NONE: Overrides = Overrides(Vec::new());
        &NONE
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The arguments as written, for a replay command.
    pub fn args(&self) -> Vec<String> {
        self.0.iter().map(|o| o.arg.clone()).collect()
    }
}

/// Which tree an override goes into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    /// The scenario's document.
    Scenario,
    /// The service file the scenario names.
    ServiceFile,
}

/// How a scenario holds its service, which decides where an override goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ServiceKind {
    /// The seed service: no `service` key.
    Seed,
    /// `[service]` in the scenario.
    Inline,
    /// `service = "FILE"`.
    File,
}

impl ServiceKind {
    pub(super) fn of(root: &DeTable<'_>) -> ServiceKind {
        match root.get("service").map(|v| v.get_ref()) {
            None => ServiceKind::Seed,
            Some(DeValue::String(_)) => ServiceKind::File,
            Some(_) => ServiceKind::Inline,
        }
    }
}

/// The overrides that land in one file's tree, at their paths in that tree, and the
/// start of their marker spans (past the end of the file's text).
#[derive(Debug, Default)]
pub(super) struct Landed<'o> {
    base: usize,
    items: Vec<(&'o Override, String)>,
    /// The tables of names in this tree's coordinates.
    named: Vec<String>,
}

impl<'o> Landed<'o> {
    /// The overrides of `all` that go into `target`, for a file of `text_len` bytes.
    pub(super) fn select(
        all: &'o Overrides,
        kind: ServiceKind,
        target: Target,
        text_len: usize,
    ) -> Landed<'o> {
        let items = all
            .0
            .iter()
            .filter_map(|o| {
                let first = o.key.split(['.', '[']).next().unwrap_or("");
                let to_service = SERVICE_TABLES.contains(&first);
                let (goes, path) = match (kind, target) {
                    (ServiceKind::Seed, Target::Scenario) => (true, o.key.clone()),
                    (ServiceKind::Inline, Target::Scenario) if to_service => {
                        (true, format!("service.{}", o.key))
                    }
                    (ServiceKind::Inline, Target::Scenario) => (true, o.key.clone()),
                    (ServiceKind::File, Target::Scenario) => {
                        (!to_service && !o.key.starts_with("service."), o.key.clone())
                    }
                    (ServiceKind::File, Target::ServiceFile) if to_service => (true, o.key.clone()),
                    (ServiceKind::File, Target::ServiceFile) => {
                        match o.key.strip_prefix("service.") {
                            Some(rest) => (true, rest.to_owned()),
                            None => (false, String::new()),
                        }
                    }
                    (ServiceKind::Seed | ServiceKind::Inline, Target::ServiceFile) => {
                        (false, String::new())
                    }
                };
                goes.then_some((o, path))
            })
            .collect();
        let named = match (kind, target) {
            (ServiceKind::Seed, _) => Vec::new(),
            (ServiceKind::Inline, _) | (ServiceKind::File, Target::Scenario) => SERVICE_NAMED
                .iter()
                .map(|n| format!("service.{n}"))
                .collect(),
            (ServiceKind::File, Target::ServiceFile) => {
                SERVICE_NAMED.iter().map(|n| n.to_string()).collect()
            }
        };
        Landed {
            base: text_len + 1,
            items,
            named,
        }
    }

    fn marker(&self, k: usize) -> Range<usize> {
        self.base + k..self.base + k + 1
    }

    /// The override whose marker span holds byte `offset`, if any.
    pub(super) fn at(&self, offset: usize) -> Option<&'o Override> {
        offset
            .checked_sub(self.base)
            .and_then(|k| self.items.get(k))
            .map(|(o, _)| *o)
    }

    /// The last override that set `path` or a table holding it (the one that wins).
    pub(super) fn covering(&self, path: &str) -> Option<&'o Override> {
        self.items
            .iter()
            .rev()
            .find_map(|(o, at)| under(path, at).then_some(*o))
    }

    /// The error `message` at byte `offset`, if an override is there. An unknown key
    /// gets the nearest key the table may have, if one is near.
    pub(super) fn error_at(&self, offset: usize, message: &str) -> Option<ScenarioError> {
        self.at(offset).map(|o| o.error(with_suggestion(message)))
    }

    /// The refusal of a value at `path` (`invalid PATH: REASON`), if an override set it.
    pub(super) fn error_for(&self, path: &str, reason: &str) -> Option<ScenarioError> {
        self.covering(path)
            .map(|o| o.error(format!("invalid {path}: {reason}")))
    }

    /// Puts every override into `root`, in order; the errors of those that cannot go
    /// there (no such table, not a table, an index past the array's end).
    pub(super) fn apply<'i>(&self, root: &mut Spanned<DeTable<'i>>) -> Vec<ScenarioError>
    where
        'o: 'i,
    {
        let mut errors = Vec::new();
        for (k, (o, path)) in self.items.iter().enumerate() {
            if path == "service" {
                errors.push(o.error(
                    "which service a scenario runs is not set on the command line; \
                     write a second scenario file and compare the two",
                ));
                continue;
            }
            let value = value_of(&o.value, self.marker(k));
            if let Err(message) = set(root.get_mut(), path, value, self.marker(k), &self.named) {
                errors.push(o.error(message));
            }
        }
        errors
    }
}

/// The override's value as a TOML value (spanned at `marker` throughout), or, when the
/// text is not one (`30s`, `1h 30m`), as the string it is.
fn value_of<'i>(text: &'i str, marker: Range<usize>) -> Spanned<DeValue<'i>> {
    match DeValue::parse(text) {
        Ok(value) => respan(value.into_inner(), &marker),
        Err(_) => Spanned::new(marker, DeValue::String(text.into())),
    }
}

/// `value` with every span inside it set to `marker`.
fn respan<'i>(value: DeValue<'i>, marker: &Range<usize>) -> Spanned<DeValue<'i>> {
    let value = match value {
        DeValue::Table(table) => DeValue::Table(
            table
                .into_iter()
                .map(|(k, v)| {
                    (
                        Spanned::new(marker.clone(), k.into_inner()),
                        respan(v.into_inner(), marker),
                    )
                })
                .collect(),
        ),
        DeValue::Array(items) => {
            let mut array = DeArray::new();
            for item in items {
                array.push(respan(item.into_inner(), marker));
            }
            DeValue::Array(array)
        }
        other => other,
    };
    Spanned::new(marker.clone(), value)
}

/// One step of a path: a key, then array indices.
fn segments(path: &str) -> Vec<(&str, Vec<usize>)> {
    path.split('.')
        .map(|segment| {
            let (key, rest) = segment.split_once('[').unwrap_or((segment, ""));
            let indices = rest
                .split('[')
                .filter_map(|i| i.trim_end_matches(']').parse().ok())
                .collect();
            (key, indices)
        })
        .collect()
}

/// Sets `value` at dotted `path` in `root`, adding the tables on the way that are not
/// there (with `marker` spans) unless they would be entries of a table of names.
fn set<'i>(
    root: &mut DeTable<'i>,
    path: &str,
    value: Spanned<DeValue<'i>>,
    marker: Range<usize>,
    named: &[String],
) -> Result<(), String> {
    let segs = segments(path);
    let (last, parents) = segs.split_last().expect("a key has a segment");
    let mut table = root;
    let mut at = String::new();
    for (key, indices) in parents {
        let here = join(&at, key);
        if !table.contains_key(*key) {
            if !indices.is_empty() {
                return Err(format!("there is no array `{here}`"));
            }
            if named.contains(&at) {
                return Err(no_such_name(table, &at, key));
            }
            table.insert(
                Spanned::new(marker.clone(), (*key).to_owned().into()),
                Spanned::new(marker.clone(), DeValue::Table(DeTable::new())),
            );
        }
        let found = table.get_mut(*key).expect("present or just added");
        let (value, path_here) = element(found, indices, here)?;
        table = match value.get_mut() {
            DeValue::Table(t) => t,
            other => return Err(format!("`{path_here}` is {}, not a table", describe(other))),
        };
        at = path_here;
    }
    let (key, indices) = last;
    if indices.is_empty() {
        match table.remove_entry(*key) {
            // The key keeps its place (its span): only the value is new.
            Some((written, _)) => table.insert(written, value),
            None => table.insert(Spanned::new(marker, (*key).to_owned().into()), value),
        };
        return Ok(());
    }
    let here = join(&at, key);
    let Some(slot) = table.get_mut(*key) else {
        return Err(format!("there is no array `{here}`"));
    };
    let (slot, _) = element(slot, indices, here)?;
    *slot = value;
    Ok(())
}

/// Follows `indices` from `value` (at `path`) through nested arrays: the element they
/// name and its path, or why there is none.
fn element<'a, 'i>(
    mut value: &'a mut Spanned<DeValue<'i>>,
    indices: &[usize],
    mut path: String,
) -> Result<(&'a mut Spanned<DeValue<'i>>, String), String> {
    for &i in indices {
        value = match value.get_mut() {
            DeValue::Array(items) => {
                let len = items.len();
                items
                    .get_mut(i)
                    .ok_or_else(|| format!("`{path}` has {len} element(s); there is no [{i}]"))?
            }
            other => return Err(format!("`{path}` is {}, not an array", describe(other))),
        };
        path = format!("{path}[{i}]");
    }
    Ok((value, path))
}

/// toml's "unknown key `x`, expected one of `a`, `b`" with "; did you mean `a`?" when
/// one of the keys is a likely misspelling of `x`.
fn with_suggestion(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown key `") else {
        return message.to_owned();
    };
    let Some((typed, list)) = rest.split_once('`') else {
        return message.to_owned();
    };
    let candidates: Vec<&str> = list.split('`').skip(1).step_by(2).collect();
    match closest(typed, &candidates) {
        Some(near) => format!("{message}; did you mean `{near}`?"),
        None => message.to_owned(),
    }
}

/// The candidate nearest to `typed` by edit distance, if within a third of its length
/// (at least 1): near enough to be a typo, not just another key.
fn closest<'c>(typed: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let limit = (typed.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (edit_distance(typed, c), *c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Whether dotted `path` is `at` or inside it.
fn under(path: &str, at: &str) -> bool {
    path == at
        || path
            .strip_prefix(at)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
}

/// A missing entry of a table of names, with the names it has.
fn no_such_name(table: &DeTable<'_>, at: &str, key: &str) -> String {
    let mut names: Vec<(usize, &str)> = table
        .iter()
        .map(|(k, _)| (k.span().start, k.get_ref().as_ref()))
        .collect();
    names.sort_unstable();
    let plain: Vec<&str> = names.iter().map(|(_, n)| *n).collect();
    let quoted: Vec<String> = plain.iter().map(|n| format!("`{n}`")).collect();
    if quoted.is_empty() {
        return format!("`{at}` has no `{key}` (it is empty); --set never adds one");
    }
    let hint = closest(key, &plain).map_or_else(String::new, |n| format!("; did you mean `{n}`?"));
    format!(
        "`{at}` has no `{key}`; it has {}; --set never adds one{hint}",
        quoted.join(", ")
    )
}

fn describe(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(arg: &str) -> Override {
        Override::parse(arg).unwrap()
    }

    #[test]
    fn arguments_are_key_equals_value() {
        let x = o("dependencies.payments.breaker.open_duration = 30s");
        assert_eq!(x.key, "dependencies.payments.breaker.open_duration");
        assert_eq!(x.value, "30s");
        assert_eq!(o("workload[0].rate=5").key, "workload[0].rate");
        assert_eq!(o("a.b=c=d").value, "c=d");
        for bad in [
            "novalue",
            "=1",
            "a..b=1",
            "a b=1",
            "a[x]=1",
            "\"a\".b=1",
            "a[]=1",
        ] {
            assert!(Override::parse(bad).is_err(), "{bad}");
        }
    }

    fn applied(text: &str, args: &[&str]) -> Result<String, Vec<String>> {
        let all = Overrides(args.iter().map(|a| o(a)).collect());
        let mut root = DeTable::parse(text).unwrap();
        let kind = ServiceKind::of(root.get_ref());
        let landed = Landed::select(&all, kind, Target::Scenario, text.len());
        let errors = landed.apply(&mut root);
        if !errors.is_empty() {
            return Err(errors.iter().map(ToString::to_string).collect());
        }
        // Values only, in a stable form.
        fn show(v: &DeValue<'_>) -> String {
            match v {
                DeValue::String(s) => format!("{s:?}"),
                DeValue::Integer(i) => i.as_str().to_owned(),
                DeValue::Float(f) => f.as_str().to_owned(),
                DeValue::Boolean(b) => b.to_string(),
                DeValue::Datetime(d) => d.to_string(),
                DeValue::Array(a) => format!(
                    "[{}]",
                    a.iter()
                        .map(|x| show(x.get_ref()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                DeValue::Table(t) => {
                    let mut entries: Vec<String> = t
                        .iter()
                        .map(|(k, v)| format!("{} = {}", k.get_ref(), show(v.get_ref())))
                        .collect();
                    entries.sort();
                    format!("{{{}}}", entries.join(", "))
                }
            }
        }
        Ok(show(&DeValue::Table(root.into_inner())))
    }

    #[test]
    fn values_are_toml_where_they_parse_and_strings_otherwise() {
        let got = applied(
            "duration = \"1m\"\n[modes]\nx = 1\n",
            &[
                "duration=30s",
                "seed=7",
                "modes.x=[1, 2]",
                "modes.y={ a = true }",
                "name=\"quoted\"",
            ],
        )
        .unwrap();
        assert_eq!(
            got,
            "{duration = \"30s\", modes = {x = [1, 2], y = {a = true}}, name = \"quoted\", seed = 7}"
        );
    }

    #[test]
    fn tables_are_added_below_existing_ones_but_never_named_entries() {
        let text = "[service.dependencies.payments]\ntimeout = \"1s\"\n";
        let got = applied(text, &["dependencies.payments.breaker.open_duration=30s"]).unwrap();
        assert!(got.contains("breaker = {open_duration = \"30s\"}"), "{got}");
        let err = applied(text, &["dependencies.paymnts.timeout=2s"]).unwrap_err();
        assert_eq!(
            err,
            ["--set dependencies.paymnts.timeout=2s: `service.dependencies` has no `paymnts`; it has `payments`; --set never adds one; did you mean `payments`?"]
        );
        let err = applied("[[fault]]\nstart = \"1s\"\n", &["fault[2].start=3s"]).unwrap_err();
        assert!(
            err[0].contains("`fault` has 1 element(s); there is no [2]"),
            "{err:?}"
        );
        let err = applied("seed = 1\n", &["seed.x=1"]).unwrap_err();
        assert!(
            err[0].ends_with("`seed` is an integer, not a table"),
            "{err:?}"
        );
    }

    #[test]
    fn a_near_key_is_suggested_and_a_far_one_is_not() {
        let m = "unknown key `open_duraton`, expected one of `policy`, `open_duration`, `max_open_duration`";
        assert!(with_suggestion(m).ends_with("; did you mean `open_duration`?"));
        let m = "unknown key `colour`, expected one of `policy`, `open_duration`";
        assert_eq!(with_suggestion(m), m);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "ab"), 2);
    }

    #[test]
    fn marker_spans_name_the_override() {
        let all = Overrides(vec![o("seed=x"), o("duration=1m")]);
        let landed = Landed::select(&all, ServiceKind::Seed, Target::Scenario, 10);
        assert_eq!(landed.at(11).unwrap().arg, "seed=x");
        assert_eq!(landed.at(12).unwrap().arg, "duration=1m");
        assert!(landed.at(10).is_none() && landed.at(13).is_none());
        assert_eq!(landed.covering("duration").unwrap().arg, "duration=1m");
        assert!(landed.covering("durations").is_none());
    }

    #[test]
    fn keys_of_a_service_file_go_to_it() {
        let all = Overrides(vec![
            o("dependencies.payments.timeout=1s"),
            o("service.endpoints.checkout.deadline=2s"),
            o("seed=3"),
        ]);
        let scenario = Landed::select(&all, ServiceKind::File, Target::Scenario, 0);
        let service = Landed::select(&all, ServiceKind::File, Target::ServiceFile, 0);
        let paths = |l: &Landed<'_>| l.items.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>();
        assert_eq!(paths(&scenario), ["seed"]);
        assert_eq!(
            paths(&service),
            [
                "dependencies.payments.timeout",
                "endpoints.checkout.deadline"
            ]
        );
        let inline = Landed::select(&all, ServiceKind::Inline, Target::Scenario, 0);
        assert_eq!(
            paths(&inline),
            [
                "service.dependencies.payments.timeout",
                "service.endpoints.checkout.deadline",
                "seed"
            ]
        );
    }
}
