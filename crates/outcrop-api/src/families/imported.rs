//! Imported models (Custom Model Import). Bedrock takes three body formats for them:
//! BedrockCompletion `{"prompt", "max_gen_len", "temperature", "top_p", "top_k", "stop"}` →
//! `{"generation", "prompt_token_count", "generation_token_count", "stop_reason"}` (Llama's
//! answer and chunks, `meta.rs`); OpenAI
//! completion `{"prompt", "max_tokens", ...}` → a `text_completion`; and OpenAI chat
//! completion (a body with `messages`), which the OpenAI surface's parser reads
//! (`invocation.rs`). A `prompt` body is OpenAI's when it has a member only OpenAI's format
//! has (`max_tokens`, `n`, `model`, ...) and no `max_gen_len`.
//!
//! The prompt is given to the model as written: it carries the model's own chat markup, if
//! any.

use super::meta::stop_reason;
use super::{answers, sampling, tokens, Chunker, Family, Generated, ParseContext, Parsed};
use crate::schema::{self, Checker};
use crate::ApiError;
use outcrop_types::{GenerationRequest, Prompt, StopReason, Usage};
use serde_json::{json, Map, Value};

const BEDROCK_KEYS: &[&str] = &[
    "prompt",
    "max_gen_len",
    "temperature",
    "top_p",
    "top_k",
    "stop",
];
const OPENAI_KEYS: &[&str] = &[
    "prompt",
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop",
    "n",
    "seed",
    "model",
    "stream",
    "user",
    "presence_penalty",
    "frequency_penalty",
];
/// Members only OpenAI's completion format has.
const OPENAI_ONLY: &[&str] = &[
    "max_tokens",
    "n",
    "seed",
    "model",
    "stream",
    "user",
    "presence_penalty",
    "frequency_penalty",
];
const MAX_GENERATION: i64 = 32_768;
const MAX_CHOICES: i64 = 8;

/// Whether a body is an OpenAI chat completion request (it has `messages`).
pub fn is_chat(body: &[u8]) -> bool {
    serde_json::from_slice::<Map<String, Value>>(body).is_ok_and(|m| m.contains_key("messages"))
}

pub fn parse(body: &[u8], cx: &ParseContext<'_>) -> Result<Parsed, ApiError> {
    let map = schema::object(body)?;
    let openai =
        !map.contains_key("max_gen_len") && OPENAI_ONLY.iter().any(|k| map.contains_key(*k));
    let mut c = Checker::new(&map, if openai { OPENAI_KEYS } else { BEDROCK_KEYS });
    let prompt = c.required("prompt");
    let prompt = c.string("prompt", prompt).unwrap_or_default().to_owned();
    let temperature = c.number("temperature", map.get("temperature"), 0.0, 2.0);
    let top_p = c.number("top_p", map.get("top_p"), 0.0, 1.0);
    let top_k = c.integer("top_k", map.get("top_k"), -1, 1000);
    let stop = match map.get("stop") {
        Some(Value::String(s)) => Some(vec![s.clone()]),
        other => c.strings("stop", other.filter(|v| !v.is_null()), 16),
    };
    let length_key = if openai { "max_tokens" } else { "max_gen_len" };
    let max = c.integer(length_key, map.get(length_key), 1, MAX_GENERATION);
    let n = openai
        .then(|| c.integer("n", map.get("n"), 1, MAX_CHOICES))
        .flatten();
    let seed = openai
        .then(|| c.integer("seed", map.get("seed"), 0, i64::from(u32::MAX)))
        .flatten();
    c.finish()?;
    let seed = seed.map_or(cx.seed, |s| s as u32);
    let request = GenerationRequest {
        prompt: Prompt::Raw(prompt),
        // OpenAI's completion default is 16 tokens; BedrockCompletion's, as Llama's, 512.
        max_tokens: tokens(max.unwrap_or(if openai { 16 } else { 512 })),
        sampling: sampling(
            Some(temperature.unwrap_or(if openai { 1.0 } else { 0.5 })),
            top_p,
            top_k,
            seed,
        ),
        stop_sequences: stop.unwrap_or_default(),
        label: None,
        exclusive: false,
        tier: Default::default(),
        cache: Default::default(),
    };
    let mut parsed = Parsed::single(
        if openai {
            Family::OpenAiCompletion
        } else {
            Family::ImportedCompletion
        },
        request.clone(),
    );
    if openai {
        parsed.requests = answers(request, n.unwrap_or(1), seed);
    }
    Ok(parsed)
}

fn completion_id() -> String {
    crate::tools::new_id("cmpl-")
}

