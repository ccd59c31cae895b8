//! The node's wire protocol: request bodies parsed into typed requests, typed reply bodies.
//!
//! Parsing is hand-written over `serde_json::Value` rather than derived, because every
//! refusal must name the field that was wrong (`field `user_id` must be a non-negative
//! integer, got "abc"`) and map to a Maelstrom error code; serde's derived messages do
//! neither. Replies are typed enums serialized by serde, so the simulator can classify a
//! reply without building JSON and the live driver writes the exact seed-task shapes.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::engine::modes::Mode;
use crate::engine::Span;
use crate::model::service::{EndpointId, Service};

/// The most forced failures one request may ask for; a bigger number is refused rather
/// than spinning the node (each forced failure is recorded through the breaker).
pub const MAX_FORCE_FAILURES: u64 = 10_000;

/// The longest name a write may set, in bytes. Written names are held by the store,
/// the cache and the write queue (up to its capacity), so this bounds what a queue of
/// writes can hold: 1 000 queued writes hold at most 64 MiB of names.
pub const MAX_NAME_BYTES: usize = 64 * 1024;

/// A Maelstrom error code the node uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "u16")]
pub enum ErrorCode {
    /// 10: the request type is not supported by this node.
    NotSupported,
    /// 11: nothing can be served now (dependency down and nothing cached, queue full).
    TemporarilyUnavailable,
    /// 12: the request is malformed (missing or mistyped field, unknown mode).
    MalformedRequest,
    /// 20: the dependency answered that the key does not exist.
    KeyDoesNotExist,
}

impl ErrorCode {
    /// The numeric Maelstrom code.
    pub fn code(self) -> u16 {
        match self {
            ErrorCode::NotSupported => 10,
            ErrorCode::TemporarilyUnavailable => 11,
            ErrorCode::MalformedRequest => 12,
            ErrorCode::KeyDoesNotExist => 20,
        }
    }
}

impl From<ErrorCode> for u16 {
    fn from(code: ErrorCode) -> u16 {
        code.code()
    }
}

/// A request that could not be accepted, with the code and text of its error reply.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtocolError {
    /// The Maelstrom error code.
    pub code: ErrorCode,
    /// What was wrong, for a human.
    pub text: String,
}

impl ProtocolError {
    fn malformed(text: impl Into<String>) -> Self {
        ProtocolError {
            code: ErrorCode::MalformedRequest,
            text: text.into(),
        }
    }
}

/// A resource the node serves, each backed by one dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    /// Users, served by the users service (dependency 0).
    Users,
    /// Products, served by the products service (dependency 1).
    Products,
}

impl Resource {
    /// Both resources, in dependency order.
    pub const ALL: [Resource; 2] = [Resource::Users, Resource::Products];

    /// The index of the dependency that serves this resource.
    pub fn dependency(self) -> usize {
        match self {
            Resource::Users => 0,
            Resource::Products => 1,
        }
    }

    /// The resource served by dependency `index`, if any.
    pub fn from_dependency(index: usize) -> Option<Resource> {
        Resource::ALL.get(index).copied()
    }

    /// The conventional name of the dependency (`users`, `products`).
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Users => "users",
            Resource::Products => "products",
        }
    }

    /// The singular noun used in messages (`user`, `product`).
    pub fn noun(self) -> &'static str {
        match self {
            Resource::Users => "user",
            Resource::Products => "product",
        }
    }

    /// The name of the id field in requests (`user_id`, `product_id`).
    pub fn id_field(self) -> &'static str {
        match self {
            Resource::Users => "user_id",
            Resource::Products => "product_id",
        }
    }
}

/// The in-band fault injection of the seed task, carried by a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InBandFault {
    /// Before serving, make this many calls to the dependency that each fail, recorded
    /// through the breaker exactly as real failures.
    pub force_failures: u32,
    /// The dependency is down for this request's own call.
    pub service_unavailable: bool,
}

/// What a `set_mode` request asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ModeRequest {
    /// Hold this mode regardless of CPU (a manual override).
    Manual(Mode),
    /// Clear any manual override; the CPU thresholds decide again.
    Auto,
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Maelstrom `init`.
    Init {
        /// The id this node is given.
        node_id: String,
    },
    /// `get_user` / `get_product`.
    Read {
        /// Which resource.
        resource: Resource,
        /// The record's id.
        key: u64,
        /// In-band fault injection.
        fault: InBandFault,
    },
    /// `update_user` / `update_product`: set the record's name.
    Write {
        /// Which resource.
        resource: Resource,
        /// The record's id.
        key: u64,
        /// The new name.
        name: Name,
        /// In-band fault injection.
        fault: InBandFault,
    },
    /// `set_mode`: a mode, a CPU sample, or both.
    SetMode {
        /// The mode asked for, if any.
        mode: Option<ModeRequest>,
        /// A CPU sample in percent, if any.
        cpu_usage: Option<f64>,
    },
    /// `get_recommendations`: a non-critical feature, disabled in degraded modes.
    Recommendations {
        /// For whom.
        user_id: u64,
    },
    /// `search`: a non-critical feature, disabled in degraded modes.
    Search {
        /// What to look for.
        query: Arc<str>,
    },
    /// `status`: the node's degradation state.
    Status,
    /// A request of a declared service's endpoint (its `type` is the endpoint's name).
    Endpoint {
        /// Which endpoint.
        endpoint: EndpointId,
        /// The request's `key`, if it has one.
        key: Option<u64>,
        /// The `value` its writes write, if it gives one.
        value: Option<Name>,
    },
}

