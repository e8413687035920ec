//! Tool use, shared by Converse, the Anthropic Messages API and Nova: the tools a request
//! offers, how the backing model is told about them, the grammar that makes its calls valid
//! JSON against each tool's input schema, and how calls are found in the generated text.
//!
//! Calls are written in the form tool-trained open models (Qwen, Hermes) are trained on:
//! [`TRIGGER`], a newline, `{"name": ..., "arguments": ...}`, a newline, [`CLOSE`], one block
//! per call. A chat template that describes tools gets the definitions and tells the model
//! this itself; other models get [`Tools::instructions`] in their system turn. With a forced
//! choice (`any`, or one named tool) the whole answer is one call's JSON; with `auto` the model
//! may write text first, and the grammar takes over once the trigger appears (a lazy grammar).
//! Models also answer with a bare JSON call or a fenced json block; those are recognised too
//! when they name an offered tool.

use outcrop_types::{Constraint, Prompt, ToolDefinition, ToolPrompt, Turn};
use serde_json::{json, Value};

/// What the model writes to start a tool call.
pub const TRIGGER: &str = "<tool_call>";
/// What ends one.
pub const CLOSE: &str = "</tool_call>";

#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// A JSON Schema document.
    pub input_schema: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// The model must call some tool.
    Any,
    /// The model must call this tool.
    Tool(String),
    /// Tools are described but may not be called (Anthropic's `none`).
    None,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tools {
    pub specs: Vec<ToolSpec>,
    pub choice: ToolChoice,
}

/// A tool call found in generated text.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub name: String,
    pub input: Value,
}

impl Tools {
    /// Whether the answer is a tool call from its first token.
    pub fn forced(&self) -> bool {
        matches!(self.choice, ToolChoice::Any | ToolChoice::Tool(_))
    }

    /// The tools and how to call them, as text for the system turn of a model whose chat
    /// template does not describe tools.
    pub fn instructions(&self) -> String {
        let mut out = String::from("You can use tools.");
        if self.choice != ToolChoice::None {
            out.push_str(&format!(
                " To call a tool, write {TRIGGER} then a JSON object {{\"name\": <tool name>, \"arguments\": <arguments>}} then {CLOSE}, once per call, and nothing else."
            ));
        }
        out.push_str("\nTools:");
        for t in &self.specs {
            out.push_str(&format!(
                "\n- {}: {} Input schema: {}",
                t.name, t.description, t.input_schema
            ));
        }
        out
    }

    /// What the engine is told about the tools.
    pub fn prompt(&self) -> ToolPrompt {
        ToolPrompt {
            definitions: self
                .specs
                .iter()
                .map(|t| ToolDefinition {
                    name: t.name.clone(),
                    description: t.description.clone(),
                    parameters: t.input_schema.to_string(),
                })
                .collect(),
            instructions: self.instructions(),
        }
    }

    /// The decoding constraint: the whole answer for a forced choice, after the trigger for
    /// `auto`, none for `none`.
    pub fn constraint(&self) -> Option<Constraint> {
        let schema = match &self.choice {
            ToolChoice::None => return None,
            ToolChoice::Tool(name) => self.call_schema(Some(name)),
            ToolChoice::Auto | ToolChoice::Any => self.call_schema(None),
        }
        .to_string();
        Some(if self.forced() {
            Constraint::Json { schema }
        } else {
            Constraint::JsonAfter {
                trigger: TRIGGER.to_owned(),
                schema,
                close: CLOSE.to_owned(),
            }
        })
    }

    /// `{"name": <const>, "arguments": <the tool's schema>}`, one alternative per allowed tool.
    fn call_schema(&self, only: Option<&str>) -> Value {
        let alternatives: Vec<Value> = self
            .specs
            .iter()
            .filter(|t| only.is_none_or(|n| n == t.name))
            .map(|t| {
                json!({
                    "type": "object",
                    "properties": { "name": { "const": t.name }, "arguments": t.input_schema },
                    "required": ["name", "arguments"],
                    "additionalProperties": false,
                })
            })
            .collect();
        match <[Value; 1]>::try_from(alternatives) {
            Ok([one]) => one,
            Err(many) => json!({ "oneOf": many }),
        }
    }
}

