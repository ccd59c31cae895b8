//! JUnit XML for `brownout test --junit FILE`: one `<testsuite>` per scenario file,
//! with a `<testcase>` for its snapshot, one per `[expect]` check, and one per
//! `[expect.sweep]` check when sweeps ran, so a CI system lists each failure by name.
//!
//! No `time` attributes: the file is a function of the scenarios, not of the machine.

use std::fmt::Write as _;

/// One test case's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseResult {
    /// It held.
    Passed,
    /// It failed: a one-line message and the detail (a diff, measured values).
    Failed {
        /// One line.
        message: String,
        /// Any length.
        detail: String,
    },
    /// The scenario could not be run at all (bad input).
    Error {
        /// One line.
        message: String,
        /// Any length.
        detail: String,
    },
}

/// A test case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// Its name: `snapshot`, `expect.min_availability`, `sweep.min_pass_rate`, ...
    pub name: String,
    /// How it went.
    pub result: CaseResult,
}

/// A scenario's test cases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suite {
    /// The scenario's name (the file stem when it could not be read).
    pub name: String,
    /// The scenario file, as given.
    pub file: String,
    /// Its cases, in order.
    pub cases: Vec<Case>,
}

impl Suite {
    fn count(&self, f: impl Fn(&CaseResult) -> bool) -> usize {
        self.cases.iter().filter(|c| f(&c.result)).count()
    }

    fn failures(&self) -> usize {
        self.count(|r| matches!(r, CaseResult::Failed { .. }))
    }

    fn errors(&self) -> usize {
        self.count(|r| matches!(r, CaseResult::Error { .. }))
    }
}

/// The whole XML document.
pub fn render(suites: &[Suite]) -> String {
    let tests: usize = suites.iter().map(|s| s.cases.len()).sum();
    let failures: usize = suites.iter().map(Suite::failures).sum();
    let errors: usize = suites.iter().map(Suite::errors).sum();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"brownout test\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\">"
    );
    for suite in suites {
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" file=\"{}\">",
            escape(&suite.name),
            suite.cases.len(),
            suite.failures(),
            suite.errors(),
            escape(&suite.file)
        );
        for case in &suite.cases {
            let open = format!(
                "    <testcase name=\"{}\" classname=\"{}\" file=\"{}\"",
                escape(&case.name),
                escape(&suite.name),
                escape(&suite.file)
            );
            match &case.result {
                CaseResult::Passed => {
                    let _ = writeln!(x, "{open}/>");
                }
                CaseResult::Failed { message, detail } | CaseResult::Error { message, detail } => {
                    let tag = if matches!(case.result, CaseResult::Failed { .. }) {
                        "failure"
                    } else {
                        "error"
                    };
                    let _ = writeln!(x, "{open}>");
                    let _ = writeln!(
                        x,
                        "      <{tag} message=\"{}\">{}</{tag}>",
                        escape(message),
                        escape(detail)
                    );
                    let _ = writeln!(x, "    </testcase>");
                }
            }
        }
        let _ = writeln!(x, "  </testsuite>");
    }
    x.push_str("</testsuites>\n");
    x
}

/// `text` as XML character data or an attribute value: the five special characters
/// escaped, and characters XML 1.0 forbids (most control characters) replaced, so the
/// document stays well-formed whatever a report holds.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => {
                let _ = write!(out, "&#{};", c as u32);
            }
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                out.push('\u{FFFD}');
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_and_errors_are_counted_and_escaped() {
        let suites = vec![
            Suite {
                name: "a".into(),
                file: "s/a.toml".into(),
                cases: vec![
                    Case {
                        name: "snapshot".into(),
                        result: CaseResult::Passed,
                    },
                    Case {
                        name: "expect.min_availability".into(),
                        result: CaseResult::Failed {
                            message: "expected >= 99%, measured 98%".into(),
                            detail: "a < b & \"c\"\n\u{1}".into(),
                        },
                    },
                ],
            },
            Suite {
                name: "b".into(),
                file: "s/b.toml".into(),
                cases: vec![Case {
                    name: "load".into(),
                    result: CaseResult::Error {
                        message: "s/b.toml:1:1: bad".into(),
                        detail: String::new(),
                    },
                }],
            },
        ];
        let xml = render(&suites);
        assert!(xml.contains(
            "<testsuites name=\"brownout test\" tests=\"3\" failures=\"1\" errors=\"1\">"
        ));
        assert!(
            xml.contains("a &lt; b &amp; &quot;c&quot;&#10;\u{FFFD}</failure>"),
            "{xml}"
        );
        assert!(
            xml.contains("<error message=\"s/b.toml:1:1: bad\"></error>"),
            "{xml}"
        );
    }
}
