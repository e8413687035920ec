//! An engine that answers by rule from a script file (`engine = "script"`): for test suites
//! that need a declared answer to a given prompt (a text, a tool call, structured output) or a
//! fault on demand (throttling before the first byte, a stream that fails after N chunks), with
//! delays, and the same answer every time. No model is loaded; a request no rule matches goes
//! to a fallback engine (a real model), or fails with an error that names it. The file is read
//! again when it changes.
//!
//! Tokens are counted as the fallback engine's tokenizer counts them when there is one,
//! else as words (one per word, one per chat turn), unless a rule declares them.

#![forbid(unsafe_code)]

mod rules;

pub use rules::{parse, Answer, Call, Reply, Rule, ScriptError, ToolCall};

use async_trait::async_trait;
use outcrop_engine::{
    Engine, EngineError, EngineGauges, FakeEngine, GenerationEvent, GenerationStream, SubmitError,
};
use outcrop_types::{
    Constraint, FaultKind, GenerationError, GenerationRequest, ModelInfo, Prompt, Role, StopReason,
    Usage,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;

/// The rules as last read, and when the file was modified then.
struct Loaded {
    rules: Arc<Rules>,
    modified: Option<SystemTime>,
}

/// The rules and how many requests each has answered.
struct Rules {
    rules: Vec<Rule>,
    used: Vec<AtomicU32>,
}

impl Rules {
    fn new(rules: Vec<Rule>) -> Self {
        let used = rules.iter().map(|_| AtomicU32::new(0)).collect();
        Rules { rules, used }
    }

    /// The first rule that matches and has answers left; it is counted.
    fn answer(&self, call: &Call<'_>) -> Option<&Rule> {
        self.rules.iter().zip(&self.used).find_map(|(rule, used)| {
            if !rule.matches(call) {
                return None;
            }
            match rule.times {
                None => Some(rule),
                Some(times) => used
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        (n < times).then_some(n + 1)
                    })
                    .ok()
                    .map(|_| rule),
            }
        })
    }
}

