//! Streaming responses (InvokeModelWithResponseStream, ConverseStream): generation events
//! become event-stream frames, each flushed as soon as its text is generated. Errors before the
//! first byte are ordinary HTTP errors; after it, an exception frame ends the stream. What the
//! frames contain is up to a [`Shaper`]: model chunks in `bytes`, or Converse events.

use crate::error::{self, stream_exception_type};
use crate::eventstream;
use crate::families::{Chunker, Parsed};
use crate::ApiError;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use outcrop_engine::{Engine, GenerationEvent, GenerationStream};
use outcrop_service::ledger::{Ended, Meter};
use outcrop_types::{GenerationError, GenerationRequest, StopReason, Usage};
use serde_json::json;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Instant;

pub const UNSUPPORTED_FOR_STREAMING: &str = "The model is unsupported for streaming.";

/// Turns a generation into frames.
pub trait Shaper: Send + 'static {
    fn start(&mut self, input_tokens: u32) -> Vec<Bytes>;
    fn text(&mut self, text: &str) -> Vec<Bytes>;
    fn end(&mut self, reason: &StopReason, usage: Usage, timing: Timing) -> Vec<Bytes>;
    /// The frame that ends a stream that failed after it began: Bedrock's exception frame.
    fn failure(&mut self, error: &ApiError) -> Bytes {
        eventstream::exception(stream_exception_type(error), &error::wire(error).message)
    }
    /// The response's content type.
    fn content_type(&self) -> &'static str {
        "application/vnd.amazon.eventstream"
    }
    /// Everything sent so far, as JSON, for the invocation log.
    fn logged(&mut self) -> serde_json::Value;
}

/// Latencies at the end of a stream, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub first_byte_ms: u64,
    pub latency_ms: u64,
}

pub async fn invoke_model_with_response_stream(
    engine: &dyn Engine,
    request: GenerationRequest,
    chunker: Box<dyn Chunker>,
    meter: &mut Option<Meter>,
) -> Result<Response, ApiError> {
    let mut response = respond(
        engine,
        request,
        ChunkFrames {
            chunker,
            sent: 0,
            log: Vec::new(),
            framing: Framing::EventStream,
        },
        meter,
    )
    .await?;
    response.headers_mut().insert(
        "x-amzn-bedrock-content-type",
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// A stream that is over its quota: opened, then ended at once with a `throttlingException`
/// frame, as Bedrock does.
pub fn throttled(error: &ApiError) -> Response {
    let frame = eventstream::exception(stream_exception_type(error), &error::wire(error).message);
    let mut response = Response::new(Body::from(frame));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/vnd.amazon.eventstream"),
    );
    response
}

/// Streams generate one answer; a body asking for several cannot stream.
pub(crate) fn single_request(parsed: Parsed) -> Result<GenerationRequest, ApiError> {
    let mut requests = parsed.requests;
    if requests.len() != 1 {
        return Err(ApiError::Validation(
            "Streaming returns one generation; ask for one result (numResults / num_generations = 1).".into(),
        ));
    }
    Ok(requests.remove(0))
}

/// Submits `request` and answers with an event stream shaped by `shaper`, once the
/// generation has been admitted (until then, failures are HTTP errors). The stream takes the
/// call's meter and records the call when it ends or is dropped.
pub async fn respond(
    engine: &dyn Engine,
    request: GenerationRequest,
    mut shaper: impl Shaper,
    meter: &mut Option<Meter>,
) -> Result<Response, ApiError> {
    let started = meter
        .as_ref()
        .map_or_else(Instant::now, |m| m.call().started);
    let mut events = engine.submit(request)?;
    let input_tokens = match events.recv().await {
        Some(GenerationEvent::Started { input_tokens }) => input_tokens,
        Some(GenerationEvent::Failed(e)) => return Err(e.into()),
        _ => {
            tracing::error!("generation ended before it started");
            return Err(ApiError::Internal);
        }
    };
    let queue = shaper.start(input_tokens).into();
    let content_type = shaper.content_type();
    let frames = Frames {
        events,
        shaper,
        started,
        first_byte_ms: None,
        queue,
        done: false,
        meter: meter.take(),
        input_tokens,
        pieces: 0,
    };
    let body = futures_util::stream::unfold(frames, |mut f| async move {
        let frame = f.next_frame().await?;
        Some((Ok::<Bytes, Infallible>(frame), f))
    });
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = StatusCode::OK;
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static(content_type));
    Ok(response)
}

