//! Runtime calls on a model whose backing is an upstream Bedrock endpoint (or a recording of
//! one): the body goes upstream as the client sent it, and the answer comes back as it came,
//! event-stream messages passed on one by one. This gateway still authenticates, authorizes,
//! checks access, admits under the quotas, meters (from the upstream's own token counts) and
//! logs the call, as for a local model.

use crate::call_options::CallOptions;
use crate::error::{self, stream_exception_type};
use crate::{eventstream, Answer, ApiError, Operation};
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use outcrop_service::ledger::{Ended, Meter};
use outcrop_types::Usage;
use outcrop_upstream::{decode_frame, Exchange, Reply, ReplyBody, Upstream, UpstreamError};
use serde_json::Value;
use std::convert::Infallible;
use std::sync::Arc;

/// A backing model served upstream.
#[derive(Clone)]
pub struct Relay {
    pub upstream: Arc<dyn Upstream>,
    /// The model id sent upstream; `None`: the identifier the client used (an ARN of this
    /// gateway's account is replaced by the catalog id).
    pub model: Option<String>,
}

/// Request headers that change an answer and go upstream with the body.
pub(crate) const FORWARDED_HEADERS: [&str; 7] = [
    "content-type",
    "accept",
    "x-amzn-bedrock-service-tier",
    "x-amzn-bedrock-performanceconfig-latency",
    "x-amzn-bedrock-request-metadata",
    "x-amzn-bedrock-trace",
    crate::DETERMINISTIC_HEADER,
];

/// The output a relayed call reserves at quota admission: the limit its body sets in any
/// family's field (at the top or one object down, as Converse's `inferenceConfig`), else 512;
/// settled to the upstream's count at the end.
pub(crate) fn output_estimate(body: &[u8]) -> u64 {
    const FIELDS: [&str; 6] = [
        "max_tokens",
        "max_tokens_to_sample",
        "maxTokens",
        "maxTokenCount",
        "max_gen_len",
        "max_new_tokens",
    ];
    let Ok(Value::Object(top)) = serde_json::from_slice::<Value>(body) else {
        return 512;
    };
    let named =
        |o: &serde_json::Map<String, Value>| FIELDS.iter().find_map(|f| o.get(*f)?.as_u64());
    named(&top)
        .or_else(|| top.values().filter_map(Value::as_object).find_map(named))
        .unwrap_or(512)
}

fn upstream_operation(operation: &Operation) -> Result<outcrop_upstream::Operation, ApiError> {
    use outcrop_upstream::Operation as U;
    Ok(match operation {
        Operation::InvokeModel { .. } => U::InvokeModel,
        Operation::InvokeModelWithResponseStream { .. } => U::InvokeModelWithResponseStream,
        Operation::Converse { .. } => U::Converse,
        Operation::ConverseStream { .. } => U::ConverseStream,
        Operation::CountTokens { .. } => U::CountTokens,
        _ => {
            return Err(ApiError::Validation(format!(
                "This model is served by an upstream Bedrock endpoint and answers the Bedrock runtime API only (InvokeModel, InvokeModelWithResponseStream, Converse, ConverseStream, CountTokens), not {}.",
                operation.name()
            )))
        }
    })
}

