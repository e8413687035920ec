//! Each model family's InvokeModel body: request parsing and validation, the response body,
//! and the chunks of InvokeModelWithResponseStream (docs/wire.md). The catalog names a
//! family per model id (`format`); everything else in this crate is family-agnostic.

mod ai21;
pub mod anthropic;
mod cohere;
pub mod imported;
mod meta;
mod mistral;
mod nova;
pub mod template;
mod titan;

use crate::reasoning::Reasoning;
use crate::tools::Tools;
use crate::ApiError;
use outcrop_models::CatalogEntry;
use outcrop_types::{GenerationRequest, StopReason, Usage};
use serde_json::Value;

pub use anthropic::PromptMode;

/// The body formats this instance speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    AnthropicText,
    AnthropicMessages,
    Ai21,
    TitanText,
    Nova,
    MetaLlama,
    Mistral,
    CohereCommand,
    /// An imported model's BedrockCompletion body.
    ImportedCompletion,
    /// An imported model's OpenAI completion body.
    OpenAiCompletion,
}

impl Family {
    /// The family of a catalog `format` name.
    pub fn from_format(format: &str) -> Option<Self> {
        Some(match format {
            "anthropic-text" => Family::AnthropicText,
            "anthropic-messages" => Family::AnthropicMessages,
            "ai21-j2" => Family::Ai21,
            "titan-text" => Family::TitanText,
            "nova" => Family::Nova,
            "meta-llama" => Family::MetaLlama,
            "mistral" => Family::Mistral,
            "cohere-command" => Family::CohereCommand,
            outcrop_service::imports::IMPORTED_FORMAT => Family::ImportedCompletion,
            _ => return None,
        })
    }
}

/// What request parsing needs besides the body.
pub struct ParseContext<'a> {
    pub entry: &'a CatalogEntry,
    pub prompt_mode: PromptMode,
    /// The sampling seed when the body sets none.
    pub seed: u32,
}

/// A validated invocation body.
pub struct Parsed {
    /// The family that answers: a Claude text model given a Messages body answers in kind.
    pub family: Family,
    /// One request per answer asked for (Cohere's `num_generations`; usually one).
    pub requests: Vec<GenerationRequest>,
    /// Tools the model may call (Messages API, Nova).
    pub tools: Option<Tools>,
    /// The prompt as sent, for families that echo it (Cohere).
    pub prompt_echo: Option<String>,
    /// Whether the model's reasoning is returned (families with reasoning blocks).
    pub reasoning: Reasoning,
}

impl Parsed {
    pub fn single(family: Family, request: GenerationRequest) -> Self {
        Parsed {
            family,
            requests: vec![request],
            tools: None,
            prompt_echo: None,
            reasoning: Reasoning::Hidden,
        }
    }
}

/// One finished generation.
pub use outcrop_engine::Generated;

/// Parses an InvokeModel body for `entry`'s family.
pub fn parse(body: &[u8], cx: &ParseContext<'_>) -> Result<Parsed, ApiError> {
    let Some(family) = Family::from_format(&cx.entry.format) else {
        tracing::error!(format = %cx.entry.format, model = %cx.entry.id, "catalog names an unknown body format");
        return Err(ApiError::Validation(format!(
            "Outcrop does not serve the request format of {} yet.",
            cx.entry.id
        )));
    };
    match family {
        Family::AnthropicText => anthropic::parse_text_or_messages(body, cx),
        Family::AnthropicMessages => anthropic::parse_messages_only(body, cx),
        Family::Ai21 => ai21::parse(body, cx),
        Family::TitanText => titan::parse(body, cx),
        Family::Nova => nova::parse(body, cx),
        Family::MetaLlama => meta::parse(body, cx),
        Family::Mistral => mistral::parse(body, cx),
        Family::CohereCommand => cohere::parse(body, cx),
        Family::ImportedCompletion | Family::OpenAiCompletion => imported::parse(body, cx),
    }
}

/// The InvokeModel response body.
pub fn response_body(parsed: &Parsed, model_id: &str, generated: &[Generated]) -> Value {
    let first = &generated[0];
    match parsed.family {
        Family::AnthropicText => anthropic::completion_body(&first.text, &first.reason),
        Family::AnthropicMessages => {
            anthropic::message_body(model_id, first, parsed.tools.as_ref(), parsed.reasoning)
        }
        Family::Ai21 => ai21::body(parsed.prompt_echo.as_deref(), generated),
        Family::TitanText => titan::body(first),
        Family::Nova => nova::body(first, parsed.tools.as_ref(), parsed.reasoning),
        Family::MetaLlama => meta::body(first),
        Family::Mistral => mistral::body(first),
        Family::CohereCommand => cohere::body(parsed.prompt_echo.as_deref(), generated),
        Family::ImportedCompletion => meta::body(first),
        Family::OpenAiCompletion => imported::openai_body(model_id, generated),
    }
}

