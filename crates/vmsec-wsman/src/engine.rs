//! The sans-IO core: request bytes and a caller in, reply bytes out.
//!
//! [`Engine::handle`] parses, dispatches to the [`Provider`], and serializes; it never
//! touches a socket, so every operation and fault is testable with plain byte strings.
//! It calls the provider synchronously: the server runs it on a blocking thread.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use vmsec_cim::Instance;
use vmsec_cim::schema::{ClassDef, MethodDef, ServedClass};

use crate::enumeration::{Context, Registry};
use crate::provider::{OutValue, Principal, Provider};
use crate::wire::envelope::{self, EnumerationMode, Header, Operation, ParseError, Request};
use crate::wire::fault::{Fault, FaultKind};
use crate::wire::ns;
use crate::wire::reply::Envelope;
use crate::wire::wql::Filter;
use crate::wire::wscim::{self, BadName};

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

/// A reply to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// HTTP status: 200, 500 for faults, 400 for bodies that are not SOAP.
    pub status: u16,
    /// Whether `body` is a SOAP envelope (else plain text).
    pub soap: bool,
    /// The body.
    pub body: String,
    /// Operation name for metrics (`get`, `enumerate`, …, `unknown`).
    pub operation: &'static str,
    /// Outcome for metrics: `ok`, the fault subcode, or `bad_request`.
    pub outcome: &'static str,
}

/// The WS-Management endpoint over a provider.
pub struct Engine<P> {
    provider: Arc<P>,
    config: EngineConfig,
    registry: Mutex<Registry>,
}

const GET_RESPONSE: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/GetResponse";
const ENUMERATE_RESPONSE: &str =
    "http://schemas.xmlsoap.org/ws/2004/09/enumeration/EnumerateResponse";
const PULL_RESPONSE: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/PullResponse";
const RELEASE_RESPONSE: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/ReleaseResponse";

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
    def.keys().map(|k| k.name).collect::<Vec<_>>().join(", ")
}

fn class_def(class: &str) -> Result<&'static ClassDef, Fault> {
    ServedClass::from_name(class)
        .map(ServedClass::def)
        .ok_or_else(|| envelope::unknown_class(class))
}

/// Writes one enumeration item.
fn item(out: &mut String, inst: &Instance, mode: EnumerationMode) -> Result<(), BadName> {
    match mode {
        EnumerationMode::Objects => wscim::instance(out, inst),
        EnumerationMode::Epr => {
            out.push_str("<a:EndpointReference>");
            wscim::instance_reference(out, inst);
            out.push_str("</a:EndpointReference>");
            Ok(())
        }
        EnumerationMode::ObjectAndEpr => {
            out.push_str("<w:Item>");
            wscim::instance(out, inst)?;
            out.push_str("<a:EndpointReference>");
            wscim::instance_reference(out, inst);
            out.push_str("</a:EndpointReference></w:Item>");
            Ok(())
        }
    }
}

/// Writes up to `max` of the context's next instances into `out` while `out` stays within
/// `budget` bytes, reading them from its source as needed, and moves those written to
/// `written` (so that a Pull that fails can put them back). An instance that alone exceeds
/// the budget is an EncodingLimit fault naming the size needed (`overhead` is the rest of
/// the envelope); it stays pending, as does the first one that did not fit.
fn fill(
    out: &mut String,
    ctx: &mut Context,
    written: &mut Vec<Instance>,
    max: u32,
    budget: usize,
    overhead: usize,
    limit: usize,
) -> Result<(), Fault> {
    while written.len() < max as usize {
        let Some(inst) = ctx.next(max as usize - written.len())? else {
            break;
        };
        let before = out.len();
        out.reserve(wscim::estimate_instance(&inst));
        if let Err(e) = item(out, &inst, ctx.mode) {
            ctx.put_back(inst);
            return Err(internal(e));
        }
        if out.len() > budget {
            let needed = out.len() - before + overhead;
            out.truncate(before);
            ctx.put_back(inst);
            if written.is_empty() {
                return Err(too_big(needed, limit));
            }
            break;
        }
        written.push(inst);
    }
    Ok(())
}

