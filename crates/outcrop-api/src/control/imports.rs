//! Custom Model Import on the wire: CreateModelImportJob, GetModelImportJob,
//! ListModelImportJobs, ListImportedModels, GetImportedModel and DeleteImportedModel.

use super::{constraint, one_of, page_size, query_pairs};
use crate::converse::request::not_null;
use crate::{json_response, ApiError};
use axum::http::StatusCode;
use axum::response::Response;
use outcrop_service::imports::{
    self, job_arn, job_arn_in, model_arn, ImportJobRecord, ImportedModelRecord, NewImport,
};
use outcrop_service::{Principal, Service};
use regex::Regex;
use serde_json::{json, Map, Value};
use std::sync::{Arc, LazyLock};

const JOB_NAME: &str = r"[a-zA-Z0-9](-*[a-zA-Z0-9\+\-\.])*";
const MODEL_NAME: &str = r"([0-9a-zA-Z][_-]?)+";
const ROLE_ARN: &str = r"arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+";

/// A whole-string match of one of the model's patterns.
fn matches(pattern: &'static str, value: &str) -> bool {
    static COMPILED: LazyLock<[(&str, Regex); 3]> = LazyLock::new(|| {
        [JOB_NAME, MODEL_NAME, ROLE_ARN].map(|p| {
            (
                p,
                Regex::new(&format!("^(?:{p})$")).expect("a valid pattern"),
            )
        })
    });
    COMPILED
        .iter()
        .find(|(p, _)| *p == pattern)
        .is_some_and(|(_, r)| r.is_match(value))
}

/// A required string member of at most `max` characters matching `pattern`.
fn member(
    body: &Map<String, Value>,
    name: &str,
    max: usize,
    pattern: &'static str,
) -> Result<String, ApiError> {
    let value = match body.get(name) {
        None | Some(Value::Null) => return Err(not_null(name)),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ApiError::Validation(format!("{name} must be a string."))),
    };
    if value.is_empty() || value.chars().count() > max {
        return Err(constraint(
            &value,
            name,
            &format!("Member must have length between 1 and {max}"),
        ));
    }
    if !matches(pattern, &value) {
        return Err(constraint(
            &value,
            name,
            &format!("Member must satisfy regular expression pattern: {pattern}"),
        ));
    }
    Ok(value)
}

/// `POST /model-import-jobs`: 201 with the job's ARN; the copy runs in the background.
pub async fn create_job(
    state: &Arc<Service>,
    principal: &Principal,
    body: &[u8],
) -> Result<Response, ApiError> {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) else {
        return Err(ApiError::Validation(
            "The request body must be a JSON object.".into(),
        ));
    };
    let job_name = member(&body, "jobName", 63, JOB_NAME)?;
    let model_name = member(&body, "importedModelName", 63, MODEL_NAME)?;
    let role_arn = member(&body, "roleArn", 2048, ROLE_ARN)?;
    let source = body
        .get("modelDataSource")
        .filter(|v| !v.is_null())
        .ok_or_else(|| not_null("modelDataSource"))?;
    let s3_uri = source
        .get("s3DataSource")
        .filter(|v| !v.is_null())
        .ok_or_else(|| not_null("modelDataSource.s3DataSource"))?
        .get("s3Uri")
        .and_then(Value::as_str)
        .ok_or_else(|| not_null("modelDataSource.s3DataSource.s3Uri"))?;
    if s3_uri.is_empty() || s3_uri.len() > 1024 {
        return Err(constraint(
            s3_uri,
            "modelDataSource.s3DataSource.s3Uri",
            "Member must have length between 1 and 1024",
        ));
    }
    let job = imports::create_job(
        state,
        principal,
        NewImport {
            job_name,
            model_name,
            role_arn,
            source_uri: s3_uri.to_owned(),
        },
    )
    .await?;
    Ok(json_response(
        StatusCode::CREATED,
        json!({ "jobArn": job_arn(&job) }),
    ))
}

fn data_source(uri: &str) -> Value {
    json!({ "s3DataSource": { "s3Uri": uri } })
}

