//! The script file: rules, each a condition on the call and the reply it gets.
//!
//! ```toml
//! [[rule]]
//! model = "anthropic.claude-3-haiku-*"   # the catalog model id; `*` matches any run
//! operation = "ConverseStream"            # the operation's name
//! contains = "weather"                    # a substring of the last user message
//! regex = "(?i)^what is"                  # or a regular expression on it
//! tools = true                            # the request offers tools (or not)
//! tool_result = false                     # the last user message carries a tool's result
//! times = 1                               # answers this many requests, then no longer matches
//! [rule.reply]
//! text = "Let me check."                  # the answer's text, or:
//! tool_call = { name = "get_weather", input = { city = "Paris" } }
//! json = { answer = 42 }                  # structured output
//! fault = "ThrottlingException"           # a Bedrock exception...
//! message = "Rate exceeded."              # ...with this message
//! after_chunks = 3                        # in the stream, after this many chunks
//! ttft_ms = 200                           # delay before the first chunk
//! chunk_ms = 20                           # delay between chunks
//! input_tokens = 12                       # declared token counts (else: words)
//! output_tokens = 5
//! ```
//! The first rule that matches answers; a request no rule matches goes to the fallback
//! engine, or fails with a ValidationException naming it.

use outcrop_types::FaultKind;
use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default, rename = "rule")]
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    model: Option<String>,
    operation: Option<String>,
    contains: Option<String>,
    regex: Option<String>,
    tools: Option<bool>,
    tool_result: Option<bool>,
    times: Option<u32>,
    reply: RawReply,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReply {
    text: Option<String>,
    tool_call: Option<ToolCall>,
    tool_calls: Option<Vec<ToolCall>>,
    json: Option<Value>,
    fault: Option<String>,
    message: Option<String>,
    after_chunks: Option<u32>,
    #[serde(default)]
    ttft_ms: u64,
    #[serde(default)]
    chunk_ms: u64,
    input_tokens: Option<u32>,
    output_tokens: Option<u32>,
}

/// A tool call a rule answers with.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolCall {
    pub name: String,
    #[serde(default = "empty_object")]
    pub input: Value,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// What the call looks like to the rules.
#[derive(Debug, Clone, Default)]
pub struct Call<'a> {
    pub model_id: &'a str,
    pub operation: &'a str,
    pub last_user: &'a str,
    pub tools: bool,
    pub tool_result: bool,
}

/// A rule, checked when the script was read.
#[derive(Debug)]
pub struct Rule {
    model: Option<Regex>,
    operation: Option<String>,
    contains: Option<String>,
    regex: Option<Regex>,
    tools: Option<bool>,
    tool_result: Option<bool>,
    /// How many requests the rule answers (counted since the script was read); `None`: all.
    pub times: Option<u32>,
    pub reply: Reply,
}

/// What a matching rule answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub answer: Answer,
    /// For a fault: raised after this many chunks of `text` (in a stream); `None`: before the
    /// first byte.
    pub after_chunks: Option<u32>,
    pub ttft_ms: u64,
    pub chunk_ms: u64,
    pub input_tokens: Option<u32>,
    pub output_tokens: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Text(String),
    /// One or several tool calls, in order.
    ToolCalls(Vec<ToolCall>),
    Json(Value),
    /// A fault, with the text streamed before it (if any).
    Fault {
        kind: FaultKind,
        message: String,
        text: String,
    },
}

/// Why a script could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    #[error("rule {index}: {message}")]
    Rule { index: usize, message: String },
}

/// A `*` wildcard pattern as an anchored regular expression.
fn glob(pattern: &str) -> Regex {
    let parts: Vec<String> = pattern.split('*').map(regex::escape).collect();
    Regex::new(&format!("^{}$", parts.join(".*"))).expect("escaped parts always compile")
}

