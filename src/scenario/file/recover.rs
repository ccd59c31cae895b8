//! Every deserialization error at once: error recovery by removal.
//!
//! serde stops at the first error. To find the next one, the key-value the error points
//! at is removed from toml's spanned tree of the document (an unknown key with its
//! value; a bad value with its key; a table under a bad header with the table) and the
//! tree is deserialized again. The tree keeps every span of the original text, so the
//! errors found later still point at their place in the file.
//!
//! A removal can cause an error of its own: removing a bad `duration` makes it
//! missing. A "missing key" error for a key that was removed from that very table is
//! such a consequence: it is not reported, and the table holding it is removed in
//! turn (its other keys deserialized without error, or serde would have said so
//! first), so that the search goes on in the rest of the file. A genuine missing key
//! is reported, and its table removed the same way. Once the root table itself would
//! have to go, everything else in the file deserialized: the search is over.
//!
//! Every round removes at least one node of the tree, so the search ends; it is also
//! bounded by [`MAX_FOUND`] errors and [`MAX_ROUNDS`] rounds.

use std::ops::Range;

use serde::Deserialize;
use toml::de::{DeArray, DeTable, DeValue, Deserializer};
use toml::Spanned;

/// The search stops after finding this many errors.
pub const MAX_FOUND: usize = 100;
/// The search stops after this many deserializations (consequences of a removal are
/// not counted as errors, but each costs a round).
const MAX_ROUNDS: usize = 2 * MAX_FOUND;
/// Each round deserializes the whole document again: the search stops once it has
/// gone over this many bytes of text in all, so that a huge file full of errors is
/// refused in about a second rather than searched for minutes.
const MAX_WORK_BYTES: usize = 16 << 20;

/// The errors of a document that did not deserialize.
#[derive(Debug)]
pub struct Found {
    /// Each error's span in the text and toml's message, in the order found.
    pub errors: Vec<(Range<usize>, String)>,
    /// The search stopped at a bound: more errors may follow.
    pub incomplete: bool,
}

/// One step from a table to a value inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Deserializes `root`, parsed from a text of `size` bytes, and when that fails,
/// carries on to find every error.
pub fn deserialize<'i, T: Deserialize<'i>>(
    root: &Spanned<DeTable<'i>>,
    size: usize,
) -> Result<T, Found> {
    let mut tree = root.clone();
    let mut errors = Vec::new();
    // `(span of a table, key)` for every key removed from a table.
    let mut removed: Vec<(Range<usize>, String)> = Vec::new();
    let rounds = (MAX_WORK_BYTES / size.max(1)).clamp(2, MAX_ROUNDS);
    for _ in 0..rounds {
        let error = match T::deserialize(Deserializer::from(tree.clone())) {
            Ok(value) if errors.is_empty() => return Ok(value),
            Ok(_) => {
                return Err(Found {
                    errors,
                    incomplete: false,
                })
            }
            Err(error) => error,
        };
        let span = error.span();
        let missing = missing_key(error.message());
        let consequence = match (&span, missing) {
            (Some(span), Some(key)) => removed.iter().any(|(s, k)| s == span && k == key),
            _ => false,
        };
        if !consequence {
            errors.push((span.clone().unwrap_or(0..0), error.message().to_owned()));
            if errors.len() >= MAX_FOUND {
                return Err(Found {
                    errors,
                    incomplete: true,
                });
            }
        }
        let target = span.and_then(|span| match missing {
            Some(key) => table_at(&tree, &span, key),
            None => entry_at(tree.get_ref(), &span),
        });
        // No target: the root table is the one missing a key (so the rest of the file
        // deserialized), or the error points nowhere this search can remove.
        let Some(target) = target.filter(|path| !path.is_empty()) else {
            return Err(Found {
                errors,
                incomplete: false,
            });
        };
        if !remove(&mut tree, &target, &mut removed) {
            return Err(Found {
                errors,
                incomplete: false,
            });
        }
    }
    Err(Found {
        errors,
        incomplete: true,
    })
}

/// The key of serde's "missing field `key`" message.
fn missing_key(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split_once('`').map(|(key, _)| key)
}

fn within(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    !inner.is_empty() && outer.start <= inner.start && inner.end <= outer.end
}

/// The path of the innermost key-value whose key is `span`, or whose value holds it.
fn entry_at(table: &DeTable<'_>, span: &Range<usize>) -> Option<Vec<Step>> {
    fn in_table(table: &DeTable<'_>, span: &Range<usize>, path: &mut Vec<Step>) -> bool {
        for (key, value) in table.iter() {
            path.push(Step::Key(key.get_ref().to_string()));
            if in_value(value, span, path) || key.span() == *span || within(&value.span(), span) {
                return true;
            }
            path.pop();
        }
        false
    }
    // Only tables hold key-values: a table's own span is its header, so its keys are
    // searched whatever its span; an array's tables are searched element by element.
    fn in_value(value: &Spanned<DeValue<'_>>, span: &Range<usize>, path: &mut Vec<Step>) -> bool {
        match value.get_ref() {
            DeValue::Table(table) => in_table(table, span, path),
            DeValue::Array(items) => items.iter().enumerate().any(|(i, item)| {
                path.push(Step::Index(i));
                let found = matches!(item.get_ref(), DeValue::Table(t) if in_table(t, span, path));
                if !found {
                    path.pop();
                }
                found
            }),
            _ => false,
        }
    }
    let mut path = Vec::new();
    in_table(table, span, &mut path).then_some(path)
}

