//! Embedding models' InvokeModel bodies: Titan Embeddings v1/v2 and Cohere Embed v3, served by
//! the local embedding model. Its vectors (384 dimensions for all-MiniLM-L6-v2) are mapped to
//! the length each id returns by the service (`outcrop_service::embed`): exact for longer vectors (every dot
//! product kept), an orthogonal projection for 256.

use crate::schema::{self, Checker};
use crate::{ApiError, ApiState};
use axum::http::{HeaderValue, StatusCode};
use axum::response::IntoResponse;
use outcrop_models::CatalogEntry;
use outcrop_service::embed::{embed, quantize, Embedded, Quantization};
use serde_json::{json, Value};
use std::time::Instant;

/// The embedding body formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedFormat {
    TitanV1,
    TitanV2,
    CohereV3,
}

impl EmbedFormat {
    pub fn from_format(format: &str) -> Option<Self> {
        Some(match format {
            "titan-embed-v1" => EmbedFormat::TitanV1,
            "titan-embed-v2" => EmbedFormat::TitanV2,
            "cohere-embed" => EmbedFormat::CohereV3,
            _ => return None,
        })
    }
}

/// What to compute for one request.
pub(crate) struct Job {
    texts: Vec<String>,
    dims: usize,
    normalize: bool,
    types: Vec<String>,
    echo: Value,
}

pub(crate) fn parse(format: EmbedFormat, body: &[u8]) -> Result<Job, ApiError> {
    let map = schema::object(body)?;
    match format {
        EmbedFormat::TitanV1 => {
            let mut c = Checker::new(&map, &["inputText"]);
            let text = c.required("inputText");
            let text = c.string("inputText", text).unwrap_or_default().to_owned();
            c.finish()?;
            Ok(Job {
                texts: vec![text],
                dims: 1536,
                normalize: false,
                types: vec!["float".into()],
                echo: Value::Null,
            })
        }
        EmbedFormat::TitanV2 => {
            let mut c = Checker::new(
                &map,
                &["inputText", "dimensions", "normalize", "embeddingTypes"],
            );
            let text = c.required("inputText");
            let text = c.string("inputText", text).unwrap_or_default().to_owned();
            let dims = c
                .integer("dimensions", map.get("dimensions"), 0, i64::MAX)
                .unwrap_or(1024);
            if ![256, 512, 1024].contains(&dims) {
                c.violation("dimensions", &format!("{dims} is not a valid enum value"));
            }
            let normalize = c.boolean("normalize", map.get("normalize")).unwrap_or(true);
            let types = c
                .strings("embeddingTypes", map.get("embeddingTypes"), 2)
                .unwrap_or_else(|| vec!["float".into()]);
            for t in &types {
                if t != "float" && t != "binary" {
                    c.violation("embeddingTypes", &format!("{t} is not a valid enum value"));
                }
            }
            c.finish()?;
            Ok(Job {
                texts: vec![text],
                dims: dims as usize,
                normalize,
                types,
                echo: Value::Null,
            })
        }
        EmbedFormat::CohereV3 => {
            let mut c = Checker::new(
                &map,
                &[
                    "texts",
                    "input_type",
                    "truncate",
                    "embedding_types",
                    "images",
                ],
            );
            let texts = c.required("texts");
            let texts = c.strings("texts", texts, 96).unwrap_or_default();
            let input_type = c.required("input_type");
            if let Some(t) = c.string("input_type", input_type) {
                if ![
                    "search_document",
                    "search_query",
                    "classification",
                    "clustering",
                ]
                .contains(&t)
                {
                    c.violation("input_type", &format!("{t} is not a valid enum value"));
                }
            }
            if let Some(t) = c.string("truncate", map.get("truncate")) {
                if !["NONE", "START", "END"].contains(&t) {
                    c.violation("truncate", &format!("{t} is not a valid enum value"));
                }
            }
            let types = c.strings("embedding_types", map.get("embedding_types"), 5);
            for t in types.iter().flatten() {
                if !["float", "int8", "uint8", "binary", "ubinary"].contains(&t.as_str()) {
                    c.violation("embedding_types", &format!("{t} is not a valid enum value"));
                }
            }
            if map.contains_key("images") {
                c.violation(
                    "images",
                    "image inputs are not supported by the local embedding model",
                );
            }
            c.finish()?;
            if texts.is_empty() {
                return Err(crate::error::malformed(
                    "#/texts: expected minimum item count: 1, found: 0",
                ));
            }
            let echo = json!({ "by_type": types.is_some() });
            Ok(Job {
                texts,
                dims: 1024,
                normalize: true,
                types: types.unwrap_or_else(|| vec!["float".into()]),
                echo,
            })
        }
    }
}

