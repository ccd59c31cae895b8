//! Finding where a key is written: byte offsets to line and column, and dotted paths
//! (`workload[0].rate[1].to`) to the span of their key in the document.
//!
//! Used only after validation fails, for errors that concern a key rather than one
//! value's syntax (cross-field checks, the engine's `validate()`): toml's spanned tree
//! of the document keeps every key's position.

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// The 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// One step of a path: a key, then zero or more array indices (`rate[1]`).
fn segments(path: &str) -> impl Iterator<Item = (&str, Vec<usize>)> {
    path.split('.').map(|segment| {
        let (key, rest) = segment.split_once('[').unwrap_or((segment, ""));
        let indices = rest
            .split('[')
            .filter_map(|index| index.trim_end_matches(']').parse().ok())
            .collect();
        (key, indices)
    })
}

/// The span of the key at `path` in `text`; when the key is not written (it was left
/// to its default), the span of the nearest written parent: its key, or the header of
/// an array-of-tables entry. The document's start when nothing matches.
pub fn locate(root: &DeTable<'_>, path: &str) -> Range<usize> {
    let mut best = 0..0;
    let mut table: Option<&DeTable<'_>> = Some(root);
    let mut value: Option<&Spanned<DeValue<'_>>> = None;
    for (key, indices) in segments(path) {
        let current = match (table, value) {
            (Some(table), _) => table,
            (None, Some(v)) => match v.get_ref() {
                DeValue::Table(t) => t,
                _ => break,
            },
            (None, None) => break,
        };
        let Some((found_key, found)) = current.get_key_value(key) else {
            break;
        };
        best = found_key.span();
        table = None;
        value = Some(found);
        let mut complete = true;
        for index in indices {
            let element = match value.map(Spanned::get_ref) {
                Some(DeValue::Array(items)) => items.get(index),
                _ => None,
            };
            match element {
                Some(element) => {
                    // An inline element's span is its value; a `[[table]]` entry's is
                    // its header. Either is where the reader should look.
                    best = element.span();
                    value = Some(element);
                }
                None => {
                    complete = false;
                    break;
                }
            }
        }
        if !complete {
            break;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_are_one_based_and_count_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 4), (1, 5));
        assert_eq!(line_column(text, 6), (2, 1));
        // "bé = " is 6 bytes but 5 characters.
        assert_eq!(line_column(text, 12), (2, 6));
        assert_eq!(line_column(text, 1_000), (3, 1));
    }

    #[test]
    fn paths_find_keys_elements_and_nearest_parents() {
        let text = "top = 1\n[a.b]\nc = 2\n[[w]]\nx = [{ y = 1 }, { y = 2 }]\n[[w]]\nz = 3\n";
        let root = DeTable::parse(text).unwrap();
        let at = |path: &str| {
            let span = locate(root.get_ref(), path);
            (line_column(text, span.start), &text[span])
        };
        assert_eq!(at("top"), ((1, 1), "top"));
        assert_eq!(at("a.b.c"), ((3, 1), "c"));
        assert_eq!(at("a.b.missing"), ((2, 4), "b"));
        assert_eq!(at("w[0].x[1].y"), ((5, 19), "y"));
        assert_eq!(at("w[0].x[5].y"), ((5, 1), "x"));
        assert_eq!(at("w[1].z"), ((7, 1), "z"));
        assert_eq!(at("w[1].nope"), ((6, 1), "[[w]]"));
        assert_eq!(at("nothing.here"), ((1, 1), ""));
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Against a model that walks the characters one by one.
        #[test]
        fn line_column_matches_a_character_walk(text in "[a\né= ]{0,40}", at in 0usize..60) {
            let mut offset = at.min(text.len());
            while !text.is_char_boundary(offset) {
                offset -= 1;
            }
            let (mut line, mut column) = (1, 1);
            for (i, c) in text.char_indices() {
                if i >= offset {
                    break;
                }
                if c == '\n' {
                    line += 1;
                    column = 1;
                } else {
                    column += 1;
                }
            }
            prop_assert_eq!(line_column(&text, offset), (line, column));
        }
    }
}