impl Request {
    /// Whether it is one of the seed service's own requests (reads, writes,
    /// recommendations, search), which a node serving a declared service refuses;
    /// control messages are every node's.
    pub fn is_seed_endpoint(&self) -> bool {
        matches!(
            self,
            Request::Read { .. }
                | Request::Write { .. }
                | Request::Recommendations { .. }
                | Request::Search { .. }
        )
    }

    /// The request's `type` string.
    pub fn type_name(&self) -> &'static str {
        match self {
            Request::Init { .. } => "init",
            Request::Read {
                resource: Resource::Users,
                ..
            } => "get_user",
            Request::Read {
                resource: Resource::Products,
                ..
            } => "get_product",
            Request::Write {
                resource: Resource::Users,
                ..
            } => "update_user",
            Request::Write {
                resource: Resource::Products,
                ..
            } => "update_product",
            Request::SetMode { .. } => "set_mode",
            Request::Recommendations { .. } => "get_recommendations",
            Request::Search { .. } => "search",
            Request::Status => "status",
            // Its name is the service's; the parser and the drivers look it up there.
            Request::Endpoint { .. } => "endpoint",
        }
    }
}

/// A request body's `msg_id` (if it has a usable one) and the request or its refusal.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The request's `msg_id`, echoed as `in_reply_to`.
    pub msg_id: Option<u64>,
    /// The typed request, or why it cannot be served.
    pub request: Result<Request, ProtocolError>,
}

/// Parses a request body (the `body` of a Maelstrom message).
///
/// Unknown extra fields are ignored, as Maelstrom clients may add their own.
pub fn parse_body(body: &Value) -> Parsed {
    parse_body_for(None, body)
}

/// Parses a request body for a node serving `service` (the seed service if `None`):
/// a `type` naming one of its endpoints is that endpoint's request, with an optional
/// `key` (required when the endpoint has keys) and `value`; control messages parse
/// as for every node.
pub fn parse_body_for(service: Option<&Service>, body: &Value) -> Parsed {
    let Some(obj) = body.as_object() else {
        return Parsed {
            msg_id: None,
            request: Err(ProtocolError::malformed(format!(
                "message body must be a JSON object, got {}",
                kind_of(body)
            ))),
        };
    };
    let msg_id = obj.get("msg_id").and_then(Value::as_u64);
    let request = parse_request(service, obj);
    Parsed { msg_id, request }
}

fn parse_request(
    service: Option<&Service>,
    obj: &Map<String, Value>,
) -> Result<Request, ProtocolError> {
    if let Some(v) = obj.get("msg_id") {
        if v.as_u64().is_none() {
            return Err(ProtocolError::malformed(format!(
                "field `msg_id` must be a non-negative integer, got {v}"
            )));
        }
    }
    let ty = match obj.get("type") {
        None => return Err(ProtocolError::malformed("missing field `type`")),
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(ProtocolError::malformed(format!(
                "field `type` must be a string, got {other}"
            )))
        }
    };
    let fields = Fields(obj);
    if let Some(service) = service {
        if let Some(endpoint) = service.endpoint_named(ty) {
            let key = fields.opt_u64("key")?;
            if key.is_none() && service.endpoint(endpoint).key.is_some() {
                return Err(ProtocolError::malformed(format!(
                    "missing field `key`: a `{ty}` request names its record"
                )));
            }
            let value = fields.opt_str("value")?;
            if let Some(value) = value.filter(|v| v.len() > MAX_NAME_BYTES) {
                return Err(ProtocolError::malformed(format!(
                    "field `value` must be at most {MAX_NAME_BYTES} bytes, got {}",
                    value.len()
                )));
            }
            let value = value.map(Name::from);
            return Ok(Request::Endpoint {
                endpoint,
                key,
                value,
            });
        }
        let control = ["init", "set_mode", "status"];
        if !control.contains(&ty) {
            let names: Vec<&str> = service.endpoints.iter().map(|e| e.name.as_str()).collect();
            return Err(ProtocolError {
                code: ErrorCode::NotSupported,
                text: format!(
                    "unsupported message type `{ty}`; this node serves {} ({}) and init, \
                     set_mode, status",
                    service.name,
                    names.join(", ")
                ),
            });
        }
    }
    match ty {
        "init" => Ok(Request::Init {
            node_id: fields.opt_str("node_id")?.unwrap_or_default().to_owned(),
        }),
        "get_user" => read(&fields, Resource::Users),
        "get_product" => read(&fields, Resource::Products),
        "update_user" => write(&fields, Resource::Users),
        "update_product" => write(&fields, Resource::Products),
        "set_mode" => set_mode(&fields),
        "get_recommendations" => Ok(Request::Recommendations {
            user_id: fields.req_u64("user_id")?,
        }),
        "search" => Ok(Request::Search {
            query: fields.req_str("query")?.into(),
        }),
        "status" => Ok(Request::Status),
        other => Err(ProtocolError {
            code: ErrorCode::NotSupported,
            text: format!(
                "unsupported message type `{other}`; this node serves init, get_user, get_product, \
                 update_user, update_product, set_mode, get_recommendations, search, status"
            ),
        }),
    }
}

