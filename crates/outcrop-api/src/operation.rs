//! Which Bedrock operation a request is, decided from the method and the raw path before
//! anything else happens (authentication included).

use crate::ApiError;
use axum::http::Method;
use percent_encoding::percent_decode_str;

/// Builds an operation from a decoded path parameter.
type MakeOperation = fn(String) -> Operation;

/// A recognised operation and its path parameters, decoded. `identifier` is a model or
/// profile identifier as the client sent it (plain id, versioned id or ARN); the catalog id it
/// resolves to is a `model_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    InvokeModel {
        identifier: String,
    },
    InvokeModelWithResponseStream {
        identifier: String,
    },
    Converse {
        identifier: String,
    },
    ConverseStream {
        identifier: String,
    },
    CountTokens {
        identifier: String,
    },
    PutModelInvocationLoggingConfiguration,
    GetModelInvocationLoggingConfiguration,
    DeleteModelInvocationLoggingConfiguration,
    /// Outcrop's own: the account's usage ledger summed (for the console and scripts).
    GetUsageReport,
    ListInferenceProfiles,
    GetInferenceProfile {
        identifier: String,
    },
    /// Control plane: the catalog (filters come from the query string).
    ListFoundationModels,
    GetFoundationModel {
        identifier: String,
    },
    GetFoundationModelAvailability {
        identifier: String,
    },
    ListFoundationModelAgreementOffers {
        identifier: String,
    },
    CreateFoundationModelAgreement,
    DeleteFoundationModelAgreement,
    PutUseCaseForModelAccess,
    GetUseCaseForModelAccess,
    /// Custom Model Import: jobs (by ARN or name) and the models they made (by ARN or name).
    CreateModelImportJob,
    GetModelImportJob {
        identifier: String,
    },
    ListModelImportJobs,
    ListImportedModels,
    GetImportedModel {
        identifier: String,
    },
    DeleteImportedModel {
        identifier: String,
    },
    /// `POST /openai/v1/chat/completions` (or `/v1/...`): OpenAI's Chat Completions. The model
    /// and `stream` come in the body ([`Operation::with_body`]).
    ChatCompletions {
        identifier: String,
        stream: bool,
    },
    /// `POST /openai/v1/responses` (or `/v1/responses`): OpenAI's Responses API, synchronous.
    Responses {
        identifier: String,
        stream: bool,
    },
    /// `GET /openai/v1/models` (or `/v1/models`): the models the caller may invoke.
    ListOpenAiModels,
    /// `POST /anthropic/v1/messages`: Anthropic's Messages API. The model and `stream` come in
    /// the body.
    AnthropicMessages {
        identifier: String,
        stream: bool,
    },
}

/// Which API a request speaks, and so how its errors are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    Bedrock,
    OpenAi,
    Anthropic,
}

impl Surface {
    /// The surface of a raw path (decided before the operation is known, so that even an
    /// unknown route under `/openai/` answers in OpenAI's error shape).
    pub fn of(raw_path: &str) -> Self {
        if raw_path.starts_with("/openai/") || raw_path.starts_with("/v1/") {
            Surface::OpenAi
        } else if raw_path.starts_with("/anthropic/") {
            Surface::Anthropic
        } else {
            Surface::Bedrock
        }
    }
}

