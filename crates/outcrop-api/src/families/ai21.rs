//! AI21 Jurassic-2: `{"prompt", "maxTokens", "temperature", "topP", "stopSequences", penalties}`
//! → `{"id", "prompt": {"text"}, "completions": [{"data": {"text"}, "finishReason"}]}`.
//! Jurassic-2 does not stream on Bedrock (the catalog says so; the stream handler refuses).
//! The penalties are accepted and validated but not applied: the engine has no such sampler.

use super::{sampling, template, tokens, Family, Generated, ParseContext, Parsed};
use crate::schema::{self, Checker};
use crate::ApiError;
use outcrop_types::{GenerationRequest, Prompt, StopReason};
use serde_json::{json, Value};

const KEYS: &[&str] = &[
    "prompt",
    "maxTokens",
    "minTokens",
    "temperature",
    "topP",
    "stopSequences",
    "countPenalty",
    "presencePenalty",
    "frequencyPenalty",
    "numResults",
    "topKReturn",
];

pub fn parse(body: &[u8], cx: &ParseContext<'_>) -> Result<Parsed, ApiError> {
    let map = schema::object(body)?;
    let mut c = Checker::new(&map, KEYS);
    let prompt = c.required("prompt");
    let prompt = c.string("prompt", prompt).unwrap_or_default();
    let max_tokens = c.integer("maxTokens", map.get("maxTokens"), 0, 8191);
    let _ = c.integer("minTokens", map.get("minTokens"), 0, 8191);
    let temperature = c.number("temperature", map.get("temperature"), 0.0, 1.0);
    let top_p = c.number("topP", map.get("topP"), 0.0, 1.0);
    let stops = c.strings("stopSequences", map.get("stopSequences"), 64);
    for penalty in ["countPenalty", "presencePenalty", "frequencyPenalty"] {
        if let Some(mut p) = c.nested(
            penalty,
            map.get(penalty),
            &[
                "scale",
                "applyToWhitespaces",
                "applyToPunctuations",
                "applyToNumbers",
                "applyToStopwords",
                "applyToEmojis",
            ],
        ) {
            let scale = p.body().get("scale");
            let _ = p.number("scale", scale, 0.0, 500.0);
            c.absorb(p);
        }
    }
    let n = c
        .integer("numResults", map.get("numResults"), 1, 16)
        .unwrap_or(1);
    let _ = c.integer("topKReturn", map.get("topKReturn"), 0, 10);
    c.finish()?;
    let request = GenerationRequest {
        prompt: Prompt::Chat(template::free_text(prompt)),
        max_tokens: tokens(max_tokens.unwrap_or(200)),
        sampling: sampling(Some(temperature.unwrap_or(0.7)), top_p, None, cx.seed),
        stop_sequences: stops.unwrap_or_default(),
        label: None,
        exclusive: false,
        tier: Default::default(),
        cache: Default::default(),
    };
    Ok(Parsed {
        family: Family::Ai21,
        requests: super::answers(request, n, cx.seed),
        tools: None,
        prompt_echo: Some(prompt.to_owned()),
        reasoning: Default::default(),
    })
}

pub fn body(prompt: Option<&str>, generated: &[Generated]) -> Value {
    let completions: Vec<Value> = generated
        .iter()
        .map(|g| {
            let reason = match &g.reason {
                StopReason::EndOfTurn => json!({ "reason": "endoftext" }),
                StopReason::MaxTokens | StopReason::ContextFull => {
                    json!({ "reason": "length", "length": g.usage.output_tokens })
                }
                StopReason::StopSequence(s) => json!({ "reason": "stop", "sequence": s }),
            };
            json!({ "data": { "text": g.text }, "finishReason": reason })
        })
        .collect();
    json!({
        "id": uuid::Uuid::new_v4().as_u128() as u64 % 100_000,
        "prompt": { "text": prompt.unwrap_or_default() },
        "completions": completions,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::{cx, err};
    use super::*;
    use outcrop_types::Usage;

    #[test]
    fn parses_num_results_and_penalties() {
        let p = parse(
            br#"{"prompt": "Hi", "maxTokens": 9, "numResults": 2, "countPenalty": {"scale": 0}}"#,
            &cx("ai21.j2-mid-v1"),
        )
        .unwrap();
        assert_eq!(p.requests.len(), 2);
        assert_ne!(p.requests[0].sampling.seed, p.requests[1].sampling.seed);
        assert!(err(parse(
            br#"{"prompt": "x", "countPenalty": {"scale": -1}}"#,
            &cx("ai21.j2-mid-v1")
        ))
        .contains("#/countPenalty/scale: -1 is not greater or equal to 0"));
        assert!(err(parse(
            br#"{"prompt": "x", "max_tokens": 1}"#,
            &cx("ai21.j2-mid-v1")
        ))
        .contains("extraneous key [max_tokens]"));
    }

    #[test]
    fn shape() {
        let g = Generated {
            text: " ok".into(),
            reason: StopReason::StopSequence("##".into()),
            usage: Usage::default(),
        };
        let b = body(Some("Hi"), &[g]);
        assert_eq!(b["prompt"]["text"], "Hi");
        assert_eq!(
            b["completions"][0],
            json!({"data": {"text": " ok"}, "finishReason": {"reason": "stop", "sequence": "##"}})
        );
    }
}