fn read(fields: &Fields<'_>, resource: Resource) -> Result<Request, ProtocolError> {
    Ok(Request::Read {
        resource,
        key: fields.req_u64(resource.id_field())?,
        fault: fault(fields)?,
    })
}

fn write(fields: &Fields<'_>, resource: Resource) -> Result<Request, ProtocolError> {
    let key = fields.req_u64(resource.id_field())?;
    let name = fields.req_str("name")?;
    if name.len() > MAX_NAME_BYTES {
        return Err(ProtocolError::malformed(format!(
            "field `name` must be at most {MAX_NAME_BYTES} bytes, got {}",
            name.len()
        )));
    }
    Ok(Request::Write {
        resource,
        key,
        name: name.into(),
        fault: fault(fields)?,
    })
}

fn fault(fields: &Fields<'_>) -> Result<InBandFault, ProtocolError> {
    let force_failures = fields.opt_u64("force_failures")?.unwrap_or(0);
    if force_failures > MAX_FORCE_FAILURES {
        return Err(ProtocolError::malformed(format!(
            "field `force_failures` must be at most {MAX_FORCE_FAILURES}, got {force_failures}"
        )));
    }
    Ok(InBandFault {
        force_failures: force_failures as u32,
        service_unavailable: fields.opt_bool("service_unavailable")?.unwrap_or(false),
    })
}

fn set_mode(fields: &Fields<'_>) -> Result<Request, ProtocolError> {
    let mode = match fields.opt_str("mode")? {
        None => None,
        Some("auto") => Some(ModeRequest::Auto),
        Some(name) => Some(ModeRequest::Manual(name.parse::<Mode>().map_err(|_| {
            ProtocolError::malformed(format!(
                "field `mode` must be one of \"normal\", \"degraded\", \"critical\", \"auto\", got \"{name}\""
            ))
        })?)),
    };
    let cpu_usage = fields.opt_f64("cpu_usage")?;
    if let Some(cpu) = cpu_usage {
        if !(0.0..=100.0).contains(&cpu) {
            return Err(ProtocolError::malformed(format!(
                "field `cpu_usage` must be a percentage between 0 and 100, got {cpu}"
            )));
        }
    }
    if mode.is_none() && cpu_usage.is_none() {
        return Err(ProtocolError::malformed(
            "set_mode needs field `mode` or field `cpu_usage` (or both)",
        ));
    }
    Ok(Request::SetMode { mode, cpu_usage })
}

/// Typed access to a body's fields, with errors that name the field.
struct Fields<'a>(&'a Map<String, Value>);

impl<'a> Fields<'a> {
    fn get(&self, name: &str) -> Option<&'a Value> {
        // `null` is treated as absent, as most JSON clients mean it.
        self.0.get(name).filter(|v| !v.is_null())
    }

    fn req_u64(&self, name: &str) -> Result<u64, ProtocolError> {
        self.opt_u64(name)?
            .ok_or_else(|| ProtocolError::malformed(format!("missing field `{name}`")))
    }

    fn opt_u64(&self, name: &str) -> Result<Option<u64>, ProtocolError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                ProtocolError::malformed(format!(
                    "field `{name}` must be a non-negative integer, got {v}"
                ))
            }),
        }
    }

    fn opt_f64(&self, name: &str) -> Result<Option<f64>, ProtocolError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| {
                ProtocolError::malformed(format!("field `{name}` must be a number, got {v}"))
            }),
        }
    }

    fn opt_bool(&self, name: &str) -> Result<Option<bool>, ProtocolError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.as_bool().map(Some).ok_or_else(|| {
                ProtocolError::malformed(format!("field `{name}` must be true or false, got {v}"))
            }),
        }
    }

    fn req_str(&self, name: &str) -> Result<&'a str, ProtocolError> {
        self.opt_str(name)?
            .ok_or_else(|| ProtocolError::malformed(format!("missing field `{name}`")))
    }

    fn opt_str(&self, name: &str) -> Result<Option<&'a str>, ProtocolError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.as_str().map(Some).ok_or_else(|| {
                ProtocolError::malformed(format!("field `{name}` must be a string, got {v}"))
            }),
        }
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A request as a client would send it (its wire body), for traces: serializes
/// straight to JSON without building an intermediate `Value`.
#[derive(Debug, Clone, Copy)]
pub struct WireRequest<'a> {
    /// The `msg_id` to write, if any.
    pub msg_id: Option<u64>,
    /// The request.
    pub request: &'a Request,
}

