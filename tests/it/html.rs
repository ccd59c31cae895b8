//! The HTML report (`--html`), opened in a real browser: headless Chromium loads the
//! file, the page's script draws every chart, and the test reads back what the page
//! recorded on `<body>` (how many charts drew, which had no data, any script error or
//! `console.error`) and saves a screenshot.
//!
//! Chromium is found as `$BROWNOUT_CHROMIUM`, or `chromium`, `chromium-browser` or
//! `google-chrome` on `PATH`. Where there is none the browser tests print why and pass,
//! so a newcomer's `cargo test` does not need a browser; `.ci/run` installs Debian's
//! `chromium` and sets `BROWNOUT_REQUIRE_CHROMIUM=1`, under which a missing browser
//! fails instead.
//!
//! Screenshots go to `target/tmp/html-report/`; with `BROWNOUT_UPDATE_SCREENSHOT=1` the
//! flagship's also replaces `docs/img/outage-report.png`, the README's picture.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{brownout, code, scratch, stderr};

fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("BROWNOUT_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// The browser, or `None` after saying why the test is skipped.
fn browser_or_skip(test: &str) -> Option<PathBuf> {
    let found = chromium();
    if found.is_none() {
        assert!(
            std::env::var_os("BROWNOUT_REQUIRE_CHROMIUM").is_none(),
            "{test}: BROWNOUT_REQUIRE_CHROMIUM is set but no Chromium was found"
        );
        eprintln!(
            "skipping {test}: no Chromium found (install Debian's `chromium`, or set \
             BROWNOUT_CHROMIUM to a Chrome or Chromium binary)"
        );
    }
    found
}

/// Headless Chromium with the flags this sandboxed, offline machine needs (no
/// sandboxing as root, no GPU, no background connections) and its own profile.
fn headless(browser: &Path, profile: &Path) -> Command {
    let mut command = Command::new(browser);
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--virtual-time-budget=10000",
    ]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    command
}

/// What the page wrote on `<body>` once its script had run.
struct Rendered {
    status: String,
    charts: usize,
    empty: String,
    errors: String,
}

fn attribute(body: &str, name: &str) -> String {
    let key = format!("{name}=\"");
    let start = body
        .find(&key)
        .unwrap_or_else(|| panic!("<body> has no {name}: {body}"))
        + key.len();
    let end = body[start..].find('"').expect("attribute closes") + start;
    body[start..end].to_owned()
}

/// Loads `page` in the browser, returns what it rendered and saves a screenshot.
fn open(browser: &Path, dir: &Path, page: &Path, screenshot: &Path) -> Rendered {
    let url = format!("file://{}", page.display());
    let dom = headless(browser, &dir.join("profile"))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .expect("chromium starts");
    assert!(dom.status.success(), "chromium --dump-dom failed: {dom:?}");
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    let body_start = dom.find("<body").expect("the page has a body");
    let body_end = dom[body_start..].find('>').expect("body tag closes") + body_start;
    let body = &dom[body_start..=body_end];
    let rendered = Rendered {
        status: attribute(body, "data-status"),
        charts: attribute(body, "data-charts").parse().expect("a count"),
        empty: attribute(body, "data-empty"),
        errors: attribute(body, "data-errors"),
    };
    let shot = headless(browser, &dir.join("profile"))
        .arg("--window-size=1400,3200")
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(&url)
        .output()
        .expect("chromium starts");
    assert!(
        shot.status.success(),
        "chromium --screenshot failed: {shot:?}"
    );
    let png = std::fs::read(screenshot).expect("the screenshot was written");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    // A blank page compresses to a few KB; charts with data do not.
    assert!(png.len() > 100_000, "screenshot of {} KB", png.len() / 1024);
    rendered
}

fn report(dir: &Path, scenario: &str, name: &str) -> PathBuf {
    let page = dir.join(format!("{name}.html"));
    let out = brownout(&[scenario, "--html", page.to_str().unwrap()]);
    assert!(code(&out) <= 1, "{}", stderr(&out));
    page
}

