//! Converse, ConverseStream and CountTokens: Bedrock's model-independent runtime operations.
//! Any text model in the catalog answers them; the conversation is rendered with the backing
//! model's chat template, and tool calls are grammar-constrained (see `tools`).

pub mod events;
pub mod request;

use crate::eventstream;
use crate::families::{self, Family, ParseContext};
use crate::invoke::{self, Invocable};
use crate::reasoning::{self, Reasoning};
use crate::stream::{self, padding, Shaper, Timing};
use crate::tools::Tools;
use crate::{json_response, Answer, ApiError, ApiState};
use crate::{structured, tier};
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use events::ConverseEvents;
use outcrop_engine::Engine;
use outcrop_models::CatalogEntry;
use outcrop_service::ledger::Meter;
use outcrop_types::{GenerationRequest, Prompt, Sampling, StopReason, Usage};
use request::{constraint, conversation};
use serde_json::{json, Map, Value};
use std::time::Instant;

/// A Converse body, validated.
pub(crate) struct ConverseRequest {
    pub request: GenerationRequest,
    pub tools: Option<Tools>,
    /// Whether reasoning is returned (asked for) or dropped.
    pub reasoning: Reasoning,
    /// What the answer echoes: the service tier and latency setting asked for.
    pub echo: Echo,
    /// `requestMetadata`, for the invocation log.
    pub request_metadata: Option<Value>,
}

/// Settings a Converse answer repeats back (`serviceTier`, `performanceConfig`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Echo {
    pub service_tier: Option<&'static str>,
    pub latency: Option<&'static str>,
}

impl Echo {
    /// Adds the echoed fields to a response body or a stream's `metadata` event.
    pub fn add_to(&self, v: &mut Value) {
        if let Some(t) = self.service_tier {
            v["serviceTier"] = json!({ "type": t });
        }
        if let Some(l) = self.latency {
            v["performanceConfig"] = json!({ "latency": l });
        }
    }
}

fn body_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ApiError::Validation(
            "The request body must be a JSON object.".into(),
        )),
    }
}

/// Sampling temperature when the request sets none: the model family's own default.
fn default_temperature(entry: &CatalogEntry) -> f64 {
    match Family::from_format(&entry.format) {
        Some(Family::AnthropicText | Family::AnthropicMessages) => 1.0,
        Some(Family::MetaLlama | Family::Mistral) => 0.5,
        Some(Family::CohereCommand) => 0.9,
        _ => 0.7,
    }
}

fn number(
    config: &Map<String, Value>,
    key: &str,
    min: f64,
    max: f64,
) -> Result<Option<f64>, ApiError> {
    let Some(v) = config.get(key) else {
        return Ok(None);
    };
    let path = format!("inferenceConfig.{key}");
    let n = v
        .as_f64()
        .ok_or_else(|| ApiError::Validation(format!("The value at '{path}' must be a number.")))?;
    if n < min {
        return Err(constraint(
            &format!("'{n}'"),
            &path,
            &format!("Member must have value greater than or equal to {min}"),
        ));
    }
    if n > max {
        return Err(constraint(
            &format!("'{n}'"),
            &path,
            &format!("Member must have value less than or equal to {max}"),
        ));
    }
    Ok(Some(n))
}

