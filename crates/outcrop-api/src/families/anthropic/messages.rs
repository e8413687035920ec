//! The Anthropic Messages API on Bedrock: `{"anthropic_version", "max_tokens", "messages",
//! "system", "tools", ...}` → `{"id", "type": "message", "content": [...], "usage"}`, and the
//! Anthropic SSE event objects as stream chunks.

use crate::cache::{self, Checkpoints};
use crate::families::{Chunker, Family, Generated, ParseContext, Parsed};
use crate::reasoning::{self, Piece, Reasoning, ReasoningSplit};
use crate::schema::Checker;
use crate::structured;
use crate::tools::{
    self, render_call, render_result, StreamSplit, ToolCall, ToolChoice, ToolSpec, Tools,
};
use crate::ApiError;
use outcrop_types::{
    CacheAt, CacheTtl, GenerationRequest, Role, Sampling, StopReason, Turn, Usage,
};
use serde_json::{json, Map, Value};

const KEYS: &[&str] = &[
    "anthropic_version",
    "anthropic_beta",
    "max_tokens",
    "messages",
    "system",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "tools",
    "tool_choice",
    "metadata",
    "thinking",
    "output_config",
    "output_format",
];

pub fn parse(map: &Map<String, Value>, cx: &ParseContext<'_>) -> Result<Parsed, ApiError> {
    let mut c = Checker::new(map, KEYS);
    let version = c.required("anthropic_version");
    let _ = c.string("anthropic_version", version);
    if !map.contains_key("max_tokens") {
        // Bedrock's validator first rules out the text-completions schema.
        c.violation(
            "",
            r#"subject must not be valid against schema {"required":["messages"]}"#,
        );
    }
    let max_tokens = c.required("max_tokens");
    let max_tokens = c.integer("max_tokens", max_tokens, 1, 1_000_000);
    let messages = c.required("messages");
    let messages = c.array("messages", messages);
    let temperature = c.number("temperature", map.get("temperature"), 0.0, 1.0);
    let top_p = c.number("top_p", map.get("top_p"), 0.0, 1.0);
    let top_k = c.integer("top_k", map.get("top_k"), 0, 500);
    let stops = c.strings("stop_sequences", map.get("stop_sequences"), 8191);
    let _ = c.array("anthropic_beta", map.get("anthropic_beta"));
    let tools = parse_tools(&mut c, map)?;
    let reasoning = match map.get("thinking") {
        None => Reasoning::Hidden,
        Some(t) => reasoning::requested("thinking", t, max_tokens.map(crate::families::tokens))?,
    };
    if reasoning == Reasoning::Shown {
        if temperature.is_some_and(|t| t != 1.0) {
            return Err(ApiError::Validation(
                "The model returned the following errors: `temperature` may only be set to 1 when thinking is enabled or in adaptive mode. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#important-considerations-when-using-extended-thinking".into(),
            ));
        }
        if top_k.is_some() {
            return Err(ApiError::Validation(
                "The model returned the following errors: `top_k` must be unset when thinking is enabled or in adaptive mode.".into(),
            ));
        }
    }
    let output_schema = output_schema(map)?;
    let mut turns = Vec::new();
    let mut cache = Checkpoints::default();
    if let Some(Value::Array(list)) = map.get("tools") {
        for (i, t) in list.iter().enumerate() {
            if let Some(cc) = t.get("cache_control") {
                cache.after_tools(cache::cache_control(
                    cc,
                    &format!("tools.{i}.cache_control"),
                )?);
            }
        }
    }
    match map.get("system") {
        None => {}
        Some(Value::String(s)) => turns.push(Turn::new(Role::System, s.clone())),
        Some(Value::Array(blocks)) => {
            let mut marks = Vec::new();
            let text = blocks_text(&mut c, "system", blocks, cx, false, &mut marks)?;
            for (offset, ttl) in marks {
                // At the end of the system prompt the checkpoint covers the whole system
                // turn, with the tools the template renders in it.
                let at = if offset >= text.len() {
                    CacheAt::System
                } else {
                    CacheAt::Turn { turn: 0, offset }
                };
                cache.push(at, ttl);
            }
            turns.push(Turn::new(Role::System, text));
        }
        Some(_) => c.violation("system", "expected type: String or JSONArray"),
    }
    for (i, m) in messages.into_iter().flatten().enumerate() {
        let path = format!("messages/{i}");
        let Some(m) = m.as_object() else {
            c.violation(&path, "expected type: JSONObject");
            continue;
        };
        let role = match m.get("role").and_then(Value::as_str) {
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            Some(other) => {
                c.violation(
                    &format!("{path}/role"),
                    &format!("{other} is not a valid enum value"),
                );
                continue;
            }
            None => {
                c.violation(&path, "required key [role] not found");
                continue;
            }
        };
        let mut marks = Vec::new();
        let content = match m.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(blocks)) => blocks_text(
                &mut c,
                &format!("{path}/content"),
                blocks,
                cx,
                tools.is_some(),
                &mut marks,
            )?,
            Some(_) => {
                c.violation(
                    &format!("{path}/content"),
                    "expected type: String or JSONArray",
                );
                continue;
            }
            None => {
                c.violation(&path, "required key [content] not found");
                continue;
            }
        };
        // Consecutive turns of one role are one turn, as the Messages API merges them.
        let (turn, shift) = match turns.last_mut() {
            Some(last) if last.role == role && i > 0 => {
                last.content.push('\n');
                let shift = last.content.len();
                last.content.push_str(&content);
                (turns.len() - 1, shift)
            }
            _ => {
                turns.push(Turn::new(role, content));
                (turns.len() - 1, 0)
            }
        };
        for (offset, ttl) in marks {
            let offset = offset + shift;
            cache.push(CacheAt::Turn { turn, offset }, ttl);
        }
    }
    c.finish()?;
    let cache = cache.finish(cx.entry)?;
    if !turns.iter().any(|t| t.role == Role::User) {
        return Err(ApiError::Validation(
            "messages: at least one message is required".into(),
        ));
    }
    let request = GenerationRequest {
        prompt: tools::prompt(turns, tools.as_ref()),
        max_tokens: crate::families::tokens(max_tokens.unwrap_or(1)),
        sampling: Sampling {
            // Anthropic's defaults: temperature 1, top_p and top_k off.
            temperature: temperature.unwrap_or(1.0) as f32,
            top_p: top_p.filter(|p| *p < 1.0).map(|p| p as f32),
            top_k: top_k.filter(|k| *k > 0).map(|k| k as u32),
            seed: cx.seed,
            // A forced tool call is the whole answer; else an output format shapes it.
            constraint: match (&tools, &output_schema) {
                (Some(t), _) if t.forced() => t.constraint(),
                (_, Some(schema)) => Some(structured::constraint(schema)),
                (tools, None) => tools.as_ref().and_then(Tools::constraint),
            },
        },
        stop_sequences: stops.unwrap_or_default(),
        label: None,
        exclusive: false,
        tier: Default::default(),
        cache,
    };
    Ok(Parsed {
        family: Family::AnthropicMessages,
        requests: vec![request],
        tools,
        prompt_echo: None,
        reasoning,
    })
}

