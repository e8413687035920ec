//! The Converse event sequence, shared by ConverseStream (one event-stream frame per event)
//! and Nova's InvokeModelWithResponseStream chunks (one `{name: payload}` chunk per event):
//! messageStart, a reasoning block when the model reasoned and the request asked to see it
//! (deltas, then its signature), the text block's deltas and stop, a toolUse block (start,
//! input delta, stop) for each tool the model called, messageStop, metadata.

use crate::reasoning::{self, Piece, Reasoning, ReasoningSplit};
use crate::tools::{self, StreamSplit, ToolCall, Tools};
use outcrop_types::{StopReason, Usage};
use serde_json::{json, Value};

/// Converse's `stopReason` for a generation. `malformed`: a tool call was begun but is not a
/// valid call.
pub fn stop_reason(reason: &StopReason, called_tool: bool, malformed: bool) -> &'static str {
    match reason {
        _ if called_tool => "tool_use",
        StopReason::EndOfTurn if malformed => "malformed_tool_use",
        StopReason::EndOfTurn => "end_turn",
        StopReason::StopSequence(_) => "stop_sequence",
        StopReason::MaxTokens => "max_tokens",
        StopReason::ContextFull => "model_context_window_exceeded",
    }
}

pub fn usage_json(usage: Usage) -> Value {
    crate::cache::converse_usage(usage)
}

fn tool_use(call: &ToolCall) -> Value {
    json!({ "toolUseId": tools::new_id("tooluse_"), "name": call.name, "input": call.input })
}

fn reasoning_block(text: &str) -> Value {
    json!({ "reasoningContent": { "reasoningText": { "text": text, "signature": reasoning::signature(text) } } })
}

/// A whole generation as an assistant message's content blocks.
pub struct Content {
    pub blocks: Vec<Value>,
    pub called: bool,
    pub malformed: bool,
}

impl Content {
    pub fn stop_reason(&self, reason: &StopReason) -> &'static str {
        stop_reason(reason, self.called, self.malformed)
    }
}

/// The assistant message's content blocks for a whole generation.
pub fn content(tools: Option<&Tools>, reasoning: Reasoning, text: &str) -> Content {
    let (thought, answer) = reasoning::split(text);
    let split = tools::split(tools, &answer);
    let mut blocks = Vec::new();
    if reasoning == Reasoning::Shown && !thought.is_empty() {
        blocks.push(reasoning_block(&thought));
    }
    if !split.text.is_empty() || split.calls.is_empty() {
        blocks.push(json!({ "text": split.text }));
    }
    for call in &split.calls {
        blocks.push(json!({ "toolUse": tool_use(call) }));
    }
    Content {
        blocks,
        called: !split.calls.is_empty(),
        malformed: split.malformed,
    }
}

pub struct ConverseEvents {
    reasoning: Reasoning,
    thoughts: ReasoningSplit,
    /// The reasoning shown so far, while its block is open (for its signature).
    thought: Option<String>,
    split: StreamSplit,
    /// The index the next block takes.
    next_index: usize,
    /// The open text block's index.
    text_index: Option<usize>,
}

