use super::{parse_prompt, PromptMode};
use crate::families::Chunker;
use crate::schema::{self, Checker};
use crate::ApiError;
use outcrop_types::{GenerationRequest, Prompt, Sampling, StopReason, Usage};
use serde_json::json;

/// Claude always stops when it would start a new Human turn.
pub const HUMAN_STOP: &str = "\n\nHuman:";

const KEYS: &[&str] = &[
    "prompt",
    "max_tokens_to_sample",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "anthropic_version",
];

/// Parses and validates a text-completions body (docs/wire.md).
pub fn parse_text_request(
    body: &[u8],
    mode: PromptMode,
    seed: u32,
) -> Result<GenerationRequest, ApiError> {
    let map = schema::object(body)?;
    let mut c = Checker::new(&map, KEYS);
    let prompt = c.required("prompt");
    let prompt = c.string("prompt", prompt);
    let max_tokens = c.required("max_tokens_to_sample");
    let max_tokens = c.integer("max_tokens_to_sample", max_tokens, 0, i64::from(u32::MAX));
    // Defaults are Bedrock's documented ones for Claude text completions.
    let temperature = c
        .number("temperature", map.get("temperature"), 0.0, 1.0)
        .unwrap_or(0.5);
    let top_p = c.number("top_p", map.get("top_p"), 0.0, 1.0).unwrap_or(1.0);
    let top_k = c.integer("top_k", map.get("top_k"), 0, 500).unwrap_or(250);
    let stops = c
        .strings("stop_sequences", map.get("stop_sequences"), 8191)
        .unwrap_or_default();
    let _ = c.string("anthropic_version", map.get("anthropic_version"));
    c.finish()?;
    let (Some(prompt), Some(max_tokens)) = (prompt, max_tokens) else {
        return Err(ApiError::Internal); // unreachable: finish() reported the missing keys
    };
    let turns = parse_prompt(prompt, mode).map_err(ApiError::Validation)?;
    let mut stop_sequences = vec![HUMAN_STOP.to_owned()];
    stop_sequences.extend(stops.into_iter().filter(|s| s != HUMAN_STOP));
    Ok(GenerationRequest {
        prompt: Prompt::Chat(turns),
        max_tokens: u32::try_from(max_tokens).unwrap_or(u32::MAX),
        sampling: Sampling {
            temperature: temperature as f32,
            top_p: (top_p < 1.0).then_some(top_p as f32),
            top_k: (top_k > 0).then_some(top_k as u32),
            seed,
            constraint: None,
        },
        stop_sequences,
        label: None,
        exclusive: false,
        tier: Default::default(),
        cache: Default::default(),
    })
}