impl Operation {
    /// The operation name, as in the AWS API and in logs.
    pub fn name(&self) -> &'static str {
        match self {
            Operation::InvokeModel { .. } => "InvokeModel",
            Operation::InvokeModelWithResponseStream { .. } => "InvokeModelWithResponseStream",
            Operation::Converse { .. } => "Converse",
            Operation::ConverseStream { .. } => "ConverseStream",
            Operation::CountTokens { .. } => "CountTokens",
            Operation::PutModelInvocationLoggingConfiguration => {
                "PutModelInvocationLoggingConfiguration"
            }
            Operation::GetModelInvocationLoggingConfiguration => {
                "GetModelInvocationLoggingConfiguration"
            }
            Operation::DeleteModelInvocationLoggingConfiguration => {
                "DeleteModelInvocationLoggingConfiguration"
            }
            Operation::GetUsageReport => "GetUsageReport",
            Operation::ListInferenceProfiles => "ListInferenceProfiles",
            Operation::GetInferenceProfile { .. } => "GetInferenceProfile",
            Operation::ListFoundationModels => "ListFoundationModels",
            Operation::GetFoundationModel { .. } => "GetFoundationModel",
            Operation::GetFoundationModelAvailability { .. } => "GetFoundationModelAvailability",
            Operation::ListFoundationModelAgreementOffers { .. } => {
                "ListFoundationModelAgreementOffers"
            }
            Operation::CreateFoundationModelAgreement => "CreateFoundationModelAgreement",
            Operation::DeleteFoundationModelAgreement => "DeleteFoundationModelAgreement",
            Operation::PutUseCaseForModelAccess => "PutUseCaseForModelAccess",
            Operation::GetUseCaseForModelAccess => "GetUseCaseForModelAccess",
            Operation::CreateModelImportJob => "CreateModelImportJob",
            Operation::GetModelImportJob { .. } => "GetModelImportJob",
            Operation::ListModelImportJobs => "ListModelImportJobs",
            Operation::ListImportedModels => "ListImportedModels",
            Operation::GetImportedModel { .. } => "GetImportedModel",
            Operation::DeleteImportedModel { .. } => "DeleteImportedModel",
            Operation::ChatCompletions { .. } => "CreateChatCompletion",
            Operation::Responses { .. } => "CreateResponse",
            Operation::ListOpenAiModels => "ListModels",
            Operation::AnthropicMessages { .. } => "CreateMessage",
        }
    }

    /// Fills in what an OpenAI or Anthropic request names in its body (`model`, `stream`);
    /// other operations are returned as they are. A body that is not a JSON object leaves the
    /// model empty, and the operation reports it.
    pub fn with_body(self, body: &[u8]) -> Self {
        #[derive(serde::Deserialize)]
        struct Named {
            #[serde(default)]
            model: Option<serde_json::Value>,
            #[serde(default)]
            stream: Option<serde_json::Value>,
        }
        let named = serde_json::from_slice::<Named>(body).ok();
        let identifier = || {
            named
                .as_ref()
                .and_then(|n| n.model.as_ref()?.as_str().map(str::to_owned))
                .unwrap_or_default()
        };
        let stream = || {
            named
                .as_ref()
                .and_then(|n| n.stream.as_ref()?.as_bool())
                .unwrap_or(false)
        };
        match self {
            Operation::ChatCompletions { .. } => Operation::ChatCompletions {
                identifier: identifier(),
                stream: stream(),
            },
            Operation::AnthropicMessages { .. } => Operation::AnthropicMessages {
                identifier: identifier(),
                stream: stream(),
            },
            Operation::Responses { .. } => Operation::Responses {
                identifier: identifier(),
                stream: stream(),
            },
            other => other,
        }
    }

    /// Whether the answer is a stream.
    pub fn streams(&self) -> bool {
        matches!(
            self,
            Operation::InvokeModelWithResponseStream { .. }
                | Operation::ConverseStream { .. }
                | Operation::ChatCompletions { stream: true, .. }
                | Operation::Responses { stream: true, .. }
                | Operation::AnthropicMessages { stream: true, .. }
        )
    }

    /// The model identifier of a runtime operation (those the usage ledger records).
    pub fn runtime_model(&self) -> Option<&str> {
        match self {
            Operation::InvokeModel { identifier }
            | Operation::InvokeModelWithResponseStream { identifier }
            | Operation::Converse { identifier }
            | Operation::ConverseStream { identifier }
            | Operation::CountTokens { identifier }
            | Operation::ChatCompletions { identifier, .. }
            | Operation::Responses { identifier, .. }
            | Operation::AnthropicMessages { identifier, .. } => Some(identifier),
            _ => None,
        }
    }

    /// Parses `raw_path` (still percent-encoded). A model id may contain `/` (ARNs) whether or
    /// not the client encoded it, so it is everything between `/model/` and the last segment.
    pub fn parse(method: &Method, raw_path: &str) -> Result<Self, ApiError> {
        let unknown = || ApiError::UnknownOperation {
            method: method.to_string(),
            path: raw_path.to_owned(),
        };
        match (method, raw_path) {
            (&Method::GET, "/foundation-models") => return Ok(Operation::ListFoundationModels),
            (&Method::GET, "/inference-profiles") => return Ok(Operation::ListInferenceProfiles),
            (&Method::GET, "/_outcrop/usage") => return Ok(Operation::GetUsageReport),
            (&Method::PUT, "/logging/modelinvocations") => {
                return Ok(Operation::PutModelInvocationLoggingConfiguration)
            }
            (&Method::GET, "/logging/modelinvocations") => {
                return Ok(Operation::GetModelInvocationLoggingConfiguration)
            }
            (&Method::DELETE, "/logging/modelinvocations") => {
                return Ok(Operation::DeleteModelInvocationLoggingConfiguration)
            }
            (&Method::POST, "/create-foundation-model-agreement") => {
                return Ok(Operation::CreateFoundationModelAgreement)
            }
            (&Method::POST, "/delete-foundation-model-agreement") => {
                return Ok(Operation::DeleteFoundationModelAgreement)
            }
            (&Method::POST, "/use-case-for-model-access") => {
                return Ok(Operation::PutUseCaseForModelAccess)
            }
            (&Method::GET, "/use-case-for-model-access") => {
                return Ok(Operation::GetUseCaseForModelAccess)
            }
            (&Method::POST, "/model-import-jobs") => return Ok(Operation::CreateModelImportJob),
            (&Method::GET, "/model-import-jobs") => return Ok(Operation::ListModelImportJobs),
            (&Method::GET, "/imported-models") => return Ok(Operation::ListImportedModels),
            (&Method::POST, "/openai/v1/chat/completions" | "/v1/chat/completions") => {
                return Ok(Operation::ChatCompletions {
                    identifier: String::new(),
                    stream: false,
                })
            }
            (&Method::POST, "/openai/v1/responses" | "/v1/responses") => {
                return Ok(Operation::Responses {
                    identifier: String::new(),
                    stream: false,
                })
            }
            (&Method::GET, "/openai/v1/models" | "/v1/models") => {
                return Ok(Operation::ListOpenAiModels)
            }
            (&Method::POST, "/anthropic/v1/messages") => {
                return Ok(Operation::AnthropicMessages {
                    identifier: String::new(),
                    stream: false,
                })
            }
            _ => {}
        }
        let decode = |raw: &str| {
            percent_decode_str(raw)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| ApiError::Validation(crate::error::INVALID_MODEL_ID.into()))
        };
        // GET /{prefix}{model}: the control-plane reads of one model.
        let model_routes: [(&str, MakeOperation); 4] = [
            ("/inference-profiles/", |identifier| {
                Operation::GetInferenceProfile { identifier }
            }),
            ("/foundation-models/", |identifier| {
                Operation::GetFoundationModel { identifier }
            }),
            ("/foundation-model-availability/", |identifier| {
                Operation::GetFoundationModelAvailability { identifier }
            }),
            ("/list-foundation-model-agreement-offers/", |identifier| {
                Operation::ListFoundationModelAgreementOffers { identifier }
            }),
        ];
        // Imported models are read and deleted by ARN or name; jobs are read.
        if let Some(raw_id) = raw_path.strip_prefix("/imported-models/") {
            let identifier = decode(raw_id)?;
            return match *method {
                _ if identifier.is_empty() => Err(unknown()),
                Method::GET => Ok(Operation::GetImportedModel { identifier }),
                Method::DELETE => Ok(Operation::DeleteImportedModel { identifier }),
                _ => Err(unknown()),
            };
        }
        if let Some(raw_id) = raw_path.strip_prefix("/model-import-jobs/") {
            let identifier = decode(raw_id)?;
            return if *method == Method::GET && !identifier.is_empty() {
                Ok(Operation::GetModelImportJob { identifier })
            } else {
                Err(unknown())
            };
        }
        for (prefix, make) in model_routes {
            if let Some(raw_id) = raw_path.strip_prefix(prefix) {
                let model = decode(raw_id)?;
                return if *method == Method::GET && !model.is_empty() {
                    Ok(make(model))
                } else {
                    Err(unknown())
                };
            }
        }
        let rest = raw_path.strip_prefix("/model/").ok_or_else(unknown)?;
        let (raw_id, action) = rest.rsplit_once('/').ok_or_else(unknown)?;
        if raw_id.is_empty() {
            return Err(unknown());
        }
        let identifier = decode(raw_id)?;
        match (method, action) {
            (&Method::POST, "invoke") => Ok(Operation::InvokeModel { identifier }),
            (&Method::POST, "invoke-with-response-stream") => {
                Ok(Operation::InvokeModelWithResponseStream { identifier })
            }
            (&Method::POST, "converse") => Ok(Operation::Converse { identifier }),
            (&Method::POST, "converse-stream") => Ok(Operation::ConverseStream { identifier }),
            (&Method::POST, "count-tokens") => Ok(Operation::CountTokens { identifier }),
            _ => Err(unknown()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invoke(id: &str) -> Operation {
        Operation::InvokeModel {
            identifier: id.into(),
        }
    }

    #[test]
    fn model_ids_are_decoded() {
        assert_eq!(
            Operation::parse(&Method::POST, "/model/anthropic.claude-v2/invoke").unwrap(),
            invoke("anthropic.claude-v2")
        );
        assert_eq!(
            Operation::parse(&Method::POST, "/model/anthropic.claude-v2%3A1/invoke").unwrap(),
            invoke("anthropic.claude-v2:1")
        );
        assert_eq!(
            Operation::parse(&Method::POST, "/model/anthropic.claude-v2:1/invoke").unwrap(),
            invoke("anthropic.claude-v2:1")
        );
        let arn = "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-v2";
        assert_eq!(
            Operation::parse(&Method::POST, "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A%3Afoundation-model%2Fanthropic.claude-v2/invoke").unwrap(),
            invoke(arn)
        );
        assert_eq!(
            Operation::parse(&Method::POST, &format!("/model/{arn}/invoke")).unwrap(),
            invoke(arn)
        );
    }

    #[test]
    fn control_plane_routes() {
        assert_eq!(
            Operation::parse(&Method::GET, "/foundation-models").unwrap(),
            Operation::ListFoundationModels
        );
        assert_eq!(
            Operation::parse(&Method::GET, "/foundation-models/arn%3Aaws%3Abedrock%3Aus-east-1%3A%3Afoundation-model%2Fanthropic.claude-v2").unwrap(),
            Operation::GetFoundationModel {
                identifier: "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-v2".into()
            }
        );
        assert!(Operation::parse(&Method::POST, "/foundation-models").is_err());
        assert!(Operation::parse(&Method::GET, "/foundation-models/").is_err());
    }

    #[test]
    fn streaming_route() {
        assert_eq!(
            Operation::parse(
                &Method::POST,
                "/model/anthropic.claude-v2%3A1/invoke-with-response-stream"
            )
            .unwrap(),
            Operation::InvokeModelWithResponseStream {
                identifier: "anthropic.claude-v2:1".into()
            }
        );
    }

    #[test]
    fn converse_count_and_profile_routes() {
        assert_eq!(
            Operation::parse(
                &Method::POST,
                "/model/us.amazon.nova-pro-v1%3A0/converse-stream"
            )
            .unwrap(),
            Operation::ConverseStream {
                identifier: "us.amazon.nova-pro-v1:0".into()
            }
        );
        assert_eq!(
            Operation::parse(&Method::POST, "/model/m/count-tokens").unwrap(),
            Operation::CountTokens {
                identifier: "m".into()
            }
        );
        assert_eq!(
            Operation::parse(
                &Method::GET,
                "/inference-profiles/us.anthropic.claude-3-haiku-20240307-v1%3A0"
            )
            .unwrap(),
            Operation::GetInferenceProfile {
                identifier: "us.anthropic.claude-3-haiku-20240307-v1:0".into()
            }
        );
        assert_eq!(
            Operation::parse(&Method::GET, "/inference-profiles").unwrap(),
            Operation::ListInferenceProfiles
        );
    }

    #[test]
    fn openai_and_anthropic_routes_take_the_model_from_the_body() {
        let op = Operation::parse(&Method::POST, "/openai/v1/chat/completions").unwrap();
        assert_eq!(
            op.with_body(br#"{"model": "us.amazon.nova-micro-v1:0", "stream": true}"#),
            Operation::ChatCompletions {
                identifier: "us.amazon.nova-micro-v1:0".into(),
                stream: true
            }
        );
        let op = Operation::parse(&Method::POST, "/v1/chat/completions").unwrap();
        assert_eq!(
            op.with_body(b"not json"),
            Operation::ChatCompletions {
                identifier: String::new(),
                stream: false
            }
        );
        let op = Operation::parse(&Method::POST, "/anthropic/v1/messages").unwrap();
        assert!(op.with_body(br#"{"model": "m", "stream": true}"#).streams());
        assert_eq!(
            Operation::parse(&Method::GET, "/openai/v1/models").unwrap(),
            Operation::ListOpenAiModels
        );
        assert_eq!(Surface::of("/openai/v1/nothing"), Surface::OpenAi);
        assert_eq!(Surface::of("/anthropic/v1/x"), Surface::Anthropic);
        assert_eq!(Surface::of("/model/m/invoke"), Surface::Bedrock);
    }

    #[test]
    fn model_import_routes() {
        let arn = "arn:aws:bedrock:us-east-1:111122223333:imported-model/abc123def456";
        assert_eq!(
            Operation::parse(&Method::DELETE, "/imported-models/arn%3Aaws%3Abedrock%3Aus-east-1%3A111122223333%3Aimported-model%2Fabc123def456").unwrap(),
            Operation::DeleteImportedModel { identifier: arn.into() }
        );
        assert_eq!(
            Operation::parse(&Method::GET, "/imported-models/mine").unwrap(),
            Operation::GetImportedModel {
                identifier: "mine".into()
            }
        );
        assert_eq!(
            Operation::parse(&Method::GET, "/model-import-jobs/job-1").unwrap(),
            Operation::GetModelImportJob {
                identifier: "job-1".into()
            }
        );
        assert_eq!(
            Operation::parse(&Method::POST, "/model-import-jobs").unwrap(),
            Operation::CreateModelImportJob
        );
        assert!(Operation::parse(&Method::POST, "/imported-models/mine").is_err());
        assert!(Operation::parse(&Method::DELETE, "/model-import-jobs/job-1").is_err());
        assert!(Operation::parse(&Method::GET, "/imported-models/").is_err());
    }

    #[test]
    fn unknown_routes() {
        for (m, p) in [
            (Method::GET, "/model/anthropic.claude-v2/invoke"),
            (Method::POST, "/model/anthropic.claude-v2/frobnicate"),
            (Method::POST, "/model//invoke"),
            (Method::POST, "/nothing"),
            (Method::GET, "/"),
        ] {
            assert!(
                matches!(
                    Operation::parse(&m, p),
                    Err(ApiError::UnknownOperation { .. })
                ),
                "{m} {p}"
            );
        }
    }
}
