//! The sans-IO core: request bytes and a caller in, reply bytes out.
//!
//! [`Engine::handle`] parses, dispatches to the [`Provider`], and builds a typed
//! [`Reply`] that the wire serializes; it never touches a socket nor reads a clock, so every
//! operation, fault and expiry is testable with plain byte strings and chosen instants.
//! It calls the provider synchronously: the server runs it on a blocking thread.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use vmsec_cim::Instance;
use vmsec_cim::schema::{ClassDef, MethodDef, ServedClass};

use crate::enumeration::{Context, Registry};
use crate::provider::{Principal, Provider};
use crate::traversal::{Plan, Walk, steps};
use crate::wire::arrays::ByteArrays;
use crate::wire::association::Traversal;
use crate::wire::envelope::Selection;
use crate::wire::envelope::{self, Header, Operation, ParseError, Request};
use crate::wire::fault::{Fault, FaultKind};
use crate::wire::reply::{
    EnumerateResponse, GetResponse, IdentifyResponse, InvokeResponse, Items, Parts, PullResponse,
    ReleaseResponse, Reply,
};
use crate::wire::wql::{Expr, Filter, SYSTEM_PROPERTIES};
use crate::wire::wscim::BadName;

/// Limits and identity of the endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// Host name written in `WSManFault/@Machine`.
    pub machine: String,
    /// Largest reply ever sent, whatever the client's `MaxEnvelopeSize` allows; also
    /// the limit when the client names none.
    pub max_reply_size: usize,
    /// Idle time after which an enumeration context is forgotten.
    pub enumeration_expiry: Duration,
    /// Most enumeration contexts open at once (all users together).
    pub max_enumerations: usize,
    /// Most enumeration contexts one user may have open at once.
    pub max_enumerations_per_user: usize,
    /// Most memory open enumeration contexts hold together between Pulls; an Enumerate
    /// whose context does not fit is refused with `wsman:QuotaLimit`.
    pub max_enumeration_bytes: usize,
    /// Most of that memory one user's contexts may hold.
    pub max_enumeration_bytes_per_user: usize,
    /// Most items per Pull or optimized Enumerate, whatever the client asks.
    pub max_elements: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            machine: "localhost".to_owned(),
            max_reply_size: 16 * 1024 * 1024,
            enumeration_expiry: Duration::from_secs(300),
            max_enumerations: 1024,
            max_enumerations_per_user: 64,
            max_enumeration_bytes: 256 * 1024 * 1024,
            max_enumeration_bytes_per_user: 64 * 1024 * 1024,
            max_elements: 1000,
        }
    }
}

/// A reply to send, its body one string or ([`Engine::answer_parts`]) [`Parts`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response<B = String> {
    /// HTTP status: 200, 500 for faults, 400 for bodies that are not SOAP.
    pub status: u16,
    /// Whether `body` is a SOAP envelope (else plain text).
    pub soap: bool,
    /// The body.
    pub body: B,
    /// Operation name for metrics (`get`, `enumerate`, …, `unknown`).
    pub operation: &'static str,
    /// Outcome for metrics: `ok`, the fault subcode, or `bad_request`.
    pub outcome: &'static str,
}

impl<B> Response<B> {
    /// The same response with its body changed by `f`.
    pub fn map_body<C>(self, f: impl FnOnce(B) -> C) -> Response<C> {
        Response {
            status: self.status,
            soap: self.soap,
            body: f(self.body),
            operation: self.operation,
            outcome: self.outcome,
        }
    }
}

/// The WS-Management endpoint over a provider.
pub struct Engine<P> {
    provider: Arc<P>,
    config: EngineConfig,
    registry: Mutex<Registry>,
    arrays: ByteArrays,
}

/// Memory for the XML of large `uint8[]` out-parameters written before: 64 golden-sized
/// key protectors (~490 KB each) at most, whichever budget is reached first.
const ARRAY_CACHE_BYTES: usize = 32 * 1024 * 1024;