/// Forwards the call and answers with what came back.
pub(crate) async fn forward(
    relay: &Relay,
    operation: &Operation,
    entry_id: &str,
    body: Bytes,
    options: &CallOptions,
    meter: &mut Option<Meter>,
) -> Result<Answer, ApiError> {
    let op = upstream_operation(operation)?;
    let identifier = operation.runtime_model().unwrap_or(entry_id);
    let model = relay.model.clone().unwrap_or_else(|| {
        if identifier.starts_with("arn:") {
            entry_id.to_owned()
        } else {
            identifier.to_owned()
        }
    });
    let mut headers = options.forward.clone();
    if !headers.iter().any(|(n, _)| n == "content-type") {
        headers.push(("content-type".into(), "application/json".into()));
    }
    let exchange = Exchange {
        operation: op,
        model,
        headers,
        body,
    };
    let reply = relay.upstream.send(exchange).await.map_err(failure)?;
    if let Some(error) = refused_credentials(&reply) {
        return Err(error);
    }
    let Reply {
        status,
        headers,
        body,
    } = reply;
    let mut response = match &body {
        ReplyBody::Whole(bytes) => Response::new(Body::from(bytes.clone())),
        ReplyBody::Frames(_) => Response::new(Body::empty()),
    };
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (name, value) in &headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().insert(n, v);
        }
    }
    match body {
        ReplyBody::Whole(bytes) => {
            let json: Option<Value> = serde_json::from_slice(&bytes).ok();
            let usage = if status == 200 {
                whole_usage(op, &headers, json.as_ref())
            } else {
                Usage::default()
            };
            if status != 200 {
                // The upstream's own refusal, passed on as it came; the ledger names its code.
                let code = headers
                    .iter()
                    .find(|(n, _)| n == "x-amzn-errortype")
                    .map_or("", |(_, v)| v.split(':').next().unwrap_or(""));
                if let Some(m) = meter.take() {
                    // The upstream's refusal is passed on whether or not its record was kept.
                    let _ = m
                        .finish(Ended {
                            status,
                            error_code: Some(error_code(code)),
                            usage,
                            output: None,
                        })
                        .await;
                }
                // Recorded here: an answer whose meter has already been taken.
                return Ok(Answer::Stream(response));
            }
            let output = (op != outcrop_upstream::Operation::CountTokens)
                .then_some(json)
                .flatten();
            Ok(Answer::Whole {
                response,
                usage,
                output,
            })
        }
        ReplyBody::Frames(frames) => {
            let relayed = Relayed {
                frames,
                meter: meter.take(),
                usage: Usage::default(),
                logged: Vec::new(),
                error_code: None,
                done: false,
            };
            let stream = futures_util::stream::unfold(relayed, |mut r| async move {
                let frame = r.next().await?;
                Some((Ok::<Bytes, Infallible>(frame), r))
            });
            *response.body_mut() = Body::from_stream(stream);
            Ok(Answer::Stream(response))
        }
    }
}

/// The frames of a stream on their way through, read for their usage and errors.
struct Relayed {
    frames: futures_util::stream::BoxStream<'static, Result<Bytes, UpstreamError>>,
    meter: Option<Meter>,
    usage: Usage,
    logged: Vec<Value>,
    error_code: Option<&'static str>,
    done: bool,
}

impl Relayed {
    async fn next(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        match self.frames.next().await {
            Some(Ok(frame)) => {
                self.read(&frame);
                if let Some(m) = self.meter.as_mut() {
                    m.first_byte();
                    m.progress(self.usage);
                }
                Some(frame)
            }
            Some(Err(e)) => {
                self.done = true;
                tracing::error!(error = %e, "upstream stream broke");
                let error = ApiError::ModelStreamError(
                    "The model's upstream endpoint stopped while streaming the response.".into(),
                );
                self.error_code = Some(error::wire(&error).code);
                self.finish().await;
                Some(eventstream::exception(
                    stream_exception_type(&error),
                    &error::wire(&error).message,
                ))
            }
            None => {
                self.done = true;
                self.finish().await;
                None
            }
        }
    }

