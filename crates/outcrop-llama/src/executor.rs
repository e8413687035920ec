use crate::grammar;
use crate::prompt::{self, Piece, Templates};
use crate::template::JinjaTemplate;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use outcrop_scheduler::{Decode, Executor, PromptTokens, Sampled, SeqId};
use outcrop_types::{CacheAt, GenerationError, ModelInfo, Prompt, Sampling};

/// One model and one multi-sequence context, owned by the engine thread.
pub struct LlamaExecutor<'m> {
    name: String,
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    templates: Templates,
    batch: LlamaBatch<'static>,
    /// One sampler per sequence slot (its own seed and state).
    samplers: Vec<Option<LlamaSampler>>,
    context_per_sequence: u32,
    kv_unified: bool,
}

impl<'m> LlamaExecutor<'m> {
    pub(crate) fn new(
        name: String,
        model: &'m LlamaModel,
        ctx: LlamaContext<'m>,
        batch_tokens: usize,
        sequences: u32,
        context_per_sequence: u32,
        kv_unified: bool,
    ) -> Self {
        let builtin = model.chat_template(None).ok();
        if builtin.is_none() {
            tracing::warn!(model = %name, "model has no chat template; chat prompts use a plain transcript");
        }
        let with_tools = builtin
            .as_ref()
            .and_then(|t| t.to_str().ok())
            .and_then(JinjaTemplate::with_tools);
        tracing::debug!(model = %name, template_renders_tools = with_tools.is_some(), "chat template");
        let templates = Templates {
            builtin,
            with_tools,
        };
        LlamaExecutor {
            name,
            model,
            ctx,
            templates,
            batch: LlamaBatch::new(batch_tokens, 1),
            samplers: (0..sequences).map(|_| None).collect(),
            context_per_sequence,
            kv_unified,
        }
    }

    fn sampler(&self, sampling: &Sampling) -> Result<LlamaSampler, GenerationError> {
        let mut chain = Vec::new();
        if let Some(constraint) = &sampling.constraint {
            chain.push(grammar::sampler(self.model, constraint)?);
        }
        if sampling.is_greedy() {
            chain.push(LlamaSampler::greedy());
            return Ok(LlamaSampler::chain_simple(chain));
        }
        if let Some(k) = sampling.top_k {
            chain.push(LlamaSampler::top_k(k.min(i32::MAX as u32) as i32));
        }
        if let Some(p) = sampling.top_p {
            chain.push(LlamaSampler::top_p(p, 1));
        }
        chain.push(LlamaSampler::temp(sampling.temperature));
        chain.push(LlamaSampler::dist(sampling.seed));
        Ok(LlamaSampler::chain_simple(chain))
    }

    fn engine_err(e: impl std::fmt::Display) -> GenerationError {
        GenerationError::Engine(e.to_string())
    }
}

impl Executor for LlamaExecutor<'_> {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            name: self.name.clone(),
            context_tokens: self.context_per_sequence,
            max_sequences: self.samplers.len() as u32,
            kv_tokens: self.ctx.n_ctx(),
        }
    }

    fn tokenize_prompt(
        &mut self,
        prompt: &Prompt,
        points: &[CacheAt],
    ) -> Result<PromptTokens, GenerationError> {
        let pieces = prompt::render(self.model, &self.templates, prompt, points)?;
        tracing::trace!(model = %self.name, ?pieces, "prompt rendered");
        let vocab = self.model.vocab();
        let mut tokens = Vec::new();
        // 0: not in the prompt (a checkpoint in a prefill): caches nothing.
        let mut checkpoints = vec![0u32; points.len()];
        let mut first = true;
        for piece in &pieces {
            // BOS (when the model wants one) before the first piece only; special tokens
            // parsed in the template's markup only. Each piece is tokenized on its own, so a
            // checkpoint between pieces falls on a token boundary.
            let (text, special) = match piece {
                Piece::Markup(text) => (text, true),
                Piece::Text(text) => (text, false),
                Piece::Checkpoint(n) => {
                    if let Some(at) = checkpoints.get_mut(*n).filter(|at| **at == 0) {
                        *at = tokens.len() as u32;
                    }
                    continue;
                }
            };
            vocab.tokenize_into(text.as_bytes(), &mut tokens, first, special);
            first = false;
        }
        Ok(PromptTokens {
            tokens: tokens.into_iter().map(|t| t.0 as u32).collect(),
            checkpoints,
        })
    }

    fn begin(&mut self, seq: SeqId, sampling: &Sampling) -> Result<(), GenerationError> {
        let sampler = self.sampler(sampling)?;
        let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
        self.samplers[seq] = Some(sampler);
        Ok(())
    }

    fn step(&mut self, work: &[Decode<'_>]) -> Result<Vec<Sampled>, GenerationError> {
        self.batch.clear();
        let mut sample_at = Vec::new();
        // With one KV stream per sequence (kv_unified = false) llama.cpp splits a batch into
        // ubatches of consecutive, increasing sequence ids (`split_equal`, sequential): in
        // admission order, a decode step of N sequences could take N graph computations.
        let mut order: Vec<&Decode<'_>> = work.iter().collect();
        order.sort_by_key(|d| d.seq);
        for d in order {
            let last = d.tokens.len().saturating_sub(1);
            for (i, &tok) in d.tokens.iter().enumerate() {
                let logits = d.sample && i == last;
                if logits {
                    sample_at.push((d.seq, self.batch.n_tokens()));
                }
                self.batch
                    .add(
                        LlamaToken(tok as i32),
                        (d.pos as usize + i) as i32,
                        &[d.seq as i32],
                        logits,
                    )
                    .map_err(Self::engine_err)?;
            }
        }
        self.ctx.decode(&mut self.batch).map_err(Self::engine_err)?;
        let vocab = self.model.vocab();
        let mut out = Vec::with_capacity(sample_at.len());
        for (seq, index) in sample_at {
            let sampler = self.samplers[seq]
                .as_mut()
                .ok_or_else(|| Self::engine_err("sampling a slot that was not begun"))?;
            let token = sampler.sample(&self.ctx, index);
            let end_of_turn = vocab.is_eog(token);
            let mut piece = Vec::new();
            if !end_of_turn {
                vocab.token_to_piece_into(token, &mut piece, false, None);
            }
            out.push(Sampled {
                seq,
                token: token.0 as u32,
                end_of_turn,
                piece,
            });
        }
        Ok(out)
    }

    fn end(&mut self, seq: SeqId) {
        let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
        self.samplers[seq] = None;
    }

    fn reset(&mut self) {
        self.ctx.clear_kv_cache();
    }

    /// With one KV pool (unified), sequences share cells by id; llama.cpp takes ids up to
    /// its `LLAMA_MAX_SEQ` (256) there, whatever `n_seq_max`. Separate streams per sequence
    /// would need copies: no sharing then.
    fn shared_sequences(&self) -> usize {
        if self.kv_unified {
            256usize.saturating_sub(self.samplers.len())
        } else {
            0
        }
    }

    fn share(&mut self, from: SeqId, to: SeqId, start: u32, end: u32) {
        let _ = self
            .ctx
            .copy_kv_cache_seq(from as i32, to as i32, Some(start), Some(end));
    }

    fn forget(&mut self, seq: SeqId) {
        let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
    }
}