/// `seed`: the sampler's seed (Converse takes none from the client).
pub(crate) fn parse(
    entry: &CatalogEntry,
    body: &[u8],
    seed: u32,
) -> Result<ConverseRequest, ApiError> {
    let map = body_object(body)?;
    let conv = conversation(
        &entry.id,
        map.get("messages"),
        map.get("system"),
        map.get("toolConfig"),
    )?;
    let cache = conv.cache.clone().finish(entry)?;
    let empty = Map::new();
    let config = match map.get("inferenceConfig") {
        None => &empty,
        Some(Value::Object(c)) => c,
        Some(_) => {
            return Err(ApiError::Validation(
                "The value at 'inferenceConfig' must be an object.".into(),
            ))
        }
    };
    let max_tokens = number(config, "maxTokens", 1.0, f64::from(i32::MAX))?;
    let temperature = number(config, "temperature", 0.0, 1.0)?;
    let top_p = number(config, "topP", 0.0, 1.0)?;
    let stops = match config.get("stopSequences") {
        None => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|s| s.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                ApiError::Validation(
                    "The value at 'inferenceConfig.stopSequences' must be a list of strings."
                        .into(),
                )
            })?,
        Some(_) => {
            return Err(ApiError::Validation(
                "The value at 'inferenceConfig.stopSequences' must be a list of strings.".into(),
            ))
        }
    };
    let mut top_k = None;
    let mut reasoning = Reasoning::Hidden;
    if let Some(extra) = map.get("additionalModelRequestFields") {
        let extra = extra.as_object().ok_or_else(|| {
            ApiError::Validation(
                "The value at 'additionalModelRequestFields' must be an object.".into(),
            )
        })?;
        for (key, value) in extra {
            match key.as_str() {
                "top_k" | "topK" => {
                    top_k = value.as_u64().map(|k| k.min(u64::from(u32::MAX)) as u32);
                    if top_k.is_none() {
                        return Err(ApiError::Validation(format!(
                            "The model returned the following errors: Malformed input request: #/{key}: expected type: Integer, found: {}, please reformat your input and try again.",
                            if value.is_string() { "String" } else { "Number" }
                        )));
                    }
                }
                "anthropic_beta" | "anthropic_version" => {}
                "thinking" | "reasoningConfig" | "reasoning_effort" => {
                    reasoning = reasoning::requested(key, value, max_tokens.map(|n| n as u32))?;
                }
                other => {
                    return Err(ApiError::Validation(format!(
                        "The model returned the following errors: Malformed input request: #: extraneous key [{other}] is not permitted, please reformat your input and try again."
                    )))
                }
            }
        }
    }
    if let Some(g) = map.get("guardrailConfig") {
        let id = g
            .get("guardrailIdentifier")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let version = g
            .get("guardrailVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return Err(crate::call_options::guardrail_refused(id, version));
    }
    let mut echo = Echo::default();
    if let Some(t) = map.get("serviceTier") {
        let name = t
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| request::not_null("serviceTier.type"))?;
        let name = tier::parse(name, "serviceTier.type")?;
        tier::check(entry, name)?;
        echo.service_tier = Some(name);
    }
    if let Some(p) = map.get("performanceConfig") {
        let latency = p
            .get("latency")
            .and_then(Value::as_str)
            .unwrap_or("standard");
        echo.latency = Some(tier::latency(latency, "performanceConfig.latency")?);
    }
    let request_metadata = map
        .get("requestMetadata")
        .map(|m| crate::call_options::request_metadata(m, "requestMetadata"))
        .transpose()?;
    let output_schema = map
        .get("outputConfig")
        .map(structured::converse_output_config)
        .transpose()?
        .flatten();
    // A forced tool call is the whole answer; otherwise an output schema shapes it (and no
    // tool can be called in that turn); otherwise the model may call a tool.
    let constraint = match (&conv.tools, &output_schema) {
        (Some(t), _) if t.forced() => t.constraint(),
        (_, Some(schema)) => Some(structured::constraint(schema)),
        (tools, None) => tools.as_ref().and_then(Tools::constraint),
    };
    let request = GenerationRequest {
        prompt: crate::tools::prompt(conv.turns, conv.tools.as_ref()),
        max_tokens: max_tokens.map_or(4096, |n| n as u32),
        sampling: Sampling {
            temperature: temperature.unwrap_or_else(|| default_temperature(entry)) as f32,
            top_p: top_p.filter(|p| *p < 1.0).map(|p| p as f32),
            top_k: top_k.filter(|k| *k > 0),
            seed,
            constraint,
        },
        stop_sequences: stops,
        label: None,
        exclusive: false,
        tier: echo.service_tier.map(tier::scheduling).unwrap_or_default(),
        cache,
    };
    Ok(ConverseRequest {
        request,
        tools: conv.tools,
        reasoning,
        echo,
        request_metadata,
    })
}

fn elapsed_ms(started: Instant) -> u64 {
    started.elapsed().as_millis() as u64
}

/// `POST /model/{modelId}/converse`.
pub(crate) async fn converse(
    model: Invocable<'_>,
    parsed: ConverseRequest,
    started: Instant,
) -> Result<Answer, ApiError> {
    let Invocable { entry, engine } = model;
    let g = invoke::generate(engine, parsed.request).await?;
    let content = events::content(parsed.tools.as_ref(), parsed.reasoning, &g.text);
    tracing::info!(
        model = %entry.id,
        input_tokens = g.usage.input_tokens,
        output_tokens = g.usage.output_tokens,
        "conversed"
    );
    let mut body = json!({
        "output": { "message": { "role": "assistant", "content": content.blocks } },
        "stopReason": content.stop_reason(&g.reason),
        "usage": events::usage_json(g.usage),
        "metrics": { "latencyMs": elapsed_ms(started) },
    });
    parsed.echo.add_to(&mut body);
    Ok(Answer::Whole {
        response: json_response(StatusCode::OK, body.clone()),
        usage: g.usage,
        output: Some(body),
    })
}

