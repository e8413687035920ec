//! AWS Signature Version 4 verification, as pure functions over a request's parts.
//!
//! The flow is two-step so that this crate needs no storage and no async runtime:
//! [`Authorization::parse`] reads the access key id from the request, the caller looks up the
//! secret, then [`verify`] recomputes the signature and compares it in constant time.
//!
//! Bedrock (like every AWS service except S3) signs the *double-encoded* path: the path exactly
//! as it went on the wire, with each segment URI-encoded once more (`%3A` → `%253A`).
//!
//! # Security
//! This crate checks the signature, the credential scope and the clock skew. It does not stop
//! replays inside the skew window, and it does not check whether the body was read in full:
//! the caller must hash exactly the bytes it will act on.

#![forbid(unsafe_code)]

mod authorization;
mod canonical;
mod error;
mod presigned;
mod secret;
mod verify;

pub use authorization::{Authorization, CredentialScope};
pub use canonical::{canonical_request, canonical_uri, uri_encode};
pub use error::SigV4Error;
pub use presigned::{verify_presigned, Presigned};
pub use secret::SecretKey;
pub use verify::{
    check_headers, hash_payload, signing_key, string_to_sign, verify, RequestParts, Verified,
    MAX_CLOCK_SKEW,
};
