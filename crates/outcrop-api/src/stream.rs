//! InvokeModelWithResponseStream: the model's chunks as event-stream frames, each flushed as
//! soon as its text is generated. Errors before the first byte are ordinary HTTP errors;
//! after it, an exception frame ends the stream.

use crate::anthropic::TextChunks;
use crate::eventstream;
use crate::invoke::{prepare, Family};
use crate::{ApiError, ApiState};
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use outcrop_scheduler::{GenerationEvent, GenerationStream};
use outcrop_types::{GenerationError, Usage};
use serde_json::json;
use std::convert::Infallible;
use std::time::Instant;

pub async fn invoke_model_with_response_stream(
    state: &ApiState,
    identifier: &str,
    body: &[u8],
    started: Instant,
) -> Result<Response, ApiError> {
    let prepared = prepare(state, identifier, body)?;
    let mut events = prepared.engine.submit(prepared.request)?;
    // Wait for admission: a prompt that cannot run is still an HTTP error.
    let input_tokens = match events.recv().await {
        Some(GenerationEvent::Started { input_tokens }) => input_tokens,
        Some(GenerationEvent::Failed(e)) => return Err(e.into()),
        _ => {
            tracing::error!("generation ended before it started");
            return Err(ApiError::Internal);
        }
    };
    let shaper = match prepared.family {
        Family::AnthropicText => TextChunks::default(),
    };
    let frames = Frames {
        events,
        shaper,
        started,
        first_byte_ms: None,
        input_tokens,
        done: false,
        sent: 0,
    };
    let body = futures_util::stream::unfold(frames, |mut f| async move {
        let frame = f.next_frame().await?;
        Some((Ok::<Bytes, Infallible>(frame), f))
    });
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/vnd.amazon.eventstream"),
    );
    headers.insert(
        "x-amzn-bedrock-content-type",
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// Turns generation events into frames, one per `next_frame` call.
struct Frames {
    events: GenerationStream,
    shaper: TextChunks,
    started: Instant,
    first_byte_ms: Option<u64>,
    input_tokens: u32,
    done: bool,
    sent: usize,
}

impl Frames {
    async fn next_frame(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        let frame = loop {
            match self.events.recv().await {
                Some(GenerationEvent::Started { .. }) => continue,
                Some(GenerationEvent::Text(text)) => {
                    let chunk = self.shaper.text(&text);
                    break self.chunk(&chunk);
                }
                Some(GenerationEvent::Finished { reason, usage }) => {
                    self.done = true;
                    let mut last = self.shaper.end(&reason);
                    let first_byte = *self
                        .first_byte_ms
                        .get_or_insert_with(|| elapsed_ms(self.started));
                    last["amazon-bedrock-invocationMetrics"] = json!({
                        "inputTokenCount": usage.input_tokens,
                        "outputTokenCount": usage.output_tokens,
                        "invocationLatency": elapsed_ms(self.started),
                        "firstByteLatency": first_byte,
                    });
                    log_end(usage, self.started, "streamed");
                    break self.chunk(&last);
                }
                Some(GenerationEvent::Failed(e)) => {
                    self.done = true;
                    let error = match e {
                        GenerationError::Engine(m) => {
                            tracing::error!(error = %m, "engine failure mid-stream");
                            ApiError::ModelStreamError(
                                "The model failed while generating the response.".into(),
                            )
                        }
                        other => ApiError::from(other),
                    };
                    let (_, _, _, message) = error.wire();
                    break eventstream::exception(error.stream_exception_type(), &message);
                }
                None => {
                    self.done = true;
                    tracing::error!("generation stream closed without an end");
                    break eventstream::exception(
                        ApiError::Internal.stream_exception_type(),
                        &ApiError::Internal.wire().3,
                    );
                }
            }
        };
        Some(frame)
    }

    fn chunk(&mut self, model_chunk: &serde_json::Value) -> Bytes {
        self.first_byte_ms
            .get_or_insert_with(|| elapsed_ms(self.started));
        self.sent += 1;
        // Bedrock pads chunks with a field of varying length so sizes leak less.
        eventstream::chunk(
            model_chunk,
            1 + (self.sent * 7 + self.input_tokens as usize) % 40,
        )
    }
}

fn elapsed_ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

fn log_end(usage: Usage, started: Instant, what: &str) {
    tracing::info!(
        input_tokens = usage.input_tokens,
        output_tokens = usage.output_tokens,
        ms = elapsed_ms(started),
        "{what}"
    );
}