/// The members GetModelImportJob and the list's summaries share, absent ones left out.
fn job_json(job: &ImportJobRecord, details: bool) -> Value {
    let mut v = json!({
        "jobArn": job_arn(job),
        "jobName": job.job_name,
        "importedModelName": job.imported_model_name,
        "status": job.status.as_str(),
        "creationTime": job.created_at,
        "lastModifiedTime": job.modified_at,
    });
    if let Some(id) = &job.model_id {
        v["importedModelArn"] = json!(model_arn(&job.region, &job.account_id, id));
    }
    if let Some(end) = &job.ended_at {
        v["endTime"] = json!(end);
    }
    if details {
        v["roleArn"] = json!(job.role_arn);
        v["modelDataSource"] = data_source(&job.source_uri);
        if let Some(m) = &job.failure_message {
            v["failureMessage"] = json!(m);
        }
    }
    v
}

/// `GET /model-import-jobs/{jobIdentifier}`: by ARN or name.
pub async fn get_job(
    state: &Service,
    principal: &Principal,
    identifier: &str,
) -> Result<Response, ApiError> {
    let job = imports::job(state, principal, identifier).await?;
    Ok(json_response(StatusCode::OK, job_json(&job, true)))
}

/// The list operations' shared query: time window, name filter, order and pages.
struct ListQuery {
    after: Option<chrono::DateTime<chrono::Utc>>,
    before: Option<chrono::DateTime<chrono::Utc>>,
    name_contains: Option<String>,
    status: Option<String>,
    ascending: bool,
    max_results: usize,
    offset: usize,
}

impl ListQuery {
    fn parse(raw_query: &str, with_status: bool) -> Result<Self, ApiError> {
        let mut q = ListQuery {
            after: None,
            before: None,
            name_contains: None,
            status: None,
            ascending: false,
            max_results: 1000,
            offset: 0,
        };
        let time = |member: &str, value: &str| {
            chrono::DateTime::parse_from_rfc3339(value)
                .map(|t| t.with_timezone(&chrono::Utc))
                .or_else(|_| {
                    value
                        .parse::<f64>()
                        .ok()
                        .and_then(|s| chrono::DateTime::from_timestamp_millis((s * 1000.0) as i64))
                        .ok_or(())
                })
                .map_err(|_| constraint(value, member, "Member must be a timestamp (ISO 8601)"))
        };
        for (key, value) in query_pairs(raw_query) {
            match key.as_str() {
                "creationTimeAfter" => q.after = Some(time(&key, &value)?),
                "creationTimeBefore" => q.before = Some(time(&key, &value)?),
                "nameContains" => q.name_contains = Some(value),
                "statusEquals" if with_status => {
                    q.status = Some(one_of(
                        value,
                        "statusEquals",
                        &["InProgress", "Completed", "Failed"],
                    )?)
                }
                "sortBy" => {
                    one_of(value, "sortBy", &["CreationTime"])?;
                }
                "sortOrder" => {
                    q.ascending =
                        one_of(value, "sortOrder", &["Ascending", "Descending"])? == "Ascending";
                }
                "maxResults" => q.max_results = page_size(&value)?,
                "nextToken" => {
                    q.offset = value.parse().map_err(|_| {
                        ApiError::Validation(format!("The nextToken {value} is not valid."))
                    })?;
                }
                _ => {}
            }
        }
        Ok(q)
    }

    fn keeps(&self, name: &str, created_at: &str) -> bool {
        let created = chrono::DateTime::parse_from_rfc3339(created_at)
            .map(|t| t.with_timezone(&chrono::Utc))
            .ok();
        self.name_contains
            .as_ref()
            .is_none_or(|n| name.contains(n.as_str()))
            && self.after.is_none_or(|a| created.is_some_and(|c| c > a))
            && self.before.is_none_or(|b| created.is_some_and(|c| c < b))
    }

    /// One page of `items` (oldest first), in the order asked for, and the next page's token.
    fn page<T>(&self, mut items: Vec<T>) -> (Vec<T>, Option<String>) {
        if !self.ascending {
            items.reverse();
        }
        let total = items.len();
        let page: Vec<T> = items
            .into_iter()
            .skip(self.offset)
            .take(self.max_results)
            .collect();
        let next = self.offset + page.len();
        (page, (next < total).then(|| next.to_string()))
    }
}

fn with_token(mut body: Value, next: Option<String>) -> Value {
    if let Some(token) = next {
        body["nextToken"] = json!(token);
    }
    body
}

