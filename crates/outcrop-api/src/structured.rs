//! Structured output: a JSON Schema the whole answer must satisfy (Converse
//! `outputConfig.textFormat`, the Messages API's `output_config.format`, OpenAI's
//! `response_format`), and the schemas of strict tools. The answer is grammar-constrained by
//! the engine, so it parses and validates by construction; a schema keyword the grammar cannot
//! enforce is refused here, at the edge, naming the keyword, rather than silently ignored.

use crate::ApiError;
use outcrop_types::Constraint;
use serde_json::{Map, Value};

/// Keywords the grammar cannot express. Anything not listed here or in [`ENFORCED`] is an
/// annotation (title, description, examples...) and has no effect on the output.
const REFUSED: &[&str] = &[
    "not",
    "if",
    "then",
    "else",
    "patternProperties",
    "propertyNames",
    "dependentRequired",
    "dependentSchemas",
    "dependencies",
    "unevaluatedProperties",
    "unevaluatedItems",
    "uniqueItems",
    "contains",
    "minContains",
    "maxContains",
    "multipleOf",
    "minProperties",
    "maxProperties",
    "$dynamicRef",
    "$recursiveRef",
];

/// Keywords whose values are schemas (or maps or lists of schemas) to check in turn.
const SUBSCHEMAS: &[&str] = &["items", "additionalProperties"];
const SCHEMA_LISTS: &[&str] = &["anyOf", "oneOf", "allOf", "prefixItems"];
const SCHEMA_MAPS: &[&str] = &["properties", "$defs", "definitions"];

/// The formats llama.cpp's schema converter writes a grammar for; others would pass as any
/// string, so they are refused.
const FORMATS: &[&str] = &["date", "time", "date-time", "uuid"];

/// Checks that every keyword of `schema` can be enforced. `field` names where the schema came
/// from, for the message.
pub fn check_schema(schema: &Value, field: &str) -> Result<(), ApiError> {
    walk(schema, field, "#")
}

fn unsupported(field: &str, at: &str, what: &str) -> ApiError {
    ApiError::Validation(format!(
        "The JSON schema in {field} uses {what} at {at}, which structured output does not support. Remove it and try again."
    ))
}

fn walk(schema: &Value, field: &str, at: &str) -> Result<(), ApiError> {
    let map = match schema {
        Value::Object(map) => map,
        Value::Bool(_) => return Ok(()),
        _ => {
            return Err(ApiError::Validation(format!(
                "The JSON schema in {field} is not valid: the schema at {at} must be an object."
            )))
        }
    };
    if let Some(keyword) = REFUSED.iter().find(|k| map.contains_key(**k)) {
        return Err(unsupported(field, at, &format!("'{keyword}'")));
    }
    if let Some(r) = map.get("$ref").and_then(Value::as_str) {
        if !r.starts_with("#/") && r != "#" {
            return Err(unsupported(
                field,
                at,
                &format!("the external reference '{r}'"),
            ));
        }
    }
    if let Some(format) = map.get("format").and_then(Value::as_str) {
        if !FORMATS.contains(&format) {
            return Err(unsupported(
                field,
                at,
                &format!("the string format '{format}'"),
            ));
        }
    }
    let is_integer = map.get("type").and_then(Value::as_str) == Some("integer");
    for bound in ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"] {
        if map.contains_key(bound) && !is_integer {
            return Err(unsupported(
                field,
                at,
                &format!("'{bound}' on a non-integer value"),
            ));
        }
    }
    for key in SUBSCHEMAS {
        if let Some(v) = map.get(*key) {
            walk(v, field, &format!("{at}/{key}"))?;
        }
    }
    for key in SCHEMA_LISTS {
        if let Some(list) = map.get(*key).and_then(Value::as_array) {
            for (i, v) in list.iter().enumerate() {
                walk(v, field, &format!("{at}/{key}/{i}"))?;
            }
        }
    }
    for key in SCHEMA_MAPS {
        if let Some(m) = map.get(*key).and_then(Value::as_object) {
            for (name, v) in m {
                walk(v, field, &format!("{at}/{key}/{name}"))?;
            }
        }
    }
    Ok(())
}

/// The constraint for an answer that must be one JSON value valid against `schema`.
pub fn constraint(schema: &Value) -> Constraint {
    Constraint::Json {
        schema: schema.to_string(),
    }
}

