//! OpenAI's Responses API as Bedrock's runtime serves it: synchronous, nothing stored (no
//! `background`, no `previous_response_id`, no server-side tools). The request is rewritten
//! into the Chat Completions body it means, and so into the same Converse request; the answer
//! is written as a `response` object with `message` and `function_call` output items, or as
//! the Responses stream events.

use super::request::{self, ChatRequest};
use super::{error_body, now};
use crate::converse::events::{self, ConverseEvents, Event};
use crate::invoke::{self, Invocable};
use crate::reasoning::Reasoning;
use crate::stream::{Shaper, Timing};
use crate::tools::new_id;
use crate::{json_response, Answer, ApiError};
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use outcrop_engine::Engine;
use outcrop_models::CatalogEntry;
use outcrop_service::ledger::Meter;
use outcrop_types::{StopReason, Usage};
use serde_json::{json, Map, Value};

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::Validation(message.into())
}

/// A Responses request, validated, with what the response echoes.
pub(crate) struct ResponsesRequest {
    pub chat: ChatRequest,
    echo: Value,
}

/// The text of an input message's content: a string, or `input_text`/`output_text` parts.
fn content_text(content: &Value, at: &str) -> Result<String, ApiError> {
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => parts
            .iter()
            .enumerate()
            .map(|(i, p)| match p.get("type").and_then(Value::as_str) {
                Some("input_text" | "output_text" | "text") => p
                    .get("text")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| invalid(format!("{at}.content[{i}].text must be a string."))),
                Some(kind) => Err(invalid(format!(
                    "{at}.content[{i}]: {kind} content is not supported; this model reads text only."
                ))),
                None => Err(invalid(format!("{at}.content[{i}].type is required."))),
            })
            .collect(),
        _ => Err(invalid(format!("{at}.content must be a string or a list of content parts."))),
    }
}

/// `input` as Chat Completions messages.
fn messages(map: &Map<String, Value>) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    if let Some(instructions) = map.get("instructions").and_then(Value::as_str) {
        out.push(json!({ "role": "system", "content": instructions }));
    }
    match map.get("input") {
        Some(Value::String(s)) => out.push(json!({ "role": "user", "content": s })),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let at = format!("input[{i}]");
                match item.get("type").and_then(Value::as_str).unwrap_or("message") {
                    "message" => {
                        let role = item.get("role").and_then(Value::as_str).ok_or_else(|| invalid(format!("{at}.role is required.")))?;
                        let text = content_text(item.get("content").unwrap_or(&Value::Null), &at)?;
                        out.push(json!({ "role": role, "content": text }));
                    }
                    "function_call" => {
                        let call = json!({
                            "id": item.get("call_id").cloned().unwrap_or(Value::Null),
                            "type": "function",
                            "function": { "name": item.get("name").cloned().unwrap_or(Value::Null), "arguments": item.get("arguments").cloned().unwrap_or(json!("{}")) },
                        });
                        // Consecutive calls are one assistant turn.
                        match out.last_mut() {
                            Some(last) if last["role"] == "assistant" && last.get("tool_calls").is_some() => {
                                if let Some(calls) = last["tool_calls"].as_array_mut() {
                                    calls.push(call);
                                }
                            }
                            _ => out.push(json!({ "role": "assistant", "content": null, "tool_calls": [call] })),
                        }
                    }
                    "function_call_output" => {
                        let output = match item.get("output") {
                            Some(Value::String(s)) => s.clone(),
                            Some(other) => other.to_string(),
                            None => String::new(),
                        };
                        out.push(json!({ "role": "tool", "tool_call_id": item.get("call_id").cloned().unwrap_or(Value::Null), "content": output }));
                    }
                    "reasoning" => {}
                    other => return Err(invalid(format!("{at}.type '{other}' is not supported here (message, function_call, function_call_output)."))),
                }
            }
        }
        _ => {
            return Err(invalid(
                "input is required: a string or a list of input items.",
            ))
        }
    }
    Ok(out)
}

