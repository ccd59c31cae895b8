//! How a simulated dependency's latency is described: plain, validated data. The
//! simulator turns it into a sampler (`sim::dist`).

use crate::engine::{ConfigError, Span};

/// A latency distribution, in microseconds.
#[derive(Debug, Clone, PartialEq)]
pub enum Latency {
    /// Always exactly this latency.
    Constant(Span),
    /// Uniform over `min..=max`, whole microseconds.
    Uniform {
        /// The smallest latency.
        min: Span,
        /// The largest latency (inclusive).
        max: Span,
    },
    /// Exponential with this mean (memoryless; many short calls, a few long ones).
    Exponential {
        /// The mean latency; must be positive.
        mean: Span,
    },
    /// Log-normal given by its median and 99th percentile: the usual shape of service
    /// latency, with a long right tail. `mu = ln(p50)`,
    /// `sigma = (ln(p99) - ln(p50)) / Z_99`. `p50 == p99` is a constant.
    LogNormal {
        /// The median; must be positive.
        p50: Span,
        /// The 99th percentile; at least `p50`.
        p99: Span,
    },
}

impl Latency {
    /// Rejects parameters that describe no distribution. Field names are relative to
    /// the latency, e.g. `latency.p99`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match *self {
            Latency::Constant(_) => Ok(()),
            Latency::Uniform { min, max } => {
                if min > max {
                    return Err(ConfigError::new(
                        "latency.min",
                        format!("min ({min} us) is greater than max ({max} us)"),
                    ));
                }
                Ok(())
            }
            Latency::Exponential { mean } => {
                if mean == 0 {
                    return Err(ConfigError::new("latency.mean", "mean must be positive"));
                }
                Ok(())
            }
            Latency::LogNormal { p50, p99 } => {
                if p50 == 0 {
                    return Err(ConfigError::new("latency.p50", "p50 must be positive"));
                }
                if p99 < p50 {
                    return Err(ConfigError::new(
                        "latency.p99",
                        format!("p99 ({p99} us) is less than p50 ({p50} us)"),
                    ));
                }
                Ok(())
            }
        }
    }
}