    /// Notes what a message says about usage and errors.
    fn read(&mut self, frame: &[u8]) {
        let Ok(message) = decode_frame(frame) else {
            return;
        };
        if message.header(":message-type") == Some("exception") {
            let kind = message.header(":exception-type").unwrap_or_default();
            let mut code = kind.to_owned();
            if let Some(first) = code.get_mut(..1) {
                first.make_ascii_uppercase();
            }
            self.error_code = Some(error_code(&code));
            return;
        }
        let Some(payload) = message.json() else {
            return;
        };
        let inner = match message.header(":event-type") {
            // InvokeModelWithResponseStream: the model's chunk, base64 in `bytes`.
            Some("chunk") => payload["bytes"]
                .as_str()
                .and_then(|b| aws_smithy_types::base64::decode(b).ok())
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok()),
            _ => None,
        };
        if let Some(chunk) = inner {
            let metrics = &chunk["amazon-bedrock-invocationMetrics"];
            if let (Some(i), Some(o)) = (
                metrics["inputTokenCount"].as_u64(),
                metrics["outputTokenCount"].as_u64(),
            ) {
                self.usage = usage(i, o);
            }
            self.logged.push(chunk);
        } else {
            // ConverseStream's `metadata` event.
            let u = &payload["usage"];
            if let (Some(i), Some(o)) = (u["inputTokens"].as_u64(), u["outputTokens"].as_u64()) {
                self.usage = usage(i, o);
            }
            self.logged.push(payload);
        }
    }

    /// Records the stream at its end. Its messages have already been passed on, so a record
    /// that could be kept nowhere is only logged (by the meter).
    async fn finish(&mut self) {
        if let Some(meter) = self.meter.take() {
            let (status, output) = match self.error_code {
                None => (200, Some(Value::Array(std::mem::take(&mut self.logged)))),
                Some(code) => (status_of(code), None),
            };
            let _ = meter
                .finish(Ended {
                    status,
                    error_code: self.error_code,
                    usage: self.usage,
                    output,
                })
                .await;
        }
    }
}

/// The HTTP status Bedrock gives an error code, for the ledger of a stream that ended in one.
fn status_of(code: &str) -> u16 {
    match code {
        "ValidationException" => 400,
        "ModelTimeoutException" => 408,
        "ThrottlingException" | "ModelNotReadyException" => 429,
        "ModelStreamErrorException" | "ModelErrorException" => 424,
        "ServiceUnavailableException" => 503,
        _ => 500,
    }
}

fn usage(input: u64, output: u64) -> Usage {
    Usage {
        input_tokens: u32::try_from(input).unwrap_or(u32::MAX),
        output_tokens: u32::try_from(output).unwrap_or(u32::MAX),
        ..Default::default()
    }
}