/// Shapes one generation as a family's stream chunks. Every call returns the chunks to send
/// now, in order; the caller adds `amazon-bedrock-invocationMetrics` to the last chunk of
/// `end`, which is never empty.
pub trait Chunker: Send {
    fn start(&mut self, _input_tokens: u32) -> Vec<Value> {
        Vec::new()
    }
    fn text(&mut self, text: &str) -> Vec<Value>;
    fn end(&mut self, reason: &StopReason, usage: Usage) -> Vec<Value>;
}

/// The chunker for a parsed request, or `None` when the family cannot stream.
pub fn chunker(parsed: &Parsed, model_id: &str) -> Option<Box<dyn Chunker>> {
    Some(match parsed.family {
        Family::AnthropicText => Box::new(anthropic::TextChunks::default()),
        Family::AnthropicMessages => Box::new(anthropic::MessageChunks::new(
            model_id,
            parsed.tools.clone(),
            parsed.reasoning,
        )),
        Family::Ai21 => return None,
        Family::TitanText => Box::new(titan::Chunks::default()),
        Family::Nova => Box::new(nova::Chunks::new(parsed.tools.clone(), parsed.reasoning)),
        Family::MetaLlama => Box::new(meta::Chunks::default()),
        Family::Mistral => Box::new(mistral::Chunks),
        Family::CohereCommand => Box::new(cohere::Chunks),
        Family::ImportedCompletion => Box::new(meta::Chunks::default()),
        Family::OpenAiCompletion => Box::new(imported::OpenAiChunks::completion(model_id)),
    })
}

/// Sampling defaults and bounds shared by the simple prompt families.
pub(crate) fn sampling(
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<i64>,
    seed: u32,
) -> outcrop_types::Sampling {
    outcrop_types::Sampling {
        temperature: temperature.unwrap_or(0.0) as f32,
        top_p: top_p.filter(|p| *p < 1.0).map(|p| p as f32),
        top_k: top_k.filter(|k| *k > 0).map(|k| k as u32),
        seed,
        constraint: None,
    }
}

/// `n` copies of `request`, one per answer asked for, each with its own seed.
pub(crate) fn answers(request: GenerationRequest, n: i64, seed: u32) -> Vec<GenerationRequest> {
    (0..n.max(1) as u32)
        .map(|i| {
            let mut r = request.clone();
            r.sampling.seed = seed.wrapping_add(i);
            r
        })
        .collect()
}

/// A 0-based token count as a `u32`, saturating.
pub(crate) fn tokens(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A parse context for a built-in catalog model.
    pub fn cx(model_id: &str) -> ParseContext<'static> {
        let catalog: &'static outcrop_models::Catalog = Box::leak(Box::new(
            outcrop_models::Catalog::builtin_with(None, &std::collections::BTreeMap::new())
                .unwrap(),
        ));
        ParseContext {
            entry: catalog.get(model_id).expect("a catalog model"),
            prompt_mode: PromptMode::Lenient,
            seed: 7,
        }
    }

    /// A parse context for an imported model.
    pub fn imported_cx() -> ParseContext<'static> {
        let entry: &'static CatalogEntry = Box::leak(Box::new(
            serde_json::from_value(serde_json::json!({
                "id": "arn:aws:bedrock:us-east-1:111122223333:imported-model/abc123def456",
                "name": "mine", "provider": "Imported", "format": "imported",
                "backing_model": "imported/x", "input_price_per_1k": "0", "output_price_per_1k": "0",
            }))
            .unwrap(),
        ));
        ParseContext {
            entry,
            prompt_mode: PromptMode::Lenient,
            seed: 7,
        }
    }

    pub fn err(r: Result<Parsed, ApiError>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_catalog_format_is_served() {
        let catalog =
            outcrop_models::Catalog::builtin_with(None, &std::collections::BTreeMap::new())
                .unwrap();
        for e in catalog.entries() {
            let embedding = crate::embeddings::EmbedFormat::from_format(&e.format).is_some();
            assert!(
                Family::from_format(&e.format).is_some() || embedding,
                "{}",
                e.id
            );
        }
    }
}
