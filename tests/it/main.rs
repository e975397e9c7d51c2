//! The integration tests, as one test binary: one link of the crate and its dependencies
//! instead of one per file (each ~45 MB, ~150 MB with full debug info; a fresh clone's
//! `.ci/run` once died of a full disk). `cargo test --test it protocol::` runs one file's.
//!
//! `tests/access_log.rs` stays a binary of its own: it installs the process's tracing
//! subscriber and reads everything that subscriber is given.

mod common;

mod admin_tls;
mod azure;
mod cache;
mod cat_edge;
mod cat_fixtures;
mod file_origin;
mod fleet;
mod foreign;
mod issuing;
mod manifest_dash;
mod manifest_hls;
mod manifests;
mod ops;
mod origins;
mod outage;
mod paths;
mod players;
mod protocol;
mod quickstart;
mod smoke;
mod tokens;
mod unpublished;
