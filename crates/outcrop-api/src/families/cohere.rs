//! Cohere Command: `{"prompt", "max_tokens", "temperature", "p", "k", "stop_sequences", ...}` →
//! `{"generations": [{"id", "text", "finish_reason"}], "id", "prompt"}`; stream chunks
//! `{"text", "is_finished"}`. `return_likelihoods`, `logit_bias` and `truncate` are accepted
//! and validated but not applied.

use super::{sampling, template, tokens, Chunker, Family, Generated, ParseContext, Parsed};
use crate::schema::{self, Checker};
use crate::ApiError;
use outcrop_types::{GenerationRequest, Prompt, StopReason, Usage};
use serde_json::{json, Value};

const KEYS: &[&str] = &[
    "prompt",
    "temperature",
    "p",
    "k",
    "max_tokens",
    "stop_sequences",
    "return_likelihoods",
    "stream",
    "num_generations",
    "logit_bias",
    "truncate",
];

pub fn parse(body: &[u8], cx: &ParseContext<'_>) -> Result<Parsed, ApiError> {
    let map = schema::object(body)?;
    let mut c = Checker::new(&map, KEYS);
    let prompt = c.required("prompt");
    let prompt = c.string("prompt", prompt).unwrap_or_default();
    let temperature = c.number("temperature", map.get("temperature"), 0.0, 5.0);
    let p = c.number("p", map.get("p"), 0.0, 1.0);
    let k = c.integer("k", map.get("k"), 0, 500);
    let max_tokens = c.integer("max_tokens", map.get("max_tokens"), 1, 4096);
    let stops = c.strings("stop_sequences", map.get("stop_sequences"), 4);
    for (key, allowed) in [
        ("return_likelihoods", &["GENERATION", "ALL", "NONE"][..]),
        ("truncate", &["NONE", "START", "END"][..]),
    ] {
        if let Some(v) = c.string(key, map.get(key)) {
            if !allowed.contains(&v) {
                c.violation(key, &format!("{v} is not a valid enum value"));
            }
        }
    }
    let _ = c.boolean("stream", map.get("stream"));
    let n = c
        .integer("num_generations", map.get("num_generations"), 1, 5)
        .unwrap_or(1);
    let _ = c.object("logit_bias", map.get("logit_bias"));
    c.finish()?;
    let request = GenerationRequest {
        prompt: Prompt::Chat(template::free_text(prompt)),
        max_tokens: tokens(max_tokens.unwrap_or(20)),
        // Bedrock's documented Cohere defaults: temperature 0.9, p 0.75, k 0 (off).
        sampling: sampling(
            Some(temperature.unwrap_or(0.9)),
            Some(p.unwrap_or(0.75)),
            k,
            cx.seed,
        ),
        stop_sequences: stops.unwrap_or_default(),
        label: None,
        exclusive: false,
        tier: Default::default(),
        cache: Default::default(),
    };
    Ok(Parsed {
        family: Family::CohereCommand,
        requests: super::answers(request, n, cx.seed),
        tools: None,
        prompt_echo: Some(prompt.to_owned()),
        reasoning: Default::default(),
    })
}

fn finish_reason(reason: &StopReason) -> &'static str {
    match reason {
        StopReason::MaxTokens | StopReason::ContextFull => "MAX_TOKENS",
        StopReason::EndOfTurn | StopReason::StopSequence(_) => "COMPLETE",
    }
}

pub fn body(prompt: Option<&str>, generated: &[Generated]) -> Value {
    let several = generated.len() > 1;
    let generations: Vec<Value> = generated
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let mut v = json!({
                "id": uuid::Uuid::new_v4().to_string(),
                "text": g.text,
                "finish_reason": finish_reason(&g.reason),
            });
            if several {
                v["index"] = json!(i);
            }
            v
        })
        .collect();
    json!({
        "generations": generations,
        "id": uuid::Uuid::new_v4().to_string(),
        "prompt": prompt.unwrap_or_default(),
    })
}

#[derive(Default)]
pub struct Chunks;

impl Chunker for Chunks {
    fn text(&mut self, text: &str) -> Vec<Value> {
        vec![json!({ "text": text, "is_finished": false })]
    }

    fn end(&mut self, reason: &StopReason, _usage: Usage) -> Vec<Value> {
        vec![json!({ "is_finished": true, "finish_reason": finish_reason(reason) })]
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::{cx, err};
    use super::*;

    const M: &str = "cohere.command-text-v14";

    #[test]
    fn parses_and_validates() {
        let p = parse(
            br#"{"prompt": "Hi", "num_generations": 3, "stream": true, "k": 10}"#,
            &cx(M),
        )
        .unwrap();
        assert_eq!(p.requests.len(), 3);
        assert_eq!(p.requests[0].max_tokens, 20);
        assert!(
            err(parse(br#"{"prompt": "x", "truncate": "MIDDLE"}"#, &cx(M)))
                .contains("#/truncate: MIDDLE is not a valid enum value")
        );
        assert!(
            err(parse(br#"{"prompt": "x", "num_generations": 6}"#, &cx(M)))
                .contains("#/num_generations: 6 is not less or equal to 5")
        );
    }

    #[test]
    fn shapes() {
        let g = Generated {
            text: "Hi".into(),
            reason: StopReason::MaxTokens,
            usage: Usage::default(),
        };
        let b = body(Some("p"), &[g.clone(), g]);
        assert_eq!(b["generations"][1]["index"], 1);
        assert_eq!(b["generations"][0]["finish_reason"], "MAX_TOKENS");
        assert_eq!(b["prompt"], "p");
        assert_eq!(
            Chunks.end(&StopReason::EndOfTurn, Usage::default())[0],
            json!({"is_finished": true, "finish_reason": "COMPLETE"})
        );
    }
}
