//! Converse-shaped conversations (Converse, ConverseStream, CountTokens, and Nova's
//! `messages-v1` body): messages of content blocks, system blocks and the tool config, checked
//! with Bedrock's own messages and turned into chat turns for the backing model.

use crate::cache::{self, Checkpoints};
use crate::tools::{render_call, render_result, ToolChoice, ToolSpec, Tools};
use crate::ApiError;
use outcrop_types::{CacheAt, Role, Turn};
use serde_json::{Map, Value};

pub const MUST_START_WITH_USER: &str = "A conversation must start with a user message. Try again with a conversation that starts with a user message.";
pub const MUST_ALTERNATE: &str = "A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.";
pub const TOOL_CONFIG_NEEDED: &str =
    "The toolConfig field must be defined when using toolUse and toolResult content blocks.";

/// A conversation ready for the backing model.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    pub turns: Vec<Turn>,
    pub tools: Option<Tools>,
    /// Its `cachePoint` blocks, unchecked ([`Checkpoints::finish`] checks them for a model).
    pub cache: Checkpoints,
}

/// Where a checkpoint after `parts` falls in the turn they are joined into (with `\n`).
fn offset_after(parts: &[String]) -> usize {
    parts.iter().map(String::len).sum::<usize>() + parts.len().saturating_sub(1)
}

pub use crate::error::{constraint, not_null};

fn wrong_shape(path: &str, expected: &str) -> ApiError {
    ApiError::Validation(format!("The value at '{path}' must be {expected}."))
}

/// Parses `messages`, `system` and `toolConfig`. `model_id` names the model in the error for
/// content the text-only backing model cannot read.
pub fn conversation(
    model_id: &str,
    messages: Option<&Value>,
    system: Option<&Value>,
    tool_config: Option<&Value>,
) -> Result<Conversation, ApiError> {
    let tools = tool_config.map(parse_tool_config).transpose()?;
    let mut cache = Checkpoints::default();
    if let Some(tools) = tool_config
        .and_then(|c| c.get("tools"))
        .and_then(Value::as_array)
    {
        for (i, t) in tools.iter().enumerate() {
            if let Some(p) = t.get("cachePoint") {
                cache.after_tools(cache::cache_point(
                    p,
                    &format!("toolConfig.tools.{i}.cachePoint"),
                )?);
            }
        }
    }
    let mut turns = Vec::new();
    if let Some(system) = system {
        let blocks = system
            .as_array()
            .ok_or_else(|| wrong_shape("system", "a list of system content blocks"))?;
        let mut text = Vec::new();
        for (i, b) in blocks.iter().enumerate() {
            let b = b
                .as_object()
                .ok_or_else(|| wrong_shape(&format!("system.{i}"), "an object"))?;
            if let Some(t) = b.get("text") {
                text.push(string(t, &format!("system.{i}.text"))?.to_owned());
            } else if let Some(g) = b.get("guardContent") {
                text.push(guard_text(g)?);
            } else if let Some(p) = b.get("cachePoint") {
                let ttl = cache::cache_point(p, &format!("system.{i}.cachePoint"))?;
                // After the last system text the checkpoint covers the whole system turn
                // (and the tools the template renders in it, as Bedrock's order puts tools
                // before the system prompt).
                let more_text = blocks[i + 1..]
                    .iter()
                    .any(|b| b.get("text").is_some() || b.get("guardContent").is_some());
                let at = if more_text {
                    CacheAt::Turn {
                        turn: 0,
                        offset: offset_after(&text),
                    }
                } else {
                    CacheAt::System
                };
                cache.push(at, ttl);
            }
        }
        if !text.is_empty() {
            turns.push(Turn::new(Role::System, text.join("\n")));
        }
    }
    let messages = messages.ok_or_else(|| not_null("messages"))?;
    let messages = messages
        .as_array()
        .ok_or_else(|| wrong_shape("messages", "a list of messages"))?;
    let mut last_role = None;
    for (i, m) in messages.iter().enumerate() {
        let m = m
            .as_object()
            .ok_or_else(|| wrong_shape(&format!("messages.{i}"), "an object"))?;
        let role = match m.get("role").and_then(Value::as_str) {
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            Some(other) => {
                return Err(constraint(
                    &format!("'{other}'"),
                    &format!("messages.{}.member.role", i + 1),
                    "Member must satisfy enum value set: [user, assistant]",
                ))
            }
            None => return Err(not_null(&format!("messages.{}.member.role", i + 1))),
        };
        if i == 0 && role != Role::User {
            return Err(ApiError::Validation(MUST_START_WITH_USER.into()));
        }
        if last_role == Some(role) {
            return Err(ApiError::Validation(MUST_ALTERNATE.into()));
        }
        last_role = Some(role);
        let content = m
            .get("content")
            .ok_or_else(|| not_null(&format!("messages.{}.member.content", i + 1)))?
            .as_array()
            .ok_or_else(|| {
                wrong_shape(&format!("messages.{i}.content"), "a list of content blocks")
            })?;
        let mut parts = Vec::new();
        for (j, block) in content.iter().enumerate() {
            let path = format!("messages.{i}.content.{j}");
            let block = block
                .as_object()
                .ok_or_else(|| wrong_shape(&path, "an object"))?;
            if let Some(p) = block.get("cachePoint") {
                let ttl = cache::cache_point(p, &format!("{path}.cachePoint"))?;
                let at = CacheAt::Turn {
                    turn: turns.len(),
                    offset: offset_after(&parts),
                };
                cache.push(at, ttl);
                continue;
            }
            if let Some(text) = content_block(model_id, block, &path, tools.is_some())? {
                parts.push(text);
            }
        }
        crate::tools::close_results(&mut parts);
        turns.push(Turn::new(role, parts.join("\n")));
    }
    if messages.is_empty() {
        return Err(ApiError::Validation(MUST_START_WITH_USER.into()));
    }
    Ok(Conversation {
        turns,
        tools,
        cache,
    })
}

