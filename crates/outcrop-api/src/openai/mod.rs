//! Bedrock's OpenAI surface (`/openai/v1/...`, also `/v1/...`): Chat Completions and the
//! model list, in OpenAI's shapes. A chat request is read into the Converse request the same
//! model would get (`request`), generated through the same engine call and tool-call
//! splitting as Converse, and written back in OpenAI's response, chunk and error shapes.

mod frames;
pub(crate) mod request;
pub(crate) mod responses;

use crate::converse::events;
use crate::error::wire;
use crate::invoke::{self, Invocable};
use crate::reasoning::Reasoning;
use crate::{json_response, Answer, ApiError};
use axum::http::StatusCode;
use axum::response::Response;
use outcrop_engine::Engine;
use outcrop_service::ledger::Meter;
use outcrop_service::{access, iam, Principal, Service};
use outcrop_types::StopReason;
use request::ChatRequest;
use serde_json::{json, Value};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn completion_id() -> String {
    crate::tools::new_id("chatcmpl-")
}

/// OpenAI's `finish_reason`.
fn finish_reason(reason: &StopReason, called_tool: bool) -> &'static str {
    match reason {
        _ if called_tool => "tool_calls",
        StopReason::MaxTokens | StopReason::ContextFull => "length",
        StopReason::EndOfTurn | StopReason::StopSequence(_) => "stop",
    }
}

fn usage(u: outcrop_types::Usage) -> Value {
    json!({
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
    })
}

/// A Converse `toolUse` block as an OpenAI tool call.
fn tool_call(tool_use: &Value) -> Value {
    json!({
        "id": tool_use["toolUseId"],
        "type": "function",
        "function": { "name": tool_use["name"], "arguments": tool_use["input"].to_string() },
    })
}

/// One choice of a whole answer, and why it ended.
fn choice(index: u32, tools: Option<&crate::tools::Tools>, g: &outcrop_engine::Generated) -> Value {
    let content = events::content(tools, Reasoning::Hidden, &g.text);
    let (blocks, called) = (content.blocks, content.called);
    let text: String = blocks.iter().filter_map(|b| b["text"].as_str()).collect();
    let calls: Vec<Value> = blocks
        .iter()
        .filter_map(|b| b.get("toolUse"))
        .map(tool_call)
        .collect();
    let mut message = json!({ "role": "assistant", "content": text, "refusal": null });
    if !calls.is_empty() {
        message["tool_calls"] = json!(calls);
        if text.is_empty() {
            message["content"] = Value::Null;
        }
    }
    json!({
        "index": index,
        "message": message,
        "finish_reason": finish_reason(&g.reason, called),
        "logprobs": null,
    })
}

/// `POST /openai/v1/chat/completions` without `stream`: `n` choices, generated together, each
/// with its own seed; the prompt is counted once.
pub(crate) async fn chat(model: Invocable<'_>, parsed: ChatRequest) -> Result<Answer, ApiError> {
    let ChatRequest {
        converse,
        model: name,
        choices,
        ..
    } = parsed;
    let runs = (0..choices).map(|i| {
        let mut request = converse.request.clone();
        request.sampling.seed = request.sampling.seed.wrapping_add(i);
        invoke::generate(model.engine, request)
    });
    let generated = futures_util::future::try_join_all(runs).await?;
    let mut usage = outcrop_types::Usage::default();
    for g in &generated {
        usage.input_tokens = g.usage.input_tokens;
        usage.output_tokens += g.usage.output_tokens;
    }
    let choices: Vec<Value> = generated
        .iter()
        .zip(0..)
        .map(|(g, i)| choice(i, converse.tools.as_ref(), g))
        .collect();
    let body = json!({
        "id": completion_id(),
        "object": "chat.completion",
        "created": now(),
        "model": name,
        "choices": choices,
        "usage": self::usage(usage),
    });
    tracing::info!(model = %model.entry.id, input_tokens = usage.input_tokens, output_tokens = usage.output_tokens, "chat completion");
    Ok(Answer::Whole {
        response: json_response(StatusCode::OK, body.clone()),
        usage,
        output: Some(body),
    })
}

/// `POST /openai/v1/chat/completions` with `stream: true`: server-sent events, `data: [DONE]`
/// last.
pub(crate) async fn chat_stream(
    engine: &dyn Engine,
    parsed: ChatRequest,
    meter: &mut Option<Meter>,
) -> Result<Response, ApiError> {
    let shaper = frames::ChatChunks::new(&parsed, completion_id(), now());
    crate::stream::respond(engine, parsed.converse.request, shaper, meter).await
}

/// `GET /openai/v1/models`: the text models the caller may invoke (IAM `bedrock:InvokeModel`
/// allowed and model access granted).
pub(crate) async fn models(state: &Service, principal: &Principal) -> Result<Response, ApiError> {
    let permissions = iam::Permissions::load(state, principal).await?;
    let mut data = Vec::new();
    for entry in state.catalog.entries() {
        if !entry.output_modalities.iter().any(|m| m == "TEXT") || !entry.on_demand {
            continue;
        }
        let arn = format!(
            "arn:aws:bedrock:{}::foundation-model/{}",
            principal.region, entry.id
        );
        if !permissions.allows("bedrock:InvokeModel", &arn) {
            continue;
        }
        if access::check_invoke(state, principal, entry).await.is_err() {
            continue;
        }
        data.push(json!({
            "id": entry.id,
            "object": "model",
            "created": 0,
            "owned_by": entry.provider.to_ascii_lowercase(),
        }));
    }
    Ok(json_response(
        StatusCode::OK,
        json!({ "object": "list", "data": data }),
    ))
}

/// OpenAI's error `type` for an error.
fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 404 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        _ => "api_error",
    }
}

/// The error body: OpenAI's shape, with Bedrock's status and its error code in `code`.
pub(crate) fn error_body(error: &ApiError) -> (StatusCode, Value) {
    let w = wire(error);
    let body = json!({ "error": {
        "message": w.message,
        "type": error_type(w.status),
        "param": null,
        "code": w.code,
    }});
    (w.status, body)
}

pub(crate) fn error_response(error: &ApiError) -> Response {
    let (status, body) = error_body(error);
    tracing::info!(
        code = wire(error).code,
        status = status.as_u16(),
        "request refused (OpenAI surface)"
    );
    crate::json_response(status, body)
}
