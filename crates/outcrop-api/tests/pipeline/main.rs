//! The request pipeline in process: the real router on an ephemeral port over a temporary
//! SQLite store and a scripted engine (no model), driven by the AWS SDK for Rust and by raw
//! signed requests. Authentication, IAM, model access, quotas, the ledger, the order of errors
//! and every family's validation are checked here in milliseconds; what only a real model
//! and the Python clients prove stays in `tests/python`.

mod support;

mod access;
mod api_keys;
mod auth;
mod errors;
mod ledger;
mod runtime;
mod script;
mod surfaces;