fn internal(e: BadName) -> Fault {
    Fault::new(
        FaultKind::InternalError,
        format!("the service produced an unwritable instance: {e}"),
    )
}

fn too_big(needed: usize, limit: usize) -> Fault {
    Fault::new(
        FaultKind::EncodingLimit,
        format!(
            "the reply needs {needed} bytes but the envelope limit is {limit} bytes; \
             raise wsman:MaxEnvelopeSize to at least {needed}"
        ),
    )
    .with_detail("MaxEnvelopeSize")
}

/// Checks selectors against the class's keys and returns them in the schema's spelling,
/// without `__cimnamespace`. No selectors at all is passed on (singletons); otherwise
/// every key must be given exactly once and nothing else.
fn check_selectors(
    def: &ClassDef,
    raw: &[(String, String)],
) -> Result<Vec<(String, String)>, Fault> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(raw.len());
    for (name, value) in raw {
        if name.eq_ignore_ascii_case("__cimnamespace") {
            continue;
        }
        let key = def.property(name).filter(|p| p.is_key).ok_or_else(|| {
            Fault::new(
                FaultKind::InvalidSelectors,
                format!(
                    "{name} is not a key of {}; its keys are {}",
                    def.name,
                    key_list(def)
                ),
            )
            .with_detail("UnexpectedSelectors")
        })?;
        if out.iter().any(|(n, _)| n == key.name) {
            return Err(Fault::new(
                FaultKind::InvalidSelectors,
                format!("the selector {} is given twice", key.name),
            )
            .with_detail("DuplicateSelectors"));
        }
        out.push((key.name.to_owned(), value.clone()));
    }
    if let Some(missing) = def
        .keys()
        .find(|k| !out.is_empty() && !out.iter().any(|(n, _)| n == k.name))
    {
        return Err(Fault::new(
            FaultKind::InvalidSelectors,
            format!(
                "the selector {} is missing; {} is addressed by {}",
                missing.name,
                def.name,
                key_list(def)
            ),
        )
        .with_detail("InsufficientSelectors")
        .with_code(2_150_858_842));
    }
    Ok(out)
}

fn key_list(def: &ClassDef) -> String {
    if def.keys().next().is_none() {
        return "none (a singleton, addressed without selectors)".to_owned();
    }
    def.keys().map(|k| k.name).collect::<Vec<_>>().join(", ")
}

fn excerpt(s: &str) -> String {
    s.chars().take(60).collect()
}

/// Every property a `WHERE` clause names is the class's or a system property WQL has.
fn check_clause(def: &ClassDef, clause: &Expr) -> Result<(), Fault> {
    for name in clause.properties() {
        let known = def.property(name).is_some()
            || SYSTEM_PROPERTIES
                .iter()
                .any(|s| s.eq_ignore_ascii_case(name));
        if !known {
            let hint = if name.starts_with("__") {
                format!(
                    "; the system properties served are {}",
                    SYSTEM_PROPERTIES.join(", ")
                )
            } else {
                String::new()
            };
            return Err(Fault::new(
                FaultKind::CannotProcessFilter,
                format!(
                    "the class {} has no property {}{hint}",
                    def.name,
                    excerpt(name)
                ),
            ));
        }
    }
    Ok(())
}

fn class_def(class: &str) -> Result<&'static ClassDef, Fault> {
    ServedClass::from_name(class)
        .map(ServedClass::def)
        .ok_or_else(|| envelope::unknown_class(class))
}