/// The prompt of a conversation that may offer tools.
pub fn prompt(turns: Vec<Turn>, tools: Option<&Tools>) -> Prompt {
    match tools {
        Some(tools) => Prompt::ChatWithTools {
            turns,
            tools: tools.prompt(),
        },
        None => Prompt::Chat(turns),
    }
}

/// How an earlier tool call appears in the conversation given to the backing model (as the
/// tool-trained chat templates render an assistant's `tool_calls`).
pub fn render_call(name: &str, input: &Value) -> String {
    format!(
        "{TRIGGER}\n{{\"name\": {}, \"arguments\": {input}}}\n{CLOSE}",
        json!(name)
    )
}

/// How a tool's result appears in the conversation given to the backing model: as the
/// tool-trained chat templates render a `tool` message, introduced in words (small models
/// otherwise repeat their call instead of using the result).
pub fn render_result(content: &str, is_error: bool) -> String {
    let error = if is_error { "Error: " } else { "" };
    format!("The tool returned:\n<tool_response>\n{error}{content}\n</tool_response>")
}

/// Ends a user turn's parts that carry tool results with a request to answer: without it,
/// the small local models echo their tool call rather than reply (measured with
/// Qwen2.5-Coder-0.5B and 1.5B, greedy and sampled).
pub fn close_results(parts: &mut Vec<String>) {
    if parts.iter().any(|p| carries_result(p)) {
        parts.push(AFTER_RESULTS.to_owned());
    }
}

const AFTER_RESULTS: &str = "Now reply to me in plain text.";

/// Whether a turn's text carries a tool's result, as [`render_result`] writes it.
pub fn carries_result(text: &str) -> bool {
    text.contains("<tool_response>\n")
}

/// Parses a call written as `{"name", "arguments"}` (or `"input"`, or `"parameters"`).
fn parse_call(json_text: &str) -> Option<ToolCall> {
    let v: Value = serde_json::from_str(json_text.trim()).ok()?;
    let name = v.get("name")?.as_str()?.to_owned();
    let input = ["arguments", "input", "parameters"]
        .iter()
        .find_map(|k| v.get(*k))?
        .clone();
    // Some models write the arguments as a JSON string.
    let input = match input {
        Value::String(s) => serde_json::from_str(&s).ok()?,
        other => other,
    };
    input.is_object().then_some(ToolCall { name, input })
}

/// Parses the calls after the first trigger: `{json}</tool_call>` blocks separated by
/// triggers. `None` when any of them is not a complete call.
fn parse_calls(after_trigger: &str) -> Option<Vec<ToolCall>> {
    after_trigger
        .split(TRIGGER)
        .map(|block| {
            let block = block.trim();
            let json = block.strip_suffix(CLOSE).unwrap_or(block);
            parse_call(json)
        })
        .collect()
}

/// A whole answer that is one call written without the trigger: bare JSON, or a fenced json
/// block, naming one of `names`.
fn parse_untagged(text: &str, names: &[String]) -> Option<ToolCall> {
    let text = text.trim();
    let json = match text.strip_prefix("```") {
        Some(fenced) => fenced
            .strip_prefix("json")
            .unwrap_or(fenced)
            .strip_suffix("```")?,
        None => text,
    };
    parse_call(json).filter(|c| names.contains(&c.name))
}

/// A finished generation's text and tool calls.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub text: String,
    pub calls: Vec<ToolCall>,
    /// A call was begun but is not a valid call (it stays text).
    pub malformed: bool,
}

/// Splits a finished generation into its text and its tool calls, if it made any. A call
/// that does not parse (cut short by `max_tokens`) stays text.
pub fn split(tools: Option<&Tools>, text: &str) -> Split {
    let mut s = StreamSplit::new(tools);
    let mut out = s.push(text);
    let (rest, calls) = s.finish();
    out.push_str(&rest);
    Split {
        text: out,
        calls,
        malformed: s.malformed(),
    }
}

/// [`split`] for text that arrives piece by piece: text before a call is released as soon as
/// it cannot be the start of the trigger; calls are held until the end. An answer that opens
/// with `{` or a code fence is held whole, as it may be an untagged call.
#[derive(Debug, Default, Clone)]
pub struct StreamSplit {
    active: bool,
    forced: bool,
    names: Vec<String>,
    held: String,
    /// Some text was shown: an untagged call can no longer be the whole answer.
    released: bool,
    in_call: bool,
    malformed: bool,
}

