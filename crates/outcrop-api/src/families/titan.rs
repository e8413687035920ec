//! Amazon Titan Text: `{"inputText", "textGenerationConfig": {...}}` →
//! `{"inputTextTokenCount", "results": [{"tokenCount", "outputText", "completionReason"}]}`.

use super::{sampling, template, tokens, Chunker, Family, Generated, ParseContext, Parsed};
use crate::schema::{self, Checker};
use crate::ApiError;
use outcrop_types::{GenerationRequest, Prompt, StopReason, Usage};
use serde_json::{json, Value};

const KEYS: &[&str] = &["inputText", "textGenerationConfig"];
const CONFIG_KEYS: &[&str] = &["temperature", "topP", "maxTokenCount", "stopSequences"];

pub fn parse(body: &[u8], cx: &ParseContext<'_>) -> Result<Parsed, ApiError> {
    let map = schema::object(body)?;
    let mut c = Checker::new(&map, KEYS);
    let input = c.required("inputText");
    let input = c.string("inputText", input);
    let (mut temperature, mut top_p, mut max_tokens, mut stops) = (None, None, None, None);
    if let Some(mut g) = c.nested(
        "textGenerationConfig",
        map.get("textGenerationConfig"),
        CONFIG_KEYS,
    ) {
        let cfg = g.body();
        temperature = g.number("temperature", cfg.get("temperature"), 0.0, 1.0);
        top_p = g.number("topP", cfg.get("topP"), 0.0, 1.0);
        max_tokens = g.integer("maxTokenCount", cfg.get("maxTokenCount"), 0, 8192);
        stops = g.strings("stopSequences", cfg.get("stopSequences"), 4);
        c.absorb(g);
    }
    c.finish()?;
    Ok(Parsed::single(
        Family::TitanText,
        GenerationRequest {
            prompt: Prompt::Chat(template::parse_user_bot(input.unwrap_or_default())),
            max_tokens: tokens(max_tokens.unwrap_or(512)),
            // Bedrock's documented Titan defaults.
            sampling: sampling(
                Some(temperature.unwrap_or(0.7)),
                Some(top_p.unwrap_or(0.9)),
                None,
                cx.seed,
            ),
            stop_sequences: stops.unwrap_or_default(),
            label: None,
            exclusive: false,
            tier: Default::default(),
            cache: Default::default(),
        },
    ))
}

fn completion_reason(reason: &StopReason) -> &'static str {
    match reason {
        StopReason::EndOfTurn => "FINISH",
        StopReason::StopSequence(_) => "STOP_CRITERIA_MET",
        StopReason::MaxTokens | StopReason::ContextFull => "LENGTH",
    }
}

pub fn body(g: &Generated) -> Value {
    json!({
        "inputTextTokenCount": g.usage.input_tokens,
        "results": [{
            "tokenCount": g.usage.output_tokens,
            "outputText": g.text,
            "completionReason": completion_reason(&g.reason),
        }],
    })
}

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
            "outputText": text,
            "index": 0,
            "totalOutputTextTokenCount": self.sent,
            "completionReason": null,
            "inputTextTokenCount": self.input_tokens.take(),
        })]
    }

    fn end(&mut self, reason: &StopReason, usage: Usage) -> Vec<Value> {
        vec![json!({
            "outputText": "",
            "index": 0,
            "totalOutputTextTokenCount": usage.output_tokens,
            "completionReason": completion_reason(reason),
            "inputTextTokenCount": self.input_tokens.take(),
        })]
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::{cx, err};
    use super::*;

    const M: &str = "amazon.titan-text-express-v1";

    #[test]
    fn parses_config() {
        let p = parse(
            br#"{"inputText": "User: hi\nBot:", "textGenerationConfig": {"maxTokenCount": 7, "temperature": 0, "stopSequences": ["User:"]}}"#,
            &cx(M),
        )
        .unwrap();
        let r = &p.requests[0];
        assert_eq!(r.max_tokens, 7);
        assert!(r.sampling.is_greedy());
        assert_eq!(r.stop_sequences, vec!["User:"]);
    }

    #[test]
    fn nested_validation_errors() {
        assert!(err(parse(
            br#"{"inputText": "x", "textGenerationConfig": {"maxTokens": 5}}"#,
            &cx(M)
        ))
        .contains("#/textGenerationConfig: extraneous key [maxTokens] is not permitted"));
        assert!(err(parse(
            br#"{"inputText": "x", "textGenerationConfig": {"topP": "a"}}"#,
            &cx(M)
        ))
        .contains("#/textGenerationConfig/topP: expected type: Number, found: String"));
        assert!(err(parse(
            br#"{"inputText": "x", "textGenerationConfig": 5}"#,
            &cx(M)
        ))
        .contains("#/textGenerationConfig: expected type: JSONObject, found: Integer"));
        assert!(err(parse(br#"{"prompt": "x"}"#, &cx(M)))
            .contains("#: required key [inputText] not found"));
    }

    #[test]
    fn shapes() {
        let g = Generated {
            text: "\nHi".into(),
            reason: StopReason::EndOfTurn,
            usage: Usage {
                input_tokens: 4,
                output_tokens: 2,
                ..Default::default()
            },
        };
        assert_eq!(
            body(&g),
            json!({"inputTextTokenCount": 4, "results": [{"tokenCount": 2, "outputText": "\nHi", "completionReason": "FINISH"}]})
        );
        let mut c = Chunks::default();
        c.start(4);
        assert_eq!(c.text("a")[0]["inputTextTokenCount"], 4);
        let end = c.end(&StopReason::MaxTokens, g.usage);
        assert_eq!(end[0]["completionReason"], "LENGTH");
        assert_eq!(end[0]["inputTextTokenCount"], Value::Null);
    }
}