/// A whole answer's token counts: InvokeModel's headers, Converse's `usage`. CountTokens is
/// free, as on Bedrock.
fn whole_usage(
    op: outcrop_upstream::Operation,
    headers: &[(String, String)],
    json: Option<&Value>,
) -> Usage {
    use outcrop_upstream::Operation as U;
    match op {
        U::InvokeModel => {
            let count = |name: &str| {
                headers
                    .iter()
                    .find(|(n, _)| n == name)
                    .and_then(|(_, v)| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            usage(
                count("x-amzn-bedrock-input-token-count"),
                count("x-amzn-bedrock-output-token-count"),
            )
        }
        U::Converse => {
            let u = json.map(|j| &j["usage"]);
            usage(
                u.and_then(|u| u["inputTokens"].as_u64()).unwrap_or(0),
                u.and_then(|u| u["outputTokens"].as_u64()).unwrap_or(0),
            )
        }
        _ => Usage::default(),
    }
}

/// The ledger's name for an upstream's error code (a fixed set, so the ledger never holds an
/// upstream's arbitrary text).
fn error_code(code: &str) -> &'static str {
    const KNOWN: [&str; 11] = [
        "ValidationException",
        "AccessDeniedException",
        "ResourceNotFoundException",
        "ThrottlingException",
        "ServiceUnavailableException",
        "ServiceQuotaExceededException",
        "ModelStreamErrorException",
        "InternalServerException",
        "ModelTimeoutException",
        "ModelNotReadyException",
        "ModelErrorException",
    ];
    KNOWN
        .into_iter()
        .find(|k| *k == code)
        .unwrap_or("UpstreamException")
}

/// An upstream that refused this gateway's own credentials is this gateway's fault, not the
/// caller's: it is logged and answered as the model being unavailable.
fn refused_credentials(reply: &Reply) -> Option<ApiError> {
    const CREDENTIAL_ERRORS: [&str; 5] = [
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignatureException",
        "MissingAuthenticationTokenException",
        "ExpiredTokenException",
    ];
    let code = reply
        .headers
        .iter()
        .find(|(n, _)| n == "x-amzn-errortype")
        .map(|(_, v)| v.split(':').next().unwrap_or(""))?;
    if !CREDENTIAL_ERRORS.contains(&code) {
        return None;
    }
    tracing::error!(
        code,
        status = reply.status,
        "the upstream refused this gateway's credentials: check the backing model's credential settings"
    );
    Some(unavailable())
}

fn unavailable() -> ApiError {
    ApiError::ServiceUnavailable(
        "The model's upstream endpoint is unavailable. Try again later.".into(),
    )
}

/// No answer from upstream, in Bedrock's words.
fn failure(error: UpstreamError) -> ApiError {
    match error {
        UpstreamError::Timeout => {
            ApiError::ModelTimeout("The model's upstream endpoint did not answer in time.".into())
        }
        UpstreamError::NotRecorded {
            operation,
            model,
            key,
        } => ApiError::Validation(format!(
            "No recorded answer matches this request ({} on {model}, key {}): record it first (engine = \"bedrock\" with record = DIR), or let misses through to the upstream (on_miss = \"upstream\").",
            operation.name(),
            &key[..16.min(key.len())]
        )),
        e @ (UpstreamError::Unreachable(_) | UpstreamError::Protocol(_)) => {
            tracing::error!(error = %e, "no answer from upstream");
            unavailable()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_comes_from_invoke_headers_and_converse_bodies() {
        let headers = vec![
            (
                "x-amzn-bedrock-input-token-count".to_owned(),
                "12".to_owned(),
            ),
            (
                "x-amzn-bedrock-output-token-count".to_owned(),
                "5".to_owned(),
            ),
        ];
        let u = whole_usage(outcrop_upstream::Operation::InvokeModel, &headers, None);
        assert_eq!((u.input_tokens, u.output_tokens), (12, 5));
        let body = serde_json::json!({"usage": {"inputTokens": 7, "outputTokens": 3}});
        let u = whole_usage(outcrop_upstream::Operation::Converse, &[], Some(&body));
        assert_eq!((u.input_tokens, u.output_tokens), (7, 3));
    }

    #[test]
    fn stream_usage_and_exceptions_are_read_from_frames() {
        let mut r = Relayed {
            frames: futures_util::stream::empty().boxed(),
            meter: None,
            usage: Usage::default(),
            logged: Vec::new(),
            error_code: None,
            done: false,
        };
        let chunk = serde_json::json!({"completion": "", "amazon-bedrock-invocationMetrics": {"inputTokenCount": 9, "outputTokenCount": 4}});
        r.read(&eventstream::chunk(&chunk, 3));
        assert_eq!((r.usage.input_tokens, r.usage.output_tokens), (9, 4));
        r.read(&eventstream::event(
            "metadata",
            &serde_json::json!({"usage": {"inputTokens": 2, "outputTokens": 1, "totalTokens": 3}}),
        ));
        assert_eq!((r.usage.input_tokens, r.usage.output_tokens), (2, 1));
        r.read(&eventstream::exception("throttlingException", "slow down"));
        assert_eq!(r.error_code, Some("ThrottlingException"));
    }

    #[test]
    fn output_reserved_is_the_bodys_own_limit() {
        assert_eq!(output_estimate(br#"{"max_tokens_to_sample": 300}"#), 300);
        assert_eq!(
            output_estimate(br#"{"messages": [], "inferenceConfig": {"maxTokens": 64}}"#),
            64
        );
        assert_eq!(output_estimate(b"not json"), 512);
    }

    #[test]
    fn errors_name_what_to_do() {
        let e = failure(UpstreamError::NotRecorded {
            operation: outcrop_upstream::Operation::Converse,
            model: "m".into(),
            key: "0123456789abcdef0123".into(),
        });
        assert!(
            matches!(&e, ApiError::Validation(m) if m.contains("0123456789abcdef") && m.contains("record"))
        );
        assert!(matches!(
            failure(UpstreamError::Timeout),
            ApiError::ModelTimeout(_)
        ));
        assert!(matches!(
            failure(UpstreamError::Unreachable("x".into())),
            ApiError::ServiceUnavailable(_)
        ));
        assert_eq!(error_code("SomethingElse"), "UpstreamException");
    }
}
