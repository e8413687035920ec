//! An OpenAI Chat Completions body, read into the Converse request the same model would get:
//! messages become Converse messages (tool calls `toolUse`, tool messages `toolResult`), tools
//! a `toolConfig`, then Converse's own parser renders and checks the conversation. Only what
//! Converse cannot say (temperatures up to 2, seeds, `response_format`, `tool_choice: none`)
//! is set on the parsed request afterwards.

use crate::converse::{self, ConverseRequest};
use crate::tools::ToolChoice;
use crate::ApiError;
use outcrop_models::CatalogEntry;
use outcrop_types::Constraint;
use serde_json::{json, Map, Value};

/// A Chat Completions request, validated.
pub(crate) struct ChatRequest {
    pub converse: ConverseRequest,
    /// `stream_options.include_usage`: a last chunk with the usage.
    pub include_usage: bool,
    /// The model as the client named it, echoed in responses.
    pub model: String,
    /// Choices to generate (`n`), each with its own seed.
    pub choices: u32,
}

/// The most choices one request may ask for.
const MAX_CHOICES: u64 = 8;

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::Validation(message.into())
}

/// The text of a message's `content`: a string, or text parts.
fn text_of(content: Option<&Value>, at: &str) -> Result<String, ApiError> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut text = Vec::new();
            for (i, part) in parts.iter().enumerate() {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => text.push(
                        part.get("text")
                            .and_then(Value::as_str)
                            .ok_or_else(|| invalid(format!("{at}.content[{i}].text must be a string.")))?
                            .to_owned(),
                    ),
                    Some(kind @ ("image_url" | "input_audio" | "file")) => {
                        return Err(invalid(format!(
                            "{at}.content[{i}]: {kind} content is not supported; this model reads text only."
                        )))
                    }
                    _ => return Err(invalid(format!("{at}.content[{i}].type must be 'text'."))),
                }
            }
            Ok(text.concat())
        }
        Some(_) => Err(invalid(format!(
            "{at}.content must be a string or a list of content parts."
        ))),
    }
}

/// Appends `blocks` to the conversation as `role`, merging with the previous message of the
/// same role (tool results and the user's next words are one Converse user message).
fn push(messages: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    if let Some(last) = messages.last_mut() {
        if last["role"] == role {
            if let Some(content) = last["content"].as_array_mut() {
                content.extend(blocks);
                return;
            }
        }
    }
    messages.push(json!({ "role": role, "content": blocks }));
}

fn converse_messages(messages: &[Value]) -> Result<(Vec<Value>, Vec<Value>), ApiError> {
    let (mut system, mut out) = (Vec::new(), Vec::new());
    for (i, m) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("{at}.role is required.")))?;
        match role {
            "system" | "developer" => {
                let text = text_of(m.get("content"), &at)?;
                if !text.is_empty() {
                    system.push(json!({ "text": text }));
                }
            }
            "user" => {
                let text = text_of(m.get("content"), &at)?;
                push(&mut out, "user", vec![json!({ "text": text })]);
            }
            "assistant" => {
                let mut blocks = Vec::new();
                let text = text_of(m.get("content"), &at)?;
                if !text.is_empty() {
                    blocks.push(json!({ "text": text }));
                }
                for (j, call) in m
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    let at = format!("{at}.tool_calls[{j}]");
                    let id = call
                        .get("id")
                        .and_then(Value::as_str)
                        .ok_or_else(|| invalid(format!("{at}.id is required.")))?;
                    let function = call
                        .get("function")
                        .ok_or_else(|| invalid(format!("{at}.function is required.")))?;
                    let name = function
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| invalid(format!("{at}.function.name is required.")))?;
                    let arguments = function
                        .get("arguments")
                        .and_then(Value::as_str)
                        .unwrap_or("{}");
                    let input: Value = serde_json::from_str(arguments).map_err(|_| {
                        invalid(format!("{at}.function.arguments must be a JSON object."))
                    })?;
                    blocks.push(
                        json!({ "toolUse": { "toolUseId": id, "name": name, "input": input } }),
                    );
                }
                if blocks.is_empty() {
                    blocks.push(json!({ "text": "" }));
                }
                push(&mut out, "assistant", blocks);
            }
            "tool" => {
                let id = m
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(format!("{at}.tool_call_id is required.")))?;
                let text = text_of(m.get("content"), &at)?;
                push(
                    &mut out,
                    "user",
                    vec![
                        json!({ "toolResult": { "toolUseId": id, "content": [{ "text": text }] } }),
                    ],
                );
            }
            other => {
                return Err(invalid(format!(
                    "{at}.role '{other}' is not one of system, developer, user, assistant, tool."
                )))
            }
        }
    }
    Ok((system, out))
}

fn tool_config(map: &Map<String, Value>) -> Result<Option<Value>, ApiError> {
    let Some(tools) = map.get("tools").filter(|t| !t.is_null()) else {
        return Ok(None);
    };
    let tools = tools
        .as_array()
        .ok_or_else(|| invalid("tools must be a list."))?;
    if tools.is_empty() {
        return Ok(None);
    }
    let mut specs = Vec::new();
    for (i, t) in tools.iter().enumerate() {
        if t.get("type").and_then(Value::as_str) != Some("function") {
            return Err(invalid(format!("tools[{i}].type must be 'function'.")));
        }
        let f = t
            .get("function")
            .ok_or_else(|| invalid(format!("tools[{i}].function is required.")))?;
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("tools[{i}].function.name is required.")))?;
        let parameters = f
            .get("parameters")
            .cloned()
            .unwrap_or_else(|| json!({ "type": "object", "properties": {} }));
        let mut spec = json!({ "name": name, "inputSchema": { "json": parameters } });
        if let Some(d) = f.get("description").and_then(Value::as_str) {
            spec["description"] = json!(d);
        }
        specs.push(json!({ "toolSpec": spec }));
    }
    let choice = match map.get("tool_choice") {
        None | Some(Value::Null) => json!({ "auto": {} }),
        Some(Value::String(s)) => match s.as_str() {
            "auto" | "none" => json!({ "auto": {} }),
            "required" => json!({ "any": {} }),
            other => {
                return Err(invalid(format!(
                    "tool_choice '{other}' is not one of none, auto, required."
                )))
            }
        },
        Some(choice) => {
            let name = choice
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("tool_choice must be none, auto, required, or {\"type\": \"function\", \"function\": {\"name\": ...}}."))?;
            json!({ "tool": { "name": name } })
        }
    };
    Ok(Some(json!({ "tools": specs, "toolChoice": choice })))
}

