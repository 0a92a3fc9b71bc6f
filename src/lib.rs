//! responses-rs: the OpenAI Responses API over a Chat Completions backend.
//!
//! `core` is pure Rust and sans-IO: it converts, aggregates and orchestrates, and *asks* for every
//! piece of I/O instead of doing it. `glue` (behind the `python` feature) exposes it to Python as
//! `responses_rs._core`; the async driver that performs the I/O lives in `python/responses_rs/`.

pub mod core;

#[cfg(feature = "python")]
mod glue;