impl Serialize for WireRequest<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("type", self.request.type_name())?;
        if let Some(id) = self.msg_id {
            map.serialize_entry("msg_id", &id)?;
        }
        let fault = |map: &mut S::SerializeMap, fault: &InBandFault| -> Result<(), S::Error> {
            if fault.force_failures > 0 {
                map.serialize_entry("force_failures", &fault.force_failures)?;
            }
            if fault.service_unavailable {
                map.serialize_entry("service_unavailable", &true)?;
            }
            Ok(())
        };
        match self.request {
            Request::Init { node_id } => map.serialize_entry("node_id", node_id)?,
            Request::Read {
                resource,
                key,
                fault: f,
            } => {
                map.serialize_entry(resource.id_field(), key)?;
                fault(&mut map, f)?;
            }
            Request::Write {
                resource,
                key,
                name,
                fault: f,
            } => {
                map.serialize_entry(resource.id_field(), key)?;
                map.serialize_entry("name", name)?;
                fault(&mut map, f)?;
            }
            Request::SetMode { mode, cpu_usage } => {
                match mode {
                    Some(ModeRequest::Manual(m)) => map.serialize_entry("mode", m.as_str())?,
                    Some(ModeRequest::Auto) => map.serialize_entry("mode", "auto")?,
                    None => {}
                }
                if let Some(cpu) = cpu_usage {
                    map.serialize_entry("cpu_usage", cpu)?;
                }
            }
            Request::Recommendations { user_id } => map.serialize_entry("user_id", user_id)?,
            Request::Search { query } => map.serialize_entry("query", query.as_ref())?,
            Request::Status => {}
            Request::Endpoint {
                endpoint,
                key,
                value,
            } => {
                map.serialize_entry("endpoint", &endpoint.0)?;
                if let Some(key) = key {
                    map.serialize_entry("key", key)?;
                }
                if let Some(value) = value {
                    map.serialize_entry("value", value)?;
                }
            }
        }
        map.end()
    }
}

/// A record of the data set: what `user` and `product` hold in replies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    /// The record's id.
    pub id: u64,
    /// Its name.
    pub name: Name,
}

/// A short list of ids (at most [`Ids::CAPACITY`]) held inline: the recommendations
/// and search results in replies. A `Vec` allocated and freed on a fifth of all
/// simulated requests. Serializes as a JSON array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ids {
    len: u8,
    ids: [u64; Ids::CAPACITY],
}

impl Ids {
    /// The most ids a list holds.
    pub const CAPACITY: usize = 3;

    /// The ids, in order.
    pub fn as_slice(&self) -> &[u64] {
        &self.ids[..usize::from(self.len)]
    }
}

impl FromIterator<u64> for Ids {
    /// # Panics
    ///
    /// If the iterator yields more than [`Ids::CAPACITY`] ids.
    fn from_iter<I: IntoIterator<Item = u64>>(iter: I) -> Self {
        let mut list = Ids::default();
        for id in iter {
            assert!(
                usize::from(list.len) < Ids::CAPACITY,
                "at most {} ids",
                Ids::CAPACITY
            );
            list.ids[usize::from(list.len)] = id;
            list.len += 1;
        }
        list
    }
}

impl Serialize for Ids {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.as_slice())
    }
}

/// A record's name: one the data set or a client gave it, or a synthetic one rendered
/// on demand: the name a generated record has until it is written (`"User 7"`), and
/// the name the simulator's workload writes (`"user 7 rev 12"`).
///
/// Why not always a string: a simulated data set has tens of thousands of generated
/// records, and a read copies the name into the cache and the reply. Held as text,
/// each copy touches the string's reference count, a cache miss on every cold read
/// that cost about a tenth of a long simulation, and each simulated write allocated
/// one; held as `(resource, id)` a name is a few words copied and is rendered only
/// when a reply or trace line is written out. All forms compare and serialize by their
/// text, so no reader can tell them apart.
#[derive(Debug, Clone)]
pub enum Name {
    /// The generated name of record `id` of `resource`: `"User 7"`, `"Product 7"`.
    Generated(Resource, u64),
    /// The name the simulator's workload gives record `id` on its `revision`-th write:
    /// `"user 7 rev 12"`.
    Revised(Resource, u64, u64),
    /// A name given by the data set or a client's write.
    Given(Arc<str>),
    /// The generated name of record `id` of a declared service's dependency:
    /// `"Record 7"` (a declared dependency has no noun of its own).
    Record(u64),
    /// The name the simulator's workload gives record `id` of a declared service's
    /// dependency on its `revision`-th write: `"record 7 rev 12"`.
    RecordRevised(u64, u64),
}

