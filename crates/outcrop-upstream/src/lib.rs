//! Bedrock itself as the backing of a Bedrock id. An [`Upstream`] takes a runtime call as the
//! client sent it (operation, model, body, the headers that change the answer) and gives back
//! the upstream's answer as it came: a whole body, or event-stream frames one by one, so a
//! stream is passed through frame by frame and never re-encoded.
//!
//! - [`BedrockUpstream`]: a Bedrock runtime endpoint (AWS, or another Outcrop), each call
//!   signed again with this gateway's own credentials (SigV4, or a Bedrock API key).
//! - [`Recorder`]: any upstream, each finished exchange also written as a cassette file.
//! - [`Replay`]: answers from cassettes, byte for byte, with or without their pacing.
//!
//! The gateway in front (`outcrop-api`) authenticates, authorizes, meters and logs the call
//! as for a local model; this crate only moves bytes and reads nothing but framing.

#![forbid(unsafe_code)]

mod bedrock;
mod cassette;
mod frames;

pub use bedrock::{BedrockConfig, BedrockUpstream, Credentials};
pub use cassette::{Pace, Recorder, Replay};
pub use frames::{decode_frame, DecodedFrame};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;

/// The Bedrock runtime operations an upstream serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    InvokeModel,
    InvokeModelWithResponseStream,
    Converse,
    ConverseStream,
    CountTokens,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::InvokeModel => "InvokeModel",
            Operation::InvokeModelWithResponseStream => "InvokeModelWithResponseStream",
            Operation::Converse => "Converse",
            Operation::ConverseStream => "ConverseStream",
            Operation::CountTokens => "CountTokens",
        }
    }

    fn path_suffix(self) -> &'static str {
        match self {
            Operation::InvokeModel => "invoke",
            Operation::InvokeModelWithResponseStream => "invoke-with-response-stream",
            Operation::Converse => "converse",
            Operation::ConverseStream => "converse-stream",
            Operation::CountTokens => "count-tokens",
        }
    }

    /// Whether a successful answer is an event stream.
    pub fn streams(self) -> bool {
        matches!(
            self,
            Operation::InvokeModelWithResponseStream | Operation::ConverseStream
        )
    }
}

/// One call to send upstream.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub operation: Operation,
    /// The model identifier as the upstream knows it.
    pub model: String,
    /// Headers that change the answer (content type, accept, service tier, latency...), with
    /// lower-case names; never credentials.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Exchange {
    /// The request path on a Bedrock runtime endpoint (the model id percent-encoded, as the
    /// AWS SDKs send it).
    pub fn path(&self) -> String {
        let model =
            percent_encoding::utf8_percent_encode(&self.model, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
                // Unreserved characters stay as they are, as the SDKs leave them.
                .replace("%2E", ".")
                .replace("%2D", "-")
                .replace("%5F", "_")
                .replace("%7E", "~");
        format!("/model/{model}/{}", self.operation.path_suffix())
    }

    /// The exchange's identity for recordings: SHA-256 of the operation, model, headers and
    /// body (a JSON body with its keys sorted and no whitespace, so formatting is not part of
    /// it), in hex.
    pub fn key(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut headers = self.headers.clone();
        headers.sort();
        let body = match serde_json::from_slice::<serde_json::Value>(&self.body) {
            Ok(v) => cassette::canonical(&v).to_string(),
            Err(_) => hex::encode(Sha256::digest(&self.body)),
        };
        let canonical = serde_json::json!({
            "operation": self.operation.name(),
            "model": self.model,
            "headers": headers,
            "body": body,
        });
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }
}

/// The upstream's answer.
pub struct Reply {
    pub status: u16,
    /// Headers worth passing on (content type, `x-amzn-bedrock-*`, `x-amzn-errortype`), with
    /// lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: ReplyBody,
}

pub enum ReplyBody {
    Whole(Bytes),
    /// Whole event-stream messages, each as its bytes on the wire, as they arrive.
    Frames(BoxStream<'static, Result<Bytes, UpstreamError>>),
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field(
                "body",
                &match &self.body {
                    ReplyBody::Whole(b) => format!("{} bytes", b.len()),
                    ReplyBody::Frames(_) => "frames".into(),
                },
            )
            .finish()
    }
}

/// Why no answer came back.
#[derive(Debug, Clone)]
pub enum UpstreamError {
    /// No endpoint could be reached, or the connection broke.
    Unreachable(String),
    /// The upstream did not answer within the timeout.
    Timeout,
    /// The answer was not what Bedrock sends (a broken frame, a cut stream).
    Protocol(String),
    /// A replay has no recording of this exchange.
    NotRecorded {
        operation: Operation,
        model: String,
        key: String,
    },
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::Unreachable(e) => write!(f, "upstream unreachable: {e}"),
            UpstreamError::Timeout => write!(f, "upstream timed out"),
            UpstreamError::Protocol(e) => write!(f, "upstream answer unreadable: {e}"),
            UpstreamError::NotRecorded {
                operation,
                model,
                key,
            } => write!(
                f,
                "no recording of {} on {model} (key {})",
                operation.name(),
                &key[..16.min(key.len())]
            ),
        }
    }
}

impl std::error::Error for UpstreamError {}

/// Something that answers Bedrock runtime calls. Cheap to share; safe from any task.
#[async_trait]
pub trait Upstream: Send + Sync {
    /// Sends the exchange; `Ok` whatever the status (an upstream's own error answer is
    /// passed on as it came), `Err` when there is no answer to pass on.
    async fn send(&self, exchange: Exchange) -> Result<Reply, UpstreamError>;

    /// Where it sends, for logs and health (never a credential).
    fn describe(&self) -> String;
}
