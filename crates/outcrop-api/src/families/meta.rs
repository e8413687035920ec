//! Meta Llama 2/3 instruct: `{"prompt", "temperature", "top_p", "max_gen_len"}` →
//! `{"generation", "prompt_token_count", "generation_token_count", "stop_reason"}`.

use super::{sampling, template, tokens, Chunker, Family, Generated, ParseContext, Parsed};
use crate::schema::{self, Checker};
use crate::ApiError;
use outcrop_types::{GenerationRequest, Prompt, StopReason, Usage};
use serde_json::{json, Value};

const KEYS: &[&str] = &["prompt", "temperature", "top_p", "max_gen_len"];

pub fn parse(body: &[u8], cx: &ParseContext<'_>) -> Result<Parsed, ApiError> {
    let map = schema::object(body)?;
    let mut c = Checker::new(&map, KEYS);
    let prompt = c.required("prompt");
    let prompt = c.string("prompt", prompt);
    let temperature = c.number("temperature", map.get("temperature"), 0.0, 1.0);
    let top_p = c.number("top_p", map.get("top_p"), 0.0, 1.0);
    let max_gen_len = c.integer("max_gen_len", map.get("max_gen_len"), 1, 2048);
    c.finish()?;
    let prompt = prompt.unwrap_or_default();
    Ok(Parsed::single(
        Family::MetaLlama,
        GenerationRequest {
            prompt: Prompt::Chat(template::parse_llama3(prompt)),
            max_tokens: tokens(max_gen_len.unwrap_or(512)),
            // Bedrock's documented defaults for Llama.
            sampling: sampling(
                Some(temperature.unwrap_or(0.5)),
                Some(top_p.unwrap_or(0.9)),
                None,
                cx.seed,
            ),
            stop_sequences: Vec::new(),
            label: None,
            exclusive: false,
            tier: Default::default(),
            cache: Default::default(),
        },
    ))
}

/// Llama's `stop_reason`, which BedrockCompletion and OpenAI's `finish_reason` share.
pub(super) fn stop_reason(reason: &StopReason) -> &'static str {
    match reason {
        StopReason::MaxTokens | StopReason::ContextFull => "length",
        StopReason::EndOfTurn | StopReason::StopSequence(_) => "stop",
    }
}

pub fn body(g: &Generated) -> Value {
    json!({
        "generation": g.text,
        "prompt_token_count": g.usage.input_tokens,
        "generation_token_count": g.usage.output_tokens,
        "stop_reason": stop_reason(&g.reason),
    })
}

/// The prompt count comes with the first chunk, the running generation count with each.
#[derive(Default)]
pub struct Chunks {
    input_tokens: Option<u32>,
    sent: u32,
}

impl Chunker for Chunks {
    fn start(&mut self, input_tokens: u32) -> Vec<Value> {
        self.input_tokens = Some(input_tokens);
        Vec::new()
    }

    fn text(&mut self, text: &str) -> Vec<Value> {
        self.sent += 1;
        vec![json!({
            "generation": text,
            "prompt_token_count": self.input_tokens.take(),
            "generation_token_count": self.sent,
            "stop_reason": null,
        })]
    }

    fn end(&mut self, reason: &StopReason, usage: Usage) -> Vec<Value> {
        vec![json!({
            "generation": "",
            "prompt_token_count": self.input_tokens.take(),
            "generation_token_count": usage.output_tokens,
            "stop_reason": stop_reason(reason),
        })]
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::{cx, err};
    use super::*;

    #[test]
    fn parses_with_defaults() {
        let p = parse(
            br#"{"prompt": "[INST] Hi [/INST]"}"#,
            &cx("meta.llama2-13b-chat-v1"),
        )
        .unwrap();
        let r = &p.requests[0];
        assert_eq!(r.max_tokens, 512);
        assert_eq!(r.sampling.temperature, 0.5);
        assert_eq!(r.sampling.top_p, Some(0.9));
    }

    #[test]
    fn validation_errors() {
        let m = "meta.llama3-8b-instruct-v1:0";
        assert_eq!(
            err(parse(br#"{"max_gen_len": 5}"#, &cx(m))),
            "Malformed input request: #: required key [prompt] not found, please reformat your input and try again."
        );
        assert!(err(parse(br#"{"prompt": "x", "max_tokens": 5}"#, &cx(m)))
            .contains("#: extraneous key [max_tokens] is not permitted"));
        assert!(
            err(parse(br#"{"prompt": "x", "max_gen_len": 4096}"#, &cx(m)))
                .contains("#/max_gen_len: 4096 is not less or equal to 2048")
        );
    }

    #[test]
    fn shapes() {
        let g = Generated {
            text: "Paris".into(),
            reason: StopReason::EndOfTurn,
            usage: Usage {
                input_tokens: 9,
                output_tokens: 2,
                ..Default::default()
            },
        };
        assert_eq!(
            body(&g),
            json!({"generation": "Paris", "prompt_token_count": 9, "generation_token_count": 2, "stop_reason": "stop"})
        );
        let mut c = Chunks::default();
        c.start(9);
        assert_eq!(c.text("Pa")[0]["prompt_token_count"], 9);
        assert_eq!(c.text("ris")[0]["prompt_token_count"], Value::Null);
        assert_eq!(
            c.end(&StopReason::MaxTokens, g.usage)[0]["stop_reason"],
            "length"
        );
    }
}
