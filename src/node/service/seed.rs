//! The seed task's service, as the node runs it: its requests resolved once against
//! its declared form, [`Service::seed_with`].
//!
//! The seed service is a declared service like any other: two dependencies with a cache
//! and an in-order write queue, and six endpoints whose plans are each one step. The
//! node builds its dependencies from that service's engines (the same
//! [`Dependency::new`] a declared service's go through), and each seed request reads
//! from the plan what it calls: which dependency, and whether a failed read falls back
//! to the stale cache; which feature gates a local answer. Its calls go through the
//! engine steps every call does (`step.rs`).
//!
//! What stays the seed's own is what the task fixes byte for byte: the request types,
//! the in-band fault fields, and the shape and texts of its replies. A one-step plan
//! also needs none of [`PlanRun`](crate::node::plan::PlanRun)'s bookkeeping (no
//! parts to gather, no deadline); running the seed's through it cost +20% to +49% of a
//! long seed run's instructions, measured in two designs, against the 10% the project
//! allows (issue 13's closing notes).

use crate::engine::ConfigError;
use crate::intern::intern;
use crate::model::service::{CallOp, Fallback, Leaf, Service, Step, SEED_KEYS};
use crate::node::config::NodeConfig;
use crate::node::protocol::Resource;

use super::Dependency;

/// What one seed read calls, read from its endpoint's plan.
#[derive(Debug, Clone, Copy)]
pub(super) struct SeedRead {
    /// The dependency it calls.
    pub dependency: usize,
    /// Whether its fallback chain is the stale cache (the seed's stale-if-error).
    pub stale_fallback: bool,
}

/// The seed service's requests, resolved against its plans.
#[derive(Debug, Clone)]
pub(super) struct SeedRoutes {
    /// `get_user` / `get_product`, by [`Resource::dependency`].
    pub reads: [SeedRead; 2],
    /// The dependency `update_user` / `update_product` writes.
    pub writes: [usize; 2],
    /// The features gating `get_recommendations` and `search`.
    pub features: [&'static str; 2],
}

/// The seed's endpoints by request: reads, writes, then the two local answers.
const READS: [&str; 2] = ["get_user", "get_product"];
const WRITES: [&str; 2] = ["update_user", "update_product"];
const LOCALS: [&str; 2] = ["get_recommendations", "search"];

impl SeedRoutes {
    /// The seed service configured by `config`, its dependencies' engines and its
    /// requests' routes.
    pub(super) fn build(config: &NodeConfig) -> Result<(SeedRoutes, [Dependency; 2]), ConfigError> {
        // The node never simulates: the simulated side of each dependency and the key
        // spaces do not matter here, only the engines and the plans.
        let sim = crate::model::service::seed_sim_dependency();
        let service = Service::seed_with(config, [sim.clone(), sim], [SEED_KEYS; 2]);
        let [users, products] = Resource::ALL.map(|resource| {
            let spec = &service.dependencies[resource.dependency()];
            Dependency::new(resource.as_str(), Some(resource), &spec.engine)
        });
        let deps = [users?, products?];
        let reads = READS.map(|name| {
            let (dependency, op, leaf) = lone_call(&service, name)?;
            debug_assert_eq!(op, CallOp::Read);
            Ok(SeedRead {
                dependency,
                stale_fallback: leaf.fallback.first() == Some(&Fallback::Cache),
            })
        });
        let writes = WRITES.map(|name| lone_call(&service, name).map(|(dep, _, _)| dep));
        let features = LOCALS.map(|name| {
            let leaf = match root(&service, name)? {
                Step::Local(local) => &local.leaf,
                _ => return Err(shape(name)),
            };
            let feature = leaf.feature.ok_or_else(|| shape(name))?;
            Ok(intern(&service.features[feature.index()]))
        });
        let [r0, r1] = reads;
        let [w0, w1] = writes;
        let [f0, f1] = features;
        let routes = SeedRoutes {
            reads: [r0?, r1?],
            writes: [w0?, w1?],
            features: [f0?, f1?],
        };
        Ok((routes, deps))
    }
}

/// The root step of the seed endpoint `name`.
fn root<'a>(service: &'a Service, name: &str) -> Result<&'a Step, ConfigError> {
    let id = service.endpoint_named(name).ok_or_else(|| shape(name))?;
    let plan = &service.endpoint(id).plan;
    Ok(plan.step(plan.root))
}

/// The seed endpoint `name`'s one call: its dependency, operation and leaf.
fn lone_call<'a>(
    service: &'a Service,
    name: &str,
) -> Result<(usize, CallOp, &'a Leaf), ConfigError> {
    match root(service, name)? {
        Step::Call(call) if call.key_space.is_none() => {
            Ok((call.dependency.index(), call.op, &call.leaf))
        }
        _ => Err(shape(name)),
    }
}

fn shape(name: &str) -> ConfigError {
    ConfigError::new(
        format!("seed.{name}"),
        "the seed service's endpoint must be the one step its task defines",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_routes_follow_its_plans() {
        let (routes, deps) = SeedRoutes::build(&NodeConfig::default()).unwrap();
        assert_eq!(routes.reads.map(|r| r.dependency), [0, 1]);
        assert!(routes.reads.iter().all(|r| r.stale_fallback));
        assert_eq!(routes.writes, [0, 1]);
        assert_eq!(routes.features, ["recommendations", "search"]);
        assert_eq!(deps.each_ref().map(|d| d.name), ["users", "products"]);
        // The seed's queues keep writes in order, as its task requires.
        assert!(deps
            .iter()
            .all(|d| d.has_cache && d.has_queue && d.writes_in_order));
    }
}