/// `POST /model/{modelId}/converse-stream`.
pub(crate) async fn converse_stream(
    engine: &dyn Engine,
    parsed: ConverseRequest,
    meter: &mut Option<Meter>,
) -> Result<Response, ApiError> {
    let shaper = ConverseFrames {
        events: ConverseEvents::new(parsed.tools.as_ref(), parsed.reasoning),
        echo: parsed.echo,
        sent: 0,
        log: Vec::new(),
    };
    stream::respond(engine, parsed.request, shaper, meter).await
}

/// ConverseStream frames: one event per Converse event, plain JSON with Bedrock's padding.
struct ConverseFrames {
    events: ConverseEvents,
    echo: Echo,
    sent: usize,
    log: Vec<serde_json::Value>,
}

impl ConverseFrames {
    fn frames(&mut self, events: Vec<events::Event>) -> Vec<Bytes> {
        events
            .into_iter()
            .map(|(name, mut payload)| {
                self.sent += 1;
                self.log.push(json!({ name: payload.clone() }));
                const PAD: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
                payload["p"] = json!(&PAD[..padding(self.sent)]);
                eventstream::event(name, &payload)
            })
            .collect()
    }
}

impl Shaper for ConverseFrames {
    fn start(&mut self, _input_tokens: u32) -> Vec<Bytes> {
        let events = self.events.start();
        self.frames(events)
    }

    fn text(&mut self, text: &str) -> Vec<Bytes> {
        let events = self.events.text(text);
        self.frames(events)
    }

    fn end(&mut self, reason: &StopReason, usage: Usage, timing: Timing) -> Vec<Bytes> {
        let mut extra = json!({ "metrics": { "latencyMs": timing.latency_ms } });
        self.echo.add_to(&mut extra);
        let events = self.events.end(reason, usage, extra);
        self.frames(events)
    }

    fn logged(&mut self) -> serde_json::Value {
        serde_json::Value::Array(std::mem::take(&mut self.log))
    }
}

/// The prompt a CountTokens body asks about, rendered as a generation would render it.
pub(crate) fn count_input(
    state: &ApiState,
    entry: &CatalogEntry,
    body: &[u8],
) -> Result<Prompt, ApiError> {
    let map = body_object(body)?;
    let input = map.get("input").ok_or_else(|| request::not_null("input"))?;
    let prompt = if let Some(invoke_input) = input.get("invokeModel") {
        let b64 = invoke_input
            .get("body")
            .and_then(Value::as_str)
            .ok_or_else(|| request::not_null("input.invokeModel.body"))?;
        let raw = aws_smithy_types::base64::decode(b64).map_err(|_| {
            ApiError::Validation(
                "The value at 'input.invokeModel.body' must be base64-encoded.".into(),
            )
        })?;
        let parsed = families::parse(
            &raw,
            &ParseContext {
                entry,
                prompt_mode: state.prompt_mode,
                seed: 0,
            },
        )?;
        parsed.requests[0].prompt.clone()
    } else if let Some(c) = input.get("converse") {
        let conv = conversation(
            &entry.id,
            c.get("messages"),
            c.get("system"),
            c.get("toolConfig"),
        )?;
        crate::tools::prompt(conv.turns, conv.tools.as_ref())
    } else {
        return Err(ApiError::Validation(
            "The input must contain exactly one of invokeModel or converse.".into(),
        ));
    };
    Ok(prompt)
}

/// `POST /model/{modelId}/count-tokens`: the prompt's size in the backing model's tokens.
pub(crate) async fn count_tokens(engine: &dyn Engine, prompt: Prompt) -> Result<Answer, ApiError> {
    let count = engine.count_tokens(prompt).await?;
    // Counting tokens is free, as on Bedrock: the ledger records the call, not the tokens.
    Ok(Answer::Whole {
        response: json_response(StatusCode::OK, json!({ "inputTokens": count })),
        usage: Usage::default(),
        output: None,
    })
}
