//! The IAM action and resources each Bedrock operation needs, decided by the service's policy
//! evaluation.

use crate::operation::Operation;
use crate::ApiError;
use outcrop_service::{iam, Principal, Resolved, Service};

/// The IAM action and resources a request needs, or `None` when it names no known model
/// (the operation reports that itself).
fn requirement(
    principal: &Principal,
    op: &Operation,
    resolved: Option<&Resolved<'_>>,
) -> Option<(&'static str, Vec<String>)> {
    let model_arns = |_identifier: &str| resolved.map(|r| iam::model_arns(r, principal));
    let everything = || vec!["*".to_owned()];
    Some(match op {
        // Converse needs the same permissions as InvokeModel, as on AWS.
        Operation::InvokeModel { identifier } | Operation::Converse { identifier } => {
            ("bedrock:InvokeModel", model_arns(identifier)?)
        }
        Operation::InvokeModelWithResponseStream { identifier }
        | Operation::ConverseStream { identifier } => (
            "bedrock:InvokeModelWithResponseStream",
            model_arns(identifier)?,
        ),
        Operation::CountTokens { identifier } => ("bedrock:CountTokens", model_arns(identifier)?),
        // The OpenAI and Anthropic paths need what InvokeModel and its stream need.
        Operation::ChatCompletions { identifier, stream }
        | Operation::Responses { identifier, stream }
        | Operation::AnthropicMessages { identifier, stream } => (
            if *stream {
                "bedrock:InvokeModelWithResponseStream"
            } else {
                "bedrock:InvokeModel"
            },
            model_arns(identifier)?,
        ),
        Operation::ListOpenAiModels => ("bedrock:ListFoundationModels", everything()),
        Operation::GetFoundationModel { identifier } => {
            ("bedrock:GetFoundationModel", model_arns(identifier)?)
        }
        Operation::ListFoundationModels => ("bedrock:ListFoundationModels", everything()),
        Operation::GetFoundationModelAvailability { .. } => {
            ("bedrock:GetFoundationModelAvailability", everything())
        }
        Operation::ListFoundationModelAgreementOffers { .. } => {
            ("bedrock:ListFoundationModelAgreementOffers", everything())
        }
        Operation::CreateFoundationModelAgreement => {
            ("bedrock:CreateFoundationModelAgreement", everything())
        }
        Operation::DeleteFoundationModelAgreement => {
            ("bedrock:DeleteFoundationModelAgreement", everything())
        }
        Operation::PutUseCaseForModelAccess => ("bedrock:PutUseCaseForModelAccess", everything()),
        Operation::GetUseCaseForModelAccess => ("bedrock:GetUseCaseForModelAccess", everything()),
        Operation::ListInferenceProfiles => ("bedrock:ListInferenceProfiles", everything()),
        Operation::GetUsageReport => ("outcrop:GetUsageReport", everything()),
        Operation::PutModelInvocationLoggingConfiguration => (
            "bedrock:PutModelInvocationLoggingConfiguration",
            everything(),
        ),
        Operation::GetModelInvocationLoggingConfiguration => (
            "bedrock:GetModelInvocationLoggingConfiguration",
            everything(),
        ),
        Operation::DeleteModelInvocationLoggingConfiguration => (
            "bedrock:DeleteModelInvocationLoggingConfiguration",
            everything(),
        ),
        Operation::GetInferenceProfile { .. } => ("bedrock:GetInferenceProfile", everything()),
        Operation::CreateModelImportJob => ("bedrock:CreateModelImportJob", everything()),
        Operation::ListModelImportJobs => ("bedrock:ListModelImportJobs", everything()),
        Operation::ListImportedModels => ("bedrock:ListImportedModels", everything()),
        // Named by ARN, the resource is that ARN; by name, only a policy for every resource
        // allows it.
        Operation::GetModelImportJob { identifier } => {
            ("bedrock:GetModelImportJob", arn_or_everything(identifier))
        }
        Operation::GetImportedModel { identifier } => {
            ("bedrock:GetImportedModel", arn_or_everything(identifier))
        }
        Operation::DeleteImportedModel { identifier } => {
            ("bedrock:DeleteImportedModel", arn_or_everything(identifier))
        }
    })
}

fn arn_or_everything(identifier: &str) -> Vec<String> {
    vec![if identifier.starts_with("arn:") {
        identifier.to_owned()
    } else {
        "*".to_owned()
    }]
}

/// Refuses the request unless the principal's policies allow it.
pub async fn authorize(
    state: &Service,
    principal: &Principal,
    op: &Operation,
) -> Result<(), ApiError> {
    let identifier = match op {
        Operation::GetFoundationModel { identifier } => Some(identifier.as_str()),
        other => other.runtime_model(),
    };
    let resolved = identifier.and_then(|id| state.resolve(id).ok());
    authorize_resolved(state, principal, op, resolved.as_ref()).await
}

/// [`authorize`] for an operation whose model is already resolved (`None`: it names no known
/// model, and the operation reports that itself).
pub async fn authorize_resolved(
    state: &Service,
    principal: &Principal,
    op: &Operation,
    resolved: Option<&Resolved<'_>>,
) -> Result<(), ApiError> {
    let Some((action, resources)) = requirement(principal, op, resolved) else {
        return Ok(());
    };
    iam::authorize_action(state, principal, action, &resources).await
}
