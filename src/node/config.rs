//! The node's configuration: per dependency, its breaker, cache, write queue, call
//! timeout and read policy; once, the mode controller.

use serde::Serialize;

use crate::engine::breaker::BreakerConfig;
use crate::engine::cache::CacheConfig;
use crate::engine::modes::ModeConfig;
use crate::engine::queue::QueueConfig;
use crate::engine::retry::{Pipeline, RetryConfig, TimeoutScope};
use crate::engine::{ConfigError, Span, MILLISECOND};

use super::protocol::Resource;

/// How long the node waits for a dependency call before it counts as a timeout.
pub const DEFAULT_CALL_TIMEOUT: Span = 1_000 * MILLISECOND;

/// How a read uses the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadPolicy {
    /// Always ask the dependency; the cache is the fallback when the call fails or the
    /// breaker is open (stale-if-error). The seed task's behaviour: a healthy read
    /// answers `from_cache: false`.
    #[default]
    DependencyFirst,
    /// Answer from the cache while the entry is fresh; past the TTL, within the
    /// stale-while-revalidate window, answer stale and refresh in the background (one
    /// refresh per key at a time); otherwise ask the dependency.
    CacheFirst,
}

/// One dependency as the node sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct DependencyConfig {
    /// The client-side call timeout: a call not answered by then fails as a timeout.
    pub timeout: Span,
    /// How reads use the cache.
    pub read_policy: ReadPolicy,
    /// The dependency's circuit breaker.
    pub breaker: BreakerConfig,
    /// The cache in front of it.
    pub cache: CacheConfig,
    /// The queue for writes it cannot take now.
    pub queue: QueueConfig,
    /// How its failed calls are retried; `None`: they are not.
    pub retry: Option<RetryConfig>,
    /// The order of its retry and breaker layers.
    pub pipeline: Pipeline,
    /// Whether its timeout bounds each attempt or the whole call.
    pub timeout_scope: TimeoutScope,
    /// Read-your-writes window (see [`DependencyEngine::read_your_writes`]); `None`: off.
    ///
    /// [`DependencyEngine::read_your_writes`]: crate::model::service::DependencyEngine::read_your_writes
    pub read_your_writes: Option<Span>,
}

impl Default for DependencyConfig {
    fn default() -> Self {
        DependencyConfig {
            timeout: DEFAULT_CALL_TIMEOUT,
            read_policy: ReadPolicy::default(),
            breaker: BreakerConfig::default(),
            cache: CacheConfig::default(),
            queue: QueueConfig::default(),
            retry: None,
            pipeline: Pipeline::default(),
            timeout_scope: TimeoutScope::default(),
            read_your_writes: None,
        }
    }
}

/// The whole node's configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeConfig {
    /// Users, then products (indexed like [`Resource::dependency`]).
    pub dependencies: [DependencyConfig; 2],
    /// The load-based mode controller.
    pub modes: ModeConfig,
}

impl NodeConfig {
    /// The configuration of the dependency behind `resource`.
    pub fn dependency(&self, resource: Resource) -> &DependencyConfig {
        &self.dependencies[resource.dependency()]
    }

    /// Checks every part; errors name the dependency, e.g. `users.breaker.failure_threshold`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for resource in Resource::ALL {
            let dep = self.dependency(resource);
            let prefix = |e: ConfigError| {
                ConfigError::new(format!("{}.{}", resource.as_str(), e.field), e.reason)
            };
            if dep.timeout == 0 {
                return Err(ConfigError::new(
                    format!("{}.timeout", resource.as_str()),
                    "must be greater than zero",
                ));
            }
            dep.breaker.validate().map_err(prefix)?;
            dep.cache.validate().map_err(prefix)?;
            dep.queue.validate().map_err(prefix)?;
            if let Some(retry) = &dep.retry {
                retry.validate().map_err(prefix)?;
            }
        }
        self.modes.validate()
    }
}