impl StreamSplit {
    pub fn new(tools: Option<&Tools>) -> Self {
        StreamSplit {
            active: tools.is_some_and(|t| t.choice != ToolChoice::None),
            forced: tools.is_some_and(Tools::forced),
            names: tools
                .map(|t| t.specs.iter().map(|s| s.name.clone()).collect())
                .unwrap_or_default(),
            ..Default::default()
        }
    }

    /// Takes generated text; returns the text that may be shown now.
    pub fn push(&mut self, text: &str) -> String {
        if !self.active {
            return text.to_owned();
        }
        self.held.push_str(text);
        if self.forced || self.in_call {
            return String::new();
        }
        if let Some(at) = self.held.find(TRIGGER) {
            self.in_call = true;
            let before = self.held[..at].to_owned();
            self.held.drain(..at + TRIGGER.len());
            self.released |= !before.is_empty();
            return before;
        }
        if !self.released && may_open_untagged(&self.held) {
            return String::new();
        }
        // Keep back a tail that could still become the trigger.
        let keep = crate::reasoning::partial_tail(&self.held, TRIGGER);
        let release = self.held.len() - keep;
        self.released |= release > 0;
        self.held.drain(..release).collect()
    }

    /// At the end: text still held back, and the calls made.
    pub fn finish(&mut self) -> (String, Vec<ToolCall>) {
        let held = std::mem::take(&mut self.held);
        if self.forced || self.in_call {
            let calls = if self.in_call {
                parse_calls(&held)
            } else {
                parse_call(&held).map(|c| vec![c])
            };
            if let Some(calls) = calls {
                return (String::new(), calls);
            }
            self.malformed = true;
            let prefix = if self.in_call { TRIGGER } else { "" };
            return (format!("{prefix}{held}"), Vec::new());
        }
        if !self.released {
            if let Some(call) = parse_untagged(&held, &self.names) {
                return (String::new(), vec![call]);
            }
        }
        (held, Vec::new())
    }
}

/// Whether text at the start of an answer may still become an untagged call.
fn may_open_untagged(held: &str) -> bool {
    let t = held.trim_start();
    t.is_empty() || t.starts_with('{') || t.starts_with("```") || "```".starts_with(t)
}

impl StreamSplit {
    /// Whether [`StreamSplit::finish`] found a begun call that does not parse.
    pub fn malformed(&self) -> bool {
        self.malformed
    }
}