/// `output_config` (`format`, and `effort`, which is accepted and has no effect) or the older
/// `output_format`: the schema the answer must satisfy, if any.
fn output_schema(map: &Map<String, Value>) -> Result<Option<Value>, ApiError> {
    if let Some(config) = map.get("output_config") {
        if let Some(effort) = config.get("effort") {
            if !matches!(effort.as_str(), Some("low" | "medium" | "high" | "max")) {
                return Err(ApiError::Validation(
                    "The model returned the following errors: output_config.effort: Input should be 'low', 'medium', 'high' or 'max'".into(),
                ));
            }
        }
        if let Some(format) = config.get("format") {
            return structured::anthropic_output_format(format, "output_config.format").map(Some);
        }
    }
    map.get("output_format")
        .map(|f| structured::anthropic_output_format(f, "output_format"))
        .transpose()
}

/// A `document` block as text: its title, then its text. Plain-text sources are read; PDFs and
/// other binary media are refused.
fn document_text(b: &Value, model_id: &str) -> Result<String, ApiError> {
    let source = b.get("source").cloned().unwrap_or(Value::Null);
    let media = source
        .get("media_type")
        .and_then(Value::as_str)
        .unwrap_or("text/plain");
    let text = match source.get("type").and_then(Value::as_str) {
        Some("text") => source.get("data").and_then(Value::as_str).unwrap_or_default().to_owned(),
        Some("content") => match source.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        },
        Some("base64") if media.starts_with("text/") => source
            .get("data")
            .and_then(Value::as_str)
            .and_then(|d| aws_smithy_types::base64::decode(d).ok())
            .and_then(|raw| String::from_utf8(raw).ok())
            .ok_or_else(|| {
                ApiError::Validation(
                    "The model returned the following errors: document.source.data must be base64-encoded UTF-8 text".into(),
                )
            })?,
        _ => {
            return Err(ApiError::Validation(format!(
                "The model returned the following errors: {model_id} is served by a text-only local model and cannot read {media} documents; send the document as text."
            )))
        }
    };
    let title = b.get("title").and_then(Value::as_str).unwrap_or("document");
    Ok(format!("Document \"{title}\":\n{text}"))
}