/// Converse `outputConfig`: `{"textFormat": {"type": "json_schema", "structure":
/// {"jsonSchema": {"schema": "<JSON text>", "name", "description"}}}}`. Returns the schema.
pub fn converse_output_config(v: &Value) -> Result<Option<Value>, ApiError> {
    let config = v.as_object().ok_or_else(|| {
        ApiError::Validation("The value at 'outputConfig' must be an object.".into())
    })?;
    let Some(format) = config.get("textFormat") else {
        return Ok(None);
    };
    let kind = format.get("type").and_then(Value::as_str);
    if kind != Some("json_schema") {
        return Err(crate::error::constraint(
            &kind.map_or("null".to_owned(), |k| format!("'{k}'")),
            "outputConfig.textFormat.type",
            "Member must satisfy enum value set: [json_schema]",
        ));
    }
    let definition = format
        .pointer("/structure/jsonSchema")
        .ok_or_else(|| crate::error::not_null("outputConfig.textFormat.structure.jsonSchema"))?;
    let text = definition
        .get("schema")
        .ok_or_else(|| {
            crate::error::not_null("outputConfig.textFormat.structure.jsonSchema.schema")
        })?
        .as_str()
        .ok_or_else(|| {
            ApiError::Validation(
                "The value at 'outputConfig.textFormat.structure.jsonSchema.schema' must be a JSON schema given as a string.".into(),
            )
        })?;
    let schema: Value = serde_json::from_str(text).map_err(|e| {
        ApiError::Validation(format!(
            "The JSON schema in outputConfig.textFormat is not valid JSON: {e}."
        ))
    })?;
    check_schema(&schema, "outputConfig.textFormat")?;
    Ok(Some(schema))
}

/// The Messages API's `output_config.format` (or the older `output_format`):
/// `{"type": "json_schema", "schema": {...}}`.
pub fn anthropic_output_format(format: &Value, field: &str) -> Result<Value, ApiError> {
    let map: &Map<String, Value> = format.as_object().ok_or_else(|| {
        ApiError::Validation(format!(
            "The model returned the following errors: {field}: Input should be an object"
        ))
    })?;
    if map.get("type").and_then(Value::as_str) != Some("json_schema") {
        return Err(ApiError::Validation(format!(
            "The model returned the following errors: {field}.type: Input should be 'json_schema'"
        )));
    }
    let schema = map.get("schema").filter(|s| s.is_object()).ok_or_else(|| {
        ApiError::Validation(format!(
            "The model returned the following errors: {field}.schema: Field required"
        ))
    })?;
    check_schema(schema, field)?;
    Ok(schema.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn converse(schema: &str) -> Result<Option<Value>, String> {
        converse_output_config(&json!({"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"schema": schema, "name": "x"}}}}))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn converse_schemas_are_read_from_their_string() {
        let s = converse(r#"{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer","minimum":0}},"required":["name"]}"#).unwrap().unwrap();
        assert_eq!(s["required"], json!(["name"]));
        assert!(converse("{not json")
            .unwrap_err()
            .contains("not valid JSON"));
        assert!(
            converse_output_config(&json!({"textFormat": {"type": "text"}}))
                .unwrap_err()
                .to_string()
                .contains("[json_schema]")
        );
        assert_eq!(converse_output_config(&json!({})).unwrap(), None);
    }

    #[test]
    fn unenforceable_keywords_are_named() {
        let e = converse(r#"{"type":"object","properties":{"a":{"not":{"type":"string"}}}}"#)
            .unwrap_err();
        assert!(e.contains("'not' at #/properties/a"), "{e}");
        assert!(converse(r#"{"type":"array","uniqueItems":true}"#)
            .unwrap_err()
            .contains("'uniqueItems'"));
        assert!(converse(r#"{"type":"number","maximum":3}"#)
            .unwrap_err()
            .contains("'maximum' on a non-integer"));
        assert!(converse(r#"{"type":"string","format":"email"}"#)
            .unwrap_err()
            .contains("'email'"));
        assert!(converse(r#"{"$ref":"https://example.com/s.json"}"#)
            .unwrap_err()
            .contains("external reference"));
        assert!(converse(r##"{"$defs":{"p":{"type":"string"}},"type":"object","properties":{"p":{"$ref":"#/$defs/p"}},"anyOf":[{"required":["p"]}]}"##).is_ok());
    }

    #[test]
    fn anthropic_formats() {
        let s = anthropic_output_format(
            &json!({"type": "json_schema", "schema": {"type": "object"}}),
            "output_config.format",
        )
        .unwrap();
        assert_eq!(s, json!({"type": "object"}));
        assert!(
            anthropic_output_format(&json!({"type": "json"}), "output_config.format")
                .unwrap_err()
                .to_string()
                .contains("json_schema")
        );
    }
}