/// The text a content block contributes, `None` for blocks with nothing to say.
fn content_block(
    model_id: &str,
    block: &Map<String, Value>,
    path: &str,
    have_tools: bool,
) -> Result<Option<String>, ApiError> {
    let Some((kind, value)) = block.iter().next() else {
        return Err(wrong_shape(path, "a content block with one member"));
    };
    match kind.as_str() {
        "text" => Ok(Some(string(value, &format!("{path}.text"))?.to_owned())),
        "document" => Ok(Some(document(model_id, value, &format!("{path}.document"))?)),
        "image" | "video" | "audio" => Err(ApiError::Validation(format!(
            "This model doesn't support the {kind} content block that you provided. {model_id} is served by a text-only local model; try again with text content."
        ))),
        "toolUse" => {
            if !have_tools {
                return Err(ApiError::Validation(TOOL_CONFIG_NEEDED.into()));
            }
            let name = value.get("name").and_then(Value::as_str).unwrap_or_default();
            let input = value.get("input").cloned().unwrap_or(Value::Null);
            Ok(Some(render_call(name, &input)))
        }
        "toolResult" => {
            if !have_tools {
                return Err(ApiError::Validation(TOOL_CONFIG_NEEDED.into()));
            }
            let is_error = value.get("status").and_then(Value::as_str) == Some("error");
            let mut text = Vec::new();
            for part in value.get("content").and_then(Value::as_array).into_iter().flatten() {
                if let Some(t) = part.get("text").and_then(Value::as_str) {
                    text.push(t.to_owned());
                } else if let Some(j) = part.get("json") {
                    text.push(j.to_string());
                } else if part.get("image").is_some() || part.get("document").is_some() {
                    return Err(ApiError::Validation(format!(
                        "This model doesn't support the image or document tool results that you provided. {model_id} is served by a text-only local model."
                    )));
                }
            }
            Ok(Some(render_result(&text.join("\n"), is_error)))
        }
        "guardContent" => Ok(Some(guard_text(value)?)),
        "reasoningContent" => {
            // Earlier reasoning is checked, then left out: the model reasons afresh each turn.
            if let Some(r) = value.get("reasoningText") {
                let text = r.get("text").and_then(Value::as_str).unwrap_or_default();
                crate::reasoning::verify(text, r.get("signature").and_then(Value::as_str), path)?;
            }
            Ok(None)
        }
        other => Err(ApiError::Validation(format!(
            "The content block type {other} is not supported."
        ))),
    }
}

/// The document formats given to the model as text.
const TEXT_DOCUMENTS: &[&str] = &["txt", "md", "csv", "html"];
/// Formats Bedrock accepts that only a model reading binary documents could use.
const BINARY_DOCUMENTS: &[&str] = &["pdf", "doc", "docx", "xls", "xlsx"];
const DOCUMENT_FORMATS: &str = "[pdf, csv, doc, docx, xls, xlsx, html, txt, md]";