/// Pulls generation events and hands out frames one at a time.
struct Frames<S: Shaper> {
    events: GenerationStream,
    shaper: S,
    started: Instant,
    first_byte_ms: Option<u64>,
    queue: VecDeque<Bytes>,
    done: bool,
    /// Taken when the stream's usage record is written at its end; dropped with the stream
    /// (a client that went away), it records the tokens sent until then.
    meter: Option<Meter>,
    input_tokens: u32,
    /// Text pieces sent so far: the tokens generated, for a stream cut short.
    pieces: u32,
}

impl<S: Shaper> Frames<S> {
    /// Writes the stream's usage record (and invocation log), once; `false` when it could be
    /// made durable nowhere.
    async fn record(
        &mut self,
        usage: Usage,
        status: u16,
        error_code: Option<&'static str>,
    ) -> bool {
        match self.meter.take() {
            Some(meter) => {
                let output = (status == 200).then(|| self.shaper.logged());
                meter
                    .finish(Ended {
                        status,
                        error_code,
                        usage,
                        output,
                    })
                    .await
            }
            None => true,
        }
    }

    /// Tokens so far: recorded if the client goes away before the end.
    fn progress(&mut self) {
        let usage = Usage {
            input_tokens: self.input_tokens,
            output_tokens: self.pieces,
            ..Default::default()
        };
        if let Some(m) = self.meter.as_mut() {
            m.progress(usage);
        }
    }
}

impl<S: Shaper> Frames<S> {
    async fn next_frame(&mut self) -> Option<Bytes> {
        loop {
            if let Some(frame) = self.queue.pop_front() {
                self.first_byte_ms
                    .get_or_insert_with(|| elapsed_ms(self.started));
                if let Some(m) = self.meter.as_mut() {
                    m.first_byte();
                }
                return Some(frame);
            }
            if self.done {
                return None;
            }
            let frames = match self.events.recv().await {
                Some(GenerationEvent::Started { .. }) => continue,
                Some(GenerationEvent::Text(text)) => {
                    self.pieces += 1;
                    self.progress();
                    self.shaper.text(&text)
                }
                Some(GenerationEvent::Finished { reason, usage }) => {
                    self.done = true;
                    let latency_ms = elapsed_ms(self.started);
                    let timing = Timing {
                        first_byte_ms: self.first_byte_ms.unwrap_or(latency_ms),
                        latency_ms,
                    };
                    tracing::info!(
                        input_tokens = usage.input_tokens,
                        output_tokens = usage.output_tokens,
                        ms = latency_ms,
                        "streamed"
                    );
                    // On disk before the client can see the end of the stream; a stream whose
                    // record could be kept nowhere ends in an error instead.
                    if !self.record(usage, 200, None).await {
                        return Some(self.shaper.failure(&ApiError::Internal));
                    }
                    self.shaper.end(&reason, usage, timing)
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
                    let wire = error::wire(&error);
                    let usage = Usage {
                        input_tokens: self.input_tokens,
                        output_tokens: self.pieces,
                        ..Default::default()
                    };
                    let _ = self
                        .record(usage, wire.status.as_u16(), Some(wire.code))
                        .await;
                    vec![self.shaper.failure(&error)]
                }
                None => {
                    self.done = true;
                    tracing::error!("generation stream closed without an end");
                    let wire = error::wire(&ApiError::Internal);
                    let usage = Usage {
                        input_tokens: self.input_tokens,
                        output_tokens: self.pieces,
                        ..Default::default()
                    };
                    let _ = self
                        .record(usage, wire.status.as_u16(), Some(wire.code))
                        .await;
                    vec![self.shaper.failure(&ApiError::Internal)]
                }
            };
            self.queue.extend(frames);
        }
    }
}