fn rule(index: usize, raw: RawRule) -> Result<Rule, ScriptError> {
    let bad = |message: String| ScriptError::Rule { index, message };
    let r = raw.reply;
    let given = [
        r.text.is_some() && r.fault.is_none(),
        r.tool_call.is_some() || r.tool_calls.is_some(),
        r.json.is_some(),
        r.fault.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1
        || (r.tool_call.is_some() && r.tool_calls.is_some())
    {
        return Err(bad(
            "reply needs exactly one of text, tool_call, tool_calls, json, fault".into(),
        ));
    }
    let answer = if let Some(name) = r.fault {
        let kind = FaultKind::parse(&name).ok_or_else(|| {
            bad(format!("fault {name:?} is not one of ThrottlingException, ModelTimeoutException, ServiceUnavailableException, ModelNotReadyException, ModelErrorException, ModelStreamErrorException, ValidationException, InternalServerException"))
        })?;
        Answer::Fault {
            kind,
            message: r.message.unwrap_or_else(|| format!("Scripted {name}.")),
            text: r.text.unwrap_or_default(),
        }
    } else if let Some(calls) = r.tool_calls.or(r.tool_call.map(|c| vec![c])) {
        if calls.is_empty() {
            return Err(bad("tool_calls needs at least one call".into()));
        }
        if calls.iter().any(|c| !c.input.is_object()) {
            return Err(bad("tool_call.input must be a table".into()));
        }
        Answer::ToolCalls(calls)
    } else if let Some(json) = r.json {
        Answer::Json(json)
    } else {
        Answer::Text(r.text.unwrap_or_default())
    };
    if r.after_chunks.is_some() && !matches!(answer, Answer::Fault { .. }) {
        return Err(bad("after_chunks goes with a fault".into()));
    }
    let regex = raw
        .regex
        .map(|re| Regex::new(&re).map_err(|e| bad(format!("regex: {e}"))))
        .transpose()?;
    Ok(Rule {
        model: raw.model.as_deref().map(glob),
        operation: raw.operation,
        contains: raw.contains,
        regex,
        tools: raw.tools,
        tool_result: raw.tool_result,
        times: raw.times,
        reply: Reply {
            answer,
            after_chunks: r.after_chunks,
            ttft_ms: r.ttft_ms,
            chunk_ms: r.chunk_ms,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
        },
    })
}

/// Reads a script.
pub fn parse(text: &str) -> Result<Vec<Rule>, ScriptError> {
    let file: File = toml::from_str(text)?;
    file.rules
        .into_iter()
        .enumerate()
        .map(|(i, r)| rule(i + 1, r))
        .collect()
}

impl Rule {
    pub fn matches(&self, call: &Call<'_>) -> bool {
        self.model
            .as_ref()
            .is_none_or(|m| m.is_match(call.model_id))
            && self
                .operation
                .as_deref()
                .is_none_or(|o| o == call.operation)
            && self
                .contains
                .as_deref()
                .is_none_or(|c| call.last_user.contains(c))
            && self
                .regex
                .as_ref()
                .is_none_or(|r| r.is_match(call.last_user))
            && self.tools.is_none_or(|t| t == call.tools)
            && self.tool_result.is_none_or(|t| t == call.tool_result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_rule_answers() {
        let rules = parse(
            r#"
            [[rule]]
            model = "anthropic.*"
            contains = "weather"
            tools = true
            reply = { tool_call = { name = "get_weather", input = { city = "Paris" } } }

            [[rule]]
            regex = "(?i)^hello"
            operation = "Converse"
            reply = { text = "Hi!", ttft_ms = 5 }

            [[rule]]
            reply = { fault = "ThrottlingException", message = "Slow down.", after_chunks = 2, text = "a b c" }
            "#,
        )
        .unwrap();
        let call = |model, operation, last_user, tools| Call {
            model_id: model,
            operation,
            last_user,
            tools,
            tool_result: false,
        };
        let first = |c: &Call<'_>| rules.iter().position(|r| r.matches(c));
        assert_eq!(
            first(&call(
                "anthropic.claude-v2",
                "Converse",
                "the weather?",
                true
            )),
            Some(0)
        );
        assert_eq!(
            first(&call(
                "anthropic.claude-v2",
                "Converse",
                "the weather?",
                false
            )),
            Some(2)
        );
        assert_eq!(
            first(&call("meta.llama3", "Converse", "Hello there", false)),
            Some(1)
        );
        assert_eq!(
            first(&call("meta.llama3", "InvokeModel", "Hello there", false)),
            Some(2)
        );
        assert_eq!(rules[1].reply.ttft_ms, 5);
        assert_eq!(
            rules[2].reply.answer,
            Answer::Fault {
                kind: FaultKind::Throttling,
                message: "Slow down.".into(),
                text: "a b c".into()
            }
        );
    }

    #[test]
    fn bad_rules_are_named() {
        for (text, says) in [
            ("[[rule]]\nreply = {}", "exactly one of"),
            (
                "[[rule]]\nreply = { text = \"a\", json = 1 }",
                "exactly one of",
            ),
            ("[[rule]]\nreply = { fault = \"Oops\" }", "is not one of"),
            ("[[rule]]\nregex = \"(\"\nreply = { text = \"a\" }", "regex"),
            (
                "[[rule]]\nreply = { text = \"a\", after_chunks = 1 }",
                "after_chunks",
            ),
            (
                "[[rule]]\nmodle = \"x\"\nreply = { text = \"a\" }",
                "unknown field",
            ),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
