//! The Converse event sequence, shared by ConverseStream (one event-stream frame per event)
//! and Nova's InvokeModelWithResponseStream chunks (one `{name: payload}` chunk per event):
//! messageStart, the text block's deltas and stop, a toolUse block (start, input delta, stop)
//! when the model called a tool, messageStop, metadata.

use crate::tools::{self, StreamSplit, ToolCall, Tools};
use outcrop_types::{StopReason, Usage};
use serde_json::{json, Value};

/// Converse's `stopReason` for a generation.
pub fn stop_reason(reason: &StopReason, called_tool: bool) -> &'static str {
    match reason {
        _ if called_tool => "tool_use",
        StopReason::EndOfTurn => "end_turn",
        StopReason::StopSequence(_) => "stop_sequence",
        StopReason::MaxTokens => "max_tokens",
    }
}

pub fn usage_json(usage: Usage) -> Value {
    json!({
        "inputTokens": usage.input_tokens,
        "outputTokens": usage.output_tokens,
        "totalTokens": usage.input_tokens + usage.output_tokens,
    })
}

fn tool_use(call: &ToolCall) -> Value {
    json!({ "toolUseId": tools::new_id("tooluse_"), "name": call.name, "input": call.input })
}

/// The assistant message's content blocks for a whole generation, and whether it called a
/// tool.
pub fn content(tools: Option<&Tools>, text: &str) -> (Vec<Value>, bool) {
    let (text, call) = tools::split(tools, text);
    let mut blocks = Vec::new();
    if !text.is_empty() || call.is_none() {
        blocks.push(json!({ "text": text }));
    }
    if let Some(call) = &call {
        blocks.push(json!({ "toolUse": tool_use(call) }));
    }
    (blocks, call.is_some())
}

pub struct ConverseEvents {
    split: StreamSplit,
    text_sent: bool,
}

pub type Event = (&'static str, Value);

impl ConverseEvents {
    pub fn new(tools: Option<&Tools>) -> Self {
        ConverseEvents {
            split: StreamSplit::new(tools),
            text_sent: false,
        }
    }

    pub fn start(&mut self) -> Vec<Event> {
        vec![("messageStart", json!({ "role": "assistant" }))]
    }

    fn delta(&mut self, text: String) -> Vec<Event> {
        if text.is_empty() {
            return Vec::new();
        }
        self.text_sent = true;
        vec![(
            "contentBlockDelta",
            json!({ "delta": { "text": text }, "contentBlockIndex": 0 }),
        )]
    }

    pub fn text(&mut self, text: &str) -> Vec<Event> {
        let shown = self.split.push(text);
        self.delta(shown)
    }

    /// The closing events; `metrics` goes into `metadata` (ConverseStream's `latencyMs`).
    pub fn end(&mut self, reason: &StopReason, usage: Usage, metrics: Value) -> Vec<Event> {
        let (rest, call) = self.split.finish();
        let mut out = self.delta(rest);
        if self.text_sent {
            out.push(("contentBlockStop", json!({ "contentBlockIndex": 0 })));
        }
        if let Some(call) = &call {
            let index = usize::from(self.text_sent);
            let tool = tool_use(call);
            out.push((
                "contentBlockStart",
                json!({ "start": { "toolUse": { "toolUseId": tool["toolUseId"], "name": tool["name"] } }, "contentBlockIndex": index }),
            ));
            out.push((
                "contentBlockDelta",
                json!({ "delta": { "toolUse": { "input": call.input.to_string() } }, "contentBlockIndex": index }),
            ));
            out.push(("contentBlockStop", json!({ "contentBlockIndex": index })));
        }
        out.push((
            "messageStop",
            json!({ "stopReason": stop_reason(reason, call.is_some()) }),
        ));
        out.push((
            "metadata",
            json!({ "usage": usage_json(usage), "metrics": metrics }),
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::{ToolChoice, ToolSpec};

    #[test]
    fn text_then_tool_call() {
        let tools = Tools {
            specs: vec![ToolSpec {
                name: "t".into(),
                description: String::new(),
                input_schema: json!({"type": "object"}),
            }],
            choice: ToolChoice::Auto,
        };
        let mut e = ConverseEvents::new(Some(&tools));
        let mut all = e.start();
        all.extend(e.text("Checking. <tool_call>{\"name\": \"t\", "));
        all.extend(e.text("\"input\": {\"a\": 1}}"));
        all.extend(e.end(
            &StopReason::EndOfTurn,
            Usage::default(),
            json!({"latencyMs": 5}),
        ));
        let names: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "messageStart",
                "contentBlockDelta",
                "contentBlockStop",
                "contentBlockStart",
                "contentBlockDelta",
                "contentBlockStop",
                "messageStop",
                "metadata"
            ]
        );
        assert_eq!(all[1].1["delta"]["text"], "Checking. ");
        assert_eq!(all[3].1["contentBlockIndex"], 1);
        assert_eq!(all[4].1["delta"]["toolUse"]["input"], "{\"a\":1}");
        assert_eq!(all[6].1["stopReason"], "tool_use");
    }

    #[test]
    fn whole_content() {
        assert_eq!(content(None, "hi"), (vec![json!({"text": "hi"})], false));
    }
}