fn created() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An OpenAI `text_completion`: one choice per answer, the prompt counted once.
pub fn openai_body(model_id: &str, generated: &[Generated]) -> Value {
    let choices: Vec<Value> = generated
        .iter()
        .zip(0..)
        .map(|(g, i): (&Generated, u32)| {
            json!({ "text": g.text, "index": i, "logprobs": null, "finish_reason": stop_reason(&g.reason) })
        })
        .collect();
    let input = generated.first().map_or(0, |g| g.usage.input_tokens);
    let output: u32 = generated.iter().map(|g| g.usage.output_tokens).sum();
    json!({
        "id": completion_id(),
        "object": "text_completion",
        "created": created(),
        "model": model_id,
        "choices": choices,
        "usage": { "prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output },
    })
}

/// OpenAI chunks (`text_completion` pieces, or `chat.completion.chunk` deltas), usage last.
pub struct OpenAiChunks {
    id: String,
    created: u64,
    model: String,
    chat: bool,
}

impl OpenAiChunks {
    pub fn completion(model_id: &str) -> Self {
        OpenAiChunks {
            id: completion_id(),
            created: created(),
            model: model_id.to_owned(),
            chat: false,
        }
    }

    pub fn chat(model_id: &str) -> Self {
        OpenAiChunks {
            id: crate::tools::new_id("chatcmpl-"),
            chat: true,
            ..Self::completion(model_id)
        }
    }

    fn chunk(&self, text: &str, finish: Option<&str>) -> Value {
        let (object, choice) = if self.chat {
            let delta = if finish.is_some() {
                json!({})
            } else {
                json!({ "role": "assistant", "content": text })
            };
            (
                "chat.completion.chunk",
                json!({ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }),
            )
        } else {
            (
                "text_completion",
                json!({ "index": 0, "text": text, "logprobs": null, "finish_reason": finish }),
            )
        };
        json!({
            "id": self.id,
            "object": object,
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        })
    }
}

impl Chunker for OpenAiChunks {
    fn text(&mut self, text: &str) -> Vec<Value> {
        vec![self.chunk(text, None)]
    }

    fn end(&mut self, reason: &StopReason, usage: Usage) -> Vec<Value> {
        let mut last = self.chunk("", Some(stop_reason(reason)));
        last["usage"] = json!({
            "prompt_tokens": usage.input_tokens,
            "completion_tokens": usage.output_tokens,
            "total_tokens": usage.input_tokens + usage.output_tokens,
        });
        vec![last]
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::{err, imported_cx};
    use super::*;

    #[test]
    fn bedrock_and_openai_completion_bodies() {
        let cx = imported_cx();
        let p = parse(
            br#"{"prompt": "<|im_start|>user\nHi", "max_gen_len": 7, "top_k": 5}"#,
            &cx,
        )
        .unwrap();
        assert_eq!(p.family, Family::ImportedCompletion);
        assert_eq!(p.requests[0].max_tokens, 7);
        assert_eq!(
            p.requests[0].prompt,
            Prompt::Raw("<|im_start|>user\nHi".into())
        );
        let p = parse(
            br#"{"prompt": "Hi", "max_tokens": 9, "n": 2, "stop": "."}"#,
            &cx,
        )
        .unwrap();
        assert_eq!(p.family, Family::OpenAiCompletion);
        assert_eq!(p.requests.len(), 2);
        assert_eq!(p.requests[0].stop_sequences, vec!["."]);
        let p = parse(br#"{"prompt": "Hi"}"#, &cx).unwrap();
        assert_eq!(
            (p.family, p.requests[0].max_tokens),
            (Family::ImportedCompletion, 512)
        );
        assert!(is_chat(br#"{"messages": []}"#));
        assert!(!is_chat(br#"{"prompt": "x"}"#));
    }

    #[test]
    fn validation_errors() {
        let cx = imported_cx();
        assert!(err(parse(br#"{"max_gen_len": 5}"#, &cx)).contains("required key [prompt]"));
        assert!(err(parse(br#"{"prompt": "x", "max_gen_len": 0}"#, &cx)).contains("max_gen_len"));
        assert!(err(parse(br#"{"prompt": "x", "max_tokens": 5, "n": 99}"#, &cx)).contains("n"));
        assert!(err(parse(br#"{"prompt": "x", "frobnicate": 1}"#, &cx))
            .contains("extraneous key [frobnicate]"));
    }

    #[test]
    fn shapes() {
        let g = Generated {
            text: "Paris".into(),
            reason: StopReason::MaxTokens,
            usage: Usage {
                input_tokens: 4,
                output_tokens: 2,
                ..Default::default()
            },
        };
        assert_eq!(
            super::super::meta::body(&g),
            json!({"generation": "Paris", "prompt_token_count": 4, "generation_token_count": 2, "stop_reason": "length"})
        );
        let body = openai_body("arn", &[g.clone(), g]);
        assert_eq!(body["object"], "text_completion");
        assert_eq!(body["choices"][1]["index"], 1);
        assert_eq!(
            body["usage"],
            json!({"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8})
        );
        let mut chat = OpenAiChunks::chat("arn");
        assert_eq!(chat.text("Hi")[0]["choices"][0]["delta"]["content"], "Hi");
        let end = chat.end(&StopReason::EndOfTurn, Usage::default());
        assert_eq!(end[0]["choices"][0]["finish_reason"], "stop");
        assert_eq!(end[0]["object"], "chat.completion.chunk");
    }
}
