//! Mistral: `{"prompt", "max_tokens", "stop", "temperature", "top_p", "top_k"}` →
//! `{"outputs": [{"text", "stop_reason"}]}`.

use super::{sampling, template, tokens, Chunker, Family, Generated, ParseContext, Parsed};
use crate::schema::{self, Checker};
use crate::ApiError;
use outcrop_types::{GenerationRequest, Prompt, StopReason, Usage};
use serde_json::{json, Value};

const KEYS: &[&str] = &[
    "prompt",
    "max_tokens",
    "stop",
    "temperature",
    "top_p",
    "top_k",
];

pub fn parse(body: &[u8], cx: &ParseContext<'_>) -> Result<Parsed, ApiError> {
    let map = schema::object(body)?;
    let mut c = Checker::new(&map, KEYS);
    let prompt = c.required("prompt");
    let prompt = c.string("prompt", prompt);
    let max_tokens = c.integer("max_tokens", map.get("max_tokens"), 1, 8192);
    let stop = c.strings("stop", map.get("stop"), 10);
    let temperature = c.number("temperature", map.get("temperature"), 0.0, 1.0);
    let top_p = c.number("top_p", map.get("top_p"), 0.0, 1.0);
    let top_k = c.integer("top_k", map.get("top_k"), 1, 200);
    c.finish()?;
    Ok(Parsed::single(
        Family::Mistral,
        GenerationRequest {
            prompt: Prompt::Chat(template::parse_inst(prompt.unwrap_or_default())),
            max_tokens: tokens(max_tokens.unwrap_or(512)),
            sampling: sampling(
                Some(temperature.unwrap_or(0.5)),
                Some(top_p.unwrap_or(0.9)),
                top_k,
                cx.seed,
            ),
            stop_sequences: stop.unwrap_or_default(),
            label: None,
            exclusive: false,
            tier: Default::default(),
            cache: Default::default(),
        },
    ))
}

fn stop_reason(reason: &StopReason) -> &'static str {
    match reason {
        StopReason::MaxTokens | StopReason::ContextFull => "length",
        StopReason::EndOfTurn | StopReason::StopSequence(_) => "stop",
    }
}

pub fn body(g: &Generated) -> Value {
    json!({ "outputs": [{ "text": g.text, "stop_reason": stop_reason(&g.reason) }] })
}

pub struct Chunks;

impl Chunker for Chunks {
    fn text(&mut self, text: &str) -> Vec<Value> {
        vec![json!({ "outputs": [{ "text": text, "stop_reason": null }] })]
    }

    fn end(&mut self, reason: &StopReason, _usage: Usage) -> Vec<Value> {
        vec![json!({ "outputs": [{ "text": "", "stop_reason": stop_reason(reason) }] })]
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::{cx, err};
    use super::*;

    #[test]
    fn parses_and_validates() {
        let m = "mistral.mistral-7b-instruct-v0:2";
        let p = parse(
            br#"{"prompt": "<s>[INST] Hi [/INST]", "stop": ["."], "top_k": 5}"#,
            &cx(m),
        )
        .unwrap();
        assert_eq!(p.requests[0].stop_sequences, vec!["."]);
        assert_eq!(p.requests[0].sampling.top_k, Some(5));
        assert!(err(parse(br#"{"prompt": "x", "top_k": 0}"#, &cx(m)))
            .contains("#/top_k: 0 is not greater or equal to 1"));
        assert!(
            err(parse(br#"{"prompt": "x", "stop_sequences": []}"#, &cx(m)))
                .contains("extraneous key [stop_sequences]")
        );
        assert!(err(parse(br#"{}"#, &cx(m))).contains("required key [prompt] not found"));
    }

    #[test]
    fn shapes() {
        let g = Generated {
            text: "4".into(),
            reason: StopReason::MaxTokens,
            usage: Usage::default(),
        };
        assert_eq!(
            body(&g),
            json!({"outputs": [{"text": "4", "stop_reason": "length"}]})
        );
        assert_eq!(
            Chunks.end(&StopReason::EndOfTurn, Usage::default())[0],
            json!({"outputs": [{"text": "", "stop_reason": "stop"}]})
        );
    }
}
