//! The wire: SOAP/WS-Management codecs, apart from the engine that dispatches.
//!
//! Everything here turns bytes into typed values or typed values into bytes and decides
//! nothing about what a request means (the split rustls keeps between `msgs/` and its state
//! machines): requests are read by [`envelope`] (Gets by [`quick`], with no tree; with
//! [`invoke`] typing method bodies and [`wql`] reading filters), replies are written by
//! [`reply`] and [`fault`], instances by [`wscim`] (large `uint8[]` values through
//! [`arrays`]), all with the namespaces of [`ns`].

pub mod arrays;
pub mod association;
pub mod envelope;
pub mod fault;
mod header;
pub mod invoke;
pub mod ns;
pub mod quick;
pub mod reply;
pub mod wql;
pub mod wscim;
mod xmlw;
