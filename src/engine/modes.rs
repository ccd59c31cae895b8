//! Load-based mode switching: `normal`, `degraded` and `critical`, chosen from CPU samples.
//!
//! CPU load is noisy. With one threshold per mode, a load that hovers around 70 % would
//! switch features off and on at nearly every sample, and that is worse for users than
//! either mode on its own: pages change shape from one request to the next, and whatever
//! sits behind a toggled feature (its caches, its connection pools) is cold each time it
//! comes back. So each level has two thresholds: a mode is entered at or above its *enter*
//! threshold and left only below a lower *leave* threshold, and the band between the two
//! absorbs the noise (hysteresis). A minimum dwell adds a guard in time: whatever the
//! samples say, the controller does not change the mode automatically until the current
//! one has been held for `min_dwell`, which bounds the flap rate even for a load that
//! swings across the whole band. An operator can pin a mode by hand (`set_manual`); a
//! pinned mode ignores both the samples and the dwell until it is released.
//!
//! Each mode disables a configured list of features. Critical features (checkout, login)
//! can never be disabled: a configuration that tries is refused, so every constructed
//! controller keeps them enabled in every mode.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::{ConfigError, Span, Time, SECOND};

/// Default CPU percentage at or above which `normal` becomes `degraded`.
pub const DEFAULT_DEGRADED_ENTER: f64 = 70.0;
/// Default CPU percentage below which `degraded` (or `critical`) returns to `normal`.
pub const DEFAULT_DEGRADED_LEAVE: f64 = 60.0;
/// Default CPU percentage at or above which the mode becomes `critical`.
pub const DEFAULT_CRITICAL_ENTER: f64 = 90.0;
/// Default CPU percentage below which `critical` steps down to `degraded`.
pub const DEFAULT_CRITICAL_LEAVE: f64 = 80.0;
/// Default minimum time a mode is held before an automatic change: 10 s.
pub const DEFAULT_MIN_DWELL: Span = 10 * SECOND;
/// Features `degraded` disables by default, in reply order (the seed task's exact list).
pub const DEFAULT_DEGRADED_DISABLED: &[&str] = &["recommendations", "search"];
/// Features `critical` disables by default: everything `degraded` disables, then the
/// remaining nice-to-haves, so that only the core flows (see
/// [`DEFAULT_CRITICAL_FEATURES`]) still spend CPU.
pub const DEFAULT_CRITICAL_DISABLED: &[&str] =
    &["recommendations", "search", "reviews", "personalization"];
/// Features no mode may disable by default: the flows that earn the money or let users in.
pub const DEFAULT_CRITICAL_FEATURES: &[&str] = &["checkout", "login"];

/// An operating mode, ordered by severity (`Normal < Degraded < Critical`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Everything enabled.
    Normal,
    /// Expensive features off, core flows untouched.
    Degraded,
    /// Only the core flows.
    Critical,
}

impl Mode {
    /// Every mode, in order of severity.
    pub const ALL: [Mode; 3] = [Mode::Normal, Mode::Degraded, Mode::Critical];

    /// The mode's name as it appears in replies, traces and scenario files.
    pub fn as_str(&self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::Degraded => "degraded",
            Mode::Critical => "critical",
        }
    }

    /// Position in [`Mode::ALL`], for per-mode arrays.
    const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = ParseModeError;

    /// Parses `"normal"`, `"degraded"` or `"critical"` (exactly, lowercase).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "normal" => Ok(Mode::Normal),
            "degraded" => Ok(Mode::Degraded),
            "critical" => Ok(Mode::Critical),
            _ => Err(ParseModeError {
                input: s.to_owned(),
            }),
        }
    }
}

/// A string that names no [`Mode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseModeError {
    input: String,
}

impl ParseModeError {
    /// The string that was refused.
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl fmt::Display for ParseModeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown mode `{}`, expected one of: normal, degraded, critical",
            self.input
        )
    }
}

impl std::error::Error for ParseModeError {}

/// A CPU sample the controller refuses: NaN, infinite or negative.
///
/// Values above 100 are accepted (a multi-core percentage can exceed it) and simply sit
/// above every threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InvalidCpu(pub f64);

impl fmt::Display for InvalidCpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cpu sample must be a finite, non-negative percentage, got {}",
            self.0
        )
    }
}

impl std::error::Error for InvalidCpu {}

