//! The boundary between the WS-Management adapter and the service that owns the classes.
//!
//! The adapter never interprets CIM semantics; it only turns SOAP into these calls and
//! their results back into SOAP. The service crate implements [`Provider`].

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use vmsec_cim::schema::MethodDef;
use vmsec_cim::{Instance, Value};

/// The authenticated caller of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The user name the credentials were verified for.
    pub user: String,
    /// What the provider said of the caller when it verified the credentials (its role),
    /// handed back to it with each request of the same exchange so that it need not look
    /// the user up again. Opaque to the engine.
    pub role: String,
    /// `Some` when the provider accepted the credentials from its memory of an earlier
    /// check ([`Provider::authenticate_verified`]) without reading its store. The server
    /// then sends the request's reply only once they are confirmed against the store: by the
    /// provider in the read that answers the request ([`Remembered::confirmed`]), else by
    /// [`Provider::confirm`] before the reply goes out.
    pub remembered: Option<Remembered>,
}

/// Credentials accepted from memory: what they were verified against, and what this
/// request has found of them in the store so far. Clones share what was found.
#[derive(Clone, Debug)]
pub struct Remembered {
    /// What the provider verified the credentials against (a fingerprint of the stored
    /// password, say): opaque to the engine.
    pub stamp: u128,
    /// Set once per request: `Some(role)` confirmed, `None` refused.
    found: Arc<OnceLock<Option<String>>>,
}

/// Where a request's [`Remembered`] credentials stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Confirmation<'a> {
    /// Nothing has compared them with the store yet in this request.
    Unchecked,
    /// The store still holds what they were verified against; the caller's role there now
    /// (in [`Principal::role`]'s terms).
    Confirmed(&'a str),
    /// The store no longer does (the password changed, the user is gone): 401.
    Refused,
}

impl Remembered {
    pub fn new(stamp: u128) -> Remembered {
        Remembered {
            stamp,
            found: Arc::new(OnceLock::new()),
        }
    }

    /// The provider read the user in one of the request's reads and found the same stamp;
    /// `role` is what the store says of the caller now. The first finding of a request
    /// stands.
    pub fn confirmed(&self, role: impl Into<String>) {
        let _ = self.found.set(Some(role.into()));
    }

    /// The provider read the user and found a different stamp, or none.
    pub fn refused(&self) {
        let _ = self.found.set(None);
    }

    pub fn state(&self) -> Confirmation<'_> {
        match self.found.get() {
            None => Confirmation::Unchecked,
            Some(Some(role)) => Confirmation::Confirmed(role),
            Some(None) => Confirmation::Refused,
        }
    }
}

/// Two remembrances are the same when they stand for the same check, whatever this
/// request has found of it.
impl PartialEq for Remembered {
    fn eq(&self, other: &Remembered) -> bool {
        self.stamp == other.stamp
    }
}

impl Eq for Remembered {}

/// What a provider returns from a method invocation.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodOutput {
    /// The method's `ReturnValue` (0 done, 4096 job started, …).
    pub return_value: u32,
    /// Out parameters, by name; parameters absent here are not written.
    pub out: Vec<(String, OutValue)>,
}

/// One out parameter of a method.
#[derive(Clone, Debug, PartialEq)]
pub enum OutValue {
    /// A plain value (a key protector as `Value::Bytes`).
    Value(Value),
    /// A reference to an `Msvm_ConcreteJob`, written as an endpoint reference.
    JobRef {
        /// The job's `InstanceID` key.
        instance_id: String,
    },
}

/// Why a provider call failed; each variant maps to exactly one SOAP fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The class is not served (`wsa:DestinationUnreachable`).
    #[error("class {0} is not served")]
    NoSuchClass(String),
    /// No instance has the given keys (`wsa:DestinationUnreachable`).
    #[error("no instance matches the selectors")]
    NoSuchInstance,
    /// The selectors do not address an instance of the class (`wsman:InvalidSelectors`).
    #[error("invalid selectors: {0}")]
    InvalidSelectors(String),
    /// The caller may not do this (`wsman:AccessDenied`).
    #[error("access denied")]
    AccessDenied,
    /// A method or filter parameter has a valid type but an unacceptable value
    /// (`wsman:InvalidParameter`).
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// The service failed (`wsman:InternalError`); the text must not hold secrets.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The instances of one Enumerate, read as its Pulls ask for them, so that an open
/// enumeration holds its position rather than every instance it will return.
pub trait Enumeration: Send {
    /// Up to `n` (at least 1) next instances; fewer when that is what the source reads at a
    /// time, none only when every instance was returned.
    fn next(&mut self, n: usize) -> Result<Vec<Instance>, ProviderError>;

    /// About how much memory it holds while waiting for the next Pull.
    fn heap_bytes(&self) -> usize;
}

/// An enumeration whose instances were all read at once: for classes with few or small
/// instances.
#[derive(Debug, Default)]
pub struct Listed {
    items: std::collections::VecDeque<Instance>,
    /// [`Instance::heap_bytes`] of `items`, kept as they are taken.
    bytes: usize,
}

impl Listed {
    /// The instances, returned in this order.
    pub fn new(items: Vec<Instance>) -> Listed {
        let bytes = items.iter().map(Instance::heap_bytes).sum();
        Listed {
            items: items.into(),
            bytes,
        }
    }
}

