use crate::prompt;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::{LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use outcrop_scheduler::{EngineOutcome, EngineStop, Executor, Flow};
use outcrop_types::{GenerationError, ModelInfo, Prompt, Sampling};

/// One model and one context, owned by the engine thread.
pub struct LlamaExecutor<'m> {
    name: String,
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    template: Option<LlamaChatTemplate>,
    batch: LlamaBatch<'static>,
    batch_tokens: usize,
}

impl<'m> LlamaExecutor<'m> {
    pub(crate) fn new(
        name: String,
        model: &'m LlamaModel,
        ctx: LlamaContext<'m>,
        batch_tokens: usize,
    ) -> Self {
        let template = model.chat_template(None).ok();
        if template.is_none() {
            tracing::warn!(model = %name, "model has no chat template; chat prompts use a plain transcript");
        }
        LlamaExecutor {
            name,
            model,
            ctx,
            template,
            batch: LlamaBatch::new(batch_tokens, 1),
            batch_tokens,
        }
    }

    fn sampler(sampling: &Sampling) -> LlamaSampler {
        if sampling.is_greedy() {
            return LlamaSampler::greedy();
        }
        let mut chain = Vec::new();
        if let Some(k) = sampling.top_k {
            chain.push(LlamaSampler::top_k(k.min(i32::MAX as u32) as i32));
        }
        if let Some(p) = sampling.top_p {
            chain.push(LlamaSampler::top_p(p, 1));
        }
        chain.push(LlamaSampler::temp(sampling.temperature));
        chain.push(LlamaSampler::dist(sampling.seed));
        LlamaSampler::chain_simple(chain)
    }

    fn engine_err(e: impl std::fmt::Display) -> GenerationError {
        GenerationError::Engine(e.to_string())
    }

    /// Decodes the prompt in chunks of at most `batch_tokens`; logits only for the last token.
    fn decode_prompt(&mut self, prompt: &[u32]) -> Result<(), GenerationError> {
        let last = prompt.len().saturating_sub(1);
        for (chunk_no, chunk) in prompt.chunks(self.batch_tokens).enumerate() {
            self.batch.clear();
            for (i, &tok) in chunk.iter().enumerate() {
                let pos = chunk_no * self.batch_tokens + i;
                self.batch
                    .add(LlamaToken(tok as i32), pos as i32, &[0], pos == last)
                    .map_err(Self::engine_err)?;
            }
            self.ctx.decode(&mut self.batch).map_err(Self::engine_err)?;
        }
        Ok(())
    }
}

impl Executor for LlamaExecutor<'_> {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            name: self.name.clone(),
            context_tokens: self.ctx.n_ctx(),
        }
    }

    fn tokenize_prompt(&mut self, prompt: &Prompt) -> Result<Vec<u32>, GenerationError> {
        let text = prompt::render(self.model, self.template.as_ref(), prompt)?;
        let tokens = self.model.vocab().tokenize(text.as_bytes(), true, true);
        Ok(tokens.into_iter().map(|t| t.0 as u32).collect())
    }

    fn generate(
        &mut self,
        prompt: &[u32],
        sampling: &Sampling,
        max_tokens: u32,
        emit: &mut dyn FnMut(&[u8]) -> Flow,
    ) -> Result<EngineOutcome, GenerationError> {
        if prompt.is_empty() {
            return Err(GenerationError::Template("empty prompt".into()));
        }
        self.ctx.clear_kv_cache();
        self.decode_prompt(prompt)?;
        let mut sampler = Self::sampler(sampling);
        let n_ctx = self.ctx.n_ctx() as usize;
        let mut pos = prompt.len();
        let mut logits_index = self.batch.n_tokens() - 1;
        let mut generated = 0u32;
        let mut piece = Vec::with_capacity(32);
        loop {
            if generated >= max_tokens || pos >= n_ctx {
                return Ok(EngineOutcome {
                    stop: EngineStop::Limit,
                    generated_tokens: generated,
                });
            }
            let token = sampler.sample(&self.ctx, logits_index);
            let vocab = self.model.vocab();
            if vocab.is_eog(token) {
                return Ok(EngineOutcome {
                    stop: EngineStop::EndOfTurn,
                    generated_tokens: generated,
                });
            }
            generated += 1;
            piece.clear();
            vocab.token_to_piece_into(token, &mut piece, false, None);
            if emit(&piece) == Flow::Stop {
                return Ok(EngineOutcome {
                    stop: EngineStop::Stopped,
                    generated_tokens: generated,
                });
            }
            self.batch.clear();
            self.batch
                .add(token, pos as i32, &[0], true)
                .map_err(Self::engine_err)?;
            self.ctx.decode(&mut self.batch).map_err(Self::engine_err)?;
            logits_index = 0;
            pos += 1;
        }
    }
}
