//! Property tests over the parsers at the edge: whatever the bytes, a body, path or tool
//! configuration is parsed or refused, never a panic. Inputs are drawn from JSON built from
//! the keys Bedrock's bodies use (so parsing goes deep), and from plain bytes.

use crate::families::{self, ParseContext, PromptMode};
use crate::Operation;
use axum::http::Method;
use outcrop_models::Catalog;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const KEYS: &[&str] = &[
    "prompt",
    "messages",
    "role",
    "content",
    "text",
    "type",
    "system",
    "max_tokens",
    "max_tokens_to_sample",
    "maxTokens",
    "maxTokenCount",
    "max_gen_len",
    "temperature",
    "top_p",
    "top_k",
    "topP",
    "stop_sequences",
    "stopSequences",
    "anthropic_version",
    "inputText",
    "textGenerationConfig",
    "inferenceConfig",
    "tools",
    "tool_choice",
    "toolConfig",
    "toolSpec",
    "inputSchema",
    "json",
    "name",
    "input",
    "tool_use",
    "tool_result",
    "toolUse",
    "toolResult",
    "toolUseId",
    "image",
    "source",
    "thinking",
    "budget_tokens",
    "num_generations",
    "n",
    "schemaVersion",
    "chat_history",
    "message",
    "documents",
    "response_format",
    "seed",
    "return_likelihoods",
    "countPenalty",
    "output_config",
    "cache_control",
    "cachePoint",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        prop_oneof![
            Just("user".to_owned()),
            Just("assistant".to_owned()),
            Just("\n\nHuman: hi\n\nAssistant:".to_owned()),
            Just("text".to_owned()),
            Just("tool_use".to_owned()),
            Just("bedrock-2023-05-31".to_owned()),
            ".{0,12}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|pairs| {
                Value::Object(
                    pairs
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

fn catalog() -> Catalog {
    Catalog::builtin_with(None, &Default::default()).expect("the built-in catalog parses")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn family_bodies_parse_or_are_refused(body in json_value(), raw in prop::collection::vec(any::<u8>(), 0..64)) {
        let catalog = catalog();
        let text = serde_json::to_vec(&body).unwrap();
        for entry in catalog.entries() {
            for mode in [PromptMode::Lenient, PromptMode::Strict] {
                let cx = ParseContext { entry, prompt_mode: mode, seed: 1 };
                let _ = families::parse(&text, &cx);
                let _ = families::parse(&raw, &cx);
            }
        }
    }

    #[test]
    fn tool_configurations_parse_or_are_refused(config in json_value()) {
        let _ = crate::converse::request::parse_tool_config(&config);
        let _ = crate::converse::request::parse_tool_config(&json!({ "tools": [config] }));
    }

    #[test]
    fn paths_parse_or_are_refused(path in "/[a-z%0-9A-F:./-]{0,40}", model in ".{0,20}") {
        for method in [Method::GET, Method::POST, Method::PUT, Method::DELETE] {
            let _ = Operation::parse(&method, &path);
            let _ = Operation::parse(&method, &format!("/model/{model}/invoke"));
        }
    }
}
