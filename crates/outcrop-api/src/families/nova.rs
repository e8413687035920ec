//! Amazon Nova (`messages-v1`): a Converse-shaped body and answer; stream chunks are the
//! Converse events, one `{eventName: payload}` object per chunk.

use super::{Chunker, Family, Generated, ParseContext, Parsed};
use crate::converse::events::{self, ConverseEvents};
use crate::converse::request::conversation;
use crate::reasoning::Reasoning;
use crate::schema::{self, Checker};
use crate::tools::Tools;
use crate::ApiError;
use outcrop_types::{GenerationRequest, Sampling, StopReason, Usage};
use serde_json::{json, Value};

const KEYS: &[&str] = &[
    "schemaVersion",
    "system",
    "messages",
    "inferenceConfig",
    "toolConfig",
];
const CONFIG_KEYS: &[&str] = &[
    "maxTokens",
    "max_new_tokens",
    "temperature",
    "topP",
    "top_p",
    "topK",
    "top_k",
    "stopSequences",
];

pub fn parse(body: &[u8], cx: &ParseContext<'_>) -> Result<Parsed, ApiError> {
    let map = schema::object(body)?;
    let mut c = Checker::new(&map, KEYS);
    if let Some(v) = c.string("schemaVersion", map.get("schemaVersion")) {
        if v != "messages-v1" {
            c.violation("schemaVersion", &format!("{v} is not a valid enum value"));
        }
    }
    let messages = c.required("messages");
    let (mut max_tokens, mut temperature, mut top_p, mut top_k, mut stops) =
        (None, None, None, None, None);
    if let Some(mut g) = c.nested("inferenceConfig", map.get("inferenceConfig"), CONFIG_KEYS) {
        let cfg = g.body();
        let either = |a: &str, b: &str| cfg.get(a).or_else(|| cfg.get(b));
        max_tokens = g.integer(
            "maxTokens",
            either("maxTokens", "max_new_tokens"),
            1,
            10_000,
        );
        temperature = g.number("temperature", cfg.get("temperature"), 0.0, 1.0);
        top_p = g.number("topP", either("topP", "top_p"), 0.0, 1.0);
        top_k = g.integer("topK", either("topK", "top_k"), 0, 128);
        stops = g.strings("stopSequences", cfg.get("stopSequences"), 4);
        c.absorb(g);
    }
    c.finish()?;
    let conv = conversation(
        &cx.entry.id,
        messages,
        map.get("system"),
        map.get("toolConfig"),
    )?;
    let cache = conv.cache.clone().finish(cx.entry)?;
    let request = GenerationRequest {
        prompt: crate::tools::prompt(conv.turns, conv.tools.as_ref()),
        max_tokens: super::tokens(max_tokens.unwrap_or(5000)),
        sampling: Sampling {
            // Nova's documented defaults: temperature 0.7, topP 0.9.
            temperature: temperature.unwrap_or(0.7) as f32,
            top_p: Some(top_p.unwrap_or(0.9) as f32).filter(|p| *p < 1.0),
            top_k: top_k.filter(|k| *k > 0).map(|k| k as u32),
            seed: cx.seed,
            constraint: conv.tools.as_ref().and_then(Tools::constraint),
        },
        stop_sequences: stops.unwrap_or_default(),
        label: None,
        exclusive: false,
        tier: Default::default(),
        cache,
    };
    Ok(Parsed {
        family: Family::Nova,
        requests: vec![request],
        tools: conv.tools,
        prompt_echo: None,
        reasoning: Reasoning::Hidden,
    })
}

pub fn body(g: &Generated, tools: Option<&Tools>, reasoning: Reasoning) -> Value {
    let content = events::content(tools, reasoning, &g.text);
    json!({
        "output": { "message": { "role": "assistant", "content": content.blocks } },
        "stopReason": content.stop_reason(&g.reason),
        "usage": events::usage_json(g.usage),
    })
}

pub struct Chunks(ConverseEvents);

impl Chunks {
    pub fn new(tools: Option<Tools>, reasoning: Reasoning) -> Self {
        Chunks(ConverseEvents::new(tools.as_ref(), reasoning))
    }
}

fn wrap(events: Vec<events::Event>) -> Vec<Value> {
    events
        .into_iter()
        .map(|(name, payload)| json!({ name: payload }))
        .collect()
}

impl Chunker for Chunks {
    fn start(&mut self, _input_tokens: u32) -> Vec<Value> {
        wrap(self.0.start())
    }

    fn text(&mut self, text: &str) -> Vec<Value> {
        wrap(self.0.text(text))
    }

    fn end(&mut self, reason: &StopReason, usage: Usage) -> Vec<Value> {
        let mut out = wrap(self.0.end(reason, usage, json!({ "metrics": {} })));
        if let Some(meta) = out.last_mut().and_then(|v| v.get_mut("metadata")) {
            meta["trace"] = json!({});
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::{cx, err};
    use super::*;

    const M: &str = "amazon.nova-micro-v1:0";

    #[test]
    fn parses_both_key_styles() {
        let p = parse(
            br#"{"schemaVersion": "messages-v1", "system": [{"text": "Be brief."}], "messages": [{"role": "user", "content": [{"text": "Hi"}]}], "inferenceConfig": {"max_new_tokens": 7, "top_k": 3}}"#,
            &cx(M),
        )
        .unwrap();
        assert_eq!(p.requests[0].max_tokens, 7);
        assert_eq!(p.requests[0].sampling.top_k, Some(3));
        assert!(err(parse(
            br#"{"messages": [], "inferenceConfig": {"maxTokenCount": 3}}"#,
            &cx(M)
        ))
        .contains("#/inferenceConfig: extraneous key [maxTokenCount] is not permitted"));
        assert!(
            err(parse(br#"{"schemaVersion": "v2", "messages": []}"#, &cx(M)))
                .contains("v2 is not a valid enum value")
        );
    }

    #[test]
    fn shapes() {
        let g = Generated {
            text: "Hi".into(),
            reason: StopReason::MaxTokens,
            usage: Usage {
                input_tokens: 2,
                output_tokens: 1,
                ..Default::default()
            },
        };
        assert_eq!(
            body(&g, None, Reasoning::Hidden),
            json!({"output": {"message": {"role": "assistant", "content": [{"text": "Hi"}]}}, "stopReason": "max_tokens",
                   "usage": {"inputTokens": 2, "outputTokens": 1, "totalTokens": 3}})
        );
        let mut c = Chunks::new(None, Reasoning::Hidden);
        assert_eq!(
            c.start(2),
            vec![json!({"messageStart": {"role": "assistant"}})]
        );
        let end = c.end(&StopReason::EndOfTurn, g.usage);
        assert_eq!(end.last().unwrap()["metadata"]["usage"]["totalTokens"], 3);
    }
}