/// The response body: `{"completion", "stop_reason", "stop"}`. At the model's natural end
/// Claude reports the Human stop sequence, so an end of turn does too.
pub fn completion_body(text: &str, reason: &StopReason) -> serde_json::Value {
    // Claude's completions continue "Assistant:" and so begin with a space.
    let completion = if text.is_empty() || text.starts_with(char::is_whitespace) {
        text.to_owned()
    } else {
        format!(" {text}")
    };
    let (stop_reason, stop) = match reason {
        StopReason::EndOfTurn => ("stop_sequence", Some(HUMAN_STOP.to_owned())),
        StopReason::StopSequence(s) => ("stop_sequence", Some(s.clone())),
        StopReason::MaxTokens | StopReason::ContextFull => ("max_tokens", None),
    };
    json!({ "completion": completion, "stop_reason": stop_reason, "stop": stop })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<GenerationRequest, String> {
        parse_text_request(body.as_bytes(), PromptMode::Lenient, 7).map_err(|e| e.to_string())
    }

    const OK_PROMPT: &str = r#""\n\nHuman: hi\n\nAssistant:""#;

    #[test]
    fn minimal_body_gets_bedrock_defaults() {
        let r = parse(&format!(
            r#"{{"prompt": {OK_PROMPT}, "max_tokens_to_sample": 20}}"#
        ))
        .unwrap();
        assert_eq!(r.max_tokens, 20);
        assert_eq!(
            r.sampling,
            Sampling {
                temperature: 0.5,
                top_p: None,
                top_k: Some(250),
                seed: 7,
                constraint: None,
            }
        );
        assert_eq!(r.stop_sequences, vec![HUMAN_STOP]);
    }

    #[test]
    fn all_optional_keys_are_honoured() {
        let r = parse(&format!(
            r#"{{"prompt": {OK_PROMPT}, "max_tokens_to_sample": 5, "temperature": 0, "top_p": 0.9, "top_k": 40,
                "stop_sequences": ["END"], "anthropic_version": "bedrock-2023-05-31"}}"#
        ))
        .unwrap();
        assert!(r.sampling.is_greedy());
        assert_eq!(r.sampling.top_p, Some(0.9));
        assert_eq!(r.stop_sequences, vec![HUMAN_STOP, "END"]);
    }

    #[test]
    fn missing_max_tokens() {
        assert_eq!(
            parse(&format!(r#"{{"prompt": {OK_PROMPT}}}"#)).unwrap_err(),
            "Malformed input request: #: required key [max_tokens_to_sample] not found, please reformat your input and try again."
        );
    }

    #[test]
    fn extraneous_key() {
        assert_eq!(
            parse(&format!(r#"{{"prompt": {OK_PROMPT}, "max_tokens_to_sample": 5, "max_tokens": 5}}"#)).unwrap_err(),
            "Malformed input request: #: extraneous key [max_tokens] is not permitted, please reformat your input and try again."
        );
    }

    #[test]
    fn wrong_types_and_ranges() {
        let e = parse(&format!(
            r#"{{"prompt": {OK_PROMPT}, "max_tokens_to_sample": "5"}}"#
        ))
        .unwrap_err();
        assert!(
            e.contains("#/max_tokens_to_sample: expected type: Integer, found: String"),
            "{e}"
        );
        let e = parse(r#"{"prompt": 5, "max_tokens_to_sample": 5}"#).unwrap_err();
        assert!(
            e.contains("#/prompt: expected type: String, found: Integer"),
            "{e}"
        );
        let e = parse(&format!(
            r#"{{"prompt": {OK_PROMPT}, "max_tokens_to_sample": 5, "temperature": 1.5}}"#
        ))
        .unwrap_err();
        assert!(
            e.contains("#/temperature: 1.5 is not less or equal to 1"),
            "{e}"
        );
        let e = parse(&format!(
            r#"{{"prompt": {OK_PROMPT}, "max_tokens_to_sample": -1}}"#
        ))
        .unwrap_err();
        assert!(e.contains("is not greater or equal to 0"), "{e}");
        let e = parse(&format!(
            r#"{{"prompt": {OK_PROMPT}, "max_tokens_to_sample": 5, "stop_sequences": "x"}}"#
        ))
        .unwrap_err();
        assert!(
            e.contains("#/stop_sequences: expected type: JSONArray, found: String"),
            "{e}"
        );
    }

    #[test]
    fn not_json_or_not_an_object() {
        assert!(parse("{not json")
            .unwrap_err()
            .starts_with("Malformed input request: invalid JSON"));
        assert!(parse("[1]")
            .unwrap_err()
            .contains("#: expected type: JSONObject, found: JSONArray"));
    }

    #[test]
    fn bad_prompt_after_schema() {
        assert!(parse(r#"{"prompt": "hello", "max_tokens_to_sample": 5}"#)
            .unwrap_err()
            .starts_with("Invalid prompt:"));
    }

    #[test]
    fn response_shapes() {
        assert_eq!(
            completion_body("Hello", &StopReason::EndOfTurn),
            json!({"completion": " Hello", "stop_reason": "stop_sequence", "stop": "\n\nHuman:"})
        );
        assert_eq!(
            completion_body(" a", &StopReason::MaxTokens),
            json!({"completion": " a", "stop_reason": "max_tokens", "stop": null})
        );
        assert_eq!(
            completion_body("x", &StopReason::StopSequence("END".into())),
            json!({"completion": " x", "stop_reason": "stop_sequence", "stop": "END"})
        );
    }
}

/// Shapes a generation as Claude text-completion stream chunks. The concatenated
/// `completion`s equal the InvokeModel `completion` for the same generation.
#[derive(Debug, Default)]
pub struct TextChunks {
    began: bool,
}

impl Chunker for TextChunks {
    fn text(&mut self, text: &str) -> Vec<serde_json::Value> {
        let completion = if self.began || text.starts_with(char::is_whitespace) {
            text.to_owned()
        } else {
            format!(" {text}")
        };
        self.began = true;
        vec![json!({ "completion": completion, "stop_reason": null, "stop": null })]
    }

    /// The final chunk: empty completion and the stop reason.
    fn end(&mut self, reason: &StopReason, _usage: Usage) -> Vec<serde_json::Value> {
        let mut body = completion_body("", reason);
        body["completion"] = json!("");
        vec![body]
    }
}

#[cfg(test)]
mod stream_tests {
    use super::*;

    #[test]
    fn chunks_concatenate_to_the_invoke_completion() {
        let mut c = TextChunks::default();
        let parts: Vec<String> = ["Hello", ",", " world"]
            .iter()
            .map(|t| c.text(t)[0]["completion"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            parts.concat(),
            completion_body("Hello, world", &StopReason::EndOfTurn)["completion"]
        );
        assert_eq!(c.text("x")[0]["stop_reason"], serde_json::Value::Null);
        assert_eq!(
            c.end(&StopReason::EndOfTurn, Usage::default())[0],
            json!({"completion": "", "stop_reason": "stop_sequence", "stop": "\n\nHuman:"})
        );
    }
}
