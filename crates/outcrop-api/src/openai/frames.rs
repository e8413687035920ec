//! Chat Completions chunks, as server-sent events: the Converse event sequence of the same
//! generation (text deltas, a tool call split from the text) rewritten as
//! `chat.completion.chunk` objects.

use super::request::ChatRequest;
use super::{error_body, finish_reason, usage};
use crate::converse::events::{ConverseEvents, Event};
use crate::reasoning::Reasoning;
use crate::stream::{Shaper, Timing};
use crate::ApiError;
use bytes::Bytes;
use outcrop_types::{StopReason, Usage};
use serde_json::{json, Value};

pub(crate) struct ChatChunks {
    events: ConverseEvents,
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    /// Tool calls started so far (their `index` in `tool_calls`).
    calls: usize,
    called: bool,
    log: Vec<Value>,
}

fn sse(data: &str) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

impl ChatChunks {
    pub fn new(request: &ChatRequest, id: String, created: u64) -> Self {
        ChatChunks {
            events: ConverseEvents::new(request.converse.tools.as_ref(), Reasoning::Hidden),
            id,
            created,
            model: request.model.clone(),
            include_usage: request.include_usage,
            calls: 0,
            called: false,
            log: Vec::new(),
        }
    }

    fn chunk(&mut self, choices: Value, usage: Option<Value>) -> Bytes {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        });
        if let Some(u) = usage {
            chunk["usage"] = u;
        }
        self.log.push(chunk.clone());
        sse(&chunk.to_string())
    }

    fn delta(&mut self, delta: Value, finish: Option<&str>) -> Bytes {
        self.chunk(
            json!([{ "index": 0, "delta": delta, "finish_reason": finish, "logprobs": null }]),
            None,
        )
    }

    fn frames(&mut self, events: Vec<Event>, end: Option<(&StopReason, Usage)>) -> Vec<Bytes> {
        let mut out = Vec::new();
        for (name, payload) in events {
            match name {
                "messageStart" => {
                    out.push(self.delta(json!({ "role": "assistant", "content": "" }), None))
                }
                "contentBlockStart" => {
                    if let Some(tool) = payload["start"].get("toolUse") {
                        let call = json!([{
                            "index": self.calls,
                            "id": tool["toolUseId"],
                            "type": "function",
                            "function": { "name": tool["name"], "arguments": "" },
                        }]);
                        self.called = true;
                        out.push(self.delta(json!({ "tool_calls": call }), None));
                    }
                }
                "contentBlockDelta" => {
                    if let Some(text) = payload["delta"].get("text") {
                        out.push(self.delta(json!({ "content": text }), None));
                    } else if let Some(input) = payload["delta"]["toolUse"].get("input") {
                        let call =
                            json!([{ "index": self.calls, "function": { "arguments": input } }]);
                        out.push(self.delta(json!({ "tool_calls": call }), None));
                    }
                }
                "contentBlockStop" if self.called => self.calls += 1,
                "messageStop" => {
                    if let Some((reason, _)) = end {
                        let finish = finish_reason(reason, self.called);
                        out.push(self.delta(json!({}), Some(finish)));
                    }
                }
                "metadata" => {
                    if let (true, Some((_, u))) = (self.include_usage, end) {
                        out.push(self.chunk(json!([]), Some(usage(u))));
                    }
                }
                _ => {}
            }
        }
        out
    }
}

impl Shaper for ChatChunks {
    fn start(&mut self, _input_tokens: u32) -> Vec<Bytes> {
        let events = self.events.start();
        self.frames(events, None)
    }

    fn text(&mut self, text: &str) -> Vec<Bytes> {
        let events = self.events.text(text);
        self.frames(events, None)
    }

    fn end(&mut self, reason: &StopReason, usage: Usage, _timing: Timing) -> Vec<Bytes> {
        let events = self.events.end(reason, usage, json!({ "metrics": {} }));
        let mut out = self.frames(events, Some((reason, usage)));
        out.push(sse("[DONE]"));
        out
    }

    fn failure(&mut self, error: &ApiError) -> Bytes {
        sse(&error_body(error).1.to_string())
    }

    fn content_type(&self) -> &'static str {
        "text/event-stream"
    }

    fn logged(&mut self) -> Value {
        Value::Array(std::mem::take(&mut self.log))
    }
}