/// The grammar for `response_format`, if it asks for JSON.
fn response_format(map: &Map<String, Value>) -> Result<Option<Constraint>, ApiError> {
    let Some(format) = map.get("response_format").filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(Constraint::Json {
            schema: json!({ "type": "object" }).to_string(),
        })),
        Some("json_schema") => {
            let schema = format
                .get("json_schema")
                .and_then(|s| s.get("schema"))
                .ok_or_else(|| invalid("response_format.json_schema.schema is required."))?;
            if !schema.is_object() {
                return Err(invalid(
                    "response_format.json_schema.schema must be a JSON Schema object.",
                ));
            }
            crate::structured::check_schema(schema, "response_format.json_schema")?;
            Ok(Some(Constraint::Json {
                schema: schema.to_string(),
            }))
        }
        _ => Err(invalid(
            "response_format.type must be one of text, json_object, json_schema.",
        )),
    }
}

fn number(
    map: &Map<String, Value>,
    key: &str,
    min: f64,
    max: f64,
) -> Result<Option<f64>, ApiError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(invalid(format!(
                "{key} must be a number from {min} to {max}."
            ))),
        },
    }
}

/// `seed`: the sampler's seed unless the body sets one.
pub(crate) fn parse(
    entry: &CatalogEntry,
    body: &[u8],
    default_seed: u32,
) -> Result<ChatRequest, ApiError> {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return Err(invalid("The request body must be a JSON object."));
    };
    let model = map
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let choices = match map.get("n").filter(|n| !n.is_null()) {
        None => 1,
        Some(n) => n
            .as_u64()
            .filter(|n| (1..=MAX_CHOICES).contains(n))
            .ok_or_else(|| invalid(format!("n must be an integer from 1 to {MAX_CHOICES}.")))?
            as u32,
    };
    if choices > 1 && map.get("stream").and_then(Value::as_bool) == Some(true) {
        return Err(invalid(
            "n greater than 1 cannot be streamed here; ask for one choice, or do not stream.",
        ));
    }
    if map.get("logprobs").and_then(Value::as_bool) == Some(true)
        || map.get("top_logprobs").is_some_and(|v| !v.is_null())
    {
        return Err(invalid("logprobs are not available from this model."));
    }
    let messages = map
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| invalid("messages is required: a non-empty list of messages."))?;
    let (system, messages) = converse_messages(messages)?;
    let mut inference = Map::new();
    let max_tokens = map
        .get("max_completion_tokens")
        .filter(|v| !v.is_null())
        .or_else(|| map.get("max_tokens").filter(|v| !v.is_null()));
    if let Some(max) = max_tokens {
        let max = max
            .as_u64()
            .filter(|m| *m >= 1)
            .ok_or_else(|| invalid("max_completion_tokens must be a positive integer."))?;
        inference.insert("maxTokens".into(), json!(max.min(i32::MAX as u64)));
    }
    if let Some(top_p) = number(&map, "top_p", 0.0, 1.0)? {
        inference.insert("topP".into(), json!(top_p));
    }
    match map.get("stop") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            inference.insert("stopSequences".into(), json!([s]));
        }
        Some(Value::Array(a)) if a.len() <= 4 && a.iter().all(Value::is_string) => {
            inference.insert("stopSequences".into(), json!(a));
        }
        Some(_) => {
            return Err(invalid(
                "stop must be a string or a list of at most 4 strings.",
            ))
        }
    }
    let temperature = number(&map, "temperature", 0.0, 2.0)?;
    let seed = match map.get("seed") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .ok_or_else(|| invalid("seed must be an integer."))?,
        ),
    };
    let constraint = response_format(&map)?;
    let tool_config = tool_config(&map)?;
    if constraint.is_some() && tool_config.is_some() {
        return Err(invalid(
            "response_format with tools is not supported; use one or the other.",
        ));
    }
    let no_tools = map.get("tool_choice").and_then(Value::as_str) == Some("none");
    let mut converse_body = json!({ "messages": messages, "inferenceConfig": inference });
    if !system.is_empty() {
        converse_body["system"] = json!(system);
    }
    if let Some(config) = tool_config {
        converse_body["toolConfig"] = config;
    }
    let mut converse = converse::parse(entry, converse_body.to_string().as_bytes(), default_seed)?;
    let sampling = &mut converse.request.sampling;
    if let Some(t) = temperature {
        sampling.temperature = t as f32;
    }
    if let Some(seed) = seed {
        sampling.seed = seed as u32;
    }
    if let Some(c) = constraint {
        sampling.constraint = Some(c);
    }
    if no_tools {
        sampling.constraint = None;
        if let Some(tools) = converse.tools.as_mut() {
            tools.choice = ToolChoice::None;
        }
    }
    let include_usage = map
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(ChatRequest {
        converse,
        include_usage,
        model,
        choices,
    })
}