/// A `document` block as text for the model: its name, then its content. Text formats are read
/// from `bytes` (base64 on the wire), `text` or `content`; binary office formats are refused.
fn document(model_id: &str, v: &Value, path: &str) -> Result<String, ApiError> {
    let format = v
        .get("format")
        .and_then(Value::as_str)
        .ok_or_else(|| not_null(&format!("{path}.format")))?;
    if !TEXT_DOCUMENTS.contains(&format) {
        if BINARY_DOCUMENTS.contains(&format) {
            return Err(ApiError::Validation(format!(
                "{model_id} is served by a text-only local model that cannot read {format} documents. Send the document as txt, md, csv or html (or its text in source.text) and try again."
            )));
        }
        return Err(constraint(
            &format!("'{format}'"),
            &format!("{path}.format"),
            &format!("Member must satisfy enum value set: {DOCUMENT_FORMATS}"),
        ));
    }
    let name = v
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| not_null(&format!("{path}.name")))?;
    let valid_name = !name.is_empty()
        && name.chars().count() <= 200
        && !name.contains("  ")
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '(' | ')' | '[' | ']'));
    if !valid_name {
        return Err(ApiError::Validation(format!(
            "The document name '{name}' is not valid. A name may contain only alphanumeric characters, single spaces, hyphens, parentheses and square brackets."
        )));
    }
    let source = v
        .get("source")
        .and_then(Value::as_object)
        .ok_or_else(|| not_null(&format!("{path}.source")))?;
    let text = if let Some(b) = source.get("bytes") {
        let raw = b
            .as_str()
            .and_then(|b| aws_smithy_types::base64::decode(b).ok())
            .ok_or_else(|| wrong_shape(&format!("{path}.source.bytes"), "base64-encoded bytes"))?;
        String::from_utf8(raw).map_err(|_| {
            ApiError::Validation(format!(
                "The document '{name}' is not UTF-8 text; a {format} document must be text."
            ))
        })?
    } else if let Some(t) = source.get("text") {
        string(t, &format!("{path}.source.text"))?.to_owned()
    } else if let Some(parts) = source.get("content") {
        let parts = parts.as_array().ok_or_else(|| {
            wrong_shape(&format!("{path}.source.content"), "a list of text blocks")
        })?;
        parts
            .iter()
            .map(|p| p.get("text").and_then(Value::as_str).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    } else if source.contains_key("s3Location") {
        return Err(ApiError::Validation(format!(
            "The document '{name}' is given as an S3 location, which this Outcrop server cannot read. Send its bytes or text instead."
        )));
    } else {
        return Err(wrong_shape(
            &format!("{path}.source"),
            "one of bytes, text or content",
        ));
    };
    Ok(format!("Document \"{name}\" ({format}):\n{text}"))
}

fn guard_text(v: &Value) -> Result<String, ApiError> {
    Ok(v.pointer("/text/text")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned())
}

fn string<'v>(v: &'v Value, path: &str) -> Result<&'v str, ApiError> {
    v.as_str().ok_or_else(|| wrong_shape(path, "a string"))
}