/// The path of the innermost table spanning `span` that lacks `key` (the root's path is
/// empty).
fn table_at(root: &Spanned<DeTable<'_>>, span: &Range<usize>, key: &str) -> Option<Vec<Step>> {
    fn visit(
        table: &DeTable<'_>,
        table_span: Range<usize>,
        span: &Range<usize>,
        key: &str,
        path: &mut Vec<Step>,
        best: &mut Option<Vec<Step>>,
    ) {
        if table_span == *span
            && !table.contains_key(key)
            && best.as_ref().is_none_or(|b| b.len() < path.len())
        {
            *best = Some(path.clone());
        }
        for (k, value) in table.iter() {
            path.push(Step::Key(k.get_ref().to_string()));
            visit_value(value, span, key, path, best);
            path.pop();
        }
    }
    fn visit_value(
        value: &Spanned<DeValue<'_>>,
        span: &Range<usize>,
        key: &str,
        path: &mut Vec<Step>,
        best: &mut Option<Vec<Step>>,
    ) {
        match value.get_ref() {
            DeValue::Table(table) => visit(table, value.span(), span, key, path, best),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(Step::Index(i));
                    visit_value(item, span, key, path, best);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut best = None;
    visit(
        root.get_ref(),
        root.span(),
        span,
        key,
        &mut Vec::new(),
        &mut best,
    );
    best
}

/// Removes the value at `path` (not empty), noting in `removed` a key removed from a
/// table. False if there is nothing there.
fn remove(
    root: &mut Spanned<DeTable<'_>>,
    path: &[Step],
    removed: &mut Vec<(Range<usize>, String)>,
) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut span = root.span();
    let mut value: Option<&mut DeValue<'_>> = None;
    let mut table = Some(root.get_mut());
    for step in parents {
        let next = match (step, table.take(), value.take()) {
            (Step::Key(key), Some(table), _) => table.get_mut(key.as_str()),
            (Step::Key(key), None, Some(DeValue::Table(table))) => table.get_mut(key.as_str()),
            (Step::Index(i), None, Some(DeValue::Array(items))) => items.get_mut(*i),
            _ => None,
        };
        let Some(next) = next else {
            return false;
        };
        span = next.span();
        value = Some(next.get_mut());
    }
    match (last, table, value) {
        (Step::Key(key), Some(table), _) | (Step::Key(key), None, Some(DeValue::Table(table))) => {
            if table.remove(key.as_str()).is_none() {
                return false;
            }
            removed.push((span, key.clone()));
            true
        }
        (Step::Index(i), None, Some(DeValue::Array(items))) if *i < items.len() => {
            let all = std::mem::replace(items, DeArray::new());
            *items = all
                .into_iter()
                .enumerate()
                .filter_map(|(j, item)| (j != *i).then_some(item))
                .collect();
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        a: u32,
        t: Option<Inner>,
        #[serde(default)]
        list: Vec<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        x: u32,
        y: Option<u32>,
    }

    fn found(text: &str) -> Found {
        let root = DeTable::parse(text).unwrap();
        deserialize::<Doc>(&root, text.len()).unwrap_err()
    }

    fn texts<'t>(text: &'t str, found: &Found) -> Vec<(&'t str, String)> {
        let mut errors: Vec<_> = found
            .errors
            .iter()
            .map(|(span, message)| (span.start, &text[span.clone()], message.clone()))
            .collect();
        errors.sort_by_key(|e| e.0);
        errors.into_iter().map(|(_, t, m)| (t, m)).collect()
    }

    #[test]
    fn each_error_once_and_no_consequences() {
        let text =
            "a = \"one\"\nb = 2\n[t]\nx = -1\nz = 3\n[[list]]\nx = 1\nw = 2\n[[list]]\ny = 1\n";
        let f = found(text);
        assert!(!f.incomplete);
        let got = texts(text, &f);
        assert_eq!(got.len(), 6, "{got:?}");
        assert_eq!(got[0].0, "\"one\"");
        assert_eq!(got[1].0, "b");
        assert_eq!(got[2].0, "-1");
        assert_eq!(got[3].0, "z");
        assert_eq!(got[4].0, "w");
        // The second `[[list]]` lacks `x`: a genuine missing key, at the header.
        assert_eq!(got[5], ("[[list]]", "missing field `x`".to_owned()));
    }

    #[test]
    fn a_valid_document_deserializes() {
        let root = DeTable::parse("a = 1\nlist = [{ x = 1 }]\n").unwrap();
        let doc = deserialize::<Doc>(&root, 20).unwrap();
        assert_eq!(doc.list.len(), 1);
    }

    #[test]
    fn a_huge_document_is_searched_for_a_bounded_time() {
        // Each unknown key costs a round; a document as large as the work bound gets
        // two rounds, so two errors, and says more may follow.
        let text: String = (0..50).map(|i| format!("bad{i} = 1\n")).collect();
        let root = DeTable::parse(&text).unwrap();
        let found = deserialize::<Doc>(&root, MAX_WORK_BYTES).unwrap_err();
        assert_eq!(found.errors.len(), 2);
        assert!(found.incomplete);
        let found = deserialize::<Doc>(&root, text.len()).unwrap_err();
        assert!(found.errors.len() >= 50, "{}", found.errors.len());
    }

    #[test]
    fn removing_an_array_element_keeps_the_others() {
        let text = "a = 1\nlist = [{ x = \"no\" }, { x = 2, q = 1 }, { x = 3, y = \"no\" }]\n";
        let got = texts(text, &found(text));
        let spans: Vec<&str> = got.iter().map(|(t, _)| *t).collect();
        assert_eq!(spans, ["\"no\"", "q", "\"no\""]);
    }
}
