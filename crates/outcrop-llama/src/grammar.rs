//! Output constraints as llama.cpp grammar samplers: JSON Schema → GBNF through llama.cpp's
//! own converter (the one llama-server uses for tool calls), so generated JSON is valid
//! against the schema token by token.

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use outcrop_types::{Constraint, GenerationError};

/// The grammar sampler that enforces `constraint`; it goes first in the sampler chain.
pub fn sampler(
    model: &LlamaModel,
    constraint: &Constraint,
) -> Result<LlamaSampler, GenerationError> {
    let schema = match constraint {
        Constraint::Json { schema } | Constraint::JsonAfter { schema, .. } => schema,
    };
    let gbnf = llama_cpp_2::json_schema_to_grammar(schema)
        .map_err(|e| GenerationError::Constraint(format!("unsupported JSON schema: {e}")))?;
    let built = match constraint {
        Constraint::Json { .. } => LlamaSampler::grammar(model, &gbnf, "root"),
        Constraint::JsonAfter { trigger, close, .. } => {
            let gbnf = format!("{gbnf}\n{}", after_trigger(trigger, close));
            LlamaSampler::grammar_lazy(model, &gbnf, "triggered", [trigger.as_bytes()], &[])
        }
    };
    built.map_err(|e| GenerationError::Constraint(format!("grammar rejected: {e}")))
}

/// The rules from the trigger on (the grammar starts at the trigger, so the trigger itself is
/// part of it): one call, or with a closing text, calls separated by whitespace.
fn after_trigger(trigger: &str, close: &str) -> String {
    let open = serde_json_string(trigger);
    if close.is_empty() {
        return format!("triggered ::= {open} root\n");
    }
    let close = serde_json_string(close);
    format!("triggered ::= call ([ \\n]* call)*\ncall ::= {open} [ \\n]? root {close}\n")
}

/// A GBNF string literal (GBNF literals use JSON's escapes).
fn serde_json_string(s: &str) -> String {
    let mut out = String::from('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_escaped() {
        assert_eq!(serde_json_string("<a \"b\">\n"), r#""<a \"b\">\n""#);
    }

    #[test]
    fn closed_calls_may_repeat() {
        assert_eq!(
            after_trigger("<tool_call>", "</tool_call>"),
            "triggered ::= call ([ \\n]* call)*\ncall ::= \"<tool_call>\" [ \\n]? root \"</tool_call>\"\n"
        );
        assert_eq!(after_trigger("<t>", ""), "triggered ::= \"<t>\" root\n");
    }

    #[test]
    fn schemas_convert_to_grammars() {
        let g = llama_cpp_2::json_schema_to_grammar(
            r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#,
        )
        .unwrap();
        assert!(g.contains("root ::="), "{g}");
        assert!(g.contains("city"), "{g}");
    }
}