impl Name {
    /// The name as text (borrowed when it is given, rendered when generated).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Name::Given(text) => text.as_ref().into(),
            _ => self.to_string().into(),
        }
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Name::Generated(resource, id) => {
                let noun = match resource {
                    Resource::Users => "User",
                    Resource::Products => "Product",
                };
                write!(f, "{noun} {id}")
            }
            Name::Revised(resource, id, revision) => {
                write!(f, "{} {id} rev {revision}", resource.noun())
            }
            Name::Given(text) => f.write_str(text),
            Name::Record(id) => write!(f, "Record {id}"),
            Name::RecordRevised(id, revision) => write!(f, "record {id} rev {revision}"),
        }
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Name::Given(a), Name::Given(b)) => a == b,
            (Name::Generated(r, a), Name::Generated(s, b)) => r == s && a == b,
            (Name::Revised(r, a, x), Name::Revised(s, b, y)) => r == s && a == b && x == y,
            (Name::Record(a), Name::Record(b)) => a == b,
            (Name::RecordRevised(a, x), Name::RecordRevised(b, y)) => a == b && x == y,
            _ => self.text() == other.text(),
        }
    }
}

impl Eq for Name {}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.text() == *other
    }
}

impl From<&str> for Name {
    fn from(text: &str) -> Self {
        Name::Given(Arc::from(text))
    }
}

impl From<Arc<str>> for Name {
    fn from(text: Arc<str>) -> Self {
        Name::Given(text)
    }
}

impl Serialize for Name {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Name::Given(text) => serializer.serialize_str(text),
            _ => serializer.collect_str(self),
        }
    }
}

/// Per-dependency figures in a `status_ok` reply.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DependencyStatus {
    /// The dependency's name.
    pub name: String,
    /// Its breaker's state.
    pub circuit_state: &'static str,
    /// Entries in its cache.
    pub cache_entries: usize,
    /// Stale serves so far.
    pub stale_serves: u64,
    /// Writes waiting in its queue (including one in flight).
    pub queue_depth: usize,
    /// Writes that exhausted their retries.
    pub dead_letters: u64,
}

/// Whether a flag is off (serde's `skip_serializing_if` for flags present only when on).
fn is_false(flag: &bool) -> bool {
    !*flag
}

/// A reply body. Field order and names are the wire format; the seed task's three
/// shapes (`user_response`, `product_response`, `mode_changed`) carry no extra keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReplyBody {
    /// Answer to `init`.
    InitOk {
        /// The request's `msg_id`.
        #[serde(skip_serializing_if = "Option::is_none")]
        in_reply_to: Option<u64>,
    },
    /// Answer to `get_user`.
    UserResponse {
        /// The request's `msg_id`.
        #[serde(skip_serializing_if = "Option::is_none")]
        in_reply_to: Option<u64>,
        /// The user.
        user: Record,
        /// The users breaker's state when the reply was made.
        circuit_state: &'static str,
        /// Whether the user came from the cache rather than the service.
        from_cache: bool,
        /// Read-your-writes: the user is the node's own pending (queued or just
        /// applied) write of it, not the stale cache. Present only then, so the seed
        /// task's shape is unchanged otherwise.
        #[serde(skip_serializing_if = "is_false")]
        pending_write: bool,
    },
    /// Answer to `get_product`.
    ProductResponse {
        /// The request's `msg_id`.
        #[serde(skip_serializing_if = "Option::is_none")]
        in_reply_to: Option<u64>,
        /// The product.
        product: Record,
        /// Whether the product came from the cache rather than the service.
        #[serde(rename = "_cached")]
        cached: bool,
        /// Read-your-writes: as `pending_write` of a user, in this shape's style
        /// (`_pending_write`, present only when true).
        #[serde(rename = "_pending_write", skip_serializing_if = "is_false")]
        pending_write: bool,
    },
    /// Answer to `update_user` / `update_product`.
    WriteOk {
        /// The request's `msg_id`.
        #[serde(skip_serializing_if = "Option::is_none")]
        in_reply_to: Option<u64>,
        /// Which resource was written.
        resource: Resource,
        /// The record's id.
        id: u64,
        /// True when the write was queued for later (the dependency is down or its
        /// breaker open); false when it was applied now.
        queued: bool,
        /// Writes waiting for this dependency after this one was handled.
        queue_depth: usize,
    },
    /// Answer to `set_mode`.
    ModeChanged {
        /// The request's `msg_id`.
        #[serde(skip_serializing_if = "Option::is_none")]
        in_reply_to: Option<u64>,
        /// The mode now in force.
        mode: &'static str,
        /// The features that mode disables, in configuration order.
        disabled_features: Vec<String>,
    },
    /// Answer to `get_recommendations`.
    RecommendationsResponse {
        /// The request's `msg_id`.
        #[serde(skip_serializing_if = "Option::is_none")]
        in_reply_to: Option<u64>,
        /// For whom.
        user_id: u64,
        /// Recommended product ids (empty when degraded).
        recommendations: Ids,
        /// True when the feature is disabled by the current mode and this is the fallback.
        degraded: bool,
    },
    /// Answer to `search`.
    SearchResponse {
        /// The request's `msg_id`.
        #[serde(skip_serializing_if = "Option::is_none")]
        in_reply_to: Option<u64>,
        /// The query.
        query: Arc<str>,
        /// Matching product ids (empty when degraded).
        results: Ids,
        /// True when the feature is disabled by the current mode and this is the fallback.
        degraded: bool,
    },
    /// Answer to `status`.
    StatusOk {
        /// The request's `msg_id`.
        #[serde(skip_serializing_if = "Option::is_none")]
        in_reply_to: Option<u64>,
        /// The current mode.
        mode: &'static str,
        /// Whether the mode is held by a manual override.
        manual_mode: bool,
        /// The features the current mode disables.
        disabled_features: Vec<String>,
        /// Each dependency's breaker, cache and queue.
        dependencies: Vec<DependencyStatus>,
    },
    /// A Maelstrom error.
    Error {
        /// The request's `msg_id`.
        #[serde(skip_serializing_if = "Option::is_none")]
        in_reply_to: Option<u64>,
        /// The Maelstrom error code.
        code: ErrorCode,
        /// What went wrong.
        text: String,
    },
    /// Answer to a declared endpoint's request (its `type` is `<endpoint>_ok`).
    #[serde(untagged)]
    Endpoint(Box<EndpointReply>),
}