/// A fresh tool-use id in the given style (`tooluse_` for Converse, `toolu_bdrk_` for
/// Anthropic).
pub fn new_id(prefix: &str) -> String {
    let raw = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}{}", &raw[..24])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools(choice: ToolChoice) -> Tools {
        Tools {
            specs: vec![
                ToolSpec {
                    name: "weather".into(),
                    description: "Weather for a city.".into(),
                    input_schema: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
                },
                ToolSpec {
                    name: "time".into(),
                    description: "The time.".into(),
                    input_schema: json!({"type": "object"}),
                },
            ],
            choice,
        }
    }

    #[test]
    fn constraints_follow_the_choice() {
        assert_eq!(tools(ToolChoice::None).constraint(), None);
        let Some(Constraint::Json { schema }) = tools(ToolChoice::Tool("time".into())).constraint()
        else {
            panic!()
        };
        let v: Value = serde_json::from_str(&schema).unwrap();
        assert_eq!(v["properties"]["name"]["const"], "time");
        let Some(Constraint::JsonAfter {
            trigger,
            schema,
            close,
        }) = tools(ToolChoice::Auto).constraint()
        else {
            panic!()
        };
        assert_eq!((trigger.as_str(), close.as_str()), (TRIGGER, CLOSE));
        assert_eq!(
            serde_json::from_str::<Value>(&schema).unwrap()["oneOf"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    fn call(name: &str, input: Value) -> ToolCall {
        ToolCall {
            name: name.into(),
            input,
        }
    }

    #[test]
    fn splits_text_and_calls() {
        let auto = tools(ToolChoice::Auto);
        let s = split(
            Some(&auto),
            "Let me check. <tool_call>\n{\"name\": \"weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>",
        );
        assert_eq!(s.text, "Let me check. ");
        assert_eq!(s.calls, vec![call("weather", json!({"city": "Oslo"}))]);
        let s = split(Some(&auto), "Just text <tool");
        assert_eq!(
            (s.text.as_str(), s.calls, s.malformed),
            ("Just text <tool", vec![], false)
        );
        let any = tools(ToolChoice::Any);
        assert_eq!(
            split(Some(&any), r#"{"name": "time", "arguments": {}}"#).calls,
            vec![call("time", json!({}))]
        );
        // Cut short: stays text, and is reported as a malformed call.
        let s = split(Some(&any), r#"{"name": "ti"#);
        assert_eq!((s.calls, s.malformed), (vec![], true));
        assert_eq!(split(None, "<tool_call>{}").text, "<tool_call>{}");
    }

    #[test]
    fn several_calls_in_one_answer() {
        let auto = tools(ToolChoice::Auto);
        let s = split(
            Some(&auto),
            "<tool_call>\n{\"name\": \"weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"time\", \"arguments\": {}}\n</tool_call>",
        );
        assert_eq!(
            s.calls,
            vec![
                call("weather", json!({"city": "Oslo"})),
                call("time", json!({}))
            ]
        );
        assert_eq!(s.text, "");
        // The second call cut short: nothing is called, all of it stays text.
        let s = split(
            Some(&auto),
            "<tool_call>{\"name\": \"time\", \"arguments\": {}}</tool_call><tool_call>{\"na",
        );
        assert_eq!((s.calls.len(), s.malformed), (0, true));
    }

    #[test]
    fn untagged_calls_are_recognised() {
        let auto = tools(ToolChoice::Auto);
        for text in [
            "{\"name\": \"weather\", \"arguments\": {\"city\": \"Oslo\"}}",
            "```json\n{\"name\": \"weather\", \"arguments\": {\"city\": \"Oslo\"}}\n```",
            " {\"name\": \"weather\", \"arguments\": \"{\\\"city\\\": \\\"Oslo\\\"}\"}",
        ] {
            let s = split(Some(&auto), text);
            assert_eq!(
                s.calls,
                vec![call("weather", json!({"city": "Oslo"}))],
                "{text}"
            );
            assert_eq!(s.text, "");
        }
        // JSON that names no offered tool, or follows text, is text.
        let other = "{\"name\": \"search\", \"arguments\": {}}";
        assert_eq!(split(Some(&auto), other).text, other);
        let late = "Here: {\"name\": \"time\", \"arguments\": {}}";
        assert_eq!(split(Some(&auto), late).text, late);
    }

    #[test]
    fn history_renders_as_the_templates_do() {
        assert_eq!(
            render_call("time", &json!({"tz": "UTC"})),
            "<tool_call>\n{\"name\": \"time\", \"arguments\": {\"tz\":\"UTC\"}}\n</tool_call>"
        );
        let result = render_result("12:00", false);
        assert_eq!(
            result,
            "The tool returned:\n<tool_response>\n12:00\n</tool_response>"
        );
        assert!(carries_result(&result));
        assert!(render_result("no such zone", true).contains("Error: no such zone"));
        let mut parts = vec![result.clone(), "thanks".to_owned()];
        close_results(&mut parts);
        assert_eq!(parts.last().map(String::as_str), Some(AFTER_RESULTS));
        let mut parts = vec!["no result here".to_owned()];
        close_results(&mut parts);
        assert_eq!(parts.len(), 1);
    }

    #[test]
    fn streamed_text_never_leaks_the_trigger() {
        let auto = tools(ToolChoice::Auto);
        let mut s = StreamSplit::new(Some(&auto));
        let mut shown = String::new();
        for piece in [
            "Hi",
            " <to",
            "ol_c",
            "all>\n{\"name\": \"time\", ",
            "\"arguments\": {}}\n</tool_call>",
        ] {
            shown.push_str(&s.push(piece));
        }
        let (rest, calls) = s.finish();
        assert_eq!(shown + &rest, "Hi ");
        assert_eq!(calls[0].name, "time");
        // A near miss is released.
        let mut s = StreamSplit::new(Some(&auto));
        assert_eq!(s.push("a <tox"), "a <tox");
        // An answer that opens like JSON is held, then released when it is no call.
        let mut s = StreamSplit::new(Some(&auto));
        assert_eq!(s.push("{\"a\": 1}"), "");
        assert_eq!(s.finish(), ("{\"a\": 1}".to_owned(), vec![]));
    }
}