impl Enumeration for Listed {
    fn next(&mut self, n: usize) -> Result<Vec<Instance>, ProviderError> {
        let taken: Vec<Instance> = self.items.drain(..n.min(self.items.len())).collect();
        self.bytes -= taken.iter().map(Instance::heap_bytes).sum::<usize>();
        Ok(taken)
    }

    fn heap_bytes(&self) -> usize {
        self.bytes
    }
}

/// Why [`Provider::authenticate`] did not accept credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthRefusal {
    /// Wrong, unknown or malformed: 401.
    Rejected,
    /// The credentials could not be checked (the store is unreachable): 503 with
    /// `Retry-After`, so that a client does not take a database outage for a wrong password.
    Unavailable,
}

/// The service behind the WS-Management endpoint.
///
/// [`Provider::authenticate`], [`Provider::enumerate`] and [`Provider::invoke`] are called
/// on blocking threads: they may do synchronous storage, writes or slow password hashing.
/// [`Provider::authenticate_verified`] and [`Provider::get`] may be called on the threads
/// that serve connections, to spare a small request the hand-off to another thread: they
/// must be quick point reads of local state, never hash a password nor wait for a write.
/// So may [`Provider::invoke`] of a method [`Provider::invokes_quickly`] said is quick.
pub trait Provider: Send + Sync + 'static {
    /// Verifies HTTP Basic credentials.
    fn authenticate(
        &self,
        user: &str,
        password: &str,
        peer: IpAddr,
    ) -> Result<Principal, AuthRefusal>;

    /// Accepts credentials only if that is quick: the same user and password were verified
    /// by [`Provider::authenticate`] before. A principal returned with
    /// [`Principal::remembered`] set is confirmed against the store later in the request
    /// (see there); one without it must have been checked against the store now. `None`
    /// decides nothing (the server then calls `authenticate`, which refuses or
    /// audits); it is not a refusal. The default never decides.
    fn authenticate_verified(
        &self,
        _user: &str,
        _password: &str,
        _peer: IpAddr,
    ) -> Option<Principal> {
        None
    }

    /// Whether the credentials of a [`Principal`] accepted from memory still stand: called
    /// before the reply of a request that no provider method confirmed or refused (see
    /// [`Principal::remembered`]), and before `/metrics`. A quick point read, like
    /// `authenticate_verified`. The default refuses, so that a provider which remembers
    /// credentials and forgets to confirm them fails closed.
    fn confirm(&self, _who: &Principal) -> Result<(), AuthRefusal> {
        Err(AuthRefusal::Rejected)
    }

    /// Returns the instance of `class` whose keys are `selectors`. The adapter has checked
    /// them against the schema: either none (a singleton request) or every key property
    /// exactly once, names in the schema's spelling, `__cimnamespace` removed. A point
    /// read (see the trait's documentation).
    fn get(
        &self,
        who: &Principal,
        class: &str,
        selectors: &[(String, String)],
    ) -> Result<Instance, ProviderError>;

    /// Starts an enumeration of the instances of `class` whose properties equal every
    /// `filter` pair: the `property = literal` conjuncts at the top of the WQL clause
    /// (`WHERE a = 'x' AND (b = 1 OR c != 2)` gives `a = x`). Names are properties of the class in the
    /// schema's spelling; values are text: strings verbatim, booleans `true`/`false`,
    /// integers in decimal as written (a leading `+` dropped). Whether the caller may
    /// enumerate is decided here; the instances may be read later, as they are pulled
    /// ([`Listed`] when they are read at once).
    ///
    /// The filter is a pushdown hint: the engine applies it again to every instance
    /// returned ([`crate::wire::wql::Filter::matches`]), the whole clause, so a provider may return more than
    /// matches (all instances, or a superset found by an index) but never fewer. A provider
    /// that filters must not be stricter than `Filter::matches`.
    fn enumerate(
        &self,
        who: &Principal,
        class: &str,
        filter: &[(String, String)],
    ) -> Result<Box<dyn Enumeration>, ProviderError>;

    /// Invokes `method` on the instance of `class` addressed by `selectors` (checked as for
    /// [`Provider::get`]). `method` is in the spelling of the method table. `input` holds
    /// every declared in-parameter of the method in declaration order, `Value::Null` for
    /// those the client left out.
    fn invoke(
        &self,
        who: &Principal,
        class: &str,
        selectors: &[(String, String)],
        method: &str,
        input: &[(String, Value)],
    ) -> Result<MethodOutput, ProviderError>;

    /// Whether invoking `method` is quick now, as [`Provider::get`] is: point reads, and at
    /// most an audit append that would not wait for another write. The server then invokes
    /// it on the thread serving the connection, sparing it two hand-offs between threads.
    /// The default: never.
    fn invokes_quickly(&self, _method: &MethodDef) -> bool {
        false
    }

    /// Starts an enumeration of the instances of the association class `association` whose
    /// reference `role` points at the instance of `target_class` with keys `target` (checked
    /// as for [`Provider::get`]). None when there is no such instance. Each returned instance
    /// holds both references as [`Value::Reference`], so that the engine can follow the other
    /// one to the associated instance. Whether the caller may read is decided here.
    ///
    /// The default serves no association instance: a provider without association classes.
    fn references(
        &self,
        _who: &Principal,
        _association: &str,
        _role: &str,
        _target_class: &str,
        _target: &[(String, String)],
    ) -> Result<Box<dyn Enumeration>, ProviderError> {
        Ok(Box::new(Listed::default()))
    }

    /// Extra Prometheus text appended to `/metrics` (e.g. jobs by state).
    fn metrics_extra(&self) -> String {
        String::new()
    }
}