pub type Event = (&'static str, Value);

impl ConverseEvents {
    pub fn new(tools: Option<&Tools>, reasoning: Reasoning) -> Self {
        ConverseEvents {
            reasoning,
            thoughts: ReasoningSplit::default(),
            thought: None,
            split: StreamSplit::new(tools),
            next_index: 0,
            text_index: None,
        }
    }

    pub fn start(&mut self) -> Vec<Event> {
        vec![("messageStart", json!({ "role": "assistant" }))]
    }

    fn delta(&mut self, text: String) -> Vec<Event> {
        if text.is_empty() {
            return Vec::new();
        }
        let index = *self.text_index.get_or_insert_with(|| {
            self.next_index += 1;
            self.next_index - 1
        });
        vec![(
            "contentBlockDelta",
            json!({ "delta": { "text": text }, "contentBlockIndex": index }),
        )]
    }

    /// Closes the reasoning block: its signature, then its stop.
    fn close_reasoning(&mut self) -> Vec<Event> {
        let Some(thought) = self.thought.take() else {
            return Vec::new();
        };
        let index = self.next_index;
        self.next_index += 1;
        vec![
            (
                "contentBlockDelta",
                json!({ "delta": { "reasoningContent": { "signature": reasoning::signature(&thought) } }, "contentBlockIndex": index }),
            ),
            ("contentBlockStop", json!({ "contentBlockIndex": index })),
        ]
    }

    fn pieces(&mut self, pieces: Vec<Piece>) -> Vec<Event> {
        let mut out = Vec::new();
        for piece in pieces {
            match piece {
                Piece::Reasoning(t) if self.reasoning == Reasoning::Shown => {
                    self.thought.get_or_insert_with(String::new).push_str(&t);
                    out.push((
                        "contentBlockDelta",
                        json!({ "delta": { "reasoningContent": { "text": t } }, "contentBlockIndex": self.next_index }),
                    ));
                }
                Piece::Reasoning(_) => {}
                Piece::Answer(t) => {
                    out.extend(self.close_reasoning());
                    let shown = self.split.push(&t);
                    out.extend(self.delta(shown));
                }
            }
        }
        out
    }

    pub fn text(&mut self, text: &str) -> Vec<Event> {
        let pieces = self.thoughts.push(text);
        self.pieces(pieces)
    }

    /// The closing events; `extra` goes into `metadata` (ConverseStream's `metrics`, and the
    /// echoed `serviceTier` and `performanceConfig`).
    pub fn end(&mut self, reason: &StopReason, usage: Usage, extra: Value) -> Vec<Event> {
        let pieces = self.thoughts.finish();
        let mut out = self.pieces(pieces);
        out.extend(self.close_reasoning());
        let (rest, calls) = self.split.finish();
        out.extend(self.delta(rest));
        if let Some(index) = self.text_index {
            out.push(("contentBlockStop", json!({ "contentBlockIndex": index })));
        }
        for call in &calls {
            let index = self.next_index;
            self.next_index += 1;
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
            json!({ "stopReason": stop_reason(reason, !calls.is_empty(), self.split.malformed()) }),
        ));
        let mut metadata = json!({ "usage": usage_json(usage) });
        if let Value::Object(extra) = extra {
            for (k, v) in extra {
                metadata[k] = v;
            }
        }
        out.push(("metadata", metadata));
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
        let mut e = ConverseEvents::new(Some(&tools), Reasoning::Hidden);
        let mut all = e.start();
        all.extend(e.text("Checking. <tool_call>{\"name\": \"t\", "));
        all.extend(e.text("\"input\": {\"a\": 1}}"));
        all.extend(e.end(
            &StopReason::EndOfTurn,
            Usage::default(),
            json!({"metrics": {"latencyMs": 5}}),
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
        let c = content(None, Reasoning::Hidden, "hi");
        assert_eq!((c.blocks, c.called), (vec![json!({"text": "hi"})], false));
        let c = content(None, Reasoning::Shown, "<think>2+2</think>4");
        assert_eq!(
            c.blocks[0]["reasoningContent"]["reasoningText"]["text"],
            "2+2"
        );
        assert_eq!(c.blocks[1], json!({"text": "4"}));
        let hidden = content(None, Reasoning::Hidden, "<think>2+2</think>4");
        assert_eq!(hidden.blocks, vec![json!({"text": "4"})]);
    }

    #[test]
    fn streamed_reasoning_comes_first_with_its_signature() {
        let mut e = ConverseEvents::new(None, Reasoning::Shown);
        let mut all = e.start();
        all.extend(e.text("<think>Two and"));
        all.extend(e.text(" two.</think>\n\nFour."));
        all.extend(e.end(&StopReason::ContextFull, Usage::default(), json!({})));
        let names: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "messageStart",
                "contentBlockDelta",
                "contentBlockDelta",
                "contentBlockDelta",
                "contentBlockStop",
                "contentBlockDelta",
                "contentBlockStop",
                "messageStop",
                "metadata"
            ]
        );
        assert_eq!(all[1].1["delta"]["reasoningContent"]["text"], "Two and");
        assert_eq!(
            all[3].1["delta"]["reasoningContent"]["signature"],
            reasoning::signature("Two and two.")
        );
        assert_eq!(all[5].1["delta"]["text"], "Four.");
        assert_eq!(all[5].1["contentBlockIndex"], 1);
        assert_eq!(all[7].1["stopReason"], "model_context_window_exceeded");
    }
}