/// The reply to a declared endpoint's request: one shape for every endpoint, with
/// how it was degraded always in the body (`_meta`), never only in a log.
///
/// `{"type":"product_page_ok","in_reply_to":4,"key":17,
///   "data":{"inventory":{"id":17,"name":"Record 17"},"recommendations":"popular"},
///   "_meta":{"partial":false,"missing":[],"degraded":["recommendations"],
///            "stale":{},"deadline_passed":false,
///            "served":{"inventory":"fresh","recommendations":"fallback"}}}`
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointReply {
    /// `<endpoint>_ok`.
    pub reply_type: &'static str,
    /// The request's `msg_id`.
    pub in_reply_to: Option<u64>,
    /// The request's key, if its endpoint has one.
    pub key: Option<u64>,
    /// What each served part gave, in plan order, by part name (inline for up to
    /// four parts).
    pub data: smallvec::SmallVec<[(&'static str, PartData); 4]>,
    /// How the reply was degraded.
    pub meta: ReplyMeta,
}

/// What one part of a declared endpoint's reply holds.
#[derive(Debug, Clone, PartialEq)]
pub enum PartData {
    /// A record read (fresh or from the cache).
    Record(Record),
    /// A write accepted: applied now, or queued for later.
    Written {
        /// The record written.
        id: u64,
        /// Whether it waits in the dependency's queue.
        queued: bool,
    },
    /// A local step's answer or a static fallback.
    Text(&'static str),
}

/// The degradation of a declared endpoint's reply.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReplyMeta {
    /// Some optional part is missing or omitted.
    pub partial: bool,
    /// The parts missing or omitted.
    pub missing: Vec<&'static str>,
    /// The parts not served fresh (from a cache, a fallback, a queue, or missing).
    pub degraded: Vec<&'static str>,
    /// The parts served from the cache past their TTL, with the entries' ages.
    pub stale: Vec<(&'static str, Span)>,
    /// The request's deadline passed before its reply was ready.
    pub deadline_passed: bool,
    /// How each part that finished was served (`fresh`, `cached`, `stale`,
    /// `fallback`, `queued`, `omitted`, `missing`, ...), in plan order: the reply's
    /// class is the worst of these.
    pub served: smallvec::SmallVec<[(&'static str, &'static str); 4]>,
}

impl Serialize for EndpointReply {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct Data<'a>(&'a [(&'static str, PartData)]);
        impl Serialize for Data<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(self.0.len()))?;
                for (name, part) in self.0 {
                    match part {
                        PartData::Record(record) => map.serialize_entry(name, record)?,
                        PartData::Written { id, queued } => map.serialize_entry(
                            name,
                            &serde_json::json!({ "id": id, "queued": queued }),
                        )?,
                        PartData::Text(text) => map.serialize_entry(name, text)?,
                    }
                }
                map.end()
            }
        }
        struct Served<'a>(&'a [(&'static str, &'static str)]);
        impl Serialize for Served<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(self.0.len()))?;
                for (name, how) in self.0 {
                    map.serialize_entry(name, how)?;
                }
                map.end()
            }
        }
        struct Stale<'a>(&'a [(&'static str, Span)]);
        impl Serialize for Stale<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(self.0.len()))?;
                for (name, age) in self.0 {
                    map.serialize_entry(name, &crate::engine::HumanSpan(*age).to_string())?;
                }
                map.end()
            }
        }
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("type", self.reply_type)?;
        if let Some(id) = self.in_reply_to {
            map.serialize_entry("in_reply_to", &id)?;
        }
        if let Some(key) = self.key {
            map.serialize_entry("key", &key)?;
        }
        map.serialize_entry("data", &Data(&self.data))?;
        let meta = &self.meta;
        map.serialize_entry(
            "_meta",
            &serde_json::json!({
                "partial": meta.partial,
                "missing": meta.missing,
                "degraded": meta.degraded,
                "stale": serde_json::to_value(Stale(&meta.stale)).map_err(serde::ser::Error::custom)?,
                "deadline_passed": meta.deadline_passed,
                "served": serde_json::to_value(Served(&meta.served)).map_err(serde::ser::Error::custom)?,
            }),
        )?;
        map.end()
    }
}

