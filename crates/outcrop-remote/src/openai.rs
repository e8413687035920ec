//! A backing model served by an OpenAI-compatible server.

use crate::sse::Events;
use async_trait::async_trait;
use futures_util::StreamExt;
use outcrop_engine::{
    Engine, EngineError, EngineGauges, GenerationEvent, GenerationStream, SubmitError,
};
use outcrop_types::{
    Constraint, FaultKind, GenerationError, GenerationRequest, ModelInfo, Prompt, Role, StopReason,
    Usage,
};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// Where and how to reach the server.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// The backing model's name in Outcrop (logs, health).
    pub name: String,
    /// Base URLs ending in `/v1` (`http://gpu-1:8000/v1`); tried in turn, the next one when
    /// one cannot be reached.
    pub endpoints: Vec<String>,
    /// The model name the server serves.
    pub model: String,
    /// Sent as `Authorization: Bearer`.
    pub api_key: Option<String>,
    /// Connecting, and the whole answer.
    pub connect_timeout: Duration,
    pub timeout: Duration,
    /// Generations sent at once; beyond it, requests are throttled.
    pub max_in_flight: usize,
    /// The context the server's model has (for health and CountTokens limits).
    pub context_tokens: u32,
}

pub struct OpenAiEngine {
    config: OpenAiConfig,
    client: reqwest::Client,
    next: AtomicUsize,
    slots: Arc<Semaphore>,
    active: Arc<AtomicUsize>,
    aborted: Arc<AtomicBool>,
}

impl OpenAiEngine {
    pub fn new(config: OpenAiConfig) -> Result<Self, String> {
        if config.endpoints.is_empty() {
            return Err(format!("backing model {}: no url", config.name));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(OpenAiEngine {
            slots: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            client,
            next: AtomicUsize::new(0),
            active: Arc::new(AtomicUsize::new(0)),
            aborted: Arc::new(AtomicBool::new(false)),
            config,
        })
    }

    /// The endpoints, starting with the next in turn.
    fn endpoints(&self) -> Vec<String> {
        let n = self.config.endpoints.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        (0..n)
            .map(|i| self.config.endpoints[(start + i) % n].clone())
            .collect()
    }
}

fn role(r: Role) -> &'static str {
    match r {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

/// The request body and the path it goes to.
fn body(request: &GenerationRequest, model: &str) -> (&'static str, Value) {
    let s = &request.sampling;
    let mut body = json!({
        "model": model,
        "max_tokens": request.max_tokens,
        "temperature": s.temperature,
        "seed": s.seed,
        "stream": true,
        "stream_options": { "include_usage": true },
    });
    if let Some(p) = s.top_p {
        body["top_p"] = json!(p);
    }
    if let Some(k) = s.top_k {
        body["top_k"] = json!(k);
    }
    if !request.stop_sequences.is_empty() {
        body["stop"] = json!(request.stop_sequences);
    }
    // A whole-output schema is the servers' structured output; a grammar that starts after
    // a trigger (a tool call the model may choose to make) has no OpenAI form, and the text
    // is left free.
    if let Some(Constraint::Json { schema }) = &s.constraint {
        let schema: Value = serde_json::from_str(schema).unwrap_or(json!({}));
        body["response_format"] = json!({ "type": "json_schema", "json_schema": { "name": "output", "schema": schema, "strict": true } });
    }
    // Tools are described in the system turn: the server's own tool parsing is not used, the
    // API layer reads the calls from the text.
    match request.prompt.clone().instructed() {
        Prompt::Raw(text) => {
            body["prompt"] = json!(text);
            ("completions", body)
        }
        Prompt::Chat(turns) | Prompt::ChatWithTools { turns, .. } => {
            let messages: Vec<Value> = turns
                .iter()
                .map(|t| json!({ "role": role(t.role), "content": t.content }))
                .collect();
            // A trailing assistant turn is a prefill: the answer continues it (vLLM's
            // `continue_final_message`; servers without it read it as history).
            if turns.last().is_some_and(|t| t.role == Role::Assistant) {
                body["continue_final_message"] = json!(true);
                body["add_generation_prompt"] = json!(false);
            }
            body["messages"] = json!(messages);
            ("chat/completions", body)
        }
    }
}

fn fault(kind: FaultKind, message: impl Into<String>) -> GenerationError {
    GenerationError::Fault {
        kind,
        message: message.into(),
    }
}

/// An error answer of the server, as the exception a Bedrock client expects.
fn refused(status: reqwest::StatusCode, text: &str) -> GenerationError {
    let message = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| {
            v["error"]["message"]
                .as_str()
                .or(v["message"].as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| text.chars().take(300).collect());
    match status.as_u16() {
        400 | 422 => fault(FaultKind::Validation, message),
        429 => fault(FaultKind::Throttling, message),
        408 | 504 => fault(FaultKind::ModelTimeout, message),
        401 | 403 => {
            tracing::error!(%status, %message, "the remote engine refused Outcrop's credentials");
            fault(
                FaultKind::ServiceUnavailable,
                "The model is not available right now. Try again later.",
            )
        }
        _ => {
            tracing::warn!(%status, %message, "the remote engine failed");
            fault(
                FaultKind::ServiceUnavailable,
                "The model is not available right now. Try again later.",
            )
        }
    }
}

/// Why the server stopped: `length`, or a stop sequence when it names the one that matched
/// (vLLM's `stop_reason`), else the end of the turn.
fn stop_reason(finish: Option<&str>, matched: Option<String>) -> StopReason {
    match (finish, matched) {
        (Some("length"), _) => StopReason::MaxTokens,
        (_, Some(sequence)) => StopReason::StopSequence(sequence),
        _ => StopReason::EndOfTurn,
    }
}

#[async_trait]
impl Engine for OpenAiEngine {
    fn submit(&self, request: GenerationRequest) -> Result<GenerationStream, SubmitError> {
        if self.aborted.load(Ordering::Relaxed) {
            return Err(SubmitError::Stopped);
        }
        let permit = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| SubmitError::QueueFull)?;
        let (tx, rx) = mpsc::unbounded_channel();
        if request.max_tokens == 0 {
            // Nothing to generate; the prompt's size is the server's to tell (CountTokens).
            let _ = tx.send(GenerationEvent::Started { input_tokens: 0 });
            let usage = Usage::default();
            let _ = tx.send(GenerationEvent::Finished {
                reason: StopReason::MaxTokens,
                usage,
            });
            return Ok(rx);
        }
        let call = Call {
            client: self.client.clone(),
            endpoints: self.endpoints(),
            api_key: self.config.api_key.clone(),
            model: self.config.model.clone(),
            aborted: self.aborted.clone(),
        };
        let active = self.active.clone();
        active.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            call.run(request, tx, permit).await;
            active.fetch_sub(1, Ordering::Relaxed);
        });
        Ok(rx)
    }

