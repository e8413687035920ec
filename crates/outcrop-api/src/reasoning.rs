//! Reasoning: models that think before they answer write their reasoning between `<think>`
//! and `</think>` at the start of the output (DeepSeek-R1 distills, Qwen3, models served that
//! way by a remote engine or a script). The reasoning is split from the answer and returned as
//! Converse `reasoningContent` blocks or Messages API `thinking` blocks when the request asked
//! for it (Claude's `thinking`, Nova's `reasoningConfig`, `reasoning_effort`), and dropped
//! otherwise, so it never leaks into the answer's text. Its tokens are output tokens either way,
//! as on Bedrock.
//!
//! Each reasoning block carries a signature, a digest of its text, that the client sends back
//! with the block in later turns; a block whose text no longer matches is refused, as Bedrock
//! refuses modified reasoning. Earlier turns' reasoning is not given to the model again.

use crate::ApiError;
use serde_json::Value;
use sha2::{Digest, Sha256};

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

/// What the request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reasoning {
    /// Reasoning blocks returned to the client.
    Shown,
    /// Reasoning split off and dropped.
    #[default]
    Hidden,
}

fn model_error(text: &str) -> ApiError {
    ApiError::Validation(format!("The model returned the following errors: {text}"))
}

/// Reads a request's reasoning switch: Claude's `thinking` (`{"type": "enabled",
/// "budget_tokens": N}`, `adaptive` or `disabled`), Nova's `reasoningConfig` (`{"type":
/// "enabled"|"disabled", "maxReasoningEffort"}`) or `reasoning_effort` (`low`, `medium`,
/// `high`). `max_tokens` is the request's limit, which a thinking budget must stay under.
/// The budget and effort do not limit the backing model's reasoning.
pub fn requested(key: &str, v: &Value, max_tokens: Option<u32>) -> Result<Reasoning, ApiError> {
    let kind = v.get("type").and_then(Value::as_str);
    match key {
        "thinking" => match kind {
            Some("enabled") => {
                let budget = v
                    .get("budget_tokens")
                    .ok_or_else(|| model_error("thinking.enabled.budget_tokens: Field required"))?
                    .as_u64()
                    .ok_or_else(|| {
                        model_error("thinking.enabled.budget_tokens: Input should be a valid integer")
                    })?;
                if budget < 1024 {
                    return Err(model_error(
                        "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
                    ));
                }
                if max_tokens.is_some_and(|m| u64::from(m) <= budget) {
                    return Err(model_error(
                        "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size",
                    ));
                }
                Ok(Reasoning::Shown)
            }
            Some("adaptive") => Ok(Reasoning::Shown),
            Some("disabled") => Ok(Reasoning::Hidden),
            _ => Err(model_error(
                "thinking: Input tag does not match any of the expected tags: 'enabled', 'disabled', 'adaptive'",
            )),
        },
        "reasoningConfig" => match kind {
            Some("enabled") => match v.get("maxReasoningEffort").map(|e| e.as_str()) {
                None | Some(Some("low" | "medium" | "high")) => Ok(Reasoning::Shown),
                _ => Err(model_error(
                    "reasoningConfig.maxReasoningEffort must be one of low, medium, high",
                )),
            },
            Some("disabled") => Ok(Reasoning::Hidden),
            _ => Err(model_error(
                "reasoningConfig.type must be one of enabled, disabled",
            )),
        },
        _ => match v.as_str() {
            Some("low" | "medium" | "high") => Ok(Reasoning::Shown),
            _ => Err(model_error("reasoning_effort must be one of low, medium, high")),
        },
    }
}

/// The signature of a reasoning block's text.
pub fn signature(text: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"outcrop-reasoning-v1\0")
        .chain_update(text.as_bytes())
        .finalize();
    aws_smithy_types::base64::encode(digest)
}

/// Checks a reasoning block sent back by a client; `at` names it for the message.
pub fn verify(text: &str, signature_sent: Option<&str>, at: &str) -> Result<(), ApiError> {
    match signature_sent {
        Some(s) if s == signature(text) => Ok(()),
        _ => Err(ApiError::Validation(format!(
            "The model returned the following errors: {at}: Invalid `signature` in `thinking` block"
        ))),
    }
}

/// One piece of split output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Reasoning(String),
    Answer(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing but whitespace seen yet: the output may still open with `<think>`.
    Start,
    Thinking,
    /// Just after `</think>`: the blank lines before the answer are dropped.
    Closed,
    Answering,
}

/// Splits generated text, as it arrives, into reasoning and answer.
#[derive(Debug, Clone)]
pub struct ReasoningSplit {
    state: State,
    held: String,
}

impl Default for ReasoningSplit {
    fn default() -> Self {
        ReasoningSplit {
            state: State::Start,
            held: String::new(),
        }
    }
}

/// How many bytes at the end of `text` could be the start of `marker` (text held back while
/// streaming until it is known not to be a marker).
pub(crate) fn partial_tail(text: &str, marker: &str) -> usize {
    (1..marker.len().min(text.len() + 1))
        .rev()
        .find(|&n| {
            text.is_char_boundary(text.len() - n) && marker.starts_with(&text[text.len() - n..])
        })
        .unwrap_or(0)
}

