//! tollgate: a token gatekeeper for media delivery.
//!
//! Module map (docs/architecture.md, "Module map", says what each owns and never
//! touches; "Module rules" says which imports are forbidden, and
//! `scripts/module-graph.py` checks them):
//!
//! | module | owns |
//! | --- | --- |
//! | [`config`] | the file format, defaults, validation into typed structs |
//! | [`resource`] | the domain types `Resource` and `ResourceType` (a leaf) |
//! | [`token`] | claims, keys, verification and its cache, revocation sets, authorisation, minting |
//! | [`clock`] | the one reader of the wall clock |
//! | [`body`] | the response body type and the shape of a refusal |
//! | `origin` | upstream pools (http/https) and the `file://` origin |
//! | `url` | `%XX` decoding and token-name look-alikes, shared by the path, token, manifest and file code (a leaf) |
//! | `private_file` | owner-only files and directories for keys, tokens and the store (a leaf) |
//! | [`tls`] | rustls server configuration, SNI, development certificates |
//! | [`logging`] | the global subscriber, access-log formats and their non-blocking writer |
//! | `edge` | the request path, one file per phase: admit, normalise, extract, route, client, limits, access, shield, forward, respond |
//! | [`cache`] | the shield cache: keys without the token, the byte-bounded store, fills streamed to their waiters |
//! | [`manifest`] | pure HLS/DASH rewriting: child URLs carry the query token |
//! | [`admin`] | the admin listener: the three issuing dialects, management, JWKS, health; key rotation and mint rules for the CLI |
//! | [`store`] | the `Store` trait, its embedded SQLite implementation and the conformance suite every backend runs |
//! | [`metrics`] | every Prometheus family, registered once; the `/metrics` text |
//! | `ratelimit` | governor limiters (edge, login, issuing) and their pruning |
//! | [`server`] | listeners, accept, connection limits, timeouts, drain; `ConnInfo` |
//! | [`reload`] | the reload handle (SIGHUP, `POST /v1/reload`) and its report |
//! | [`app`] | wiring: build the state from a config and run every listener; store refresh; the reload loop |
//!
//! Modules without a link are `pub(crate)`: the binary, the tests and the benches reach
//! the request path only through [`app::Gate`].

pub mod admin;
pub mod app;
pub mod body;
pub mod cache;
pub mod clock;
pub mod config;
pub(crate) mod edge;
pub mod logging;
pub mod manifest;
pub mod metrics;
pub(crate) mod origin;
pub(crate) mod private_file;
pub(crate) mod ratelimit;
pub mod reload;
pub mod resource;
pub mod server;
pub mod store;
pub mod tls;
pub mod token;
pub(crate) mod url;