/// The Identify reply: protocol version and product, without addressing headers.
fn identify_response() -> String {
    let mut out = String::with_capacity(512);
    out.push_str("<s:Envelope xmlns:s=\"");
    out.push_str(ns::SOAP);
    out.push_str("\"><s:Header/><s:Body><wsmid:IdentifyResponse xmlns:wsmid=\"");
    out.push_str(ns::WSMID);
    out.push_str("\"><wsmid:ProtocolVersion>");
    out.push_str(ns::WSMAN);
    out.push_str("</wsmid:ProtocolVersion><wsmid:ProductVendor>vmsec</wsmid:ProductVendor><wsmid:ProductVersion>");
    out.push_str(env!("CARGO_PKG_VERSION"));
    out.push_str("</wsmid:ProductVersion></wsmid:IdentifyResponse></s:Body></s:Envelope>");
    out
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
        match self.read(body) {
            Ok(request) => self.answer(who, &request, now),
            Err(refused) => *refused,
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
        let operation = request.operation.name();
        let limit = request
            .header
            .max_envelope_size
            .map_or(self.config.max_reply_size, |m| {
                m.min(self.config.max_reply_size)
            });
        let result = self.dispatch(who, request, limit, now).and_then(|body| {
            if body.len() > limit {
                Err(too_big(body.len(), limit))
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
                self.fault(&fault, id, operation)
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
    ) -> Result<String, Fault> {
        let h = &req.header;
        match &req.operation {
            Operation::Get { class } => self.get(who, h, class),
            Operation::Enumerate(e) => self.enumerate(who, h, e, limit, now),
            Operation::Pull {
                context,
                max_elements,
            } => self.pull(who, h, context, *max_elements, limit, now),
            Operation::Release { context } => {
                self.registry().release(context, &who.user, now)?;
                let mut out = String::with_capacity(1024);
                let env = Envelope::begin(&mut out, RELEASE_RESPONSE, Some(&h.message_id));
                out.push_str("<s:Body/>");
                env.end(&mut out);
                Ok(out)
            }
            Operation::Invoke { method, input } => self.invoke(who, h, method, input),
            Operation::Identify => Ok(identify_response()),
        }
    }

    fn get(&self, who: &Principal, h: &Header, class: &str) -> Result<String, Fault> {
        let def = class_def(class)?;
        let selectors = check_selectors(def, &h.selectors)?;
        let inst = self.provider.get(who, def.name, &selectors)?;
        let mut out = String::with_capacity(1024 + wscim::estimate_instance(&inst));
        let env = Envelope::begin(&mut out, GET_RESPONSE, Some(&h.message_id));
        out.push_str("<s:Body>");
        wscim::instance(&mut out, &inst).map_err(internal)?;
        out.push_str("</s:Body>");
        env.end(&mut out);
        Ok(out)
    }

    fn enumerate(
        &self,
        who: &Principal,
        h: &Header,
        e: &envelope::Enumerate,
        limit: usize,
        now: Instant,
    ) -> Result<String, Fault> {
        let def = class_def(&e.class)?;
        let filter = e
            .filter
            .iter()
            .map(|(name, value)| {
                def.property(name)
                    .map(|p| (p.name.to_owned(), value.clone()))
                    .ok_or_else(|| {
                        Fault::new(
                            FaultKind::CannotProcessFilter,
                            format!("the class {} has no property {name}", def.name),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let source = self.provider.enumerate(who, def.name, &filter)?;
        let mut ctx =
            Context::new(who.user.clone(), e.mode, source).with_filter(Filter::new(filter));

        let mut out = String::with_capacity(2048);
        let env = Envelope::begin(&mut out, ENUMERATE_RESPONSE, Some(&h.message_id));
        out.push_str("<s:Body><n:EnumerateResponse>");
        let mut items_xml = String::new();
        if e.optimize {
            let max = e.max_elements.unwrap_or(1).min(self.config.max_elements);
            // Context id (41) and the fixed elements around the items.
            let overhead = out.len() + 300;
            fill(
                &mut items_xml,
                &mut ctx,
                &mut Vec::new(),
                max,
                limit.saturating_sub(overhead),
                overhead,
                limit,
            )?;
        }
        let done = e.optimize && ctx.is_done()?;
        out.push_str("<n:EnumerationContext>");
        if !done {
            let id = self.registry().open(ctx, now)?;
            out.push_str(&id);
        }
        out.push_str("</n:EnumerationContext>");
        if e.optimize {
            out.push_str("<w:Items>");
            out.push_str(&items_xml);
            out.push_str("</w:Items>");
            if done {
                out.push_str("<w:EndOfSequence/>");
            }
        }
        out.push_str("</n:EnumerateResponse></s:Body>");
        env.end(&mut out);
        Ok(out)
    }

    fn pull(
        &self,
        who: &Principal,
        h: &Header,
        id: &str,
        max_elements: Option<u32>,
        limit: usize,
        now: Instant,
    ) -> Result<String, Fault> {
        let mut ctx = self.registry().take(id, &who.user, now)?;
        let mut out = String::with_capacity(2048);
        let env = Envelope::begin(&mut out, PULL_RESPONSE, Some(&h.message_id));
        out.push_str("<s:Body><n:PullResponse>");
        let overhead = out.len() + 300;
        let mut items_xml = String::new();
        let max = max_elements.unwrap_or(1).min(self.config.max_elements);
        let mut written = Vec::new();
        let filled = fill(
            &mut items_xml,
            &mut ctx,
            &mut written,
            max,
            limit.saturating_sub(overhead),
            overhead,
            limit,
        )
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
        if !done {
            out.push_str("<n:EnumerationContext>");
            crate::wire::xmlw::text(&mut out, id);
            out.push_str("</n:EnumerationContext>");
        }
        out.push_str("<n:Items>");
        out.push_str(&items_xml);
        out.push_str("</n:Items>");
        if done {
            out.push_str("<n:EndOfSequence/>");
        }
        out.push_str("</n:PullResponse></s:Body>");
        env.end(&mut out);
        Ok(out)
    }

    fn invoke(
        &self,
        who: &Principal,
        h: &Header,
        method: &MethodDef,
        input: &[(String, vmsec_cim::Value)],
    ) -> Result<String, Fault> {
        let def = method.class.def();
        let selectors = check_selectors(def, &h.selectors)?;
        let output = self
            .provider
            .invoke(who, def.name, &selectors, method.name, input)?;
        let estimate: usize = output
            .out
            .iter()
            .map(|(name, v)| match v {
                OutValue::Value(v) => wscim::estimate_value(name, v),
                OutValue::JobRef { instance_id } => 600 + instance_id.len(),
            })
            .sum();
        let mut action = String::with_capacity(h.action.len() + 8);
        action.push_str(&h.action);
        action.push_str("Response");
        let mut out = String::with_capacity(1536 + estimate);
        let env = Envelope::begin(&mut out, &action, Some(&h.message_id));
        out.push_str("<s:Body><p:");
        out.push_str(method.name);
        out.push_str("_OUTPUT xmlns:p=\"");
        out.push_str(ns::WMI_V2_PREFIX);
        out.push_str(def.name);
        out.push_str("\">");
        for (name, value) in &output.out {
            match value {
                OutValue::Value(v) => wscim::property(&mut out, name, v).map_err(internal)?,
                OutValue::JobRef { instance_id } => {
                    if !wscim::is_element_name(name) {
                        return Err(internal(BadName(name.clone())));
                    }
                    out.push_str("<p:");
                    out.push_str(name);
                    out.push('>');
                    wscim::job_reference(&mut out, instance_id);
                    out.push_str("</p:");
                    out.push_str(name);
                    out.push('>');
                }
            }
        }
        out.push_str("<p:ReturnValue>");
        crate::wire::xmlw::uint(&mut out, u64::from(output.return_value));
        out.push_str("</p:ReturnValue></p:");
        out.push_str(method.name);
        out.push_str("_OUTPUT></s:Body>");
        env.end(&mut out);
        Ok(out)
    }
}
