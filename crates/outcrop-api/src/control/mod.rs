//! The Bedrock control plane (`bedrock` client), served on the same listener as the runtime:
//! the foundation-model catalog, model access, invocation logging and Custom Model Import.

pub mod access;
pub mod imports;
pub mod logging;

use crate::{json_response, ApiError};
use axum::http::StatusCode;
use axum::response::Response;
use outcrop_models::CatalogEntry;
use outcrop_service::usage::GroupBy;
use outcrop_service::{Principal, Service};
use percent_encoding::percent_decode_str;
use serde_json::{json, Value};

/// `GET /foundation-models` with its optional filters.
pub fn list_foundation_models(
    state: &Service,
    principal: &Principal,
    raw_query: &str,
) -> Result<Response, ApiError> {
    let mut by_provider = None;
    let mut by_output = None;
    let mut by_inference = None;
    let mut by_customization = None;
    for (key, value) in query_pairs(raw_query) {
        match key.as_str() {
            "byProvider" => {
                let ok = !value.is_empty()
                    && value.len() <= 63
                    && value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ' ');
                if !ok {
                    return Err(constraint(
                        &value,
                        "byProvider",
                        "Member must satisfy regular expression pattern: [A-Za-z0-9- ]{1,63}",
                    ));
                }
                by_provider = Some(value);
            }
            "byOutputModality" => {
                by_output = Some(one_of(
                    value,
                    "byOutputModality",
                    &["TEXT", "IMAGE", "EMBEDDING"],
                )?)
            }
            "byInferenceType" => {
                by_inference = Some(one_of(
                    value,
                    "byInferenceType",
                    &["ON_DEMAND", "PROVISIONED"],
                )?)
            }
            "byCustomizationType" => {
                by_customization = Some(one_of(
                    value,
                    "byCustomizationType",
                    &["FINE_TUNING", "CONTINUED_PRE_TRAINING", "DISTILLATION"],
                )?)
            }
            _ => {} // e.g. projectIdentifier: nothing to filter on here
        }
    }
    let summaries: Vec<Value> = state
        .catalog
        .entries()
        .iter()
        .filter(|e| {
            by_provider
                .as_ref()
                .is_none_or(|p| e.provider.eq_ignore_ascii_case(p))
        })
        .filter(|e| {
            by_output
                .as_ref()
                .is_none_or(|m| e.output_modalities.contains(m))
        })
        // None can be customized; models without on-demand use go through profiles.
        .filter(|e| {
            by_inference
                .as_deref()
                .is_none_or(|t| t == "ON_DEMAND" && e.on_demand)
        })
        .filter(|_| by_customization.is_none())
        .map(|e| model_json(e, &principal.region))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        json!({ "modelSummaries": summaries }),
    ))
}

/// `GET /foundation-models/{modelIdentifier}`: an id or a foundation-model ARN.
pub fn get_foundation_model(
    state: &Service,
    principal: &Principal,
    identifier: &str,
) -> Result<Response, ApiError> {
    let entry = state.catalog_entry(identifier)?;
    Ok(json_response(
        StatusCode::OK,
        json!({ "modelDetails": model_json(entry, &principal.region) }),
    ))
}

/// `GET /_outcrop/usage?since=&until=&group_by=model|principal|day`: the caller's account's
/// ledger summed, as `outcrop usage --format json` prints it (times are RFC 3339 UTC).
pub async fn usage_report(
    state: &Service,
    principal: &Principal,
    raw_query: &str,
) -> Result<Response, ApiError> {
    let (mut since, mut until, mut group_by) = (None, None, GroupBy::Model);
    for (key, value) in query_pairs(raw_query) {
        match key.as_str() {
            "since" => since = Some(value),
            "until" => until = Some(value),
            "group_by" => {
                group_by = match value.as_str() {
                    "model" => GroupBy::Model,
                    "principal" => GroupBy::Principal,
                    "day" => GroupBy::Day,
                    _ => {
                        return Err(constraint(
                            &value,
                            "group_by",
                            "Member must satisfy enum value set: [model, principal, day]",
                        ))
                    }
                }
            }
            _ => {}
        }
    }
    let report = outcrop_service::usage::report(
        state,
        principal,
        since.as_deref(),
        until.as_deref(),
        group_by,
    )
    .await?;
    Ok(json_response(StatusCode::OK, report.to_json(group_by)))
}

/// The regions a geography's system inference profiles route to.
fn geo_regions(geo: &str) -> &'static [&'static str] {
    match geo {
        "us" => &["us-east-1", "us-east-2", "us-west-2"],
        "eu" => &["eu-central-1", "eu-west-1", "eu-west-3"],
        "apac" => &["ap-northeast-1", "ap-southeast-1", "ap-southeast-2"],
        "us-gov" => &["us-gov-west-1", "us-gov-east-1"],
        _ => &[
            "us-east-1",
            "us-east-2",
            "us-west-2",
            "eu-central-1",
            "eu-west-1",
            "ap-northeast-1",
        ],
    }
}

