//! What a runtime call reserves at quota admission, read from its body.

use serde_json::Value;

/// Tokens a call may use, estimated from its body before it is parsed: its text at four
/// bytes a token, plus the largest output it asks for (each family names it differently).
pub fn estimate(body: &[u8]) -> u64 {
    let input = body.len() as u64 / 4;
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let paths = [
        "/max_tokens_to_sample",
        "/max_tokens",
        "/max_gen_len",
        "/maxTokens",
        "/textGenerationConfig/maxTokenCount",
        "/inferenceConfig/maxTokens",
        "/inferenceConfig/max_new_tokens",
    ];
    let output = paths
        .iter()
        .find_map(|p| value.pointer(p).and_then(Value::as_u64))
        .unwrap_or(
            if value.get("inputText").is_some() || value.get("texts").is_some() {
                0
            } else {
                512
            },
        );
    input + output
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates() {
        assert_eq!(
            estimate(br#"{"prompt": "abcd", "max_tokens_to_sample": 100}"#),
            111
        );
        assert_eq!(estimate(br#"{"inferenceConfig": {"maxTokens": 7}}"#), 7 + 9);
        assert_eq!(estimate(br#"{"inputText": "abcdefgh"}"#), 6);
    }
}