/// Adds up to `max` of the context's next instances to `items` while the whole reply stays
/// within `limit` bytes (`overhead` being the rest of the envelope), reading them from its
/// source as needed, and moves those added to `written` (so that a Pull that fails can put
/// them back). An instance that alone exceeds the budget is an EncodingLimit fault naming the
/// size needed; it stays pending, as does the first one that did not fit.
fn fill(
    items: &mut Items,
    ctx: &mut Context,
    written: &mut Vec<Instance>,
    max: u32,
    overhead: usize,
    limit: usize,
) -> Result<(), Fault> {
    let budget = limit.saturating_sub(overhead);
    while written.len() < max as usize {
        let Some(inst) = ctx.next(max as usize - written.len())? else {
            break;
        };
        let added = match items.push(&inst, ctx.mode) {
            Ok(added) => added,
            Err(e) => {
                ctx.put_back(inst);
                return Err(internal(e));
            }
        };
        if items.len() > budget {
            items.pop(added);
            ctx.put_back(inst);
            if written.is_empty() {
                return Err(too_big(added + overhead, limit));
            }
            break;
        }
        written.push(inst);
    }
    Ok(())
}

impl<P: Provider> Engine<P> {
    /// An endpoint serving `provider`.
    pub fn new(provider: Arc<P>, config: EngineConfig) -> Engine<P> {
        let registry = Registry::new(
            config.enumeration_expiry,
            config.max_enumerations,
            config.max_enumeration_bytes,
        )
        .per_user(
            config.max_enumerations_per_user,
            config.max_enumeration_bytes_per_user,
        );
        Engine {
            provider,
            config,
            registry: Mutex::new(registry),
            arrays: ByteArrays::new(ARRAY_CACHE_BYTES),
        }
    }

