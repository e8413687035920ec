//! Sentence embeddings, in-process: a BERT model (all-MiniLM-L6-v2 by default) run with candle,
//! mean-pooled over its tokens, plus the fixed dimension maps that turn its vectors into the
//! lengths Bedrock's embedding models return ([`resize`]).
//!
//! Why candle rather than llama.cpp: the model ships as safetensors with a Hugging Face
//! `tokenizer.json`; candle and `tokenizers` read both as they are, in pure Rust, with no
//! conversion step or second copy of the weights.

#![forbid(unsafe_code)]

mod bert;
mod quantize;
mod resize;

pub use bert::{BertEmbedder, EmbedLoadError};
pub use quantize::{quantize, Quantization};
pub use resize::{normalize, resize};
