//! Custom Model Import's records: an import job, and the model a finished job made.

use serde::{Deserialize, Serialize};

/// Where an import job stands, as Bedrock names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImportStatus {
    InProgress,
    Completed,
    Failed,
}

impl ImportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportStatus::InProgress => "InProgress",
            ImportStatus::Completed => "Completed",
            ImportStatus::Failed => "Failed",
        }
    }
}

/// A model import job (`CreateModelImportJob`). Times are RFC 3339 UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportJobRecord {
    pub account_id: String,
    /// 12 lowercase letters and digits, the last part of the job's ARN.
    pub job_id: String,
    pub job_name: String,
    pub region: String,
    pub imported_model_name: String,
    pub role_arn: String,
    /// `s3://bucket/key` or `file:///path`, as the client gave it.
    pub source_uri: String,
    pub status: ImportStatus,
    pub failure_message: Option<String>,
    pub created_at: String,
    pub modified_at: String,
    pub ended_at: Option<String>,
    /// The imported model's id, once the job completed.
    pub model_id: Option<String>,
}

/// An imported model: a verified GGUF in the model cache, and what its metadata says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedModelRecord {
    pub account_id: String,
    /// 12 lowercase letters and digits, the last part of the model's ARN.
    pub model_id: String,
    pub model_name: String,
    pub region: String,
    pub job_id: String,
    pub job_name: String,
    pub source_uri: String,
    pub created_at: String,
    /// `general.architecture` (`llama`, `qwen2`, ...).
    pub architecture: String,
    /// The context length the model was trained for.
    pub context_tokens: Option<u32>,
    /// Whether the file carries a chat template (Bedrock's `instructSupported`).
    pub instruct: bool,
    /// The GGUF in the model cache.
    pub path: String,
    pub size_bytes: u64,
    /// Hex SHA-256 of the file.
    pub sha256: String,
}