impl ReplyBody {
    /// An error reply for a refused request.
    pub fn error(in_reply_to: Option<u64>, err: ProtocolError) -> Self {
        ReplyBody::Error {
            in_reply_to,
            code: err.code,
            text: err.text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Request, ProtocolError> {
        parse_body(&v).request
    }

    #[test]
    fn seed_requests_parse() {
        assert_eq!(
            parse(json!({"type":"get_user","msg_id":1,"user_id":123,"force_failures":6})),
            Ok(Request::Read {
                resource: Resource::Users,
                key: 123,
                fault: InBandFault {
                    force_failures: 6,
                    service_unavailable: false
                }
            })
        );
        assert_eq!(
            parse(
                json!({"type":"get_product","msg_id":2,"product_id":123,"service_unavailable":true})
            ),
            Ok(Request::Read {
                resource: Resource::Products,
                key: 123,
                fault: InBandFault {
                    force_failures: 0,
                    service_unavailable: true
                }
            })
        );
        assert_eq!(
            parse(json!({"type":"set_mode","msg_id":3,"mode":"degraded","cpu_usage":85})),
            Ok(Request::SetMode {
                mode: Some(ModeRequest::Manual(Mode::Degraded)),
                cpu_usage: Some(85.0)
            })
        );
    }

    #[test]
    fn errors_name_the_field_and_code() {
        let e = parse(json!({"type":"get_user","msg_id":1})).unwrap_err();
        assert_eq!(e.code, ErrorCode::MalformedRequest);
        assert_eq!(e.text, "missing field `user_id`");

        let e = parse(json!({"type":"get_user","user_id":"abc"})).unwrap_err();
        assert_eq!(
            e.text,
            "field `user_id` must be a non-negative integer, got \"abc\""
        );

        let e = parse(json!({"type":"set_mode","mode":"panic"})).unwrap_err();
        assert_eq!(e.code.code(), 12);
        assert!(
            e.text.contains("`mode`") && e.text.contains("panic"),
            "{}",
            e.text
        );

        let e = parse(json!({"type":"set_mode","cpu_usage":140})).unwrap_err();
        assert!(e.text.contains("cpu_usage"), "{}", e.text);

        let e = parse(json!({"type":"set_mode"})).unwrap_err();
        assert!(e.text.contains("mode") && e.text.contains("cpu_usage"));

        let e =
            parse(json!({"type":"get_user","user_id":1,"service_unavailable":"yes"})).unwrap_err();
        assert!(e.text.contains("service_unavailable"), "{}", e.text);

        let e = parse(json!({"type":"teleport","msg_id":9})).unwrap_err();
        assert_eq!(e.code.code(), 10);
        assert!(e.text.contains("teleport"));

        let e = parse(json!({"msg_id":9})).unwrap_err();
        assert_eq!(e.text, "missing field `type`");

        let p = parse_body(&json!([1, 2]));
        assert_eq!(p.msg_id, None);
        assert!(p.request.unwrap_err().text.contains("an array"));
    }

    #[test]
    fn wire_requests_parse_back_to_themselves() {
        let requests = [
            json!({"type":"init","msg_id":1,"node_id":"n1"}),
            json!({"type":"get_user","msg_id":2,"user_id":7,"force_failures":3,"service_unavailable":true}),
            json!({"type":"get_product","msg_id":3,"product_id":9}),
            json!({"type":"update_user","msg_id":4,"user_id":7,"name":"A"}),
            json!({"type":"update_product","product_id":7,"name":"B","service_unavailable":true}),
            json!({"type":"set_mode","msg_id":5,"mode":"auto","cpu_usage":42.5}),
            json!({"type":"set_mode","msg_id":6,"mode":"critical"}),
            json!({"type":"get_recommendations","msg_id":7,"user_id":1}),
            json!({"type":"search","msg_id":8,"query":"tent"}),
            json!({"type":"status","msg_id":9}),
        ];
        for body in requests {
            let parsed = parse_body(&body);
            let request = parsed.request.clone().unwrap();
            let wire = serde_json::to_value(WireRequest {
                msg_id: parsed.msg_id,
                request: &request,
            })
            .unwrap();
            assert_eq!(wire, body);
        }
    }

    #[test]
    fn names_are_bounded() {
        let name = "n".repeat(MAX_NAME_BYTES);
        assert!(parse(json!({"type":"update_user","user_id":1,"name":name})).is_ok());
        let e = parse(json!({"type":"update_user","user_id":1,"name":name + "n"})).unwrap_err();
        assert_eq!(e.code, ErrorCode::MalformedRequest);
        assert_eq!(
            e.text,
            "field `name` must be at most 65536 bytes, got 65537"
        );
    }

    #[test]
    fn force_failures_is_bounded() {
        let e = parse(json!({"type":"get_user","user_id":1,"force_failures":4_000_000_000u64}))
            .unwrap_err();
        assert!(e.text.contains("force_failures"));
    }

    #[test]
    fn ids_hold_up_to_three_and_serialize_as_an_array() {
        let three: Ids = [4, 5, 6].into_iter().collect();
        assert_eq!(three.as_slice(), &[4, 5, 6]);
        assert_eq!(serde_json::to_string(&three).unwrap(), "[4,5,6]");
        assert_eq!(serde_json::to_string(&Ids::default()).unwrap(), "[]");
        let overflow = std::panic::catch_unwind(|| [1, 2, 3, 4].into_iter().collect::<Ids>());
        assert!(
            overflow.is_err(),
            "a fourth id is a bug, not a silent truncation"
        );
    }

    #[test]
    fn names_render_compare_and_serialize_by_their_text() {
        let generated = Name::Generated(Resource::Users, 7);
        let revised = Name::Revised(Resource::Products, 7, 12);
        assert_eq!(generated.to_string(), "User 7");
        assert_eq!(revised.to_string(), "product 7 rev 12");
        // A synthetic name equals the same text given explicitly, in either order.
        assert_eq!(generated, Name::from("User 7"));
        assert_eq!(Name::from("product 7 rev 12"), revised);
        assert_ne!(generated, Name::Generated(Resource::Products, 7));
        assert_ne!(revised, Name::Revised(Resource::Products, 7, 13));
        assert_eq!(generated, "User 7");
        assert_eq!(
            serde_json::to_string(&[generated, revised, Name::from("A \"q\"")]).unwrap(),
            r#"["User 7","product 7 rev 12","A \"q\""]"#
        );
    }

    #[test]
    fn seed_replies_have_exact_shapes() {
        let user = ReplyBody::UserResponse {
            in_reply_to: Some(1),
            user: Record {
                id: 123,
                name: "John Doe".into(),
            },
            circuit_state: "open",
            from_cache: true,
            pending_write: false,
        };
        assert_eq!(
            serde_json::to_value(&user).unwrap(),
            json!({"type":"user_response","in_reply_to":1,"user":{"id":123,"name":"John Doe"},
                   "circuit_state":"open","from_cache":true})
        );
        // Read-your-writes marks a user served from the node's pending write, and only then.
        let mut pending = user.clone();
        if let ReplyBody::UserResponse { pending_write, .. } = &mut pending {
            *pending_write = true;
        }
        assert_eq!(
            serde_json::to_value(&pending).unwrap(),
            json!({"type":"user_response","in_reply_to":1,"user":{"id":123,"name":"John Doe"},
                   "circuit_state":"open","from_cache":true,"pending_write":true})
        );
        let product = ReplyBody::ProductResponse {
            in_reply_to: Some(2),
            product: Record {
                id: 123,
                name: "Product".into(),
            },
            cached: true,
            pending_write: false,
        };
        assert_eq!(
            serde_json::to_value(&product).unwrap(),
            json!({"type":"product_response","in_reply_to":2,
                   "product":{"id":123,"name":"Product"},"_cached":true})
        );
        let mut pending = product.clone();
        if let ReplyBody::ProductResponse { pending_write, .. } = &mut pending {
            *pending_write = true;
        }
        assert_eq!(
            serde_json::to_value(&pending).unwrap(),
            json!({"type":"product_response","in_reply_to":2,
                   "product":{"id":123,"name":"Product"},"_cached":true,"_pending_write":true})
        );
        let err = ReplyBody::error(
            Some(4),
            ProtocolError {
                code: ErrorCode::TemporarilyUnavailable,
                text: "x".into(),
            },
        );
        assert_eq!(
            serde_json::to_value(&err).unwrap(),
            json!({"type":"error","in_reply_to":4,"code":11,"text":"x"})
        );
    }
}
