//! Snapshot files in insta's `.snap` format, read and written without insta.
//!
//! A file is a YAML header between two `---` lines, then the body:
//!
//! ```text
//! ---
//! source: brownout test
//! expression: "the run's report (render_text, with the trace digest)"
//! input_file: scenarios/outage.toml
//! ---
//! brownout: outage (seed 42), 10m simulated
//! ...
//! ```
//!
//! As insta does, a body is compared with its trailing whitespace trimmed and CRLF
//! read as LF, and written with one final newline; a pending new version goes beside
//! the snapshot as `NAME.snap.new`, which is what `cargo insta review` looks for.
//! Only the three header keys above are written; a header read from an existing file
//! is kept as it is when its body is replaced, so accepting a change moves only the
//! body.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// A snapshot file's header and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The header's lines between the two `---` lines, each without its newline.
    pub header: Vec<String>,
    /// The body, normalized (see [`normalize`]).
    pub body: String,
}

/// What writes a new snapshot's header says about where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// insta's `source`: the program (or test file) that wrote it.
    pub source: String,
    /// insta's `expression`: what the body is.
    pub expression: String,
    /// insta's `input_file`: the scenario file, as a relative path with `/`.
    pub input_file: String,
}

impl Origin {
    /// The header lines of a new snapshot.
    pub fn header(&self) -> Vec<String> {
        vec![
            format!("source: {}", yaml_scalar(&self.source)),
            format!("expression: {}", yaml_scalar(&self.expression)),
            format!("input_file: {}", yaml_scalar(&self.input_file)),
        ]
    }
}

/// A body as compared and stored: trailing whitespace trimmed, CRLF read as LF.
pub fn normalize(body: &str) -> String {
    body.trim_end().replace("\r\n", "\n")
}

impl Snapshot {
    /// A snapshot of `body` with `header`.
    pub fn new(header: Vec<String>, body: &str) -> Snapshot {
        Snapshot {
            header,
            body: normalize(body),
        }
    }

    /// Parses a snapshot file's text. A file without a `---` header is all body (insta
    /// reads its legacy format the same way for the body).
    pub fn parse(text: &str) -> Snapshot {
        let mut lines = text.split_inclusive('\n');
        let first = text.lines().next().unwrap_or("");
        if first.trim_end() != "---" {
            return Snapshot::new(Vec::new(), text);
        }
        lines.next();
        let mut header = Vec::new();
        let mut consumed = first.len() + 1;
        for line in lines.by_ref() {
            consumed += line.len();
            let line = line.trim_end_matches(['\n', '\r']);
            if line.trim_end() == "---" {
                break;
            }
            header.push(line.to_owned());
        }
        let body = text.get(consumed.min(text.len())..).unwrap_or("");
        Snapshot::new(header, body)
    }

    /// Reads the snapshot at `path`; `None` if there is none.
    pub fn read(path: &Path) -> io::Result<Option<Snapshot>> {
        match fs::read_to_string(path) {
            Ok(text) => Ok(Some(Snapshot::parse(&text))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut s = String::from("---\n");
        for line in &self.header {
            s.push_str(line);
            s.push('\n');
        }
        s.push_str("---\n");
        s.push_str(&self.body);
        s.push('\n');
        s
    }

    /// Writes the snapshot to `path`, creating its directory.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        fs::write(path, self.render())
    }
}

/// Where a snapshot's pending new version goes: `x.snap` -> `x.snap.new`.
pub fn pending_path(snapshot: &Path) -> PathBuf {
    let mut name = snapshot.as_os_str().to_owned();
    name.push(".new");
    PathBuf::from(name)
}

/// Removes `path` if it exists.
pub fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// `text` as a YAML scalar: plain when it cannot be misread, else double-quoted
/// (a JSON string is a valid YAML double-quoted scalar).
fn yaml_scalar(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " _-./".contains(c))
        && !text.starts_with([' ', '-'])
        && !text.ends_with(' ');
    if plain {
        text.to_owned()
    } else {
        serde_json::to_string(text).expect("strings serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_round_trips_in_insta_format() {
        let origin = Origin {
            source: "brownout test".into(),
            expression: "the run's report".into(),
            input_file: "scenarios/a.toml".into(),
        };
        let snap = Snapshot::new(origin.header(), "line 1\r\nline 2\n\n");
        let text = snap.render();
        assert_eq!(
            text,
            "---\nsource: brownout test\nexpression: \"the run's report\"\ninput_file: scenarios/a.toml\n---\nline 1\nline 2\n"
        );
        assert_eq!(Snapshot::parse(&text), snap);
    }

    #[test]
    fn a_body_may_hold_dashes_and_a_file_may_lack_a_header() {
        let text = "---\nsource: x\n---\na\n---\nb\n";
        assert_eq!(Snapshot::parse(text).body, "a\n---\nb");
        assert_eq!(Snapshot::parse("just text\n").body, "just text");
        assert_eq!(Snapshot::parse("").body, "");
    }

    #[test]
    fn pending_versions_sit_beside_the_snapshot() {
        assert_eq!(
            pending_path(Path::new("snapshots/outage.snap")),
            Path::new("snapshots/outage.snap.new")
        );
    }
}