/// A vector in one of Cohere's embedding types (`float` as is).
fn typed(v: &[f32], kind: &str) -> Value {
    let q = match kind {
        "int8" => Quantization::Int8,
        "uint8" => Quantization::Uint8,
        "binary" => Quantization::Binary,
        "ubinary" => Quantization::Ubinary,
        _ => return json!(v),
    };
    json!(quantize(v, q))
}

/// `POST /model/{id}/invoke` for an embedding model.
pub(crate) async fn invoke(
    state: &ApiState,
    entry: &CatalogEntry,
    format: EmbedFormat,
    job: Job,
    started: Instant,
) -> Result<crate::Answer, ApiError> {
    let Embedded {
        vectors,
        input_tokens: tokens,
    } = embed(state, entry, job.texts.clone(), job.dims, job.normalize).await?;
    let body = match format {
        EmbedFormat::TitanV1 => json!({ "embedding": vectors[0], "inputTextTokenCount": tokens }),
        EmbedFormat::TitanV2 => {
            let by_type: serde_json::Map<String, Value> = job
                .types
                .iter()
                .map(|t| {
                    (
                        t.clone(),
                        if t == "binary" {
                            json!(quantize(&vectors[0], Quantization::Bits))
                        } else {
                            json!(vectors[0])
                        },
                    )
                })
                .collect();
            let mut b = json!({ "embeddingsByType": by_type, "inputTextTokenCount": tokens });
            if job.types.iter().any(|t| t == "float") {
                b["embedding"] = json!(vectors[0]);
            }
            b
        }
        EmbedFormat::CohereV3 => {
            let by_type = job.echo["by_type"].as_bool().unwrap_or(false);
            let embeddings = if by_type {
                let m: serde_json::Map<String, Value> = job
                    .types
                    .iter()
                    .map(|t| {
                        (
                            t.clone(),
                            json!(vectors.iter().map(|v| typed(v, t)).collect::<Vec<_>>()),
                        )
                    })
                    .collect();
                Value::Object(m)
            } else {
                json!(vectors)
            };
            json!({
                "embeddings": embeddings,
                "id": uuid::Uuid::new_v4().to_string(),
                "response_type": if by_type { "embeddings_by_type" } else { "embeddings_floats" },
                "texts": job.texts,
            })
        }
    };
    tracing::info!(model = %entry.id, input_tokens = tokens, "embedded");
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    let usage = outcrop_types::Usage {
        input_tokens: tokens,
        output_tokens: 0,
        ..Default::default()
    };
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("x-amzn-bedrock-input-token-count", tokens.into());
    headers.insert("x-amzn-bedrock-output-token-count", 0u32.into());
    headers.insert(
        "x-amzn-bedrock-invocation-latency",
        (started.elapsed().as_millis() as u64).into(),
    );
    Ok(crate::Answer::Whole {
        response,
        usage,
        output: Some(body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(format: EmbedFormat, body: &str) -> String {
        match parse(format, body.as_bytes()) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn validation() {
        assert!(err(
            EmbedFormat::TitanV1,
            r#"{"inputText": "x", "textGenerationConfig": {}}"#
        )
        .contains("#: extraneous key [textGenerationConfig] is not permitted"));
        assert!(err(
            EmbedFormat::TitanV2,
            r#"{"inputText": "x", "dimensions": 300}"#
        )
        .contains("#/dimensions: 300 is not a valid enum value"));
        assert!(err(EmbedFormat::CohereV3, r#"{"texts": ["a"]}"#)
            .contains("#: required key [input_type] not found"));
        assert!(err(
            EmbedFormat::CohereV3,
            r#"{"texts": [], "input_type": "search_query"}"#
        )
        .contains("minimum item count"));
        let job = parse(
            EmbedFormat::TitanV2,
            br#"{"inputText": "x", "dimensions": 256, "normalize": false}"#,
        )
        .unwrap();
        assert_eq!((job.dims, job.normalize), (256, false));
    }

    #[test]
    fn quantization() {
        assert_eq!(typed(&[1.0, -1.0, 0.0], "int8"), json!([127, -127, 0]));
        assert_eq!(typed(&[1.0, -1.0, 0.0], "uint8"), json!([255, 1, 128]));
        let v = [1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0];
        assert_eq!(typed(&v, "ubinary"), json!([0b1010_1010]));
        assert_eq!(typed(&v, "binary"), json!([0b1010_1010 - 128]));
    }
}