/// The text of a list of content blocks; media the backing model cannot read is refused. A
/// block's `cache_control` adds to `marks` the byte offset after its text, and its TTL.
fn blocks_text(
    c: &mut Checker<'_>,
    path: &str,
    blocks: &[Value],
    cx: &ParseContext<'_>,
    have_tools: bool,
    marks: &mut Vec<(usize, CacheTtl)>,
) -> Result<String, ApiError> {
    let mut parts: Vec<String> = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let at = format!("{path}/{j}");
        let mark = b
            .get("cache_control")
            .map(|cc| cache::cache_control(cc, &format!("{}.cache_control", at.replace('/', "."))))
            .transpose()?;
        let kind = b.get("type").and_then(Value::as_str).unwrap_or_default();
        match kind {
            "text" => match b.get("text").and_then(Value::as_str) {
                Some(t) => parts.push(t.to_owned()),
                None => c.violation(&at, "required key [text] not found"),
            },
            "document" => parts.push(document_text(b, &cx.entry.id)?),
            "image" => {
                return Err(ApiError::Validation(format!(
                    "The model returned the following errors: {} is served by a text-only local model and cannot read {kind} content.",
                    cx.entry.id
                )))
            }
            "tool_use" => {
                let name = b.get("name").and_then(Value::as_str).unwrap_or_default();
                parts.push(render_call(name, b.get("input").unwrap_or(&Value::Null)));
            }
            "tool_result" => {
                if !have_tools {
                    return Err(ApiError::Validation(
                        "The model returned the following errors: Requests which include `tool_use` or `tool_result` blocks must define tools.".into(),
                    ));
                }
                let text = match b.get("content") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(inner)) => inner
                        .iter()
                        .filter_map(|p| p.get("text").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join("\n"),
                    _ => String::new(),
                };
                let is_error = b.get("is_error").and_then(Value::as_bool).unwrap_or(false);
                parts.push(render_result(&text, is_error));
            }
            "thinking" => {
                // Checked, then left out: the model reasons afresh each turn.
                let thought = b.get("thinking").and_then(Value::as_str).unwrap_or_default();
                let at = at.replace('/', ".");
                reasoning::verify(thought, b.get("signature").and_then(Value::as_str), &at)?;
            }
            "redacted_thinking" => {}
            other => c.violation(&format!("{at}/type"), &format!("{other} is not a valid enum value")),
        }
        if let Some(ttl) = mark {
            // After this block's text, in the parts joined with `\n`.
            let offset =
                parts.iter().map(String::len).sum::<usize>() + parts.len().saturating_sub(1);
            marks.push((offset, ttl));
        }
    }
    tools::close_results(&mut parts);
    Ok(parts.join("\n"))
}

