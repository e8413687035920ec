//! Tool use, shared by Converse, the Anthropic Messages API and Nova: the tools a request
//! offers, how the backing model is told about them, the grammar that makes its calls valid
//! JSON against each tool's input schema, and how a call is found in the generated text.
//!
//! The backing model calls a tool by writing [`TRIGGER`] followed by
//! `{"name": ..., "input": ...}`. With a forced choice (`any`, or one named tool) the whole
//! answer is that JSON; with `auto` the model may write text first, and the grammar takes over
//! once the trigger appears (a lazy grammar).

use outcrop_types::{Constraint, Role, Turn};
use serde_json::{json, Value};

/// What the model writes to start a tool call.
pub const TRIGGER: &str = "<tool_call>";

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

    /// The text added to the system prompt so the backing model knows the tools.
    pub fn instructions(&self) -> String {
        let mut out = String::from("You can use tools.");
        if self.choice != ToolChoice::None {
            out.push_str(&format!(
                " To call a tool, write {TRIGGER} followed by a JSON object {{\"name\": <tool name>, \"input\": <arguments>}} and nothing else."
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
            }
        })
    }

    /// `{"name": <const>, "input": <the tool's schema>}`, one alternative per allowed tool.
    fn call_schema(&self, only: Option<&str>) -> Value {
        let alternatives: Vec<Value> = self
            .specs
            .iter()
            .filter(|t| only.is_none_or(|n| n == t.name))
            .map(|t| {
                json!({
                    "type": "object",
                    "properties": { "name": { "const": t.name }, "input": t.input_schema },
                    "required": ["name", "input"],
                    "additionalProperties": false,
                })
            })
            .collect();
        match <[Value; 1]>::try_from(alternatives) {
            Ok([one]) => one,
            Err(many) => json!({ "oneOf": many }),
        }
    }

    /// Adds the tool instructions to the conversation's system turn.
    pub fn add_to(&self, turns: &mut Vec<Turn>) {
        let text = self.instructions();
        match turns.first_mut() {
            Some(t) if t.role == Role::System => {
                t.content.push_str("\n\n");
                t.content.push_str(&text);
            }
            _ => turns.insert(0, Turn::new(Role::System, text)),
        }
    }
}

/// How an earlier tool call appears in the conversation given to the backing model.
pub fn render_call(name: &str, input: &Value) -> String {
    format!("{TRIGGER}{}", json!({ "name": name, "input": input }))
}

/// How a tool's result appears in the conversation given to the backing model.
pub fn render_result(tool_use_id: &str, content: &str, is_error: bool) -> String {
    let what = if is_error {
        "Tool error"
    } else {
        "Tool result"
    };
    format!("{what} ({tool_use_id}): {content}")
}

/// Whether a turn's text carries a tool's result, as [`render_result`] writes it.
pub fn carries_result(text: &str) -> bool {
    text.contains("Tool result (") || text.contains("Tool error (")
}

/// Parses a call written as `{"name", "input"}`.
fn parse_call(json_text: &str) -> Option<ToolCall> {
    let v: Value = serde_json::from_str(json_text.trim()).ok()?;
    let name = v.get("name")?.as_str()?.to_owned();
    let input = v.get("input")?.clone();
    input.is_object().then_some(ToolCall { name, input })
}

/// A finished generation's text and tool call.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub text: String,
    pub call: Option<ToolCall>,
    /// A call was begun but is not a valid call (it stays text).
    pub malformed: bool,
}

/// Splits a finished generation into its text and its tool call, if it made one. A call that
/// does not parse (cut short by `max_tokens`) stays text.
pub fn split(tools: Option<&Tools>, text: &str) -> Split {
    let mut s = StreamSplit::new(tools);
    let mut out = s.push(text);
    let (rest, call) = s.finish();
    out.push_str(&rest);
    Split {
        text: out,
        call,
        malformed: s.malformed(),
    }
}

/// [`split`] for text that arrives piece by piece: text before a call is released as soon as
/// it cannot be the start of the trigger; the call is held until the end.
#[derive(Debug, Default, Clone)]
pub struct StreamSplit {
    active: bool,
    forced: bool,
    held: String,
    in_call: bool,
    malformed: bool,
}

impl StreamSplit {
    pub fn new(tools: Option<&Tools>) -> Self {
        StreamSplit {
            active: tools.is_some_and(|t| t.choice != ToolChoice::None),
            forced: tools.is_some_and(Tools::forced),
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
            return before;
        }
        // Keep back a tail that could still become the trigger.
        let keep = crate::reasoning::partial_tail(&self.held, TRIGGER);
        let release = self.held.len() - keep;
        self.held.drain(..release).collect()
    }

    /// At the end: text still held back, and the call if one was made.
    pub fn finish(&mut self) -> (String, Option<ToolCall>) {
        let held = std::mem::take(&mut self.held);
        if self.forced || self.in_call {
            if let Some(call) = parse_call(&held) {
                return (String::new(), Some(call));
            }
            self.malformed = true;
            let prefix = if self.in_call { TRIGGER } else { "" };
            return (format!("{prefix}{held}"), None);
        }
        (held, None)
    }
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
        let Some(Constraint::JsonAfter { trigger, schema }) = tools(ToolChoice::Auto).constraint()
        else {
            panic!()
        };
        assert_eq!(trigger, TRIGGER);
        assert_eq!(
            serde_json::from_str::<Value>(&schema).unwrap()["oneOf"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn splits_text_and_calls() {
        let auto = tools(ToolChoice::Auto);
        let s = split(
            Some(&auto),
            r#"Let me check. <tool_call>{"name": "weather", "input": {"city": "Oslo"}}"#,
        );
        assert_eq!(s.text, "Let me check. ");
        assert_eq!(
            s.call,
            Some(ToolCall {
                name: "weather".into(),
                input: json!({"city": "Oslo"})
            })
        );
        let s = split(Some(&auto), "Just text <tool");
        assert_eq!(
            (s.text.as_str(), s.call, s.malformed),
            ("Just text <tool", None, false)
        );
        let any = tools(ToolChoice::Any);
        assert_eq!(
            split(Some(&any), r#"{"name": "time", "input": {}}"#)
                .call
                .unwrap()
                .name,
            "time"
        );
        // Cut short: stays text, and is reported as a malformed call.
        let s = split(Some(&any), r#"{"name": "ti"#);
        assert_eq!((s.call, s.malformed), (None, true));
        assert_eq!(split(None, "<tool_call>{}").text, "<tool_call>{}");
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
            "all>{\"name\": \"time\", ",
            "\"input\": {}}",
        ] {
            shown.push_str(&s.push(piece));
        }
        let (rest, call) = s.finish();
        assert_eq!(shown + &rest, "Hi ");
        assert_eq!(call.unwrap().name, "time");
        // A near miss is released.
        let mut s = StreamSplit::new(Some(&auto));
        assert_eq!(s.push("a <tox"), "a <tox");
    }
}