impl ReasoningSplit {
    /// Takes generated text; returns what can be released now.
    pub fn push(&mut self, text: &str) -> Vec<Piece> {
        self.held.push_str(text);
        let mut out = Vec::new();
        loop {
            match self.state {
                State::Start => {
                    let trimmed = self.held.trim_start();
                    if trimmed.starts_with(OPEN) {
                        let at = self.held.len() - trimmed.len() + OPEN.len();
                        self.held.drain(..at);
                        // The reasoning's own leading newline is layout, not content.
                        if self.held.starts_with('\n') {
                            self.held.remove(0);
                        }
                        self.state = State::Thinking;
                    } else if OPEN.starts_with(trimmed) {
                        return out; // wait: it may still be the opening tag
                    } else {
                        self.state = State::Answering;
                    }
                }
                State::Thinking => {
                    if let Some(at) = self.held.find(CLOSE) {
                        let thought: String = self.held.drain(..at).collect();
                        self.held.drain(..CLOSE.len());
                        let thought = thought.trim_end_matches('\n');
                        if !thought.is_empty() {
                            out.push(Piece::Reasoning(thought.to_owned()));
                        }
                        self.state = State::Closed;
                        continue;
                    }
                    // Held back: what may start the closing tag, and the newlines before it
                    // (layout, dropped when the tag follows).
                    let partial = partial_tail(&self.held, CLOSE);
                    let before = &self.held[..self.held.len() - partial];
                    let keep = self.held.len() - before.trim_end_matches('\n').len();
                    let release: String = self.held.drain(..self.held.len() - keep).collect();
                    if !release.is_empty() {
                        out.push(Piece::Reasoning(release));
                    }
                    return out;
                }
                State::Closed => {
                    // The answer starts after the blank lines that follow the tag.
                    let rest = self.held.trim_start_matches('\n').to_owned();
                    self.held = rest;
                    if self.held.is_empty() {
                        return out;
                    }
                    self.state = State::Answering;
                }
                State::Answering => {
                    if !self.held.is_empty() {
                        out.push(Piece::Answer(std::mem::take(&mut self.held)));
                    }
                    return out;
                }
            }
        }
    }

    /// At the end: whatever is still held. Reasoning cut short (by `max_tokens`) stays
    /// reasoning.
    pub fn finish(&mut self) -> Vec<Piece> {
        let held = std::mem::take(&mut self.held);
        if held.is_empty() {
            return Vec::new();
        }
        vec![match self.state {
            State::Thinking => Piece::Reasoning(held),
            State::Start | State::Closed | State::Answering => Piece::Answer(held),
        }]
    }
}

/// A whole generation split: its reasoning (if any) and its answer.
pub fn split(text: &str) -> (String, String) {
    let mut s = ReasoningSplit::default();
    let mut pieces = s.push(text);
    pieces.extend(s.finish());
    let (mut reasoning, mut answer) = (String::new(), String::new());
    for p in pieces {
        match p {
            Piece::Reasoning(t) => reasoning.push_str(&t),
            Piece::Answer(t) => answer.push_str(&t),
        }
    }
    (reasoning, answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_outputs() {
        assert_eq!(
            split("<think>\nLet me add.\n</think>\n\n4"),
            ("Let me add.".to_owned(), "4".to_owned())
        );
        assert_eq!(split("Just 4"), (String::new(), "Just 4".to_owned()));
        assert_eq!(split("  <thin"), (String::new(), "  <thin".to_owned()));
        assert_eq!(
            split("<think>cut short"),
            ("cut short".to_owned(), String::new())
        );
        // A tag later in the answer is text.
        assert_eq!(
            split("Use <think> tags"),
            (String::new(), "Use <think> tags".to_owned())
        );
    }

    #[test]
    fn streamed_pieces_never_leak_tags() {
        let mut s = ReasoningSplit::default();
        let mut all = Vec::new();
        for piece in [
            "<th", "ink>\nHm", "m, 2+2.", "\n", "</th", "ink>", "\n\n", "It is", " 4.",
        ] {
            all.extend(s.push(piece));
        }
        all.extend(s.finish());
        let reasoning: String = all
            .iter()
            .filter_map(|p| match p {
                Piece::Reasoning(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        let answer: String = all
            .iter()
            .filter_map(|p| match p {
                Piece::Answer(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(reasoning, "Hmm, 2+2.");
        assert_eq!(answer, "It is 4.");
    }

    #[test]
    fn switches() {
        use serde_json::json;
        let on = json!({"type": "enabled", "budget_tokens": 2048});
        assert_eq!(
            requested("thinking", &on, Some(4096)).unwrap(),
            Reasoning::Shown
        );
        assert!(requested("thinking", &on, Some(1000))
            .unwrap_err()
            .to_string()
            .contains("`max_tokens` must be greater than `thinking.budget_tokens`"));
        assert!(requested(
            "thinking",
            &json!({"type": "enabled", "budget_tokens": 10}),
            None
        )
        .unwrap_err()
        .to_string()
        .contains("greater than or equal to 1024"));
        assert_eq!(
            requested("thinking", &json!({"type": "disabled"}), None).unwrap(),
            Reasoning::Hidden
        );
        assert_eq!(
            requested(
                "reasoningConfig",
                &json!({"type": "enabled", "maxReasoningEffort": "low"}),
                None
            )
            .unwrap(),
            Reasoning::Shown
        );
        assert!(requested("reasoning_effort", &json!("max"), None).is_err());
    }

    #[test]
    fn signatures_round_trip() {
        let s = signature("thought");
        assert!(verify("thought", Some(&s), "messages.1.content.0").is_ok());
        assert!(verify("changed", Some(&s), "messages.1.content.0")
            .unwrap_err()
            .to_string()
            .contains("Invalid `signature`"));
        assert!(verify("thought", None, "m").is_err());
    }
}