fn parse_tools<'a>(
    c: &mut Checker<'a>,
    map: &'a Map<String, Value>,
) -> Result<Option<Tools>, ApiError> {
    let Some(list) = c.array("tools", map.get("tools")) else {
        return Ok(None);
    };
    let mut specs = Vec::new();
    for (i, t) in list.iter().enumerate() {
        let (Some(name), Some(schema)) =
            (t.get("name").and_then(Value::as_str), t.get("input_schema"))
        else {
            c.violation(
                &format!("tools/{i}"),
                "required key [name, input_schema] not found",
            );
            continue;
        };
        specs.push(ToolSpec {
            name: name.to_owned(),
            description: t
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            input_schema: schema.clone(),
        });
    }
    let choice = match map.get("tool_choice") {
        None => ToolChoice::Auto,
        Some(v) => match (v.get("type").and_then(Value::as_str), v.get("name").and_then(Value::as_str)) {
            (Some("auto"), _) => ToolChoice::Auto,
            (Some("any"), _) => ToolChoice::Any,
            (Some("none"), _) => ToolChoice::None,
            (Some("tool"), Some(name)) if specs.iter().any(|s| s.name == name) => ToolChoice::Tool(name.to_owned()),
            (Some("tool"), Some(name)) => {
                return Err(ApiError::Validation(format!(
                    "The model returned the following errors: tool_choice.name: Tool '{name}' not found in tools"
                )))
            }
            _ => {
                c.violation("tool_choice", "expected one of auto, any, tool (with name), none");
                ToolChoice::Auto
            }
        },
    };
    Ok((!specs.is_empty()).then_some(Tools { specs, choice }))
}

/// `anthropic.claude-3-haiku-20240307-v1:0` → `claude-3-haiku-20240307`, as responses name it.
pub fn model_name(model_id: &str) -> &str {
    let name = model_id.strip_prefix("anthropic.").unwrap_or(model_id);
    match name.rfind("-v") {
        Some(at)
            if name[at + 2..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit()) =>
        {
            &name[..at]
        }
        _ => name,
    }
}

fn stop(reason: &StopReason, call: bool) -> (&'static str, Value) {
    match reason {
        _ if call => ("tool_use", Value::Null),
        StopReason::EndOfTurn => ("end_turn", Value::Null),
        StopReason::StopSequence(s) => ("stop_sequence", json!(s)),
        StopReason::MaxTokens => ("max_tokens", Value::Null),
        StopReason::ContextFull => ("model_context_window_exceeded", Value::Null),
    }
}

fn tool_use_block(call: &ToolCall) -> Value {
    json!({ "type": "tool_use", "id": tools::new_id("toolu_bdrk_"), "name": call.name, "input": call.input })
}

pub fn message_body(
    model_id: &str,
    g: &Generated,
    tools: Option<&Tools>,
    reasoning: Reasoning,
) -> Value {
    let (thought, answer) = reasoning::split(&g.text);
    let split = tools::split(tools, &answer);
    let mut content = Vec::new();
    if reasoning == Reasoning::Shown && !thought.is_empty() {
        content.push(json!({ "type": "thinking", "thinking": thought, "signature": reasoning::signature(&thought) }));
    }
    if !split.text.is_empty() || split.calls.is_empty() {
        content.push(json!({ "type": "text", "text": split.text }));
    }
    for call in &split.calls {
        content.push(tool_use_block(call));
    }
    let (stop_reason, stop_sequence) = stop(&g.reason, !split.calls.is_empty());
    let mut usage =
        json!({ "input_tokens": g.usage.input_tokens, "output_tokens": g.usage.output_tokens });
    crate::cache::add_anthropic_usage(&mut usage, g.usage);
    json!({
        "id": tools::new_id("msg_bdrk_"),
        "type": "message",
        "role": "assistant",
        "model": model_name(model_id),
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage,
    })
}

/// The Anthropic stream events: message_start, a thinking block when the model reasoned and
/// the request asked to see it, a text block (start, deltas, stop), a tool_use block when the
/// model called a tool, message_delta, message_stop.
pub struct MessageChunks {
    model: String,
    reasoning: Reasoning,
    thoughts: ReasoningSplit,
    /// The reasoning shown so far, while its block is open (for its signature).
    thought: Option<String>,
    split: StreamSplit,
    next_index: usize,
    text_index: Option<usize>,
}

impl MessageChunks {
    pub fn new(model_id: &str, tools: Option<Tools>, reasoning: Reasoning) -> Self {
        MessageChunks {
            model: model_name(model_id).to_owned(),
            reasoning,
            thoughts: ReasoningSplit::default(),
            thought: None,
            split: StreamSplit::new(tools.as_ref()),
            next_index: 0,
            text_index: None,
        }
    }

