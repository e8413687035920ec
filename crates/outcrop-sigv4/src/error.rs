/// Why a request's signature was not accepted. Each variant maps to one AWS error code in the
/// API layer; the `Display` text is what AWS services say.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    /// No `Authorization` header at all.
    #[error("Missing Authentication Token")]
    Missing,
    /// The header is there but cannot be parsed (missing parts, wrong algorithm, bad date).
    #[error("{0}")]
    Incomplete(String),
    /// The request time is outside the allowed clock skew.
    #[error("{0}")]
    Expired(String),
    /// Scope or signature do not match what the server computes.
    #[error("{0}")]
    Mismatch(String),
}

pub(crate) const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";