fn elapsed_ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

/// Bedrock pads events with a field of varying length so sizes leak less.
pub fn padding(n: usize) -> usize {
    1 + (n * 7) % 40
}

/// A family's chunks as server-sent events (`event: TYPE`, `data: CHUNK`), as Anthropic's
/// Messages API streams the same chunks Bedrock wraps in event-stream frames.
pub async fn server_sent_chunks(
    engine: &dyn Engine,
    request: GenerationRequest,
    chunker: Box<dyn Chunker>,
    failure: fn(&ApiError) -> Bytes,
    meter: &mut Option<Meter>,
) -> Result<Response, ApiError> {
    let shaper = ChunkFrames {
        chunker,
        sent: 0,
        log: Vec::new(),
        framing: Framing::ServerSent { failure },
    };
    respond(engine, request, shaper, meter).await
}

enum Framing {
    /// Base64 in event-stream `chunk` events, the last with the invocation metrics.
    EventStream,
    /// Server-sent events named after each chunk's `type`; `failure` writes an error event.
    ServerSent { failure: fn(&ApiError) -> Bytes },
}

/// A family's chunks, framed for InvokeModelWithResponseStream or as server-sent events.
struct ChunkFrames {
    chunker: Box<dyn Chunker>,
    sent: usize,
    log: Vec<serde_json::Value>,
    framing: Framing,
}

impl ChunkFrames {
    fn frames(&mut self, chunks: Vec<serde_json::Value>) -> Vec<Bytes> {
        let frames = chunks
            .iter()
            .map(|c| {
                self.sent += 1;
                match self.framing {
                    Framing::EventStream => eventstream::chunk(c, padding(self.sent)),
                    Framing::ServerSent { .. } => {
                        let event = c["type"].as_str().unwrap_or("message");
                        Bytes::from(format!("event: {event}\ndata: {c}\n\n"))
                    }
                }
            })
            .collect();
        self.log.extend(chunks);
        frames
    }
}

impl Shaper for ChunkFrames {
    fn start(&mut self, input_tokens: u32) -> Vec<Bytes> {
        let chunks = self.chunker.start(input_tokens);
        self.frames(chunks)
    }

    fn text(&mut self, text: &str) -> Vec<Bytes> {
        let chunks = self.chunker.text(text);
        self.frames(chunks)
    }

    fn end(&mut self, reason: &StopReason, usage: Usage, timing: Timing) -> Vec<Bytes> {
        let mut chunks = self.chunker.end(reason, usage);
        let last = chunks
            .last_mut()
            .filter(|_| matches!(self.framing, Framing::EventStream));
        if let Some(last) = last {
            last["amazon-bedrock-invocationMetrics"] = json!({
                "inputTokenCount": usage.input_tokens,
                "outputTokenCount": usage.output_tokens,
                "invocationLatency": timing.latency_ms,
                "firstByteLatency": timing.first_byte_ms,
            });
            crate::cache::add_invocation_metrics(
                &mut last["amazon-bedrock-invocationMetrics"],
                usage,
            );
        }
        self.frames(chunks)
    }

    fn failure(&mut self, error: &ApiError) -> Bytes {
        match self.framing {
            Framing::EventStream => {
                eventstream::exception(stream_exception_type(error), &error::wire(error).message)
            }
            Framing::ServerSent { failure } => failure(error),
        }
    }

    fn content_type(&self) -> &'static str {
        match self.framing {
            Framing::EventStream => "application/vnd.amazon.eventstream",
            Framing::ServerSent { .. } => "text/event-stream",
        }
    }

    fn logged(&mut self) -> serde_json::Value {
        serde_json::Value::Array(std::mem::take(&mut self.log))
    }
}