    /// Text for the text block, opening it first if needed.
    fn text_delta(&mut self, text: &str, always: bool) -> Vec<Value> {
        let mut out = Vec::new();
        if text.is_empty() && !always {
            return out;
        }
        let index = match self.text_index {
            Some(i) => i,
            None => {
                let i = self.next_index;
                self.next_index += 1;
                self.text_index = Some(i);
                out.push(json!({ "type": "content_block_start", "index": i, "content_block": { "type": "text", "text": "" } }));
                i
            }
        };
        if !text.is_empty() {
            out.push(json!({ "type": "content_block_delta", "index": index, "delta": { "type": "text_delta", "text": text } }));
        }
        out
    }

    fn close_thinking(&mut self) -> Vec<Value> {
        let Some(thought) = self.thought.take() else {
            return Vec::new();
        };
        let index = self.next_index;
        self.next_index += 1;
        vec![
            json!({ "type": "content_block_delta", "index": index, "delta": { "type": "signature_delta", "signature": reasoning::signature(&thought) } }),
            json!({ "type": "content_block_stop", "index": index }),
        ]
    }

    fn pieces(&mut self, pieces: Vec<Piece>) -> Vec<Value> {
        let mut out = Vec::new();
        for piece in pieces {
            match piece {
                Piece::Reasoning(t) if self.reasoning == Reasoning::Shown => {
                    let index = self.next_index;
                    if self.thought.is_none() {
                        out.push(json!({ "type": "content_block_start", "index": index, "content_block": { "type": "thinking", "thinking": "", "signature": "" } }));
                    }
                    self.thought.get_or_insert_with(String::new).push_str(&t);
                    out.push(json!({ "type": "content_block_delta", "index": index, "delta": { "type": "thinking_delta", "thinking": t } }));
                }
                Piece::Reasoning(_) => {}
                Piece::Answer(t) => {
                    out.extend(self.close_thinking());
                    let shown = self.split.push(&t);
                    out.extend(self.text_delta(&shown, false));
                }
            }
        }
        out
    }
}

impl Chunker for MessageChunks {
    fn start(&mut self, input_tokens: u32) -> Vec<Value> {
        vec![json!({
            "type": "message_start",
            "message": {
                "id": tools::new_id("msg_bdrk_"),
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": { "input_tokens": input_tokens, "output_tokens": 1 },
            },
        })]
    }

    fn text(&mut self, text: &str) -> Vec<Value> {
        let pieces = self.thoughts.push(text);
        self.pieces(pieces)
    }

    fn end(&mut self, reason: &StopReason, usage: Usage) -> Vec<Value> {
        let pieces = self.thoughts.finish();
        let mut out = self.pieces(pieces);
        out.extend(self.close_thinking());
        let (rest, calls) = self.split.finish();
        // A message always has a text block unless it is only tool calls.
        let always = calls.is_empty() && self.text_index.is_none();
        out.extend(self.text_delta(&rest, always));
        if let Some(index) = self.text_index {
            out.push(json!({ "type": "content_block_stop", "index": index }));
        }
        for call in &calls {
            let index = self.next_index;
            self.next_index += 1;
            let mut block = tool_use_block(call);
            block["input"] = json!({});
            out.push(
                json!({ "type": "content_block_start", "index": index, "content_block": block }),
            );
            out.push(json!({ "type": "content_block_delta", "index": index, "delta": { "type": "input_json_delta", "partial_json": call.input.to_string() } }));
            out.push(json!({ "type": "content_block_stop", "index": index }));
        }
        let (stop_reason, stop_sequence) = stop(reason, !calls.is_empty());
        // The final counts; with the cache in use, the input as Anthropic splits it.
        let mut counts = json!({ "output_tokens": usage.output_tokens });
        if usage.cache_read_input_tokens + usage.cache_write_input_tokens > 0 {
            counts["input_tokens"] = usage.input_tokens.into();
            crate::cache::add_anthropic_usage(&mut counts, usage);
        }
        out.push(json!({
            "type": "message_delta",
            "delta": { "stop_reason": stop_reason, "stop_sequence": stop_sequence },
            "usage": counts,
        }));
        out.push(json!({ "type": "message_stop" }));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::tests_support::{cx, err};

    const M: &str = "anthropic.claude-3-haiku-20240307-v1:0";

    fn p(body: Value) -> Result<Parsed, ApiError> {
        crate::families::parse(body.to_string().as_bytes(), &cx(M))
    }

    #[test]
    fn parses_string_and_block_content() {
        let parsed = p(json!({
            "anthropic_version": "bedrock-2023-05-31", "max_tokens": 50, "system": "Be brief.",
            "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]},
                         {"role": "user", "content": [{"type": "text", "text": "Bye"}]}],
            "stop_sequences": ["END"], "top_k": 10
        }))
        .unwrap();
        let r = &parsed.requests[0];
        assert_eq!(r.max_tokens, 50);
        assert_eq!(r.stop_sequences, vec!["END"]);
        let outcrop_types::Prompt::Chat(turns) = &r.prompt else {
            panic!()
        };
        assert_eq!(turns.len(), 4);
        assert_eq!(turns[0], Turn::new(Role::System, "Be brief."));
    }

