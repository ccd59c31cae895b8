//! A snapshot's change as a unified diff, for people and for JUnit failure bodies.

use similar::TextDiff;

/// Lines of context around each change.
const CONTEXT: usize = 3;

/// The unified diff from `old` to `new` (both normalized bodies), with `old_name` and
/// `new_name` on its `---` / `+++` lines; empty when they are equal.
pub fn unified(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    // Both sides end with a newline, so the last line of each compares as a line and
    // no "\ No newline at end of file" marker appears.
    let old = format!("{old}\n");
    let new = format!("{new}\n");
    if old == new {
        return String::new();
    }
    TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(CONTEXT)
        .header(old_name, new_name)
        .to_string()
}

/// How many lines the diff removes and adds.
pub fn counts(diff: &str) -> (usize, usize) {
    let body = diff
        .lines()
        .filter(|l| !l.starts_with("---") && !l.starts_with("+++"));
    body.fold((0, 0), |(removed, added), line| {
        match line.as_bytes().first() {
            Some(b'-') => (removed + 1, added),
            Some(b'+') => (removed, added + 1),
            _ => (removed, added),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_line_shows_with_its_context() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh";
        let new = "a\nb\nc\nd\nE\nf\ng\nh";
        let diff = unified(old, new, "old.snap", "new report");
        assert_eq!(
            diff,
            "--- old.snap\n+++ new report\n@@ -2,7 +2,7 @@\n b\n c\n d\n-e\n+E\n f\n g\n h\n"
        );
        assert_eq!(counts(&diff), (1, 1));
        assert_eq!(unified(old, old, "x", "y"), "");
    }
}
