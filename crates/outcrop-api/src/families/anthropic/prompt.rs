//! Claude text-completion prompts: `"\n\nHuman: ...\n\nAssistant:"` parsed into turns.
//!
//! Two modes (docs/wire.md). `Strict` follows Anthropic's documented validator: only
//! `\n\nHuman:` / `\n\nAssistant:` are turns (trailing whitespace is stripped, and a prompt
//! that begins with `Human:` gets the `\n\n` added). `Lenient`, the default, is what the seed
//! article observed on Bedrock in October 2023: a turn marker at the start of any line (after
//! one or two newlines, or at the very start) counts, so `"\nHuman: ...\nAssistant: \n"` passes.
//! In both modes, text before the first Human turn is a system prompt (Claude 2.1).

use outcrop_types::{Role, Turn};
use serde::Deserialize;

/// How strictly prompts are checked; set in the server config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptMode {
    #[default]
    Lenient,
    Strict,
}

const START: &str = r#"prompt must start with "

Human:" turn"#;
const END: &str = r#"prompt must end with "

Assistant:" turn"#;

/// Splits a prompt into turns, or returns Bedrock's "Invalid prompt" message.
pub fn parse_prompt(prompt: &str, mode: PromptMode) -> Result<Vec<Turn>, String> {
    let markers = find_markers(prompt, mode);
    let starts_ok = markers.first().is_some_and(|m| m.role == Role::User);
    let ends_ok = markers.last().is_some_and(|m| m.role == Role::Assistant);
    match (starts_ok, ends_ok) {
        (true, true) => {}
        (false, false) => return Err(format!("Invalid prompt: {START}, {END}")),
        (false, true) => return Err(format!("Invalid prompt: {START}")),
        (true, false) => return Err(format!("Invalid prompt: {END}")),
    }
    let mut turns = Vec::with_capacity(markers.len() + 1);
    let system = prompt[..markers[0].at].trim();
    if !system.is_empty() {
        turns.push(Turn::new(Role::System, system));
    }
    for (i, m) in markers.iter().enumerate() {
        let end = markers.get(i + 1).map_or(prompt.len(), |next| next.at);
        let content = &prompt[m.content_start..end];
        // A trailing assistant turn keeps its inner spacing: it is a prefill to continue.
        let content = if i + 1 == markers.len() {
            content.trim_start().trim_end()
        } else {
            content.trim()
        };
        turns.push(Turn::new(m.role, content));
    }
    Ok(turns)
}

struct Marker {
    role: Role,
    /// Byte offset where the marker (including its newlines) begins.
    at: usize,
    /// Byte offset just after the colon.
    content_start: usize,
}

fn find_markers(prompt: &str, mode: PromptMode) -> Vec<Marker> {
    let mut out = Vec::new();
    for (role, word) in [(Role::User, "Human:"), (Role::Assistant, "Assistant:")] {
        for (idx, _) in prompt.match_indices(word) {
            let before = &prompt[..idx];
            let at = match mode {
                PromptMode::Strict => {
                    if before.ends_with("\n\n") {
                        Some(idx - 2)
                    } else if before.trim().is_empty() && role == Role::User {
                        Some(0) // sanitized: a leading "Human:" gets its "\n\n"
                    } else {
                        None
                    }
                }
                PromptMode::Lenient => {
                    if before.trim().is_empty() {
                        Some(0)
                    } else {
                        // One or two newlines before the marker belong to it.
                        before.strip_suffix('\n').map(|b| {
                            if b.ends_with('\n') {
                                idx - 2
                            } else {
                                idx - 1
                            }
                        })
                    }
                }
            };
            if let Some(at) = at {
                out.push(Marker {
                    role,
                    at,
                    content_start: idx + word.len(),
                });
            }
        }
    }
    out.sort_by_key(|m| m.at);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str =
        "\nHuman: こんにちわ。あなたが持っている背景情報について教えてください。\nAssistant: \n";
    const SEED_WRONG: &str = "こんにちわ。あなたが持っている背景情報について教えてください。";
    const BOTH: &str = "Invalid prompt: prompt must start with \"\n\nHuman:\" turn, prompt must end with \"\n\nAssistant:\" turn";

    fn lenient(p: &str) -> Result<Vec<Turn>, String> {
        parse_prompt(p, PromptMode::Lenient)
    }
    fn strict(p: &str) -> Result<Vec<Turn>, String> {
        parse_prompt(p, PromptMode::Strict)
    }

    #[test]
    fn seed_prompt_passes_by_default() {
        let turns = lenient(SEED).unwrap();
        assert_eq!(
            turns,
            vec![
                Turn::new(
                    Role::User,
                    "こんにちわ。あなたが持っている背景情報について教えてください。"
                ),
                Turn::new(Role::Assistant, "")
            ]
        );
    }

    #[test]
    fn seed_wrong_prompt_gets_the_exact_message() {
        assert_eq!(lenient(SEED_WRONG).unwrap_err(), BOTH);
        assert_eq!(strict(SEED_WRONG).unwrap_err(), BOTH);
    }

    #[test]
    fn strict_mode_rejects_single_newlines() {
        assert_eq!(
            strict(SEED).unwrap_err(),
            "Invalid prompt: prompt must end with \"\n\nAssistant:\" turn"
        );
        assert_eq!(
            strict("\n\nHuman: Hello, Claude \nAssistant:").unwrap_err(),
            "Invalid prompt: prompt must end with \"\n\nAssistant:\" turn"
        );
    }

    #[test]
    fn documented_accepted_forms() {
        for p in [
            "\n\nHuman: Hello, Claude\n\nAssistant:",
            "Human: Hello, Claude\n\nAssistant:",
            "\n\nHuman: Hello, Claude:\n\nAssistant: ",
            "\n    Human: \n\n\nHuman:\" {0}\"\n\n\nAssistant: \n    ",
        ] {
            assert!(strict(p).is_ok(), "strict {p:?}");
            assert!(lenient(p).is_ok(), "lenient {p:?}");
        }
    }

    #[test]
    fn documented_rejected_forms() {
        assert_eq!(strict("Hello, world").unwrap_err(), BOTH);
        assert_eq!(
            lenient("\n\nHuman: Hello").unwrap_err(),
            "Invalid prompt: prompt must end with \"\n\nAssistant:\" turn"
        );
        assert_eq!(
            lenient("\n\nAssistant: Hi").unwrap_err(),
            "Invalid prompt: prompt must start with \"\n\nHuman:\" turn"
        );
        assert_eq!(
            lenient("\n\nAssistant: Hi\n\nHuman: x\n\nAssistant:").unwrap_err(),
            "Invalid prompt: prompt must start with \"\n\nHuman:\" turn"
        );
        assert!(lenient("\n\nHuman: a\n\nAssistant: b\n\nHuman: c").is_err());
    }

    #[test]
    fn system_prompt_multi_turn_and_prefill() {
        let turns = strict(
            "You are terse.\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Count\n\nAssistant: One,",
        )
        .unwrap();
        assert_eq!(
            turns,
            vec![
                Turn::new(Role::System, "You are terse."),
                Turn::new(Role::User, "Hi"),
                Turn::new(Role::Assistant, "Hello"),
                Turn::new(Role::User, "Count"),
                Turn::new(Role::Assistant, "One,"),
            ]
        );
    }

    #[test]
    fn markers_inside_a_line_are_text() {
        let turns = lenient("\n\nHuman: say Human: and Assistant: please\n\nAssistant:").unwrap();
        assert_eq!(turns[0].content, "say Human: and Assistant: please");
    }
}
