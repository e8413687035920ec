//! Body checks in the words of Bedrock's JSON-schema validator (`#: required key [x] not found`,
//! `#/x: expected type: Number, found: String`, `#: extraneous key [x] is not permitted`).
//! Violations are concatenated as Bedrock does, then wrapped as "Malformed input request".

use crate::ApiError;
use serde_json::{Map, Value};

/// The JSON type names the validator uses.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "Null",
        Value::Bool(_) => "Boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "Integer",
        Value::Number(_) => "BigDecimal",
        Value::String(_) => "String",
        Value::Array(_) => "JSONArray",
        Value::Object(_) => "JSONObject",
    }
}

/// Parses a body that must be a JSON object.
pub fn object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| crate::error::malformed(format!("invalid JSON: {e}")))?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(crate::error::malformed(format!(
            "#: expected type: JSONObject, found: {}",
            type_name(&other)
        ))),
    }
}

/// Collects violations for one body; `finish` turns them into one error.
pub struct Checker<'a> {
    body: &'a Map<String, Value>,
    /// The JSON pointer of `body`: `#` at the top, `#/textGenerationConfig` inside.
    base: String,
    violations: Vec<String>,
}

impl<'a> Checker<'a> {
    /// Starts checking; keys not in `allowed` are violations.
    pub fn new(body: &'a Map<String, Value>, allowed: &[&str]) -> Self {
        Self::at("#".to_owned(), body, allowed)
    }

    fn at(base: String, body: &'a Map<String, Value>, allowed: &[&str]) -> Self {
        let violations = body
            .keys()
            .filter(|k| !allowed.contains(&k.as_str()))
            .map(|k| format!("{base}: extraneous key [{k}] is not permitted"))
            .collect();
        Checker {
            body,
            base,
            violations,
        }
    }

    /// A checker for the object at `key` (or `None` when absent or not an object, which is
    /// reported); hand it back with [`Checker::absorb`].
    pub fn nested(
        &mut self,
        key: &str,
        v: Option<&'a Value>,
        allowed: &[&str],
    ) -> Option<Checker<'a>> {
        let map = self.object(key, v)?;
        Some(Self::at(format!("{}/{key}", self.base), map, allowed))
    }

    /// Takes over the violations a nested checker found.
    pub fn absorb(&mut self, child: Checker<'_>) {
        self.violations.extend(child.violations);
    }

    /// The object being checked.
    pub fn body(&self) -> &'a Map<String, Value> {
        self.body
    }

    /// Records a violation in the validator's words, at `key` under this object.
    pub fn violation(&mut self, key: &str, text: &str) {
        let at = if key.is_empty() {
            self.base.clone()
        } else {
            format!("{}/{key}", self.base)
        };
        self.violations.push(format!("{at}: {text}"));
    }

    pub fn required(&mut self, key: &str) -> Option<&'a Value> {
        let v = self.body.get(key);
        if v.is_none() {
            self.violations
                .push(format!("{}: required key [{key}] not found", self.base));
        }
        v
    }

    fn wrong_type(&mut self, key: &str, expected: &str, v: &Value) {
        self.violations.push(format!(
            "{}/{key}: expected type: {expected}, found: {}",
            self.base,
            type_name(v)
        ));
    }

    pub fn object(&mut self, key: &str, v: Option<&'a Value>) -> Option<&'a Map<String, Value>> {
        match v? {
            Value::Object(m) => Some(m),
            other => {
                self.wrong_type(key, "JSONObject", other);
                None
            }
        }
    }

    pub fn array(&mut self, key: &str, v: Option<&'a Value>) -> Option<&'a Vec<Value>> {
        match v? {
            Value::Array(a) => Some(a),
            other => {
                self.wrong_type(key, "JSONArray", other);
                None
            }
        }
    }

    pub fn boolean(&mut self, key: &str, v: Option<&'a Value>) -> Option<bool> {
        match v? {
            Value::Bool(b) => Some(*b),
            other => {
                self.wrong_type(key, "Boolean", other);
                None
            }
        }
    }

    pub fn string(&mut self, key: &str, v: Option<&'a Value>) -> Option<&'a str> {
        match v? {
            Value::String(s) => Some(s),
            other => {
                self.wrong_type(key, "String", other);
                None
            }
        }
    }

    /// An integer within `min..=max`.
    pub fn integer(&mut self, key: &str, v: Option<&'a Value>, min: i64, max: i64) -> Option<i64> {
        let v = v?;
        let Some(n) = v.as_i64() else {
            self.wrong_type(key, "Integer", v);
            return None;
        };
        self.range(key, n as f64, min as f64, max as f64)
            .then_some(n)
    }

    /// A number within `min..=max`.
    pub fn number(&mut self, key: &str, v: Option<&'a Value>, min: f64, max: f64) -> Option<f64> {
        let v = v?;
        let Some(n) = v.as_f64() else {
            self.wrong_type(key, "Number", v);
            return None;
        };
        self.range(key, n, min, max).then_some(n)
    }

    fn range(&mut self, key: &str, n: f64, min: f64, max: f64) -> bool {
        if n < min {
            self.violations.push(format!(
                "{}/{key}: {n} is not greater or equal to {min}",
                self.base
            ));
            false
        } else if n > max {
            self.violations.push(format!(
                "{}/{key}: {n} is not less or equal to {max}",
                self.base
            ));
            false
        } else {
            true
        }
    }

    /// A list of strings of at most `max_items` entries.
    pub fn strings(
        &mut self,
        key: &str,
        v: Option<&'a Value>,
        max_items: usize,
    ) -> Option<Vec<String>> {
        let v = v?;
        let Value::Array(items) = v else {
            self.wrong_type(key, "JSONArray", v);
            return None;
        };
        if items.len() > max_items {
            self.violations.push(format!(
                "{}/{key}: expected maximum item count: {max_items}, found: {}",
                self.base,
                items.len()
            ));
            return None;
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::String(s) => out.push(s.clone()),
                other => self.wrong_type(&format!("{key}/{i}"), "String", other),
            }
        }
        Some(out)
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.violations.is_empty() {
            Ok(())
        } else {
            Err(crate::error::malformed(self.violations.concat()))
        }
    }
}
