//! Outcrop's domain vocabulary: what a generation request is and what comes back.
//!
//! No I/O, no async runtime, no HTTP, no Bedrock wire shapes. The API layer parses Bedrock
//! bodies into these types; the scheduler and engines only ever see these types.

use std::fmt;

/// Who speaks a turn of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    /// The role name chat templates expect.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub role: Role,
    pub content: String,
}

impl Turn {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Turn {
            role,
            content: content.into(),
        }
    }
}

/// What the model is asked to continue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// A conversation rendered with the backing model's own chat template. When the last turn
    /// is an assistant turn its text is a prefill: the answer continues it.
    Chat(Vec<Turn>),
    /// A conversation that offers tools. A chat template that describes tools itself renders
    /// `tools.definitions` its own way; otherwise `tools.instructions` join the system turn
    /// ([`Prompt::instructed`]).
    ChatWithTools { turns: Vec<Turn>, tools: ToolPrompt },
    /// Text given to the model as is (base models, raw completion).
    Raw(String),
}

impl Prompt {
    /// The conversation's turns (`None` for raw text).
    pub fn turns(&self) -> Option<&[Turn]> {
        match self {
            Prompt::Chat(turns) | Prompt::ChatWithTools { turns, .. } => Some(turns),
            Prompt::Raw(_) => None,
        }
    }

    /// The prompt with any tool instructions written into its system turn (opening one when
    /// there is none): for engines that cannot render tool definitions.
    pub fn instructed(self) -> Prompt {
        match self {
            Prompt::ChatWithTools { mut turns, tools } => {
                match turns.first_mut() {
                    Some(t) if t.role == Role::System => {
                        t.content.push_str("\n\n");
                        t.content.push_str(&tools.instructions);
                    }
                    _ => turns.insert(0, Turn::new(Role::System, tools.instructions)),
                }
                Prompt::Chat(turns)
            }
            other => other,
        }
    }
}

/// The tools a conversation offers, for the backing model's prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolPrompt {
    pub definitions: Vec<ToolDefinition>,
    /// The same tools and how to call them, as plain text for a system turn.
    pub instructions: String,
}

/// One tool as chat templates receive it (OpenAI's function shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolDefinition {
    pub name: String,
    pub description: String,
    /// The tool's input as a JSON Schema document.
    pub parameters: String,
}

/// How the next token is chosen. `temperature == 0` means greedy.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sampling {
    pub temperature: f32,
    pub top_p: Option<f32>,
    pub top_k: Option<u32>,
    pub seed: u32,
    /// Restricts what may be generated (grammar-constrained decoding).
    pub constraint: Option<Constraint>,
}

/// A restriction on the generated text, enforced token by token by the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Constraint {
    /// The whole output is one JSON value valid against `schema` (a JSON Schema document).
    Json { schema: String },
    /// Free text until `trigger` is generated; from there on, tool calls and then the end of
    /// the generation: each call is `trigger`, an optional newline, one JSON value valid
    /// against `schema`, then `close` (when `close` is empty, one call and no closing text).
    JsonAfter {
        trigger: String,
        schema: String,
        close: String,
    },
}

impl Sampling {
    pub fn greedy() -> Self {
        Sampling::default()
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0 || self.top_k == Some(1)
    }
}

/// A validated generation request: every field has been checked at the edge.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationRequest {
    pub prompt: Prompt,
    /// Most tokens to generate; 0 is allowed and generates nothing.
    pub max_tokens: u32,
    pub sampling: Sampling,
    /// Matched on decoded text; a matched sequence is never emitted.
    pub stop_sequences: Vec<String>,
    /// Which call this is, for engines that answer by rule (a script) rather than by model;
    /// set by the API once the call is parsed.
    pub label: Option<RequestLabel>,
    /// Run alone, on a cleared KV cache, so that the output does not depend on what else runs
    /// (batch composition changes floating-point sums): the same request gives the same bytes.
    pub exclusive: bool,
    /// The service tier the call asked for: the order in which waiting requests are admitted.
    pub tier: ServiceTier,
    /// Explicit prompt-cache checkpoints. Identical prompt prefixes are reused without them
    /// too; only checkpoints make reused tokens count as cache reads.
    pub cache: PromptCache,
}

/// Bedrock's service tiers, as scheduling classes: waiting `Priority` requests are admitted
/// before `Default` ones, `Default` before `Flex`; under load `Flex` is refused first.
/// (`reserved` capacity is served as `Priority`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum ServiceTier {
    Priority,
    #[default]
    Default,
    Flex,
}

/// The call a generation serves: the catalog model id, the operation's name, the tools it
/// offers and whether its last user turn carries a tool's result.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestLabel {
    pub model_id: String,
    pub operation: String,
    pub tools: Vec<String>,
    pub tool_result: bool,
}

/// A runtime exception an engine can answer with on purpose (a scripted fault), by Bedrock's
/// name for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    Throttling,
    ModelTimeout,
    ServiceUnavailable,
    ModelNotReady,
    ModelError,
    ModelStreamError,
    Validation,
    InternalServer,
}

