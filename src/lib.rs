//! tollgate: a token gatekeeper for media delivery.
//!
//! Module map (DESIGN.md §7):
//!
//! | module | owns |
//! | --- | --- |
//! | [`config`] | the file format, defaults, validation into typed structs |
//! | [`token`] | claims, keys, verification and its cache, authorisation, minting |
//! | [`clock`] | the one reader of the wall clock |
//! | [`body`] | the response body type |
//! | [`origin`] | upstream pools (http/https) and the `file://` origin |
//! | [`percent`] | `%XX` decoding shared by the path, token and file code |
//! | [`private_file`] | owner-only files and directories for keys, tokens and the store |
//! | [`tls`] | rustls server configuration, SNI, development certificates |
//! | [`logging`] | the global subscriber, access-log formats and their non-blocking writer |
//! | [`edge`] | the per-request path: normalise, route, token, authorise, forward |
//! | [`manifest`] | pure HLS/DASH rewriting: child URLs carry the query token |
//! | [`admin`] | the admin listener: the three issuing dialects, management, JWKS, health |
//! | [`store`] | the `Store` trait and its embedded SQLite implementation |
//! | [`metrics`] | every Prometheus family, registered once; the `/metrics` text |
//! | [`ratelimit`] | governor limiters (edge, login, issuing) and their pruning |
//! | [`server`] | listeners, accept, connection limits, timeouts, drain |
//! | [`reload`] | the reload handle (SIGHUP, `POST /v1/reload`) and its report |
//! | [`app`] | wiring: build the state from a config and run every listener |

pub mod admin;
pub mod app;
pub mod body;
pub mod clock;
pub mod config;
pub mod edge;
pub mod logging;
pub mod manifest;
pub mod metrics;
pub mod origin;
pub mod private_file;
pub mod ratelimit;
pub mod reload;
pub mod resource;
pub mod server;
pub mod store;
pub mod tls;
pub mod token;
pub mod url;
