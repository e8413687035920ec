//! A runtime call's body, parsed once (after its model is resolved) into what the operation
//! runs. Quota admission reserves the input plus the maximum output it really asks for, the
//! family's own default when the body names none.

use crate::anthropic_api;
use crate::converse::{self, ConverseRequest};
use crate::embeddings::{self, EmbedFormat, Job};
use crate::families::{self, Chunker};
use crate::invoke::{self, Invocable, Prepared};
use crate::openai::{self, request::ChatRequest, responses::ResponsesRequest};
use crate::operation::Operation;
use crate::stream::{single_request, UNSUPPORTED_FOR_STREAMING};
use crate::tools::Tools;
use crate::{ApiError, ApiState};
use outcrop_engine::Engine;
use outcrop_models::CatalogEntry;
use outcrop_service::Resolved;
use outcrop_types::{GenerationRequest, Prompt, RequestLabel, ServiceTier};

/// The input a call reserves at quota admission: its body at four bytes a token (the model's
/// tokenizer has not seen it yet; the reservation is settled to the real count at the end).
pub(crate) fn input_estimate(body: &[u8]) -> u64 {
    body.len() as u64 / 4
}

/// What a runtime operation runs, validated.
pub(crate) enum Invocation<'s> {
    /// InvokeModel on a text model.
    Generate(Prepared<'s>),
    /// InvokeModel on an embedding model.
    Embed {
        entry: &'s CatalogEntry,
        format: EmbedFormat,
        job: Job,
    },
    /// InvokeModelWithResponseStream: one generation, and the family's chunks.
    Stream {
        engine: &'s dyn Engine,
        request: GenerationRequest,
        chunker: Box<dyn Chunker>,
    },
    /// Converse or ConverseStream.
    Converse {
        model: Invocable<'s>,
        request: ConverseRequest,
    },
    /// CountTokens: the prompt as a generation would render it.
    Count {
        engine: &'s dyn Engine,
        prompt: Prompt,
    },
    /// OpenAI Chat Completions, whole or streamed.
    Chat {
        model: Invocable<'s>,
        request: ChatRequest,
    },
    /// OpenAI Responses, whole or streamed.
    Respond {
        model: Invocable<'s>,
        request: ResponsesRequest,
    },
    /// A family's chunks as server-sent events (Anthropic's Messages API streaming).
    ServerSent {
        engine: &'s dyn Engine,
        request: GenerationRequest,
        chunker: Box<dyn Chunker>,
    },
}