impl FaultKind {
    /// Reads Bedrock's exception name (`ThrottlingException`) or its short form
    /// (`throttling`).
    pub fn parse(name: &str) -> Option<Self> {
        let short = name.trim_end_matches("Exception").to_ascii_lowercase();
        Some(match short.as_str() {
            "throttling" => FaultKind::Throttling,
            "modeltimeout" => FaultKind::ModelTimeout,
            "serviceunavailable" => FaultKind::ServiceUnavailable,
            "modelnotready" => FaultKind::ModelNotReady,
            "modelerror" => FaultKind::ModelError,
            "modelstreamerror" => FaultKind::ModelStreamError,
            "validation" => FaultKind::Validation,
            "internalserver" => FaultKind::InternalServer,
            _ => return None,
        })
    }
}

/// Why a generation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The model emitted its end-of-turn token.
    EndOfTurn,
    /// One of the request's stop sequences matched (the sequence itself).
    StopSequence(String),
    /// `max_tokens` were generated.
    MaxTokens,
    /// The context window filled up before `max_tokens` were generated.
    ContextFull,
}

/// Token counts of one generation, in the backing model's own tokens. As Bedrock reports
/// them, `input_tokens` leaves out the prompt tokens read from or written to the prompt cache
/// at an explicit checkpoint; the prompt's size is the sum of the three.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub cache_read_input_tokens: u32,
    pub cache_write_input_tokens: u32,
    /// The part of `cache_write_input_tokens` written with a one-hour TTL.
    pub cache_write_1h_input_tokens: u32,
}

impl Usage {
    pub fn new(input_tokens: u32, output_tokens: u32) -> Self {
        Usage {
            input_tokens,
            output_tokens,
            ..Usage::default()
        }
    }

    /// Every prompt token, cached or not.
    pub fn prompt_tokens(&self) -> u32 {
        self.input_tokens + self.cache_read_input_tokens + self.cache_write_input_tokens
    }

    /// Prompt and output tokens, as Bedrock's `totalTokens`.
    pub fn total_tokens(&self) -> u32 {
        self.prompt_tokens() + self.output_tokens
    }
}

/// An explicit prompt-cache checkpoint (Converse `cachePoint`, Anthropic `cache_control`): the
/// prompt up to here is kept for later requests that start the same way, and such a request
/// reports the tokens it read from the cache apart from the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePoint {
    pub at: CacheAt,
    pub ttl: CacheTtl,
}

/// Where a checkpoint ends the cached prefix, in the conversation as the engine receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheAt {
    /// After the tool definitions and the whole system turn (as the model's template renders
    /// them, tools and system text together).
    System,
    /// After the first `offset` bytes of the content of turn `turn`.
    Turn { turn: usize, offset: usize },
}

/// How long an unused checkpoint is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum CacheTtl {
    #[default]
    FiveMinutes,
    OneHour,
}

impl CacheTtl {
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_secs(match self {
            CacheTtl::FiveMinutes => 300,
            CacheTtl::OneHour => 3600,
        })
    }

    /// Bedrock's name for it (`5m`, `1h`).
    pub fn as_str(self) -> &'static str {
        match self {
            CacheTtl::FiveMinutes => "5m",
            CacheTtl::OneHour => "1h",
        }
    }
}

/// A request's explicit prompt caching.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromptCache {
    /// At most four, in prompt order.
    pub points: Vec<CachePoint>,
    /// A checkpoint whose prefix is shorter than this many tokens caches nothing (the model
    /// family's minimum).
    pub min_tokens: u32,
    /// Whose cache it is (one account's use of one model id): a checkpoint is read only by
    /// the scope that wrote it.
    pub scope: u64,
}

/// Facts about a loaded backing model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub name: String,
    /// Context window of each sequence, in tokens.
    pub context_tokens: u32,
    /// Sequences the engine decodes together (its slots).
    pub max_sequences: u32,
    /// KV cells shared by all sequences; a sequence is admitted only when the cells it may
    /// need (prompt + max tokens, up to `context_tokens`) are free.
    pub kv_tokens: u32,
}

/// A text's embedding, in the model's own dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    pub vector: Vec<f32>,
    /// The text's size in the embedding model's tokens.
    pub input_tokens: u32,
}

/// A sentence-embedding engine. Implementations live in engine crates (`outcrop-embed`); calls
/// block, so async callers run them on a blocking thread.
pub trait Embedder: Send + Sync {
    fn name(&self) -> &str;
    /// The length of the vectors it produces.
    fn dimensions(&self) -> usize;
    fn embed(&self, text: &str) -> Result<Embedding, GenerationError>;
}

/// A failure of a generation that is not the caller's fault unless stated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenerationError {
    /// The prompt (plus at least one generated token) does not fit the context window.
    #[error("prompt of {prompt_tokens} tokens does not fit a context of {context_tokens} tokens")]
    InputTooLong {
        prompt_tokens: u32,
        context_tokens: u32,
    },
    /// The prompt could not be turned into the model's format.
    #[error("prompt could not be rendered: {0}")]
    Template(String),
    /// The request's output constraint could not be built (e.g. an unsupported JSON Schema).
    #[error("output constraint rejected: {0}")]
    Constraint(String),
    /// The engine failed while decoding.
    #[error("engine failure: {0}")]
    Engine(String),
    /// The server is shutting down and stopped this generation after its grace period.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// An exception the engine was told to answer with (a scripted fault); the client sees
    /// exactly this kind and message.
    #[error("{message}")]
    Fault { kind: FaultKind, message: String },
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