fn chat_tools(map: &Map<String, Value>) -> Result<Option<Value>, ApiError> {
    let Some(tools) = map
        .get("tools")
        .and_then(Value::as_array)
        .filter(|t| !t.is_empty())
    else {
        return Ok(None);
    };
    tools
        .iter()
        .enumerate()
        .map(|(i, t)| match t.get("type").and_then(Value::as_str) {
            Some("function") => Ok(json!({ "type": "function", "function": {
                "name": t.get("name").cloned().unwrap_or(Value::Null),
                "description": t.get("description").cloned().unwrap_or(json!("")),
                "parameters": t.get("parameters").cloned().unwrap_or(json!({ "type": "object", "properties": {} })),
            }})),
            Some(kind) => Err(invalid(format!("tools[{i}]: '{kind}' tools run on OpenAI's servers and are not available here; use function tools."))),
            None => Err(invalid(format!("tools[{i}].type is required."))),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|t| Some(json!(t)))
}

pub(crate) fn parse(
    entry: &CatalogEntry,
    body: &[u8],
    seed: u32,
) -> Result<ResponsesRequest, ApiError> {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return Err(invalid("The request body must be a JSON object."));
    };
    if map.get("background").and_then(Value::as_bool) == Some(true) {
        return Err(invalid(
            "background responses are not supported: this endpoint answers synchronously.",
        ));
    }
    if map
        .get("previous_response_id")
        .is_some_and(|v| !v.is_null())
        || map.get("conversation").is_some_and(|v| !v.is_null())
    {
        return Err(invalid("previous_response_id and conversation are not supported: responses are not stored; send the whole input."));
    }
    let mut chat = json!({ "model": map.get("model").cloned().unwrap_or(Value::Null), "messages": messages(&map)? });
    if let Some(tools) = chat_tools(&map)? {
        chat["tools"] = tools;
    }
    match map.get("tool_choice") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => chat["tool_choice"] = json!(s),
        Some(choice) => {
            chat["tool_choice"] = json!({ "type": "function", "function": { "name": choice.get("name").cloned().unwrap_or(Value::Null) } })
        }
    }
    for (from, to) in [
        ("max_output_tokens", "max_completion_tokens"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
    ] {
        if let Some(v) = map.get(from).filter(|v| !v.is_null()) {
            chat[to] = v.clone();
        }
    }
    if let Some(format) = map.get("text").and_then(|t| t.get("format")) {
        chat["response_format"] = match format.get("type").and_then(Value::as_str) {
            Some("json_schema") => {
                json!({ "type": "json_schema", "json_schema": { "name": format.get("name"), "schema": format.get("schema") } })
            }
            _ => format.clone(),
        };
    }
    let chat = request::parse(entry, chat.to_string().as_bytes(), seed)?;
    let echo = json!({
        "instructions": map.get("instructions").cloned().unwrap_or(Value::Null),
        "tools": map.get("tools").cloned().unwrap_or(json!([])),
        "tool_choice": map.get("tool_choice").cloned().unwrap_or(json!("auto")),
        "text": map.get("text").cloned().unwrap_or(json!({ "format": { "type": "text" } })),
        "temperature": map.get("temperature").cloned().unwrap_or(Value::Null),
        "top_p": map.get("top_p").cloned().unwrap_or(Value::Null),
        "max_output_tokens": map.get("max_output_tokens").cloned().unwrap_or(Value::Null),
    });
    Ok(ResponsesRequest { chat, echo })
}

fn usage(u: Usage) -> Value {
    json!({
        "input_tokens": u.input_tokens,
        "input_tokens_details": { "cached_tokens": 0 },
        "output_tokens": u.output_tokens,
        "output_tokens_details": { "reasoning_tokens": 0 },
        "total_tokens": u.input_tokens + u.output_tokens,
    })
}

/// The `response` object around `output`.
fn response_object(
    id: &str,
    created: u64,
    r: &ResponsesRequest,
    status: &str,
    output: Value,
    end: Option<(&StopReason, Usage)>,
) -> Value {
    let mut body = json!({
        "id": id,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": null,
        "incomplete_details": null,
        "model": r.chat.model,
        "output": output,
        "parallel_tool_calls": false,
        "store": false,
        "usage": null,
    });
    for (k, v) in r.echo.as_object().into_iter().flatten() {
        body[k] = v.clone();
    }
    if let Some((reason, u)) = end {
        body["usage"] = usage(u);
        if matches!(reason, StopReason::MaxTokens | StopReason::ContextFull) {
            body["status"] = json!("incomplete");
            body["incomplete_details"] = json!({ "reason": "max_output_tokens" });
        }
    }
    body
}

fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({ "type": "message", "id": id, "status": status, "role": "assistant",
        "content": [{ "type": "output_text", "text": text, "annotations": [] }] })
}

fn call_item(tool_use: &Value, status: &str, arguments: &str) -> Value {
    json!({ "type": "function_call", "id": new_id("fc_"), "call_id": tool_use["toolUseId"],
        "name": tool_use["name"], "arguments": arguments, "status": status })
}

/// `POST /openai/v1/responses` without `stream`.
pub(crate) async fn create(model: Invocable<'_>, r: ResponsesRequest) -> Result<Answer, ApiError> {
    let g = invoke::generate(model.engine, r.chat.converse.request.clone()).await?;
    let blocks = events::content(r.chat.converse.tools.as_ref(), Reasoning::Hidden, &g.text).blocks;
    let mut output = Vec::new();
    for block in &blocks {
        if let Some(text) = block["text"].as_str().filter(|t| !t.is_empty()) {
            output.push(message_item(&new_id("msg_"), text, "completed"));
        }
        if let Some(tool_use) = block.get("toolUse") {
            output.push(call_item(
                tool_use,
                "completed",
                &tool_use["input"].to_string(),
            ));
        }
    }
    let body = response_object(
        &new_id("resp_"),
        now(),
        &r,
        "completed",
        json!(output),
        Some((&g.reason, g.usage)),
    );
    Ok(Answer::Whole {
        response: json_response(StatusCode::OK, body.clone()),
        usage: g.usage,
        output: Some(body),
    })
}

/// `POST /openai/v1/responses` with `stream: true`: the Responses events as server-sent events.
pub(crate) async fn stream(
    engine: &dyn Engine,
    r: ResponsesRequest,
    meter: &mut Option<Meter>,
) -> Result<Response, ApiError> {
    let request = r.chat.converse.request.clone();
    let shaper = ResponseEvents {
        events: ConverseEvents::new(r.chat.converse.tools.as_ref(), Reasoning::Hidden),
        id: new_id("resp_"),
        created: now(),
        sequence: 0,
        output: Vec::new(),
        open: None,
        request: r,
        log: Vec::new(),
    };
    crate::stream::respond(engine, request, shaper, meter).await
}

/// The output item being streamed: its index, and the message text or call so far.
enum Open {
    Message {
        index: usize,
        id: String,
        text: String,
    },
    Call {
        index: usize,
        item: Value,
        arguments: String,
    },
}

struct ResponseEvents {
    events: ConverseEvents,
    id: String,
    created: u64,
    sequence: u64,
    output: Vec<Value>,
    open: Option<Open>,
    request: ResponsesRequest,
    log: Vec<Value>,
}

impl ResponseEvents {
    fn emit(&mut self, kind: &str, mut data: Value) -> Bytes {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        self.log.push(data.clone());
        Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
    }

    fn close(&mut self, out: &mut Vec<Bytes>) {
        match self.open.take() {
            Some(Open::Message { index, id, text }) => {
                let part = json!({ "type": "output_text", "text": text, "annotations": [] });
                out.push(self.emit("response.output_text.done", json!({ "item_id": id, "output_index": index, "content_index": 0, "text": text })));
                out.push(self.emit("response.content_part.done", json!({ "item_id": id, "output_index": index, "content_index": 0, "part": part })));
                let item = message_item(&id, &text, "completed");
                out.push(self.emit(
                    "response.output_item.done",
                    json!({ "output_index": index, "item": item }),
                ));
                self.output.push(item);
            }
            Some(Open::Call {
                index,
                mut item,
                arguments,
            }) => {
                out.push(self.emit(
                    "response.function_call_arguments.done",
                    json!({ "item_id": item["id"], "output_index": index, "arguments": arguments }),
                ));
                item["arguments"] = json!(arguments);
                item["status"] = json!("completed");
                out.push(self.emit(
                    "response.output_item.done",
                    json!({ "output_index": index, "item": item }),
                ));
                self.output.push(item);
            }
            None => {}
        }
    }

