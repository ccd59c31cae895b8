//! Scenario errors: what was wrong and where (file, line, column).

use std::fmt;
use std::path::PathBuf;

/// One thing wrong with a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line and column of the offending text, when known.
    pub position: Option<(usize, usize)>,
    /// What was wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, column)) => write!(
                f,
                "{}:{line}:{column}: {}",
                self.path.display(),
                self.message
            ),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for ScenarioError {}

/// A scenario that could not be read or is invalid: every error found, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioErrors {
    /// The errors shown, in file order, without duplicates; never empty.
    pub errors: Vec<ScenarioError>,
    /// Further errors found but not shown (beyond [`ScenarioErrors::MAX_SHOWN`]).
    pub not_shown: usize,
    /// The search for errors stopped at its bound: more may follow those found.
    pub more_may_follow: bool,
}

impl ScenarioErrors {
    /// At most this many errors are shown.
    pub const MAX_SHOWN: usize = 20;

    /// `errors` (not empty) sorted into file order and deduplicated, the first
    /// [`MAX_SHOWN`](Self::MAX_SHOWN) kept. Errors without a position come first; errors
    /// at the same position keep their order. The errors of a scenario and of its
    /// service file are grouped by file, the files in the order their first error
    /// comes in `errors`.
    pub fn new(mut errors: Vec<ScenarioError>, more_may_follow: bool) -> ScenarioErrors {
        assert!(!errors.is_empty(), "a failure has at least one error");
        let mut files: Vec<PathBuf> = Vec::new();
        for e in &errors {
            if !files.contains(&e.path) {
                files.push(e.path.clone());
            }
        }
        errors.sort_by_key(|e| (files.iter().position(|f| *f == e.path), e.position));
        let mut unique: Vec<ScenarioError> = Vec::with_capacity(errors.len());
        for e in errors {
            let seen = unique
                .iter()
                .rev()
                .take_while(|u| u.position == e.position)
                .any(|u| *u == e);
            if !seen {
                unique.push(e);
            }
        }
        let not_shown = unique.len().saturating_sub(Self::MAX_SHOWN);
        unique.truncate(Self::MAX_SHOWN);
        ScenarioErrors {
            errors: unique,
            not_shown,
            more_may_follow,
        }
    }

    /// The first error in the file.
    pub fn first(&self) -> &ScenarioError {
        &self.errors[0]
    }

    /// One line per error (`file:line:column: message`), then what was left out.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
        let path = self.first().path.display();
        match (self.not_shown, self.more_may_follow) {
            (0, false) => {}
            (0, true) => lines.push(format!("{path}: more errors may follow")),
            (n, more) => lines.push(format!(
                "{path}: {n} more error{} not shown{}",
                if n == 1 { "" } else { "s" },
                if more { ", and more may follow" } else { "" }
            )),
        }
        lines
    }
}

impl From<ScenarioError> for ScenarioErrors {
    fn from(error: ScenarioError) -> Self {
        ScenarioErrors::new(vec![error], false)
    }
}

impl fmt::Display for ScenarioErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines().join("\n"))
    }
}

impl std::error::Error for ScenarioErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: usize, column: usize, message: &str) -> ScenarioError {
        ScenarioError {
            path: "s.toml".into(),
            position: Some((line, column)),
            message: message.into(),
        }
    }

    #[test]
    fn sorted_deduplicated_one_per_line() {
        let e = ScenarioErrors::new(
            vec![at(3, 1, "c"), at(1, 5, "a"), at(3, 1, "b"), at(3, 1, "c")],
            false,
        );
        assert_eq!(e.to_string(), "s.toml:1:5: a\ns.toml:3:1: c\ns.toml:3:1: b");
        assert_eq!(e.first().message, "a");
    }

    #[test]
    fn errors_are_grouped_by_file_in_order_of_appearance() {
        let mut service = at(1, 1, "s");
        service.path = "shop.toml".into();
        let e = ScenarioErrors::new(vec![at(5, 1, "b"), service, at(2, 1, "a")], false);
        assert_eq!(
            e.to_string(),
            "s.toml:2:1: a\ns.toml:5:1: b\nshop.toml:1:1: s"
        );
    }

    #[test]
    fn the_cap_says_what_was_left_out() {
        let many: Vec<_> = (1..=25).map(|l| at(l, 1, "x")).collect();
        let e = ScenarioErrors::new(many.clone(), false);
        assert_eq!(e.errors.len(), ScenarioErrors::MAX_SHOWN);
        assert_eq!(e.not_shown, 5);
        assert_eq!(e.lines().last().unwrap(), "s.toml: 5 more errors not shown");
        let e = ScenarioErrors::new(many, true);
        assert_eq!(
            e.lines().last().unwrap(),
            "s.toml: 5 more errors not shown, and more may follow"
        );
        let e = ScenarioErrors::new(vec![at(1, 1, "x")], true);
        assert_eq!(
            e.to_string(),
            "s.toml:1:1: x\ns.toml: more errors may follow"
        );
    }
}