#[test]
fn the_flagship_report_renders_every_chart_with_data_in_chromium() {
    let Some(browser) = browser_or_skip("the_flagship_report_renders") else {
        return;
    };
    let dir = scratch("html-report");
    let page = report(&dir, "scenarios/outage.toml", "outage");
    let screenshot = dir.join("outage.png");
    let r = open(&browser, &dir, &page, &screenshot);
    assert_eq!(r.errors, "", "script errors");
    assert_eq!(r.status, "ok");
    // Outcomes, availability, latency, two per dependency (users, products), mode.
    assert_eq!(r.charts, 8);
    assert_eq!(r.empty, "", "charts without data");
    if std::env::var_os("BROWNOUT_UPDATE_SCREENSHOT").is_some() {
        let readme_picture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/img/outage-report.png");
        std::fs::create_dir_all(readme_picture.parent().unwrap()).unwrap();
        std::fs::copy(&screenshot, readme_picture).expect("README picture written");
    }
}

#[test]
fn a_declared_service_report_renders_in_chromium() {
    let Some(browser) = browser_or_skip("a_declared_service_report_renders") else {
        return;
    };
    let dir = scratch("html-report-shop");
    let page = report(&dir, "scenarios/shop-payments-outage.toml", "shop");
    let r = open(&browser, &dir, &page, &dir.join("shop.png"));
    assert_eq!(r.errors, "", "script errors");
    assert_eq!(r.status, "ok");
    assert!(r.charts >= 4, "{} charts", r.charts);
    // A dependency that nobody calls in this scenario would draw an empty lane; every
    // one of the shop's is called.
    assert_eq!(r.empty, "", "charts without data");
}

/// The report and the series are pure functions of the scenario and seed: the same
/// bytes twice, different bytes for another seed. (No browser needed.)
#[test]
fn the_html_report_and_the_series_csv_are_the_same_bytes_for_a_seed() {
    let dir = scratch("html-determinism");
    let write = |name: &str, seed: &str| {
        let page = dir.join(format!("{name}.html"));
        let csv = dir.join(format!("{name}.csv"));
        let out = brownout(&[
            "scenarios/outage.toml",
            "--seed",
            seed,
            "--html",
            page.to_str().unwrap(),
            "--series-csv",
            csv.to_str().unwrap(),
        ]);
        assert!(code(&out) <= 1, "{}", stderr(&out));
        (std::fs::read(page).unwrap(), std::fs::read(csv).unwrap())
    };
    let first = write("a", "7");
    let again = write("b", "7");
    let other = write("c", "8");
    assert!(first == again, "the same seed gave different bytes");
    assert!(
        first.0 != other.0 && first.1 != other.1,
        "another seed gave the same bytes"
    );
    let csv = String::from_utf8(first.1).unwrap();
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    assert!(header
        .starts_with("start_s,end_s,availability,latency_p50_ms,latency_p99_ms,mode,cpu,faults,"));
    assert!(header.contains("users.breaker") && header.contains("get_user.stale"));
    // Ten minutes in 1 s buckets.
    assert_eq!(lines.count(), 600);
}

#[test]
fn an_unwritable_html_path_is_bad_input() {
    let out = brownout(&[
        "scenarios/outage.toml",
        "--html",
        "/nonexistent-dir/report.html",
    ]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("cannot write HTML report /nonexistent-dir/report.html"));
}

/// `compare --html`: both runs on the same charts (two outcome charts, A's and B's
/// lines and strips on the others), rendered without error.
#[test]
fn a_comparison_report_overlays_both_runs_in_chromium() {
    let Some(browser) = browser_or_skip("a_comparison_report_overlays_both_runs") else {
        return;
    };
    let dir = scratch("html-report-compare");
    let page = dir.join("compare.html");
    let out = brownout(&[
        "compare",
        "scenarios/outage.toml",
        "--set",
        "dependencies.users.breaker.open_duration=30s",
        "--html",
        page.to_str().unwrap(),
    ]);
    assert!(code(&out) <= 1, "{}", stderr(&out));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("--set dependencies.users.breaker.open_duration=30s"));
    let r = open(&browser, &dir, &page, &dir.join("compare.png"));
    assert_eq!(r.errors, "", "script errors");
    assert_eq!(r.status, "ok");
    // One outcome chart per run, then the eight-chart layout's other seven.
    assert_eq!(r.charts, 9);
    assert_eq!(r.empty, "", "charts without data");
}
