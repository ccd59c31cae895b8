//! The service: the seed task's protocol, or a declared service's endpoints, served
//! by the degradation engine, sans-IO.
//!
//! [`protocol`] parses request bodies and shapes replies; [`service`] holds the
//! [`Node`], which turns requests, dependency results and timers into [`Effect`]s;
//! [`config`] and [`data`] describe what a node is built from; [`plan`] executes one
//! request of a declared endpoint (the node carries out its actions in
//! `service/endpoint.rs`; the seed's requests still take the node's own path).
//! Neither driver's transport (stdin, the simulator's event queue) is known here.

pub mod config;
pub mod data;
pub mod plan;
pub mod protocol;
pub mod service;

pub use config::{DependencyConfig, NodeConfig, ReadPolicy};
pub use data::{Collection, DataSet, Store, StoreFull, StoreLimits};
pub use protocol::{
    parse_body, parse_body_for, EndpointReply, ErrorCode, Ids, InBandFault, ModeRequest, Name,
    Parsed, PartData, ProtocolError, Record, ReplyBody, ReplyMeta, Request, Resource, WireRequest,
};
pub use service::{
    Call, CallError, CallId, CallKind, CallResult, Effect, Node, NodeEvent, NodeStats, Op,
    QueuedWrite, RequestId, Served, Timer,
};
#[cfg(test)]
mod tests;