impl Invocation<'_> {
    /// Runs every generation of the call in this scheduling class.
    pub fn set_tier(&mut self, tier: ServiceTier) {
        for r in self.parts().0 {
            r.tier = tier;
        }
    }

    /// What a Converse body asked for besides the generation: its service tier and request
    /// metadata.
    pub fn converse_settings(&self) -> Option<(Option<&'static str>, Option<serde_json::Value>)> {
        match self {
            Invocation::Converse { request, .. } => {
                Some((request.echo.service_tier, request.request_metadata.clone()))
            }
            _ => None,
        }
    }

    /// Names the call on every generation it runs (for engines that answer by rule).
    pub fn label(&mut self, model_id: &str, operation: &str, exclusive: bool) {
        let (requests, tools) = self.parts();
        Self::label_parts(requests, tools, model_id, operation, exclusive);
    }

    /// Scopes the call's prompt caching to the caller's account and the model id it named.
    pub fn scope_cache(&mut self, account: &str, model_id: &str) {
        let scope = crate::cache::scope(account, model_id);
        for r in self.parts().0 {
            r.cache.scope = scope;
        }
    }

    /// The call's generations, and the tools they may call.
    fn parts(&mut self) -> (Vec<&mut GenerationRequest>, Option<&Tools>) {
        match self {
            Invocation::Generate(p) => (
                p.parsed.requests.iter_mut().collect(),
                p.parsed.tools.as_ref(),
            ),
            Invocation::Stream { request, .. } | Invocation::ServerSent { request, .. } => {
                (vec![request], None)
            }
            Invocation::Converse { request, .. } => {
                (vec![&mut request.request], request.tools.as_ref())
            }
            Invocation::Chat { request, .. } => (
                vec![&mut request.converse.request],
                request.converse.tools.as_ref(),
            ),
            Invocation::Respond { request, .. } => (
                vec![&mut request.chat.converse.request],
                request.chat.converse.tools.as_ref(),
            ),
            Invocation::Embed { .. } | Invocation::Count { .. } => (Vec::new(), None),
        }
    }

    fn label_parts(
        requests: Vec<&mut GenerationRequest>,
        tools: Option<&Tools>,
        model_id: &str,
        operation: &str,
        exclusive: bool,
    ) {
        let tools: Vec<String> = tools
            .map(|t| t.specs.iter().map(|s| s.name.clone()).collect())
            .unwrap_or_default();
        for r in requests {
            let tool_result = r.prompt.turns().is_some_and(|turns| {
                turns
                    .iter()
                    .rev()
                    .find(|t| t.role == outcrop_types::Role::User)
                    .is_some_and(|t| crate::tools::carries_result(&t.content))
            });
            r.exclusive = exclusive;
            r.label = Some(RequestLabel {
                model_id: model_id.to_owned(),
                operation: operation.to_owned(),
                tools: tools.clone(),
                tool_result,
            });
        }
    }

    /// The most tokens the call may generate.
    pub fn max_output_tokens(&self) -> u64 {
        match self {
            Invocation::Generate(p) => p
                .parsed
                .requests
                .iter()
                .map(|r| u64::from(r.max_tokens))
                .sum(),
            Invocation::Stream { request, .. } | Invocation::ServerSent { request, .. } => {
                u64::from(request.max_tokens)
            }
            Invocation::Converse { request, .. } => u64::from(request.request.max_tokens),
            Invocation::Chat { request, .. } => {
                u64::from(request.converse.request.max_tokens) * u64::from(request.choices)
            }
            Invocation::Respond { request, .. } => {
                u64::from(request.chat.converse.request.max_tokens)
            }
            Invocation::Embed { .. } | Invocation::Count { .. } => 0,
        }
    }
}

/// InvokeModel and its stream on an imported model with an OpenAI chat completion body (one
/// with `messages`); `None` for any other call.
fn imported_chat<'s>(
    state: &'s ApiState,
    operation: &Operation,
    resolved: Resolved<'s>,
    body: &[u8],
    seed: u32,
) -> Result<Option<Invocation<'s>>, ApiError> {
    let streams = match operation {
        Operation::InvokeModel { .. } => false,
        Operation::InvokeModelWithResponseStream { .. } => true,
        _ => return Ok(None),
    };
    if !families::imported::is_chat(body) {
        return Ok(None);
    }
    let model = invoke::invocable(state, resolved)?;
    if !model.entry.converse {
        return Err(ApiError::Validation(
            "This model has no chat template, so it takes no messages. Send a prompt instead."
                .into(),
        ));
    }
    let mut request = openai::request::parse(model.entry, body, seed)?;
    if request.model.is_empty() {
        request.model = model.entry.id.clone();
    }
    if !streams {
        return Ok(Some(Invocation::Chat { model, request }));
    }
    if request.choices != 1 {
        return Err(ApiError::Validation(
            "Streaming returns one generation; ask for one choice (n = 1).".into(),
        ));
    }
    Ok(Some(Invocation::Stream {
        engine: model.engine,
        chunker: Box::new(families::imported::OpenAiChunks::chat(&request.model)),
        request: request.converse.request,
    }))
}

