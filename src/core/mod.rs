//! The pure core: no pyo3, no I/O. Everything here is tested by `cargo test` without Python.

pub mod chat;
pub mod chunk;
pub mod citations;
pub mod compaction;
pub mod compaction_trigger;
pub mod error;
pub mod events;
pub mod ids;
pub mod items;
mod mcp;
pub mod output;
pub mod request;
pub mod response;
pub mod round;
pub mod sse;
pub mod surrogates;
pub mod think;
mod tool_calls;
pub mod truncation;
pub mod turn;
pub mod url_citations;
pub mod vectors;
pub mod web_search;

pub use error::CoreError;