/// Thresholds, dwell and per-mode feature lists of a [`ModeController`].
///
/// Thresholds are CPU percentages in `0..=100`. A level is entered when a sample is at or
/// above its `*_enter` threshold and left when a sample is strictly below its `*_leave`
/// threshold. Equal enter and leave thresholds are allowed and turn hysteresis off for
/// that level (only the dwell then damps flapping).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModeConfig {
    /// `normal` -> `degraded` at or above this CPU percentage.
    pub degraded_enter: f64,
    /// `degraded` or `critical` -> `normal` below this CPU percentage.
    pub degraded_leave: f64,
    /// Any mode -> `critical` at or above this CPU percentage.
    pub critical_enter: f64,
    /// `critical` -> `degraded` below this CPU percentage (and -> `normal` if the sample
    /// is also below `degraded_leave`).
    pub critical_leave: f64,
    /// Minimum time a mode is held before an automatic change. The first automatic change
    /// of a controller's life is exempt; manual changes always are.
    pub min_dwell: Span,
    /// Features each mode disables, in the order replies list them. A mode missing from
    /// the map disables nothing.
    pub disabled_features: BTreeMap<Mode, Vec<String>>,
    /// Features no mode may disable; listing one in `disabled_features` is refused.
    pub critical_features: Vec<String>,
}

impl Default for ModeConfig {
    fn default() -> Self {
        let owned = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
        ModeConfig {
            degraded_enter: DEFAULT_DEGRADED_ENTER,
            degraded_leave: DEFAULT_DEGRADED_LEAVE,
            critical_enter: DEFAULT_CRITICAL_ENTER,
            critical_leave: DEFAULT_CRITICAL_LEAVE,
            min_dwell: DEFAULT_MIN_DWELL,
            disabled_features: BTreeMap::from([
                (Mode::Normal, Vec::new()),
                (Mode::Degraded, owned(DEFAULT_DEGRADED_DISABLED)),
                (Mode::Critical, owned(DEFAULT_CRITICAL_DISABLED)),
            ]),
            critical_features: owned(DEFAULT_CRITICAL_FEATURES),
        }
    }
}