    /// The provider.
    pub fn provider(&self) -> &Arc<P> {
        &self.provider
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Number of open enumeration contexts.
    pub fn open_enumerations(&self) -> usize {
        self.registry().len()
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panic elsewhere while holding the lock leaves the map consistent (every
        // mutation is a single insert/remove), so the poisoned guard is still usable.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answers one request from `who` at `now`: [`Engine::read`], then [`Engine::answer`].
    pub fn handle(&self, who: &Principal, body: &[u8], now: Instant) -> Response {
        self.handle_parts(who, body, now)
            .map_body(Parts::into_string)
    }

    /// [`Engine::handle`], the body in parts ([`Engine::answer_parts`]).
    pub fn handle_parts(&self, who: &Principal, body: &[u8], now: Instant) -> Response<Parts> {
        match self.read(body) {
            Ok(request) => self.answer_parts(who, &request, now),
            Err(refused) => refused.map_body(Parts::from),
        }
    }

    /// Whether answering `request` is quick: a Get, Release or Identify
    /// ([`Operation::is_quick`]), or an invocation the provider says is
    /// ([`Provider::invokes_quickly`]). A server may answer it on the thread that read it.
    pub fn is_quick(&self, request: &Request) -> bool {
        match &request.operation {
            Operation::Invoke { method, .. } => self.provider.invokes_quickly(method),
            op => op.is_quick(),
        }
    }

    /// Reads a request body into a request, or into the response that refuses it. Asks the
    /// provider nothing, so a server may read a body before it knows who sent it.
    pub fn read(&self, body: &[u8]) -> Result<Request, Box<Response>> {
        envelope::parse(body).map_err(|e| {
            Box::new(match e {
                ParseError::NotSoap(why) => {
                    tracing::debug!(%why, "request is not SOAP");
                    Response {
                        status: 400,
                        soap: false,
                        body: why,
                        operation: "unknown",
                        outcome: "bad_request",
                    }
                }
                ParseError::Fault {
                    fault,
                    relates_to,
                    operation,
                } => self.fault(
                    &fault,
                    relates_to.as_deref(),
                    operation.unwrap_or("unknown"),
                ),
            })
        })
    }

    /// Answers a request [`Engine::read`] returned, on behalf of `who`. `now` is the
    /// caller's clock, the only one the engine reads (enumeration contexts expire by it), so
    /// that expiry is testable without sleeping and the engine does no I/O of its own.
    pub fn answer(&self, who: &Principal, request: &Request, now: Instant) -> Response {
        self.answer_parts(who, request, now)
            .map_body(Parts::into_string)
    }

    /// [`Engine::answer`], the body in parts that a server sends one after the other
    /// without joining them: a GetKeyProtector reply shares its ~490 KB of key protector
    /// with every other reply of the same bytes.
    pub fn answer_parts(
        &self,
        who: &Principal,
        request: &Request,
        now: Instant,
    ) -> Response<Parts> {
        let operation = request.operation.name();
        let limit = request
            .header
            .max_envelope_size
            .map_or(self.config.max_reply_size, |m| {
                m.min(self.config.max_reply_size)
            });
        let result = self
            .dispatch(who, request, limit, now)
            .and_then(|reply| reply.to_parts(&self.arrays).map_err(internal))
            .and_then(|body| {
                let len = body.len();
                if len > limit {
                    Err(too_big(len, limit))
                } else {
                    Ok(body)
                }
            });
        match result {
            Ok(body) => Response {
                status: 200,
                soap: true,
                body,
                operation,
                outcome: "ok",
            },
            Err(fault) => {
                let id = Some(request.header.message_id.as_str()).filter(|id| !id.is_empty());
                self.fault(&fault, id, operation).map_body(Parts::from)
            }
        }
    }

    fn fault(&self, fault: &Fault, relates_to: Option<&str>, operation: &'static str) -> Response {
        if fault.kind == FaultKind::InternalError {
            tracing::warn!(reason = %fault.reason, operation, "internal error");
        } else {
            tracing::debug!(kind = fault.kind.subcode(), reason = %fault.reason, operation, "fault");
        }
        Response {
            status: 500,
            soap: true,
            body: fault.to_envelope(relates_to, &self.config.machine),
            operation,
            outcome: fault.kind.subcode(),
        }
    }

    fn dispatch(
        &self,
        who: &Principal,
        req: &Request,
        limit: usize,
        now: Instant,
    ) -> Result<Reply, Fault> {
        let h = &req.header;
        Ok(match &req.operation {
            Operation::Get { class } => Reply::Get(self.get(who, h, class)?),
            Operation::Enumerate(e) => Reply::Enumerate(self.enumerate(who, h, e, limit, now)?),
            Operation::Pull {
                context,
                max_elements,
            } => Reply::Pull(self.pull(who, h, context, *max_elements, limit, now)?),
            Operation::Release { context } => {
                self.registry().release(context, &who.user, now)?;
                Reply::Release(ReleaseResponse {
                    relates_to: h.message_id.clone(),
                })
            }
            Operation::Invoke { method, input } => {
                Reply::Invoke(self.invoke(who, h, method, input)?)
            }
            Operation::Identify => Reply::Identify(IdentifyResponse),
        })
    }

    fn get(&self, who: &Principal, h: &Header, class: &str) -> Result<GetResponse, Fault> {
        let def = class_def(class)?;
        let selectors = check_selectors(def, &h.selectors)?;
        let instance = self.provider.get(who, def.name, &selectors)?;
        Ok(GetResponse {
            relates_to: h.message_id.clone(),
            instance,
        })
    }

    fn enumerate(
        &self,
        who: &Principal,
        h: &Header,
        e: &envelope::Enumerate,
        limit: usize,
        now: Instant,
    ) -> Result<EnumerateResponse, Fault> {
        let mut ctx = match &e.selection {
            Selection::Class { class, clause } => {
                let def = class_def(class)?;
                let filter = match clause {
                    Some(clause) => {
                        check_clause(def, clause)?;
                        Filter::new(clause.clone())
                    }
                    None => Filter::all(),
                };
                // Only the top equalities go to the provider, in the schema's spelling; the
                // whole clause is applied here.
                let pushed: Vec<(String, String)> = clause
                    .iter()
                    .flat_map(Expr::equalities)
                    .filter_map(|(name, v)| def.property(&name).map(|p| (p.name.to_owned(), v)))
                    .collect();
                let source = self.provider.enumerate(who, def.name, &pushed)?;
                Context::new(who.user.clone(), e.mode, source)
                    .with_filter(filter.on_server(self.config.machine.clone()))
            }
            Selection::Traverse(t) => {
                let plan = self.plan(t)?;
                let walk = Walk::new(self.provider.clone(), who.clone(), plan);
                Context::new(who.user.clone(), e.mode, Box::new(walk))
            }
        };

        let mut items = None;
        if e.optimize {
            let max = e.max_elements.unwrap_or(1).min(self.config.max_elements);
            let overhead = EnumerateResponse::overhead(&h.message_id);
            let mut first = Items::default();
            fill(&mut first, &mut ctx, &mut Vec::new(), max, overhead, limit)?;
            items = Some(first);
        }
        let done = e.optimize && ctx.is_done()?;
        let context = if done {
            None
        } else {
            Some(self.registry().open(ctx, now)?)
        };
        Ok(EnumerateResponse {
            relates_to: h.message_id.clone(),
            context,
            items,
        })
    }

    /// A traversal checked against the schema: its source a served class in its namespace,
    /// addressed by every key, and the association classes it crosses.
    fn plan(&self, t: &Traversal) -> Result<Plan, Fault> {
        let source = ServedClass::from_name(&t.source.class).ok_or_else(|| {
            Fault::new(
                FaultKind::CannotProcessFilter,
                format!(
                    "the association filter starts from {}, a class vmsec does not serve",
                    excerpt(&t.source.class)
                ),
            )
        })?;
        if let Some(ns) = &t.source.namespace
            && !source.def().in_namespace(ns)
        {
            return Err(Fault::new(
                FaultKind::CannotProcessFilter,
                format!(
                    "the class {source} is not in {}; it lives in {}",
                    excerpt(ns),
                    source.namespace()
                ),
            ));
        }
        let keys = check_selectors(source.def(), &t.source.selectors).map_err(|f| {
            Fault::new(
                FaultKind::CannotProcessFilter,
                format!("the association filter's object: {}", f.reason),
            )
        })?;
        if keys.is_empty() && source.def().keys().next().is_some() {
            return Err(Fault::new(
                FaultKind::CannotProcessFilter,
                format!(
                    "the association filter's object names no instance of {source}; give its keys ({})",
                    key_list(source.def())
                ),
            ));
        }
        Ok(Plan {
            returns: t.returns,
            source,
            keys,
            steps: steps(t, source)?,
        })
    }

    fn pull(
        &self,
        who: &Principal,
        h: &Header,
        id: &str,
        max_elements: Option<u32>,
        limit: usize,
        now: Instant,
    ) -> Result<PullResponse, Fault> {
        let mut ctx = self.registry().take(id, &who.user, now)?;
        let overhead = PullResponse::overhead(&h.message_id);
        let mut items = Items::default();
        let max = max_elements.unwrap_or(1).min(self.config.max_elements);
        let mut written = Vec::new();
        let filled = fill(&mut items, &mut ctx, &mut written, max, overhead, limit)
            .and_then(|()| Ok(ctx.is_done()?));
        // A failed Pull leaves the enumeration open where it was, to be pulled again or
        // released; a finished one is gone.
        match filled {
            Ok(true) => {}
            Ok(false) => self.registry().restore(id.to_owned(), ctx, now),
            Err(_) => {
                for inst in written.into_iter().rev() {
                    ctx.put_back(inst);
                }
                self.registry().restore(id.to_owned(), ctx, now);
            }
        }
        let done = filled?;
        Ok(PullResponse {
            relates_to: h.message_id.clone(),
            context: (!done).then(|| id.to_owned()),
            items,
        })
    }

    fn invoke(
        &self,
        who: &Principal,
        h: &Header,
        method: &MethodDef,
        input: &[(String, vmsec_cim::Value)],
    ) -> Result<InvokeResponse, Fault> {
        let def = method.class.def();
        let selectors = check_selectors(def, &h.selectors)?;
        let output = self
            .provider
            .invoke(who, def.name, &selectors, method.name, input)?;
        Ok(InvokeResponse {
            request_action: h.action.clone(),
            relates_to: h.message_id.clone(),
            class: def.name,
            method: method.name,
            output,
        })
    }
}