/// Parses `body` for `operation` on the resolved model, with every check the operation makes
/// before it runs, in Bedrock's order.
/// `seed` seeds the sampler of a request that names none.
pub(crate) fn parse<'s>(
    state: &'s ApiState,
    operation: &Operation,
    resolved: Resolved<'s>,
    body: &[u8],
    seed: u32,
) -> Result<Invocation<'s>, ApiError> {
    let entry = resolved.entry;
    if resolved.is_imported() {
        if let Some(invocation) = imported_chat(state, operation, resolved, body, seed)? {
            return Ok(invocation);
        }
    }
    let chat_surface = matches!(
        operation,
        Operation::Converse { .. }
            | Operation::ConverseStream { .. }
            | Operation::ChatCompletions { .. }
            | Operation::Responses { .. }
    );
    if chat_surface && !entry.converse {
        return Err(ApiError::Validation(
            "This model has no chat template, so it doesn't support the Converse API. Call InvokeModel with a prompt instead.".into(),
        ));
    }
    match operation {
        Operation::InvokeModel { .. } => match EmbedFormat::from_format(&entry.format) {
            Some(format) => Ok(Invocation::Embed {
                entry,
                format,
                job: embeddings::parse(format, body)?,
            }),
            None => Ok(Invocation::Generate(invoke::prepare(
                state, resolved, body, seed,
            )?)),
        },
        Operation::InvokeModelWithResponseStream { .. } => {
            if !entry.streaming {
                return Err(ApiError::Validation(UNSUPPORTED_FOR_STREAMING.into()));
            }
            let prepared = invoke::prepare(state, resolved, body, seed)?;
            let chunker = families::chunker(&prepared.parsed, &prepared.model_id)
                .ok_or_else(|| ApiError::Validation(UNSUPPORTED_FOR_STREAMING.into()))?;
            Ok(Invocation::Stream {
                engine: prepared.engine,
                request: single_request(prepared.parsed)?,
                chunker,
            })
        }
        Operation::Converse { .. } | Operation::ConverseStream { .. } => {
            let model = invoke::invocable(state, resolved)?;
            if matches!(operation, Operation::ConverseStream { .. }) && !entry.streaming {
                return Err(ApiError::Validation(UNSUPPORTED_FOR_STREAMING.into()));
            }
            let request = converse::parse(model.entry, body, seed)?;
            Ok(Invocation::Converse { model, request })
        }
        Operation::CountTokens { .. } => {
            let model = invoke::invocable(state, resolved)?;
            let prompt = converse::count_input(state, model.entry, body)?;
            Ok(Invocation::Count {
                engine: model.engine,
                prompt,
            })
        }
        Operation::ChatCompletions { .. } => {
            let model = invoke::invocable(state, resolved)?;
            if operation.streams() && !entry.streaming {
                return Err(ApiError::Validation(UNSUPPORTED_FOR_STREAMING.into()));
            }
            let request = openai::request::parse(model.entry, body, seed)?;
            Ok(Invocation::Chat { model, request })
        }
        Operation::Responses { .. } => {
            let model = invoke::invocable(state, resolved)?;
            if operation.streams() && !entry.streaming {
                return Err(ApiError::Validation(UNSUPPORTED_FOR_STREAMING.into()));
            }
            let request = openai::responses::parse(model.entry, body, seed)?;
            Ok(Invocation::Respond { model, request })
        }
        Operation::AnthropicMessages { identifier, stream } => {
            if families::Family::from_format(&entry.format)
                != Some(families::Family::AnthropicMessages)
            {
                return Err(anthropic_api::not_on_this_route(identifier));
            }
            let prepared = invoke::prepare(state, resolved, body, seed)?;
            if !stream {
                return Ok(Invocation::Generate(prepared));
            }
            let chunker = families::chunker(&prepared.parsed, &prepared.model_id)
                .ok_or_else(|| ApiError::Validation(UNSUPPORTED_FOR_STREAMING.into()))?;
            Ok(Invocation::ServerSent {
                engine: prepared.engine,
                request: single_request(prepared.parsed)?,
                chunker,
            })
        }
        other => {
            tracing::error!(operation = other.name(), "not a runtime operation");
            Err(ApiError::Internal)
        }
    }
}
