//! Scenario files: the TOML format (serde types in `file`) and its validation into the
//! domain [`Scenario`] the simulator runs. The only module that knows the file format.
//!
//! The split follows "file format at the edge": `file` mirrors the TOML exactly
//! (defaults, human durations, unknown keys refused, spans kept for error messages);
//! this module's types are what the rest of the crate uses, already validated.

pub use crate::model::Scenario;

pub mod budget;
mod error;
mod file;
pub mod overrides;

pub use error::{ScenarioError, ScenarioErrors};
pub use file::{load, load_service, parse, parse_with, read, MAX_FILE_BYTES};
pub use overrides::{Override, Overrides};

/// Every budget of `limits` that `scenario`, parsed from `text`, exceeds, as errors
/// that point at the key to change (see [`budget`]).
pub fn budget_errors(
    scenario: &Scenario,
    text: &str,
    limits: &budget::Limits,
) -> Vec<ScenarioError> {
    located(scenario, text, budget::check(scenario, limits))
}

/// The refusal of a traced run of `scenario` whose trace would be too large.
pub fn trace_budget_error(scenario: &Scenario, text: &str) -> Option<ScenarioError> {
    located(
        scenario,
        text,
        budget::check_trace(scenario).into_iter().collect(),
    )
    .into_iter()
    .next()
}

fn located(scenario: &Scenario, text: &str, refusals: Vec<budget::Refusal>) -> Vec<ScenarioError> {
    let overrides: Vec<Override> = scenario
        .overrides
        .iter()
        .filter_map(|arg| Override::parse(arg).ok())
        .collect();
    refusals
        .into_iter()
        .map(|refusal| {
            // A figure an override set is refused at the override (the last one that
            // set it or a table holding it), not at the file's key.
            if let Some(o) = overrides.iter().rev().find(|o| o.covers(&refusal.key)) {
                return ScenarioError {
                    path: format!("--set {}", o.arg).into(),
                    position: None,
                    message: format!("too large: {}", refusal.message),
                };
            }
            let (path, position) = file::place_of(&scenario.path, text, &refusal.key);
            ScenarioError {
                path,
                position: Some(position),
                message: format!("too large: {}", refusal.message),
            }
        })
        .collect()
}