    fn model(&self) -> Option<ModelInfo> {
        Some(ModelInfo {
            name: self.config.name.clone(),
            context_tokens: self.config.context_tokens,
            max_sequences: self.config.max_in_flight as u32,
            kv_tokens: self.config.context_tokens,
        })
    }

    async fn wait_ready(&self) -> Option<ModelInfo> {
        self.model()
    }

    fn gauges(&self) -> EngineGauges {
        EngineGauges {
            active_sequences: self.active.load(Ordering::Relaxed),
            waiting: 0,
            reserved_kv: 0,
        }
    }

    fn abort_all(&self) {
        self.aborted.store(true, Ordering::Relaxed);
    }

    async fn count_tokens(&self, _prompt: Prompt) -> Result<u32, EngineError> {
        Err(EngineError::Generation(fault(
            FaultKind::Validation,
            format!("CountTokens is not available for this model: it is served by a remote engine ({}) that does not count tokens for Outcrop.", self.config.name),
        )))
    }
}

/// One generation sent to the server.
struct Call {
    client: reqwest::Client,
    endpoints: Vec<String>,
    api_key: Option<String>,
    model: String,
    aborted: Arc<AtomicBool>,
}

impl Call {
    /// The streamed response of the first endpoint that answers.
    async fn send(&self, path: &str, body: &Value) -> Result<reqwest::Response, GenerationError> {
        let mut last = None;
        for base in &self.endpoints {
            let url = format!("{}/{path}", base.trim_end_matches('/'));
            let mut req = self.client.post(&url).json(body);
            if let Some(key) = &self.api_key {
                req = req.bearer_auth(key);
            }
            match req.send().await {
                Ok(r) if r.status().is_success() => return Ok(r),
                Ok(r) => {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    // A server that is up but refuses is the answer; only unreachable or
                    // overloaded servers are passed over.
                    if !(status.is_server_error() || status.as_u16() == 429)
                        || self.endpoints.len() == 1
                    {
                        return Err(refused(status, &text));
                    }
                    last = Some(refused(status, &text));
                }
                Err(e) => {
                    tracing::warn!(endpoint = %url, error = %e, "remote engine unreachable; trying the next");
                    last = Some(if e.is_timeout() {
                        fault(FaultKind::ModelTimeout, "The model did not answer in time.")
                    } else {
                        fault(
                            FaultKind::ServiceUnavailable,
                            "The model is not available right now. Try again later.",
                        )
                    });
                }
            }
        }
        Err(last
            .unwrap_or_else(|| fault(FaultKind::ServiceUnavailable, "No endpoint is configured.")))
    }