/// `{"tools": [{"toolSpec": {name, description, inputSchema: {json}}}], "toolChoice": ...}`.
pub fn parse_tool_config(v: &Value) -> Result<Tools, ApiError> {
    let tools = v
        .get("tools")
        .ok_or_else(|| not_null("toolConfig.tools"))?
        .as_array()
        .ok_or_else(|| wrong_shape("toolConfig.tools", "a list of tools"))?;
    let mut specs = Vec::new();
    for (i, t) in tools.iter().enumerate() {
        let Some(spec) = t.get("toolSpec") else {
            continue; // cachePoint
        };
        let name = spec
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| not_null(&format!("toolConfig.tools.{}.member.toolSpec.name", i + 1)))?;
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(constraint(
                &format!("'{name}'"),
                &format!("toolConfig.tools.{}.member.toolSpec.name", i + 1),
                "Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+",
            ));
        }
        let schema = spec.pointer("/inputSchema/json").cloned().ok_or_else(|| {
            not_null(&format!(
                "toolConfig.tools.{}.member.toolSpec.inputSchema",
                i + 1
            ))
        })?;
        match spec.get("strict") {
            None | Some(Value::Bool(false)) => {}
            // Calls are grammar-constrained whether or not a tool is strict; a strict tool's
            // schema must also be one the grammar enforces in full.
            Some(Value::Bool(true)) => crate::structured::check_schema(
                &schema,
                &format!("toolConfig.tools.{i}.toolSpec.inputSchema"),
            )?,
            Some(_) => {
                return Err(wrong_shape(
                    &format!("toolConfig.tools.{i}.toolSpec.strict"),
                    "a boolean",
                ))
            }
        }
        specs.push(ToolSpec {
            name: name.to_owned(),
            description: spec
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            input_schema: schema,
        });
    }
    if specs.is_empty() {
        return Err(ApiError::Validation(
            "The toolConfig field must contain at least one tool.".into(),
        ));
    }
    let choice = match v.get("toolChoice") {
        None => ToolChoice::Auto,
        Some(c) if c.get("auto").is_some() => ToolChoice::Auto,
        Some(c) if c.get("any").is_some() => ToolChoice::Any,
        Some(c) => match c.pointer("/tool/name").and_then(Value::as_str) {
            Some(name) if specs.iter().any(|s| s.name == name) => ToolChoice::Tool(name.to_owned()),
            Some(name) => {
                return Err(ApiError::Validation(format!(
                    "The tool {name} in toolChoice is not one of the tools in toolConfig."
                )))
            }
            None => {
                return Err(wrong_shape(
                    "toolConfig.toolChoice",
                    "one of auto, any or tool",
                ))
            }
        },
    };
    Ok(Tools { specs, choice })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conv(messages: Value) -> Result<Conversation, String> {
        conversation("m", Some(&messages), None, None).map_err(|e| e.to_string())
    }

    #[test]
    fn turns_from_blocks() {
        let c = conversation(
            "m",
            Some(&json!([{"role": "user", "content": [{"text": "Hi"}, {"cachePoint": {"type": "default"}}]},
                        {"role": "assistant", "content": [{"text": "Hello"}]},
                        {"role": "user", "content": [{"text": "Bye"}]}])),
            Some(&json!([{"text": "Be brief."}])),
            None,
        )
        .unwrap();
        assert_eq!(
            c.turns,
            vec![
                Turn::new(Role::System, "Be brief."),
                Turn::new(Role::User, "Hi"),
                Turn::new(Role::Assistant, "Hello"),
                Turn::new(Role::User, "Bye"),
            ]
        );
    }

    #[test]
    fn bedrock_conversation_rules() {
        assert_eq!(
            conv(json!([{"role": "assistant", "content": [{"text": "x"}]}])).unwrap_err(),
            MUST_START_WITH_USER
        );
        assert_eq!(
            conv(json!([{"role": "user", "content": [{"text": "x"}]}, {"role": "user", "content": [{"text": "y"}]}])).unwrap_err(),
            MUST_ALTERNATE
        );
        assert_eq!(conv(json!([])).unwrap_err(), MUST_START_WITH_USER);
        assert!(conv(json!([{"role": "user", "content": [{"image": {"format": "png", "source": {"bytes": ""}}}]}]))
            .unwrap_err()
            .contains("doesn't support the image content block"));
        assert_eq!(
            conv(json!([{"role": "user", "content": [{"toolResult": {"toolUseId": "t", "content": []}}]}])).unwrap_err(),
            TOOL_CONFIG_NEEDED
        );
        assert!(conv(json!([{"role": "robot", "content": []}]))
            .unwrap_err()
            .contains("[user, assistant]"));
        assert_eq!(
            conversation("m", None, None, None).unwrap_err().to_string(),
            "1 validation error detected: Value null at 'messages' failed to satisfy constraint: Member must not be null"
        );
    }

    #[test]
    fn tool_config() {
        let t = parse_tool_config(&json!({"tools": [{"toolSpec": {"name": "get_weather", "description": "d", "inputSchema": {"json": {"type": "object"}}}}], "toolChoice": {"tool": {"name": "get_weather"}}})).unwrap();
        assert_eq!(t.choice, ToolChoice::Tool("get_weather".into()));
        assert!(parse_tool_config(
            &json!({"tools": [{"toolSpec": {"name": "bad name", "inputSchema": {"json": {}}}}]})
        )
        .is_err());
        assert!(parse_tool_config(&json!({"tools": [{"toolSpec": {"name": "a", "inputSchema": {"json": {}}}}], "toolChoice": {"tool": {"name": "b"}}})).is_err());
    }
}