/// Serves a backing model name from a script file.
pub struct ScriptEngine {
    name: String,
    path: PathBuf,
    loaded: Mutex<Loaded>,
    fallback: Option<Arc<dyn Engine>>,
    aborted: Arc<AtomicBool>,
    active: Arc<AtomicUsize>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn read(path: &Path) -> Result<Vec<Rule>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

impl ScriptEngine {
    /// Reads the script; `fallback` answers what no rule matches.
    pub fn load(
        name: &str,
        path: &Path,
        fallback: Option<Arc<dyn Engine>>,
    ) -> Result<Self, String> {
        let rules = read(path)?;
        tracing::info!(model = name, script = %path.display(), rules = rules.len(), "script loaded");
        Ok(ScriptEngine {
            name: name.to_owned(),
            path: path.to_owned(),
            loaded: Mutex::new(Loaded {
                rules: Arc::new(Rules::new(rules)),
                modified: modified(path),
            }),
            fallback,
            aborted: Arc::new(AtomicBool::new(false)),
            active: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The rules, read again first if the file changed (a script that no longer parses is
    /// reported and the previous rules stay).
    fn rules(&self) -> Arc<Rules> {
        let mut loaded = self
            .loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = modified(&self.path);
        if now != loaded.modified {
            loaded.modified = now;
            match read(&self.path) {
                Ok(rules) => {
                    tracing::info!(script = %self.path.display(), rules = rules.len(), "script reloaded");
                    loaded.rules = Arc::new(Rules::new(rules));
                }
                Err(e) => {
                    tracing::error!(error = %e, "script not reloaded; the previous rules stay")
                }
            }
        }
        loaded.rules.clone()
    }
}

fn last_user(prompt: &Prompt) -> &str {
    match prompt {
        Prompt::Raw(text) => text,
        Prompt::Chat(turns) | Prompt::ChatWithTools { turns, .. } => turns
            .iter()
            .rev()
            .find(|t| t.role == Role::User)
            .map_or("", |t| t.content.as_str()),
    }
}

fn fault(kind: FaultKind, message: impl Into<String>) -> GenerationError {
    GenerationError::Fault {
        kind,
        message: message.into(),
    }
}

/// The text that makes the API read tool calls, as the model would write them under the
/// request's constraint: the bare call when a tool is forced (one call only), each call in a
/// trigger block otherwise.
fn tool_call_text(
    calls: &[ToolCall],
    request: &GenerationRequest,
    tools: &[String],
) -> Result<String, GenerationError> {
    if let Some(call) = calls.iter().find(|c| !tools.contains(&c.name)) {
        return Err(fault(
            FaultKind::Validation,
            format!("The script answers with a call to {:?}, which is not one of the request's tools {tools:?}.", call.name),
        ));
    }
    let json = |call: &ToolCall| {
        serde_json::json!({ "name": call.name, "arguments": call.input }).to_string()
    };
    match (&request.sampling.constraint, calls) {
        (Some(Constraint::Json { .. }), [call]) => Ok(json(call)),
        (Some(Constraint::Json { .. }), _) => Err(fault(
            FaultKind::Validation,
            "The script answers with several tool calls, but the request forces one.",
        )),
        (Some(Constraint::JsonAfter { trigger, close, .. }), _) => Ok(calls
            .iter()
            .map(|c| format!("{trigger}\n{}\n{close}", json(c)))
            .collect::<Vec<_>>()
            .join("\n")),
        (None, _) => Err(fault(
            FaultKind::Validation,
            "The script answers with a tool call, but the request allows none.",
        )),
    }
}

#[async_trait]
impl Engine for ScriptEngine {
    fn submit(&self, request: GenerationRequest) -> Result<GenerationStream, SubmitError> {
        if self.aborted.load(Ordering::Relaxed) {
            return Err(SubmitError::Stopped);
        }
        let label = request.label.clone().unwrap_or_default();
        let rules = self.rules();
        let call = Call {
            model_id: &label.model_id,
            operation: &label.operation,
            last_user: last_user(&request.prompt),
            tools: !label.tools.is_empty(),
            tool_result: label.tool_result,
        };
        let Some(rule) = rules.answer(&call) else {
            if let Some(fallback) = &self.fallback {
                return fallback.submit(request);
            }
            let (tx, rx) = mpsc::unbounded_channel();
            let mut said: String = call.last_user.chars().take(80).collect();
            if said.len() < call.last_user.len() {
                said.push('…');
            }
            let _ = tx.send(GenerationEvent::Failed(fault(
                FaultKind::Validation,
                format!(
                    "No rule of the script {} matches this request (model {}, operation {}, last user message {said:?}) and there is no fallback engine.",
                    self.path.display(), label.model_id, label.operation
                ),
            )));
            return Ok(rx);
        };
        let reply = rule.reply.clone();
        let (tx, rx) = mpsc::unbounded_channel();
        let fallback = self.fallback.clone();
        let aborted = self.aborted.clone();
        let active = self.active.clone();
        active.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            run(reply, request, label.tools, fallback, &aborted, tx).await;
            active.fetch_sub(1, Ordering::Relaxed);
        });
        Ok(rx)
    }

    fn model(&self) -> Option<ModelInfo> {
        let fallback = self.fallback.as_ref().and_then(|f| f.model());
        Some(ModelInfo {
            name: self.name.clone(),
            context_tokens: fallback.as_ref().map_or(1 << 20, |f| f.context_tokens),
            max_sequences: fallback.as_ref().map_or(1 << 10, |f| f.max_sequences),
            kv_tokens: fallback.as_ref().map_or(1 << 20, |f| f.kv_tokens),
        })
    }

    async fn wait_ready(&self) -> Option<ModelInfo> {
        if let Some(f) = &self.fallback {
            f.wait_ready().await?;
        }
        self.model()
    }

    fn gauges(&self) -> EngineGauges {
        let mut g = self
            .fallback
            .as_ref()
            .map(|f| f.gauges())
            .unwrap_or_default();
        g.active_sequences += self.active.load(Ordering::Relaxed);
        g
    }

    fn abort_all(&self) {
        self.aborted.store(true, Ordering::Relaxed);
        if let Some(f) = &self.fallback {
            f.abort_all();
        }
    }

    async fn count_tokens(&self, prompt: Prompt) -> Result<u32, EngineError> {
        match &self.fallback {
            Some(f) => f.count_tokens(prompt).await,
            None => Ok(FakeEngine::prompt_tokens(&prompt)),
        }
    }
}

/// Plays one reply onto the stream: the delays, the text piece by piece, then the end or the
/// fault. Stops as soon as the caller drops the stream.
async fn run(
    reply: Reply,
    request: GenerationRequest,
    tools: Vec<String>,
    fallback: Option<Arc<dyn Engine>>,
    aborted: &AtomicBool,
    tx: mpsc::UnboundedSender<GenerationEvent>,
) {
    let send = |e: GenerationEvent| tx.send(e).is_ok();
    tokio::time::sleep(Duration::from_millis(reply.ttft_ms)).await;
    let (text, end) = match &reply.answer {
        Answer::Text(text) => (text.clone(), None),
        Answer::Json(value) => (value.to_string(), None),
        Answer::ToolCalls(calls) => match tool_call_text(calls, &request, &tools) {
            Ok(text) => (text, None),
            Err(e) => {
                send(GenerationEvent::Failed(e));
                return;
            }
        },
        Answer::Fault {
            kind,
            message,
            text,
        } => {
            let failure = fault(*kind, message.clone());
            if reply.after_chunks.is_none() {
                send(GenerationEvent::Failed(failure));
                return;
            }
            (text.clone(), Some(failure))
        }
    };
    let input_tokens = match (reply.input_tokens, &fallback) {
        (Some(n), _) => n,
        (None, Some(f)) => f
            .count_tokens(request.prompt.clone())
            .await
            .unwrap_or_else(|_| FakeEngine::prompt_tokens(&request.prompt)),
        (None, None) => FakeEngine::prompt_tokens(&request.prompt),
    };
    if !send(GenerationEvent::Started { input_tokens }) {
        return;
    }
    let (mut pieces, reason) = outcrop_engine::answer(&text, &request);
    if let Some(n) = reply.after_chunks {
        pieces.truncate(n as usize);
    }
    let sent = u32::try_from(pieces.len()).unwrap_or(u32::MAX);
    for (i, piece) in pieces.into_iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(reply.chunk_ms)).await;
        }
        if aborted.load(Ordering::Relaxed) {
            send(GenerationEvent::Failed(GenerationError::ShuttingDown));
            return;
        }
        if !send(GenerationEvent::Text(piece)) {
            return;
        }
    }
    if let Some(failure) = end {
        tokio::time::sleep(Duration::from_millis(reply.chunk_ms)).await;
        send(GenerationEvent::Failed(failure));
        return;
    }
    let usage = Usage {
        input_tokens,
        output_tokens: reply.output_tokens.unwrap_or(sent),
        ..Default::default()
    };
    let reason = if matches!(reply.answer, Answer::ToolCalls(_)) {
        StopReason::EndOfTurn
    } else {
        reason
    };
    send(GenerationEvent::Finished { reason, usage });
}

#[cfg(test)]
mod tests;