/// `GET /model-import-jobs`.
pub async fn list_jobs(
    state: &Service,
    principal: &Principal,
    raw_query: &str,
) -> Result<Response, ApiError> {
    let q = ListQuery::parse(raw_query, true)?;
    let jobs: Vec<ImportJobRecord> = imports::jobs(state, principal)
        .await?
        .into_iter()
        .filter(|j| q.keeps(&j.job_name, &j.created_at))
        .filter(|j| q.status.as_deref().is_none_or(|s| s == j.status.as_str()))
        .collect();
    let (page, next) = q.page(jobs);
    let summaries: Vec<Value> = page.iter().map(|j| job_json(j, false)).collect();
    Ok(json_response(
        StatusCode::OK,
        with_token(json!({ "modelImportJobSummaries": summaries }), next),
    ))
}

fn model_summary(m: &ImportedModelRecord) -> Value {
    json!({
        "modelArn": model_arn(&m.region, &m.account_id, &m.model_id),
        "modelName": m.model_name,
        "creationTime": m.created_at,
        "instructSupported": m.instruct,
        "modelArchitecture": m.architecture,
    })
}

/// `GET /imported-models`.
pub async fn list_models(
    state: &Service,
    principal: &Principal,
    raw_query: &str,
) -> Result<Response, ApiError> {
    let q = ListQuery::parse(raw_query, false)?;
    let models: Vec<ImportedModelRecord> = imports::models(state, principal)
        .await?
        .into_iter()
        .filter(|m| q.keeps(&m.model_name, &m.created_at))
        .collect();
    let (page, next) = q.page(models);
    let summaries: Vec<Value> = page.iter().map(model_summary).collect();
    Ok(json_response(
        StatusCode::OK,
        with_token(json!({ "modelSummaries": summaries }), next),
    ))
}

/// `GET /imported-models/{modelIdentifier}`: by ARN or name.
pub async fn get_model(
    state: &Service,
    principal: &Principal,
    identifier: &str,
) -> Result<Response, ApiError> {
    let m = imports::model(state, principal, identifier).await?;
    let mut body = model_summary(&m);
    body["jobName"] = json!(m.job_name);
    body["jobArn"] = json!(job_arn_in(&m.region, &m.account_id, &m.job_id));
    body["modelDataSource"] = data_source(&m.source_uri);
    // One copy of the model on one engine: Outcrop's unit, reported in Bedrock's field.
    body["customModelUnits"] = json!({
        "customModelUnitsPerModelCopy": 1,
        "customModelUnitsVersion": "v1.0",
    });
    Ok(json_response(StatusCode::OK, body))
}

/// `DELETE /imported-models/{modelIdentifier}`.
pub async fn delete_model(
    state: &Service,
    principal: &Principal,
    identifier: &str,
) -> Result<Response, ApiError> {
    imports::delete_model(state, principal, identifier).await?;
    Ok(json_response(StatusCode::OK, json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_values() {
        assert!(matches(JOB_NAME, "import-1.v2"));
        assert!(!matches(JOB_NAME, "-import"));
        assert!(!matches(JOB_NAME, "a b"));
        assert!(matches(MODEL_NAME, "my_model-2"));
        assert!(!matches(MODEL_NAME, "my__model"));
        assert!(matches(ROLE_ARN, "arn:aws:iam::111122223333:role/import"));
        assert!(!matches(ROLE_ARN, "arn:aws:iam::111122223333:user/alice"));
    }

    #[test]
    fn list_queries() {
        let q = ListQuery::parse("maxResults=2&sortOrder=Ascending&nameContains=a", true).unwrap();
        assert_eq!(q.page(vec![1, 2, 3]), (vec![1, 2], Some("2".into())));
        let q = ListQuery::parse("maxResults=2&nextToken=2", true).unwrap();
        assert_eq!(q.page(vec![1, 2, 3]), (vec![1], None));
        assert!(ListQuery::parse("maxResults=0", true).is_err());
        assert!(ListQuery::parse("statusEquals=Done", true).is_err());
        assert!(ListQuery::parse("creationTimeAfter=yesterday", true).is_err());
        let q = ListQuery::parse("creationTimeAfter=2026-12-01T00:00:00Z", false).unwrap();
        assert!(q.keeps("x", "2026-12-06T00:00:00.000Z"));
        assert!(!q.keeps("x", "2026-11-06T00:00:00.000Z"));
    }
}
