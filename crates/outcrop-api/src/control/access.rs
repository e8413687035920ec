//! Model access on the wire: agreement offers, agreements, the use-case form and availability,
//! as the Bedrock console's "Model access" page drives them through the control plane.

use crate::{json_response, ApiError};
use aws_smithy_types::base64;
use axum::http::StatusCode;
use axum::response::Response;
use outcrop_service::access::{self, offer_token};
use outcrop_service::{Principal, Service};
use serde_json::{json, Value};

fn body_json(body: &[u8]) -> Result<serde_json::Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ApiError::Validation(
            "The request body is not a valid JSON object.".into(),
        )),
    }
}

fn required_str<'b>(
    body: &'b serde_json::Map<String, Value>,
    member: &str,
) -> Result<&'b str, ApiError> {
    body.get(member).and_then(Value::as_str).ok_or_else(|| {
        ApiError::Validation(format!(
            "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
        ))
    })
}

/// `GET /foundation-model-availability/{modelId}`
pub async fn availability(
    state: &Service,
    principal: &Principal,
    identifier: &str,
) -> Result<Response, ApiError> {
    let entry = state.catalog_entry(identifier)?;
    let a = access::availability(state, principal, entry).await?;
    let available = |yes: bool| if yes { "AVAILABLE" } else { "NOT_AVAILABLE" };
    Ok(json_response(
        StatusCode::OK,
        json!({
            "modelId": entry.id,
            "agreementAvailability": { "status": available(a.agreed) },
            "authorizationStatus": if a.authorized { "AUTHORIZED" } else { "NOT_AUTHORIZED" },
            "entitlementAvailability": available(a.entitled),
            "regionAvailability": "AVAILABLE",
        }),
    ))
}

/// `GET /list-foundation-model-agreement-offers/{modelId}`
pub fn offers(state: &Service, identifier: &str) -> Result<Response, ApiError> {
    let entry = state.catalog_entry(identifier)?;
    let rate = |dimension: &str, price: &str, what: &str| json!({ "dimension": dimension, "price": price, "description": format!("{what} tokens, USD per 1,000"), "unit": "1K tokens" });
    Ok(json_response(
        StatusCode::OK,
        json!({
            "modelId": entry.id,
            "offers": [{
                "offerId": format!("outcrop-public-{}", entry.id),
                "offerToken": offer_token(&entry.id),
                "termDetails": {
                    "usageBasedPricingTerm": { "rateCard": [
                        rate("input_tokens", &entry.input_price_per_1k, "Input"),
                        rate("output_tokens", &entry.output_price_per_1k, "Output"),
                    ]},
                    "legalTerm": { "url": "https://aws.amazon.com/service-terms/" },
                    "supportTerm": { "refundPolicyDescription": "No refunds: usage is metered per token." },
                },
            }],
        }),
    ))
}

/// `POST /create-foundation-model-agreement` (202)
pub async fn create_agreement(
    state: &Service,
    principal: &Principal,
    body: &[u8],
) -> Result<Response, ApiError> {
    let body = body_json(body)?;
    let token = required_str(&body, "offerToken")?;
    let model_id = required_str(&body, "modelId")?;
    let entry = access::create_agreement(state, principal, model_id, token).await?;
    Ok(json_response(
        StatusCode::ACCEPTED,
        json!({ "modelId": entry.id }),
    ))
}

/// `POST /delete-foundation-model-agreement` (202)
pub async fn delete_agreement(
    state: &Service,
    principal: &Principal,
    body: &[u8],
) -> Result<Response, ApiError> {
    let body = body_json(body)?;
    access::delete_agreement(state, principal, required_str(&body, "modelId")?).await?;
    Ok(json_response(StatusCode::ACCEPTED, json!({})))
}

/// `POST /use-case-for-model-access` (201): the form is a JSON document (company name,
/// website, intended users, industry, use cases), base64-encoded in `formData`.
pub async fn put_use_case(
    state: &Service,
    principal: &Principal,
    body: &[u8],
) -> Result<Response, ApiError> {
    let body = body_json(body)?;
    let form = base64::decode(required_str(&body, "formData")?)
        .map_err(|_| ApiError::Validation("formData must be base64-encoded.".into()))?;
    access::submit_use_case(state, principal, &form).await?;
    Ok(json_response(StatusCode::CREATED, json!({})))
}

/// `GET /use-case-for-model-access`
pub async fn get_use_case(state: &Service, principal: &Principal) -> Result<Response, ApiError> {
    let form = access::use_case(state, principal).await?;
    Ok(json_response(
        StatusCode::OK,
        json!({ "formData": base64::encode(form) }),
    ))
}