/// An InferenceProfileSummary / GetInferenceProfile answer for `{geo}.{model id}`.
fn profile_json(geo: &str, e: &CatalogEntry, principal: &Principal) -> Value {
    let id = format!("{geo}.{}", e.id);
    let regions = geo_regions(geo);
    let label = if geo == "global" {
        "Global".to_owned()
    } else {
        geo.to_uppercase()
    };
    json!({
        "inferenceProfileName": format!("{label} {} {}", e.provider, e.name),
        "description": format!("Routes requests to {} {} in {}.", e.provider, e.name, regions.join(", ")),
        "createdAt": "2024-08-27T00:00:00Z",
        "updatedAt": "2024-08-27T00:00:00Z",
        "inferenceProfileArn": format!("arn:aws:bedrock:{}:{}:inference-profile/{id}", principal.region, principal.account_id),
        "models": regions
            .iter()
            .map(|r| json!({ "modelArn": format!("arn:aws:bedrock:{r}::foundation-model/{}", e.id) }))
            .collect::<Vec<_>>(),
        "inferenceProfileId": id,
        "status": "ACTIVE",
        "type": "SYSTEM_DEFINED",
    })
}

/// `GET /inference-profiles`: the system inference profiles, paginated.
pub fn list_inference_profiles(
    state: &Service,
    principal: &Principal,
    raw_query: &str,
) -> Result<Response, ApiError> {
    let mut max_results = 1000usize;
    let mut start = 0usize;
    let mut system = true;
    for (key, value) in query_pairs(raw_query) {
        match key.as_str() {
            "maxResults" => max_results = page_size(&value)?,
            "nextToken" => {
                start = value
                    .parse()
                    .map_err(|_| ApiError::Validation("The pagination token is invalid.".into()))?
            }
            "type" => {
                system = one_of(value, "typeEquals", &["SYSTEM_DEFINED", "APPLICATION"])?
                    == "SYSTEM_DEFINED"
            }
            _ => {}
        }
    }
    let all: Vec<Value> = state
        .catalog
        .entries()
        .iter()
        .filter(|_| system)
        .flat_map(|e| e.inference_profiles.iter().map(move |g| (g, e)))
        .map(|(g, e)| profile_json(g, e, principal))
        .collect();
    let page: Vec<Value> = all.iter().skip(start).take(max_results).cloned().collect();
    let mut body = json!({ "inferenceProfileSummaries": page });
    if start + max_results < all.len() {
        body["nextToken"] = json!((start + max_results).to_string());
    }
    Ok(json_response(StatusCode::OK, body))
}

/// `GET /inference-profiles/{id or ARN}`.
pub fn get_inference_profile(
    state: &Service,
    principal: &Principal,
    identifier: &str,
) -> Result<Response, ApiError> {
    let found =
        outcrop_service::resolve_model_id(identifier).and_then(|id| state.catalog.profile(id));
    let Some((geo, entry)) = found else {
        return Err(ApiError::ResourceNotFound(
            "The specified inference profile doesn't exist.".into(),
        ));
    };
    Ok(json_response(
        StatusCode::OK,
        profile_json(geo, entry, principal),
    ))
}

/// A FoundationModelSummary / FoundationModelDetails (the two share their members).
fn model_json(e: &CatalogEntry, region: &str) -> Value {
    json!({
        "modelArn": format!("arn:aws:bedrock:{region}::foundation-model/{}", e.id),
        "modelId": e.id,
        "modelName": e.name,
        "providerName": e.provider,
        "inputModalities": e.input_modalities,
        "outputModalities": e.output_modalities,
        "responseStreamingSupported": e.streaming,
        "customizationsSupported": [],
        "inferenceTypesSupported": if e.on_demand { json!(["ON_DEMAND"]) } else { json!(["INFERENCE_PROFILE"]) },
        "modelLifecycle": { "status": e.lifecycle },
    })
}

fn constraint(value: &str, member: &str, rule: &str) -> ApiError {
    ApiError::Validation(format!("1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {rule}"))
}

/// A list operation's `maxResults`: 1 to 1000.
fn page_size(value: &str) -> Result<usize, ApiError> {
    value
        .parse()
        .ok()
        .filter(|n| (1..=1000).contains(n))
        .ok_or_else(|| {
            constraint(
                value,
                "maxResults",
                "Member must have value between 1 and 1000",
            )
        })
}

fn one_of(value: String, member: &str, allowed: &[&str]) -> Result<String, ApiError> {
    if allowed.contains(&value.as_str()) {
        Ok(value)
    } else {
        Err(constraint(
            &value,
            member,
            &format!(
                "Member must satisfy enum value set: [{}]",
                allowed.join(", ")
            ),
        ))
    }
}

/// `a=b&c=d` decoded (`+` is a space, as form encoding has it).
fn query_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let decode = |s: &str| {
                percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(k), decode(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_decode() {
        assert_eq!(
            query_pairs("byProvider=Anthropic&byOutputModality=TEXT&x=a%20b+c"),
            vec![
                ("byProvider".into(), "Anthropic".into()),
                ("byOutputModality".into(), "TEXT".into()),
                ("x".into(), "a b c".into())
            ]
        );
    }

    #[test]
    fn enum_violations_name_the_member() {
        let e = one_of(
            "AUDIO".into(),
            "byOutputModality",
            &["TEXT", "IMAGE", "EMBEDDING"],
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "1 validation error detected: Value 'AUDIO' at 'byOutputModality' failed to satisfy constraint: Member must satisfy enum value set: [TEXT, IMAGE, EMBEDDING]"
        );
    }
}