    fn frames(&mut self, events: Vec<Event>, end: Option<(&StopReason, Usage)>) -> Vec<Bytes> {
        let mut out = Vec::new();
        for (name, payload) in events {
            match name {
                "contentBlockStart" => {
                    if let Some(tool) = payload["start"].get("toolUse") {
                        self.close(&mut out);
                        let index = self.output.len();
                        let item = call_item(
                            &json!({ "toolUseId": tool["toolUseId"], "name": tool["name"] }),
                            "in_progress",
                            "",
                        );
                        out.push(self.emit(
                            "response.output_item.added",
                            json!({ "output_index": index, "item": item }),
                        ));
                        self.open = Some(Open::Call {
                            index,
                            item,
                            arguments: String::new(),
                        });
                    }
                }
                "contentBlockDelta" => {
                    if let Some(text) = payload["delta"].get("text").and_then(Value::as_str) {
                        if !matches!(self.open, Some(Open::Message { .. })) {
                            self.close(&mut out);
                            let (index, id) = (self.output.len(), new_id("msg_"));
                            let item = json!({ "type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": [] });
                            out.push(self.emit(
                                "response.output_item.added",
                                json!({ "output_index": index, "item": item }),
                            ));
                            out.push(self.emit("response.content_part.added", json!({ "item_id": id, "output_index": index, "content_index": 0, "part": { "type": "output_text", "text": "", "annotations": [] } })));
                            self.open = Some(Open::Message {
                                index,
                                id,
                                text: String::new(),
                            });
                        }
                        if let Some(Open::Message {
                            index,
                            id,
                            text: so_far,
                        }) = &mut self.open
                        {
                            so_far.push_str(text);
                            let data = json!({ "item_id": id, "output_index": *index, "content_index": 0, "delta": text });
                            out.push(self.emit("response.output_text.delta", data));
                        }
                    } else if let Some(input) = payload["delta"]["toolUse"]
                        .get("input")
                        .and_then(Value::as_str)
                    {
                        if let Some(Open::Call {
                            index,
                            item,
                            arguments,
                        }) = &mut self.open
                        {
                            arguments.push_str(input);
                            let data = json!({ "item_id": item["id"], "output_index": *index, "delta": input });
                            out.push(self.emit("response.function_call_arguments.delta", data));
                        }
                    }
                }
                "messageStop" => {
                    self.close(&mut out);
                    if let Some((reason, u)) = end {
                        let response = response_object(
                            &self.id,
                            self.created,
                            &self.request,
                            "completed",
                            json!(self.output),
                            Some((reason, u)),
                        );
                        let kind = if response["status"] == "incomplete" {
                            "response.incomplete"
                        } else {
                            "response.completed"
                        };
                        out.push(self.emit(kind, json!({ "response": response })));
                    }
                }
                _ => {}
            }
        }
        out
    }
}

impl Shaper for ResponseEvents {
    fn start(&mut self, _input_tokens: u32) -> Vec<Bytes> {
        let response = response_object(
            &self.id,
            self.created,
            &self.request,
            "in_progress",
            json!([]),
            None,
        );
        let _ = self.events.start();
        vec![
            self.emit("response.created", json!({ "response": response.clone() })),
            self.emit("response.in_progress", json!({ "response": response })),
        ]
    }

    fn text(&mut self, text: &str) -> Vec<Bytes> {
        let events = self.events.text(text);
        self.frames(events, None)
    }

    fn end(&mut self, reason: &StopReason, usage: Usage, _timing: Timing) -> Vec<Bytes> {
        let events = self.events.end(reason, usage, json!({ "metrics": {} }));
        self.frames(events, Some((reason, usage)))
    }

    fn failure(&mut self, error: &ApiError) -> Bytes {
        let e = error_body(error).1;
        self.emit(
            "error",
            json!({ "code": e["error"]["code"], "message": e["error"]["message"], "param": null }),
        )
    }

    fn content_type(&self) -> &'static str {
        "text/event-stream"
    }

    fn logged(&mut self) -> Value {
        Value::Array(std::mem::take(&mut self.log))
    }
}