    #[test]
    fn bedrock_validation_messages() {
        assert_eq!(
            err(p(
                json!({"anthropic_version": "bedrock-2023-05-31", "messages": [{"role": "user", "content": "Hi"}]})
            )),
            r##"Malformed input request: #: subject must not be valid against schema {"required":["messages"]}#: required key [max_tokens] not found, please reformat your input and try again."##
        );
        assert!(err(p(
            json!({"max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}]})
        ))
        .contains("#: required key [anthropic_version] not found"));
        assert!(err(p(json!({"anthropic_version": "x", "max_tokens": 5, "model": "claude", "messages": [{"role": "user", "content": "Hi"}]})))
            .contains("#: extraneous key [model] is not permitted"));
        assert!(err(p(json!({"anthropic_version": "x", "max_tokens": 5, "messages": [{"role": "bot", "content": "Hi"}]})))
            .contains("#/messages/0/role: bot is not a valid enum value"));
        assert!(err(p(json!({"anthropic_version": "x", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]})))
            .contains("cannot read image content"));
        assert_eq!(
            err(crate::families::parse(
                br#"{"prompt": "\n\nHuman: hi\n\nAssistant:", "max_tokens_to_sample": 5}"#,
                &cx(M)
            )),
            r#""claude-3-haiku-20240307" is not supported on this API. Please use the Messages API instead."#
        );
    }

    #[test]
    fn tools_constrain_and_shape_the_answer() {
        let parsed = p(json!({
            "anthropic_version": "bedrock-2023-05-31", "max_tokens": 50,
            "messages": [{"role": "user", "content": "Weather in Oslo?"}],
            "tools": [{"name": "weather", "description": "d", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
            "tool_choice": {"type": "any"}
        }))
        .unwrap();
        assert!(matches!(
            parsed.requests[0].sampling.constraint,
            Some(outcrop_types::Constraint::Json { .. })
        ));
        let g = Generated {
            text: r#"{"name": "weather", "input": {"city": "Oslo"}}"#.into(),
            reason: StopReason::EndOfTurn,
            usage: Usage {
                input_tokens: 3,
                output_tokens: 9,
                ..Default::default()
            },
        };
        let body = message_body(M, &g, parsed.tools.as_ref(), parsed.reasoning);
        assert_eq!(body["stop_reason"], "tool_use");
        assert_eq!(body["content"][0]["type"], "tool_use");
        assert_eq!(body["content"][0]["input"], json!({"city": "Oslo"}));
        assert_eq!(body["model"], "claude-3-haiku-20240307");
    }

    #[test]
    fn stream_events_in_order() {
        let mut c = MessageChunks::new(M, None, Reasoning::Hidden);
        let mut all = c.start(5);
        all.extend(c.text("Hel"));
        all.extend(c.text("lo"));
        all.extend(c.end(
            &StopReason::EndOfTurn,
            Usage {
                input_tokens: 5,
                output_tokens: 2,
                ..Default::default()
            },
        ));
        let types: Vec<&str> = all.iter().map(|v| v["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(all[5]["delta"]["stop_reason"], "end_turn");
        assert_eq!(all[5]["usage"]["output_tokens"], 2);
    }

    #[test]
    fn model_names() {
        assert_eq!(
            model_name("anthropic.claude-3-5-sonnet-20241022-v2:0"),
            "claude-3-5-sonnet-20241022"
        );
        assert_eq!(model_name("anthropic.claude-v2:1"), "claude");
        assert_eq!(model_name("anthropic.claude-instant-v1"), "claude-instant");
    }
}
