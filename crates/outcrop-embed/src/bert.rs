use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use outcrop_types::{Embedder, Embedding, GenerationError};
use std::path::Path;
use tokenizers::Tokenizer;

/// Why an embedding model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum EmbedLoadError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("loading the model weights: {0}")]
    Weights(String),
}

/// A BERT sentence-embedding model and its tokenizer, on the CPU.
pub struct BertEmbedder {
    name: String,
    model: BertModel,
    tokenizer: Tokenizer,
    dimensions: usize,
    max_positions: usize,
}

impl BertEmbedder {
    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from `dir`.
    pub fn load(name: &str, dir: &Path) -> Result<Self, EmbedLoadError> {
        let file = |f: &str| dir.join(f);
        let bad = |f: &str, e: &dyn std::fmt::Display| EmbedLoadError::File {
            path: file(f).display().to_string(),
            reason: e.to_string(),
        };
        let config_text =
            std::fs::read_to_string(file("config.json")).map_err(|e| bad("config.json", &e))?;
        let config: Config =
            serde_json::from_str(&config_text).map_err(|e| bad("config.json", &e))?;
        let raw: serde_json::Value =
            serde_json::from_str(&config_text).map_err(|e| bad("config.json", &e))?;
        let dimensions = raw["hidden_size"].as_u64().unwrap_or(384) as usize;
        let mut max_positions = raw["max_position_embeddings"].as_u64().unwrap_or(512) as usize;
        // sentence-transformers cuts inputs at the length the model was trained on.
        if let Ok(text) = std::fs::read_to_string(file("sentence_bert_config.json")) {
            let st: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| bad("sentence_bert_config.json", &e))?;
            if let Some(n) = st["max_seq_length"].as_u64() {
                max_positions = max_positions.min(n as usize);
            }
        }
        let mut tokenizer =
            Tokenizer::from_file(file("tokenizer.json")).map_err(|e| bad("tokenizer.json", &e))?;
        // The file pads every input to a fixed length for batching; one unpadded sequence at a
        // time is what mean pooling without a mask needs, and the count must be the real one.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| bad("tokenizer.json", &e))?;
        let weights =
            std::fs::read(file("model.safetensors")).map_err(|e| bad("model.safetensors", &e))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| EmbedLoadError::Weights(e.to_string()))?;
        let model =
            BertModel::load(vb, &config).map_err(|e| EmbedLoadError::Weights(e.to_string()))?;
        Ok(BertEmbedder {
            name: name.to_owned(),
            model,
            tokenizer,
            dimensions,
            max_positions,
        })
    }

    fn forward(&self, ids: &[u32]) -> candle_core::Result<Vec<f32>> {
        let input = Tensor::new(ids, &Device::Cpu)?.unsqueeze(0)?;
        let types = input.zeros_like()?;
        let hidden = self.model.forward(&input, &types, None)?; // [1, n, dims]
                                                                // Mean pooling over all tokens (one unpadded sequence, so every token counts).
        hidden.mean(1)?.squeeze(0)?.to_vec1::<f32>()
    }
}

impl Embedder for BertEmbedder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    fn embed(&self, text: &str) -> Result<Embedding, GenerationError> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| GenerationError::Engine(format!("tokenizer: {e}")))?;
        let mut ids = encoding.get_ids().to_vec();
        let input_tokens = ids.len() as u32;
        // Longer inputs are cut to the model's positions, keeping the final [SEP].
        if ids.len() > self.max_positions {
            let last = *ids.last().expect("non-empty");
            ids.truncate(self.max_positions - 1);
            ids.push(last);
        }
        let vector = self
            .forward(&ids)
            .map_err(|e| GenerationError::Engine(format!("embedding forward pass: {e}")))?;
        Ok(Embedding {
            vector,
            input_tokens,
        })
    }
}