    async fn run(
        self,
        request: GenerationRequest,
        tx: mpsc::UnboundedSender<GenerationEvent>,
        _permit: OwnedSemaphorePermit,
    ) {
        let (path, body) = body(&request, &self.model);
        let response = tokio::select! {
            r = self.send(path, &body) => r,
            () = tx.closed() => return,
        };
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send(GenerationEvent::Failed(e));
                return;
            }
        };
        let mut bytes = response.bytes_stream();
        let mut events = Events::default();
        let (mut started, mut finish, mut usage, mut pieces) =
            (false, None::<String>, None::<Usage>, 0u32);
        let mut matched = None::<String>;
        loop {
            let chunk = tokio::select! {
                c = bytes.next() => c,
                // The client went away: dropping the response closes the upstream stream.
                () = tx.closed() => return,
            };
            let chunk = match chunk {
                Some(Ok(c)) => c,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "remote engine stream broke");
                    let message = "The model failed while generating the response.";
                    let _ = tx.send(GenerationEvent::Failed(fault(
                        FaultKind::ModelStreamError,
                        message,
                    )));
                    return;
                }
                None => break,
            };
            if self.aborted.load(Ordering::Relaxed) {
                let _ = tx.send(GenerationEvent::Failed(GenerationError::ShuttingDown));
                return;
            }
            for data in events.push(&chunk) {
                if data == "[DONE]" {
                    continue;
                }
                let Ok(v) = serde_json::from_str::<Value>(&data) else {
                    continue;
                };
                if v.get("error").is_some() {
                    let message = v["error"]["message"]
                        .as_str()
                        .unwrap_or("The model failed.")
                        .to_owned();
                    let _ = tx.send(GenerationEvent::Failed(fault(
                        FaultKind::ModelStreamError,
                        message,
                    )));
                    return;
                }
                if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
                    usage = Some(Usage {
                        input_tokens: u["prompt_tokens"].as_u64().unwrap_or(0) as u32,
                        output_tokens: u["completion_tokens"].as_u64().unwrap_or(0) as u32,
                    });
                }
                let choice = &v["choices"][0];
                let text = choice["delta"]["content"]
                    .as_str()
                    .or(choice["text"].as_str())
                    .unwrap_or("");
                if !started && (!text.is_empty() || !choice.is_null()) {
                    started = true;
                    let _ = tx.send(GenerationEvent::Started {
                        input_tokens: usage.map_or(0, |u| u.input_tokens),
                    });
                }
                if !text.is_empty() {
                    pieces += 1;
                    if tx.send(GenerationEvent::Text(text.to_owned())).is_err() {
                        return;
                    }
                }
                if let Some(f) = choice["finish_reason"].as_str() {
                    finish = Some(f.to_owned());
                }
                if let Some(m) = choice["stop_reason"].as_str() {
                    matched = Some(m.to_owned()).filter(|m| request.stop_sequences.contains(m));
                }
            }
        }
        if !started {
            let _ = tx.send(GenerationEvent::Started {
                input_tokens: usage.map_or(0, |u| u.input_tokens),
            });
        }
        let usage = usage.unwrap_or(Usage {
            input_tokens: 0,
            output_tokens: pieces,
        });
        let reason = stop_reason(finish.as_deref(), matched);
        let _ = tx.send(GenerationEvent::Finished { reason, usage });
    }
}

#[cfg(test)]
mod tests;