impl ModeConfig {
    /// Refuses thresholds that are not percentages or that contradict each other, and
    /// feature lists that would disable a critical feature.
    ///
    /// The ordering rules (`degraded_leave <= degraded_enter < critical_enter`,
    /// `degraded_leave <= critical_leave <= critical_enter`) are exactly what makes a
    /// decision stable: the mode a sample moves to is the mode the same sample keeps.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let thresholds = [
            ("modes.degraded_enter", self.degraded_enter),
            ("modes.degraded_leave", self.degraded_leave),
            ("modes.critical_enter", self.critical_enter),
            ("modes.critical_leave", self.critical_leave),
        ];
        for (field, value) in thresholds {
            // `contains` is false for NaN, so this also refuses NaN.
            if !(0.0..=100.0).contains(&value) {
                return Err(ConfigError::new(
                    field,
                    format!("must be a cpu percentage in 0..=100, got {value}"),
                ));
            }
        }
        if self.degraded_leave > self.degraded_enter {
            return Err(ConfigError::new(
                "modes.degraded_leave",
                format!(
                    "must not exceed modes.degraded_enter ({}), or degraded would be left \
                     at a load that enters it",
                    self.degraded_enter
                ),
            ));
        }
        if self.critical_leave > self.critical_enter {
            return Err(ConfigError::new(
                "modes.critical_leave",
                format!(
                    "must not exceed modes.critical_enter ({}), or critical would be left \
                     at a load that enters it",
                    self.critical_enter
                ),
            ));
        }
        if self.degraded_enter >= self.critical_enter {
            return Err(ConfigError::new(
                "modes.critical_enter",
                format!(
                    "must be above modes.degraded_enter ({}), or degraded could never be entered",
                    self.degraded_enter
                ),
            ));
        }
        if self.critical_leave < self.degraded_leave {
            return Err(ConfigError::new(
                "modes.critical_leave",
                format!(
                    "must be at least modes.degraded_leave ({}); set them equal to step from \
                     critical straight to normal",
                    self.degraded_leave
                ),
            ));
        }
        check_names("modes.critical_features", &self.critical_features)?;
        for (mode, features) in &self.disabled_features {
            let field = format!("modes.disabled_features.{mode}");
            check_names(&field, features)?;
            if let Some(feature) = features.iter().find(|f| self.critical_features.contains(f)) {
                return Err(ConfigError::new(
                    field,
                    format!(
                        "`{feature}` is a critical feature and can never be disabled, \
                         but mode {mode} lists it"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Refuses empty and repeated feature names in one list.
fn check_names(field: &str, features: &[String]) -> Result<(), ConfigError> {
    for (i, feature) in features.iter().enumerate() {
        if feature.is_empty() {
            return Err(ConfigError::new(field, "feature names must not be empty"));
        }
        if features[..i].contains(feature) {
            return Err(ConfigError::new(field, format!("lists `{feature}` twice")));
        }
    }
    Ok(())
}

/// Why the mode changed (or, for the manual reasons, why control changed hands).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModeReason {
    /// A CPU sample crossed `threshold`: at or above it for a rise, below it for a fall.
    Cpu {
        /// The sample that decided.
        cpu: f64,
        /// The enter or leave threshold it crossed.
        threshold: f64,
    },
    /// An operator pinned the mode (`set_mode`); samples are ignored until released.
    Manual,
    /// The pin was released; the next sample decides, starting from the pinned mode.
    ManualCleared,
}

/// A mode change, or a change of who controls the mode (then `from == to`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ModeEvent {
    /// When it happened.
    pub at: Time,
    /// The mode before.
    pub from: Mode,
    /// The mode after.
    pub to: Mode,
    /// Why.
    pub reason: ModeReason,
}

/// Counters of a [`ModeController`] since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ModeStats {
    /// Valid CPU samples taken (including those ignored under a manual pin).
    pub samples: u64,
    /// Mode changes, automatic and manual (`from != to`).
    pub changes: u64,
    /// Samples that wanted a change but were held back by the minimum dwell.
    pub blocked_by_dwell: u64,
}

/// Time spent in each mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TimeInMode {
    /// Time in `normal`.
    pub normal: Span,
    /// Time in `degraded`.
    pub degraded: Span,
    /// Time in `critical`.
    pub critical: Span,
}

impl TimeInMode {
    /// Time spent in `mode`.
    pub fn get(&self, mode: Mode) -> Span {
        match mode {
            Mode::Normal => self.normal,
            Mode::Degraded => self.degraded,
            Mode::Critical => self.critical,
        }
    }
}

/// Picks the operating mode from CPU samples, with hysteresis, a minimum dwell and a
/// manual override.
///
/// The controller starts in `normal` at time 0. Time must not go backwards; if it does,
/// nothing panics and the elapsed time is taken as zero.
///
/// A change held back by the dwell is not remembered: every sample recomputes what it
/// wants from the current mode, so the change happens at the first sample after the dwell
/// that still asks for it, and not at all if the load has come back in the meantime. No
/// timer is needed.
#[derive(Debug, Clone)]
pub struct ModeController {
    config: ModeConfig,
    /// `config.disabled_features` flattened per mode, so the hot lookups are array indexing.
    disabled: [Vec<String>; 3],
    mode: Mode,
    manual: bool,
    /// When the current mode was entered by a change; `None` before the first change.
    last_change: Option<Time>,
    /// When the current mode's time-in-mode accounting started.
    entered_at: Time,
    /// Time spent in each mode before the current stretch.
    spent: [Span; 3],
    stats: ModeStats,
    events: Vec<ModeEvent>,
    /// The latest valid CPU sample, for the run's time series (`None` before the first).
    last_sample: Option<f64>,
}

impl ModeController {
    /// A controller in `normal` at time 0, or the reason `config` is refused.
    pub fn new(config: ModeConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let disabled = Mode::ALL.map(|mode| {
            config
                .disabled_features
                .get(&mode)
                .cloned()
                .unwrap_or_default()
        });
        Ok(ModeController {
            config,
            disabled,
            mode: Mode::Normal,
            manual: false,
            last_change: None,
            entered_at: 0,
            spent: [0; 3],
            stats: ModeStats::default(),
            events: Vec::new(),
            last_sample: None,
        })
    }

    /// Feeds one CPU sample taken at `now`; returns the change it caused, if any (the same
    /// event is also pushed to the outbox).
    ///
    /// Under a manual pin the sample is counted and otherwise ignored. An invalid sample
    /// (NaN, infinite, negative) is refused and changes nothing.
    pub fn sample(&mut self, cpu: f64, now: Time) -> Result<Option<ModeEvent>, InvalidCpu> {
        if !cpu.is_finite() || cpu < 0.0 {
            return Err(InvalidCpu(cpu));
        }
        self.stats.samples += 1;
        self.last_sample = Some(cpu);
        if self.manual {
            return Ok(None);
        }
        let Some((to, threshold)) = self.wanted(cpu) else {
            return Ok(None);
        };
        if let Some(last) = self.last_change {
            if now.saturating_sub(last) < self.config.min_dwell {
                self.stats.blocked_by_dwell += 1;
                return Ok(None);
            }
        }
        Ok(Some(self.change(
            to,
            now,
            ModeReason::Cpu { cpu, threshold },
        )))
    }

    /// The mode `cpu` asks for from the current mode and the threshold that decides it,
    /// or `None` to stay. Rises go as high as the sample reaches (normal may jump to
    /// critical); falls go as low as it reaches (critical may drop to normal).
    fn wanted(&self, cpu: f64) -> Option<(Mode, f64)> {
        let c = &self.config;
        match self.mode {
            Mode::Normal | Mode::Degraded if cpu >= c.critical_enter => {
                Some((Mode::Critical, c.critical_enter))
            }
            Mode::Normal if cpu >= c.degraded_enter => Some((Mode::Degraded, c.degraded_enter)),
            Mode::Degraded | Mode::Critical if cpu < c.degraded_leave => {
                Some((Mode::Normal, c.degraded_leave))
            }
            Mode::Critical if cpu < c.critical_leave => Some((Mode::Degraded, c.critical_leave)),
            _ => None,
        }
    }

    /// Pins `mode` from `now` on, regardless of samples and of the dwell, until
    /// [`clear_manual`](Self::clear_manual). Always emits an event (with `from == to` when
    /// the mode was already `mode`; the time in that mode then keeps running).
    pub fn set_manual(&mut self, mode: Mode, now: Time) -> ModeEvent {
        self.manual = true;
        self.change(mode, now, ModeReason::Manual)
    }

    /// Releases a manual pin at `now`: the mode stays as pinned and the next sample
    /// decides from there (the dwell counts from when the pinned mode was entered).
    /// Returns the event, or `None` if nothing was pinned.
    pub fn clear_manual(&mut self, now: Time) -> Option<ModeEvent> {
        if !self.manual {
            return None;
        }
        self.manual = false;
        Some(self.change(self.mode, now, ModeReason::ManualCleared))
    }

    /// Moves to `to` (if different) and records the event.
    fn change(&mut self, to: Mode, now: Time, reason: ModeReason) -> ModeEvent {
        let from = self.mode;
        if to != from {
            // Never move the start of a stretch backwards: a late `now` must not
            // count the same time twice.
            let now_mono = now.max(self.entered_at);
            self.spent[from.index()] += now_mono - self.entered_at;
            self.entered_at = now_mono;
            self.mode = to;
            self.last_change = Some(now);
            self.stats.changes += 1;
        }
        let event = ModeEvent {
            at: now,
            from,
            to,
            reason,
        };
        self.events.push(event);
        event
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether a manual pin holds the mode.
    pub fn is_manual(&self) -> bool {
        self.manual
    }

    /// The latest valid CPU sample (percent), whether or not it changed the mode.
    pub fn last_sample(&self) -> Option<f64> {
        self.last_sample
    }

    /// When the mode last changed, or `None` if it never has.
    pub fn last_change(&self) -> Option<Time> {
        self.last_change
    }

    /// The features the current mode disables, in configuration order.
    pub fn disabled_features(&self) -> &[String] {
        &self.disabled[self.mode.index()]
    }

    /// Whether `feature` is enabled in the current mode. Critical features always are:
    /// validation keeps them out of every disabled list.
    pub fn is_enabled(&self, feature: &str) -> bool {
        !self.disabled_features().iter().any(|f| f == feature)
    }

    /// Counters since the controller was made.
    pub fn stats(&self) -> ModeStats {
        self.stats
    }

    /// Time spent in each mode from time 0 up to `now`.
    pub fn time_in_mode(&self, now: Time) -> TimeInMode {
        let mut spent = self.spent;
        spent[self.mode.index()] += now.saturating_sub(self.entered_at);
        TimeInMode {
            normal: spent[Mode::Normal.index()],
            degraded: spent[Mode::Degraded.index()],
            critical: spent[Mode::Critical.index()],
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &ModeConfig {
        &self.config
    }

    /// Takes the events emitted since the last call, oldest first.
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, ModeEvent> {
        self.events.drain(..)
    }

    /// Whether events are waiting to be drained (a cheap check before draining).
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn controller() -> ModeController {
        ModeController::new(ModeConfig::default()).unwrap()
    }

    fn with_dwell(min_dwell: Span) -> ModeController {
        ModeController::new(ModeConfig {
            min_dwell,
            ..ModeConfig::default()
        })
        .unwrap()
    }

    fn names(list: &[String]) -> Vec<&str> {
        list.iter().map(String::as_str).collect()
    }

    #[test]
    fn seed_task_sample_of_85_gives_degraded_with_the_exact_features() {
        let mut c = controller();
        let event = c.sample(85.0, 0).unwrap().unwrap();
        assert_eq!(c.mode(), Mode::Degraded);
        assert_eq!(c.mode().as_str(), "degraded");
        assert_eq!(names(c.disabled_features()), ["recommendations", "search"]);
        assert_eq!(
            event,
            ModeEvent {
                at: 0,
                from: Mode::Normal,
                to: Mode::Degraded,
                reason: ModeReason::Cpu {
                    cpu: 85.0,
                    threshold: 70.0
                },
            }
        );
        assert_eq!(c.drain_events().collect::<Vec<_>>(), [event]);
    }

    #[test]
    fn load_oscillating_around_the_threshold_changes_the_mode_once() {
        // No dwell, so only the hysteresis band stands between the load and a flap.
        let mut c = with_dwell(0);
        for i in 0..100u64 {
            let cpu = if i % 2 == 0 { 65.0 } else { 75.0 };
            c.sample(cpu, i * SECOND).unwrap();
        }
        assert_eq!(c.mode(), Mode::Degraded);
        assert_eq!(c.stats().changes, 1);
        assert_eq!(c.drain_events().count(), 1);
    }

    #[test]
    fn without_hysteresis_the_same_load_would_flap() {
        // The control case for the test above: it shows that test can fail.
        let mut c = ModeController::new(ModeConfig {
            degraded_leave: 70.0,
            min_dwell: 0,
            ..ModeConfig::default()
        })
        .unwrap();
        for i in 0..10u64 {
            c.sample(if i % 2 == 0 { 65.0 } else { 75.0 }, i * SECOND)
                .unwrap();
        }
        // The first sample (65) changes nothing; each of the other nine flips the mode.
        assert_eq!(c.stats().changes, 9);
    }

    #[test]
    fn dwell_holds_back_a_second_change_until_it_has_elapsed() {
        let mut c = controller();
        assert!(c.sample(75.0, 0).unwrap().is_some());
        // Wants critical 5 s later: held back.
        assert_eq!(c.sample(95.0, 5 * SECOND).unwrap(), None);
        assert_eq!(c.sample(95.0, 10 * SECOND - 1).unwrap(), None);
        assert_eq!(c.mode(), Mode::Degraded);
        assert_eq!(c.stats().blocked_by_dwell, 2);
        // Exactly min_dwell later the same demand goes through.
        let event = c.sample(95.0, 10 * SECOND).unwrap().unwrap();
        assert_eq!((event.from, event.to), (Mode::Degraded, Mode::Critical));
        assert_eq!(c.last_change(), Some(10 * SECOND));
    }

    #[test]
    fn a_change_held_back_by_dwell_is_dropped_if_the_load_goes_away() {
        let mut c = controller();
        c.sample(75.0, 0).unwrap();
        assert_eq!(c.sample(95.0, SECOND).unwrap(), None);
        // After the dwell the load is back inside the band: no change.
        assert_eq!(c.sample(75.0, 20 * SECOND).unwrap(), None);
        assert_eq!(c.mode(), Mode::Degraded);
    }

    #[test]
    fn the_first_change_of_a_controllers_life_is_immediate() {
        let mut c = controller();
        // Long calm before, then the first change 3 s in (< 10 s dwell) goes through,
        // and so does one at time 0 on a fresh controller.
        assert_eq!(c.sample(10.0, 0).unwrap(), None);
        assert!(c.sample(75.0, 3 * SECOND).unwrap().is_some());
        let mut fresh = controller();
        assert!(fresh.sample(95.0, 0).unwrap().is_some());
        assert_eq!(fresh.mode(), Mode::Critical);
    }

    #[test]
    fn high_load_jumps_straight_to_critical_and_low_load_straight_back() {
        let mut c = controller();
        let up = c.sample(90.0, 0).unwrap().unwrap();
        assert_eq!((up.from, up.to), (Mode::Normal, Mode::Critical));
        assert_eq!(
            up.reason,
            ModeReason::Cpu {
                cpu: 90.0,
                threshold: 90.0
            }
        );
        assert_eq!(
            names(c.disabled_features()),
            ["recommendations", "search", "reviews", "personalization"]
        );
        let down = c.sample(59.9, 10 * SECOND).unwrap().unwrap();
        assert_eq!((down.from, down.to), (Mode::Critical, Mode::Normal));
        assert_eq!(
            down.reason,
            ModeReason::Cpu {
                cpu: 59.9,
                threshold: 60.0
            }
        );
        assert!(c.disabled_features().is_empty());
    }

    #[test]
    fn critical_steps_down_to_degraded_below_its_leave_threshold() {
        let mut c = with_dwell(0);
        c.sample(95.0, 0).unwrap();
        // 80 is not below critical_leave: stays.
        assert_eq!(c.sample(80.0, 1).unwrap(), None);
        let e = c.sample(79.0, 2).unwrap().unwrap();
        assert_eq!((e.from, e.to), (Mode::Critical, Mode::Degraded));
        // 60 is not below degraded_leave: stays.
        assert_eq!(c.sample(60.0, 3).unwrap(), None);
        assert_eq!(c.mode(), Mode::Degraded);
    }

    #[test]
    fn critical_features_are_enabled_in_every_mode() {
        let mut c = controller();
        for mode in Mode::ALL {
            c.set_manual(mode, 0);
            assert!(c.is_enabled("checkout") && c.is_enabled("login"), "{mode}");
        }
        c.set_manual(Mode::Degraded, 0);
        assert!(!c.is_enabled("search"));
        assert!(c.is_enabled("reviews"));
    }

    #[test]
    fn a_config_that_disables_a_critical_feature_is_refused() {
        let mut config = ModeConfig::default();
        config
            .disabled_features
            .get_mut(&Mode::Degraded)
            .unwrap()
            .push("checkout".into());
        let err = ModeController::new(config).unwrap_err();
        assert_eq!(err.field, "modes.disabled_features.degraded");
        assert!(err.reason.contains("`checkout`"), "{}", err.reason);
        assert!(err.reason.contains("mode degraded"), "{}", err.reason);
    }

    #[test]
    fn manual_override_holds_against_cpu_and_resumes_after_clear() {
        let mut c = controller();
        c.sample(75.0, 0).unwrap();
        // Manual ignores the dwell (we are 1 s after a change).
        let pin = c.set_manual(Mode::Critical, SECOND);
        assert_eq!(
            pin,
            ModeEvent {
                at: SECOND,
                from: Mode::Degraded,
                to: Mode::Critical,
                reason: ModeReason::Manual
            }
        );
        assert!(c.is_manual());
        for t in 2..30 {
            assert_eq!(c.sample(5.0, t * SECOND).unwrap(), None);
        }
        assert_eq!(c.mode(), Mode::Critical);
        let cleared = c.clear_manual(30 * SECOND).unwrap();
        assert_eq!((cleared.from, cleared.to), (Mode::Critical, Mode::Critical));
        assert_eq!(cleared.reason, ModeReason::ManualCleared);
        assert!(!c.is_manual());
        assert_eq!(c.clear_manual(31 * SECOND), None);
        let resumed = c.sample(5.0, 31 * SECOND).unwrap().unwrap();
        assert_eq!((resumed.from, resumed.to), (Mode::Critical, Mode::Normal));
        let kinds: Vec<_> = c.drain_events().map(|e| e.reason).collect();
        assert_eq!(kinds.len(), 4);
        assert_eq!(kinds[1..3], [ModeReason::Manual, ModeReason::ManualCleared]);
    }

    #[test]
    fn dwell_after_a_manual_change_counts_from_the_pin() {
        let mut c = controller();
        c.set_manual(Mode::Critical, 0);
        c.clear_manual(SECOND);
        assert_eq!(c.sample(5.0, 2 * SECOND).unwrap(), None);
        assert!(c.sample(5.0, 10 * SECOND).unwrap().is_some());
    }

    #[test]
    fn invalid_samples_are_refused_and_change_nothing() {
        let mut c = controller();
        for cpu in [f64::NAN, -1.0, f64::INFINITY, f64::NEG_INFINITY] {
            let err = c.sample(cpu, 0).unwrap_err();
            assert!(err.to_string().starts_with("cpu sample must be"), "{err}");
        }
        assert_eq!(c.mode(), Mode::Normal);
        assert_eq!(c.stats().samples, 0);
        assert_eq!(c.drain_events().count(), 0);
        // Above 100 is fine: multi-core percentages.
        assert!(c.sample(250.0, 0).unwrap().is_some());
    }

    #[test]
    fn time_in_mode_adds_up() {
        let mut c = with_dwell(0);
        c.sample(75.0, 10 * SECOND).unwrap();
        c.sample(95.0, 15 * SECOND).unwrap();
        c.set_manual(Mode::Critical, 17 * SECOND); // same mode: the stretch goes on
        c.clear_manual(18 * SECOND);
        c.sample(10.0, 20 * SECOND).unwrap();
        let t = c.time_in_mode(26 * SECOND);
        assert_eq!(
            t,
            TimeInMode {
                normal: 16 * SECOND,
                degraded: 5 * SECOND,
                critical: 5 * SECOND
            }
        );
        assert_eq!(t.get(Mode::Degraded), 5 * SECOND);
        assert_eq!(c.stats().changes, 3);
    }

    #[test]
    fn modes_parse_print_and_serialize_by_name() {
        for mode in Mode::ALL {
            assert_eq!(mode.as_str().parse::<Mode>(), Ok(mode));
            assert_eq!(mode.to_string(), mode.as_str());
            assert_eq!(
                serde_json::to_string(&mode).unwrap(),
                format!("\"{}\"", mode.as_str())
            );
        }
        let err = "Degraded".parse::<Mode>().unwrap_err();
        assert_eq!(err.input(), "Degraded");
        assert_eq!(
            err.to_string(),
            "unknown mode `Degraded`, expected one of: normal, degraded, critical"
        );
        assert!(Mode::Normal < Mode::Degraded && Mode::Degraded < Mode::Critical);
    }

    #[test]
    fn events_serialize_with_snake_case_names() {
        let mut c = controller();
        c.sample(85.0, 7).unwrap();
        let json = serde_json::to_string(&c.drain_events().next().unwrap()).unwrap();
        assert_eq!(
            json,
            r#"{"at":7,"from":"normal","to":"degraded","reason":{"kind":"cpu","cpu":85.0,"threshold":70.0}}"#
        );
        let json = serde_json::to_string(&c.set_manual(Mode::Normal, 8)).unwrap();
        assert!(json.ends_with(r#""reason":{"kind":"manual"}}"#), "{json}");
    }

    #[test]
    fn invalid_configs_are_refused_with_the_field_and_reason() {
        let base = ModeConfig::default();
        let cases: Vec<(ModeConfig, &str, &str)> = vec![
            (
                ModeConfig {
                    degraded_enter: f64::NAN,
                    ..base.clone()
                },
                "modes.degraded_enter",
                "0..=100, got NaN",
            ),
            (
                ModeConfig {
                    critical_enter: 101.0,
                    ..base.clone()
                },
                "modes.critical_enter",
                "0..=100",
            ),
            (
                ModeConfig {
                    degraded_leave: -1.0,
                    ..base.clone()
                },
                "modes.degraded_leave",
                "0..=100",
            ),
            (
                ModeConfig {
                    degraded_leave: 75.0,
                    ..base.clone()
                },
                "modes.degraded_leave",
                "must not exceed modes.degraded_enter",
            ),
            (
                ModeConfig {
                    critical_leave: 95.0,
                    ..base.clone()
                },
                "modes.critical_leave",
                "must not exceed modes.critical_enter",
            ),
            (
                ModeConfig {
                    degraded_enter: 90.0,
                    ..base.clone()
                },
                "modes.critical_enter",
                "must be above modes.degraded_enter",
            ),
            (
                ModeConfig {
                    critical_leave: 50.0,
                    ..base.clone()
                },
                "modes.critical_leave",
                "at least modes.degraded_leave",
            ),
            (
                ModeConfig {
                    critical_features: vec!["login".into(), "login".into()],
                    ..base.clone()
                },
                "modes.critical_features",
                "lists `login` twice",
            ),
            (
                ModeConfig {
                    disabled_features: BTreeMap::from([(Mode::Critical, vec![String::new()])]),
                    ..base.clone()
                },
                "modes.disabled_features.critical",
                "must not be empty",
            ),
            (
                ModeConfig {
                    disabled_features: BTreeMap::from([(Mode::Normal, vec!["login".into()])]),
                    ..base.clone()
                },
                "modes.disabled_features.normal",
                "`login` is a critical feature",
            ),
        ];
        for (config, field, reason) in cases {
            let err = config.validate().unwrap_err();
            assert_eq!(err.field, field, "{err}");
            assert!(err.reason.contains(reason), "{err}");
            assert!(ModeController::new(config).is_err());
        }
        assert_eq!(base.validate(), Ok(()));
        // Equal enter and leave thresholds (no hysteresis) and a missing mode are fine.
        let lenient = ModeConfig {
            degraded_leave: 70.0,
            critical_leave: 90.0,
            disabled_features: BTreeMap::new(),
            ..base
        };
        assert_eq!(lenient.validate(), Ok(()));
        let c = ModeController::new(lenient).unwrap();
        assert!(c.disabled_features().is_empty());
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Advance(Span),
        Sample(f64),
        SetManual(Mode),
        ClearManual,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..15 * SECOND).prop_map(Op::Advance),
            // Mostly valid samples across the whole range, some invalid ones.
            8 => (0.0..110.0f64).prop_map(Op::Sample),
            1 => prop_oneof![Just(f64::NAN), Just(-5.0)].prop_map(Op::Sample),
            1 => prop_oneof![Just(Mode::Normal), Just(Mode::Degraded), Just(Mode::Critical)]
                .prop_map(Op::SetManual),
            1 => Just(Op::ClearManual),
        ]
    }

    /// The mode a sample asks for, written as "rise to the highest level entered, else
    /// fall to the lowest level not left", independently of the controller's match.
    fn model_wanted(c: &ModeConfig, mode: Mode, cpu: f64) -> Mode {
        let up = if cpu >= c.critical_enter {
            Mode::Critical
        } else if cpu >= c.degraded_enter {
            Mode::Degraded
        } else {
            Mode::Normal
        };
        let down = if cpu < c.degraded_leave {
            Mode::Normal
        } else if cpu < c.critical_leave {
            Mode::Degraded
        } else {
            Mode::Critical
        };
        if up > mode {
            up
        } else if down < mode {
            down
        } else {
            mode
        }
    }

    proptest! {
        #[test]
        fn controller_matches_model_and_keeps_its_invariants(
            dwell in prop_oneof![Just(0), Just(SECOND), Just(10 * SECOND)],
            ops in prop::collection::vec(op(), 1..80),
        ) {
            let config = ModeConfig { min_dwell: dwell, ..ModeConfig::default() };
            let mut c = ModeController::new(config.clone()).unwrap();
            let mut now: Time = 0;
            // Model state.
            let mut mode = Mode::Normal;
            let mut manual = false;
            let mut last_change: Option<Time> = None;
            let mut last_to = Mode::Normal;

            for op in ops {
                let mut emitted = None;
                match op {
                    Op::Advance(dt) => now += dt,
                    Op::Sample(cpu) => {
                        let result = c.sample(cpu, now);
                        if !cpu.is_finite() || cpu < 0.0 {
                            prop_assert!(result.is_err());
                        } else {
                            emitted = result.unwrap();
                            let want = model_wanted(&config, mode, cpu);
                            let dwell_ok = match last_change {
                                None => true,
                                Some(t) => now - t >= dwell,
                            };
                            let expect_change = !manual && want != mode && dwell_ok;
                            prop_assert_eq!(emitted.is_some(), expect_change);
                            if let Some(e) = emitted {
                                // Rises need an enter threshold, falls a leave threshold.
                                match (e.from, e.to) {
                                    (_, Mode::Critical) => prop_assert!(cpu >= config.critical_enter),
                                    (Mode::Normal, Mode::Degraded) => prop_assert!(cpu >= config.degraded_enter),
                                    (Mode::Critical, Mode::Degraded) => prop_assert!(cpu < config.critical_leave),
                                    (_, Mode::Normal) => prop_assert!(cpu < config.degraded_leave),
                                    other => prop_assert!(false, "impossible change {:?}", other),
                                }
                                // Automatic changes are at least a dwell apart.
                                if let Some(t) = last_change {
                                    prop_assert!(now - t >= dwell);
                                }
                                prop_assert_eq!(e.to, want);
                                mode = want;
                                last_change = Some(now);
                            }
                        }
                    }
                    Op::SetManual(m) => {
                        let e = c.set_manual(m, now);
                        emitted = Some(e);
                        if m != mode {
                            last_change = Some(now);
                        }
                        mode = m;
                        manual = true;
                    }
                    Op::ClearManual => {
                        emitted = c.clear_manual(now);
                        prop_assert_eq!(emitted.is_some(), manual);
                        manual = false;
                    }
                }
                // Exactly one event per emitted change, chaining from the previous one.
                let events: Vec<_> = c.drain_events().collect();
                prop_assert_eq!(events.len(), usize::from(emitted.is_some()));
                if let Some(e) = events.first() {
                    prop_assert_eq!(Some(*e), emitted);
                    prop_assert_eq!(e.from, last_to);
                    prop_assert_eq!(e.at, now);
                    last_to = e.to;
                }
                prop_assert_eq!(c.mode(), mode);
                prop_assert_eq!(c.is_manual(), manual);
                for feature in &config.critical_features {
                    prop_assert!(c.is_enabled(feature));
                }
                let t = c.time_in_mode(now);
                prop_assert_eq!(t.normal + t.degraded + t.critical, now);
            }
        }
    }
}
