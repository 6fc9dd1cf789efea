#![forbid(unsafe_code)]
//! WS-Management server of vmsec (profile: docs/specs/wsman.md).
//!
//! The core is sans-IO: [`Engine::handle`] turns request bytes into a typed request
//! ([`wire`]), calls the [`Provider`], and turns the result into a typed reply that [`wire`]
//! serializes — faults included — without sockets, and with the time given by its caller.
//! [`server`] is the thin HTTP(S) shell around it: Basic
//! authentication, size limits, timeouts, rate limiting of failed logins, metrics and
//! graceful shutdown.
//!
//! Limits (all configurable through [`EngineConfig`] and [`server::ServerConfig`]):
//! request bodies 4 MiB, read while capped; replies never exceed the client's
//! `wsman:MaxEnvelopeSize` (at least 8192) nor 16 MiB, else `wsman:EncodingLimit` naming
//! the size needed (Pull returns fewer items instead, while one fits); XML nesting 64
//! levels, 64 attributes per element, no DTD; a Content-Type other than
//! `application/soap+xml`, `text/xml` or `application/xml` is answered 415; WQL 4096 characters and 32 conditions; 1024 open enumerations, idle
//! expiry 300 s, at most 1000 items per Pull. `wsman:OperationTimeout` is parsed but not
//! enforced: provider calls are not interruptible.

pub mod engine;
pub mod enumeration;
pub mod provider;
pub mod server;
pub mod traversal;
pub mod wire;

// The codecs other crates use (the fuzz targets, the binary) at the crate's root.
pub use wire::{envelope, fault, ns, wql, wscim};

pub use engine::{Engine, EngineConfig, Response};
pub use fault::{Fault, FaultKind};
pub use provider::{
    AuthRefusal, Confirmation, Enumeration, Listed, MethodOutput, OutValue, Principal, Provider,
    ProviderError, Remembered,
};
