//! Faults as configured: windows `[start, end)` of a kind on one dependency (an
//! index), and seeded random faults by their mean time between failures and to
//! repair. The simulator streams their windows and answers each dependency's
//! condition at an instant (`sim::faults`).

use crate::engine::{ConfigError, Span, Time};

/// What a fault does to the calls of its dependency while it is active.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// Every call fails fast (connection refused).
    Outage,
    /// Each call additionally fails with this probability, in `0.0..=1.0`.
    ErrorRate(f64),
    /// Each call takes this much longer.
    AddedLatency(Span),
    /// Calls never answer; only the caller's timeout ends them.
    Hang,
    /// Down (as [`Outage`](FaultKind::Outage)) for `down` at the start of each
    /// `period`, counted from the fault's start; healthy for the rest of the period.
    Flapping {
        /// The length of one down-then-up cycle; positive.
        period: Span,
        /// How long the dependency is down at the start of each cycle; in
        /// `1..=period`.
        down: Span,
    },
}

impl FaultKind {
    /// The kind's name in traces: `outage`, `error_rate`, `added_latency`, `hang`,
    /// `flapping`.
    pub fn as_str(&self) -> &'static str {
        match self {
            FaultKind::Outage => "outage",
            FaultKind::ErrorRate(_) => "error_rate",
            FaultKind::AddedLatency(_) => "added_latency",
            FaultKind::Hang => "hang",
            FaultKind::Flapping { .. } => "flapping",
        }
    }

    pub(crate) fn validate_as(&self, path: &str) -> Result<(), ConfigError> {
        match *self {
            FaultKind::ErrorRate(p) if !(0.0..=1.0).contains(&p) => Err(ConfigError::new(
                format!("{path}.error_rate"),
                format!("must be a probability within 0..=1, got {p}"),
            )),
            FaultKind::Flapping { period: 0, .. } => Err(ConfigError::new(
                format!("{path}.period"),
                "must be positive",
            )),
            FaultKind::Flapping { period, down } if down == 0 || down > period => {
                Err(ConfigError::new(
                    format!("{path}.down"),
                    format!("must be within 1..=period ({period} us), got {down} us"),
                ))
            }
            _ => Ok(()),
        }
    }
}

/// One fault window: `kind` applies to `dependency` from `start` (inclusive) to `end`
/// (exclusive).
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// The dependency's index.
    pub dependency: usize,
    /// What the fault does.
    pub kind: FaultKind,
    /// When it starts (inclusive).
    pub start: Time,
    /// When it ends (exclusive); after `start`.
    pub end: Time,
}

impl Fault {
    /// Rejects an empty or backwards window and invalid kind parameters.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_as("fault")
    }

    pub(crate) fn validate_as(&self, path: &str) -> Result<(), ConfigError> {
        if self.end <= self.start {
            return Err(ConfigError::new(
                format!("{path}.end"),
                format!(
                    "must be after start ({} us), got {} us",
                    self.start, self.end
                ),
            ));
        }
        self.kind.validate_as(path)
    }

    /// Whether the window `[start, end)` contains `now`.
    pub fn is_active(&self, now: Time) -> bool {
        self.start <= now && now < self.end
    }
}

/// Faults that strike `dependency` at random: up for an exponentially distributed
/// time with mean `mtbf`, then faulty (`kind`) for an exponentially distributed time
/// with mean `mttr`, and so on until the end of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomFaults {
    /// The dependency's index.
    pub dependency: usize,
    /// Mean time between failures: the mean healthy gap before each fault; positive.
    pub mtbf: Span,
    /// Mean time to repair: the mean length of each fault; positive.
    pub mttr: Span,
    /// What each fault does.
    pub kind: FaultKind,
}

impl RandomFaults {
    /// Rejects a zero `mtbf` or `mttr` and invalid kind parameters.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_as("random_faults")
    }

    pub(crate) fn validate_as(&self, path: &str) -> Result<(), ConfigError> {
        if self.mtbf == 0 {
            return Err(ConfigError::new(format!("{path}.mtbf"), "must be positive"));
        }
        if self.mttr == 0 {
            return Err(ConfigError::new(format!("{path}.mttr"), "must be positive"));
        }
        self.kind.validate_as(path)
    }
}
