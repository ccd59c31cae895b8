//! `--html FILE`: a run's report (or two runs', overlaid) as one self-contained HTML
//! file that works offline.
//!
//! The page is a fixed template (`src/html/report.html`, `.css`, `.js`) with uPlot
//! (vendored under `vendor/uplot/`, MIT) and the runs' JSON reports embedded. uPlot was
//! chosen over rendering SVG in Rust (plotters) because the issue asks for zoom and hover
//! values on charts of thousands of points: uPlot draws to canvas, is 50 KB, has no
//! dependencies, and syncs cursors across charts. Everything the page shows is drawn by
//! its script from the embedded data, so the file is a pure function of the reports:
//! the same scenario and seed give the same bytes.

use serde::Serialize;

use crate::sim::Report;

const TEMPLATE: &str = include_str!("html/report.html");
const STYLE: &str = include_str!("html/report.css");
const APP: &str = include_str!("html/report.js");
const UPLOT_JS: &str = include_str!("../vendor/uplot/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../vendor/uplot/uPlot.min.css");
const UPLOT_LICENSE: &str = include_str!("../vendor/uplot/LICENSE");

/// One run the page shows, with the label it goes by.
#[derive(Serialize)]
pub struct HtmlRun<'a> {
    /// What the page calls the run (the scenario file, or `A` / `B` in a comparison).
    pub label: String,
    /// Its report, series included.
    pub report: &'a Report,
}

#[derive(Serialize)]
struct PageData<'a> {
    runs: &'a [HtmlRun<'a>],
}

/// The page for `runs` (one run, or two to compare).
pub fn render(runs: &[HtmlRun<'_>]) -> String {
    let data = serde_json::to_string(&PageData { runs }).expect("reports serialize");
    // Inside <script>, `</script>` (or `<!--`) in a string would end the element: JSON
    // allows `<` to be written as an escape, so no `<` is left in the data at all.
    let data = data.replace('<', "\\u003c");
    // The licence goes in an HTML comment: keep `--` (which would end it early) out.
    let license = UPLOT_LICENSE.replace("--", "- -");
    let mut page = String::with_capacity(TEMPLATE.len() + UPLOT_JS.len() + data.len() + 8192);
    let mut rest = TEMPLATE;
    while let Some(start) = rest.find("/*") {
        let end = rest[start..]
            .find("*/")
            .map(|e| start + e + 2)
            .expect("template placeholders are closed");
        page.push_str(&rest[..start]);
        page.push_str(match &rest[start..end] {
            "/*UPLOT_LICENSE*/" => &license,
            "/*UPLOT_CSS*/" => UPLOT_CSS,
            "/*STYLE*/" => STYLE,
            "/*DATA*/" => &data,
            "/*UPLOT_JS*/" => UPLOT_JS,
            "/*APP_JS*/" => APP,
            other => panic!("unknown placeholder {other} in the HTML template"),
        });
        rest = &rest[end..];
    }
    page.push_str(rest);
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_has_each_placeholder_once() {
        for p in [
            "/*UPLOT_LICENSE*/",
            "/*UPLOT_CSS*/",
            "/*STYLE*/",
            "/*DATA*/",
            "/*UPLOT_JS*/",
            "/*APP_JS*/",
        ] {
            assert_eq!(TEMPLATE.matches(p).count(), 1, "{p}");
        }
    }
}
