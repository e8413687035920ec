//! Prompts written in a model family's own chat format, parsed back into turns so the backing
//! model can re-render them with its own template. Text in no recognised format becomes one
//! user turn. A final assistant turn with text is a prefill; an empty one (the usual ending
//! `[/INST]`, `assistant<|end_header_id|>`, `Bot:`) just asks for the answer.

use outcrop_types::{Role, Turn};

/// Llama 2 and Mistral: `<s>[INST] <<SYS>>\nsys\n<</SYS>>\n\nuser [/INST] answer </s>...`.
pub fn parse_inst(prompt: &str) -> Vec<Turn> {
    let cleaned = prompt.replace("<s>", "").replace("</s>", "");
    let mut parts = cleaned.split("[INST]");
    let before = parts.next().unwrap_or_default().trim();
    let mut turns = Vec::new();
    if !before.is_empty() {
        turns.push(Turn::new(Role::System, before));
    }
    let mut any = false;
    for part in parts {
        any = true;
        let (user, answer) = part.split_once("[/INST]").unwrap_or((part, ""));
        let mut user = user.trim();
        if let Some((pre, rest)) = user.split_once("<<SYS>>") {
            if let Some((system, after)) = rest.split_once("<</SYS>>") {
                let system = format!("{} {}", pre.trim(), system.trim());
                turns.push(Turn::new(Role::System, system.trim()));
                user = after.trim();
            }
        }
        turns.push(Turn::new(Role::User, user));
        turns.push(Turn::new(Role::Assistant, answer.trim()));
    }
    if !any {
        return free_text(prompt);
    }
    finish(turns)
}

/// Llama 3: `<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n...<|eot_id|>`.
pub fn parse_llama3(prompt: &str) -> Vec<Turn> {
    if !prompt.contains("<|start_header_id|>") {
        return parse_inst(prompt);
    }
    let cleaned = prompt.replace("<|begin_of_text|>", "");
    let mut parts = cleaned.split("<|start_header_id|>");
    let before = parts.next().unwrap_or_default().trim();
    let mut turns = Vec::new();
    if !before.is_empty() {
        turns.push(Turn::new(Role::System, before));
    }
    for part in parts {
        let (role, content) = part
            .split_once("<|end_header_id|>")
            .unwrap_or(("user", part));
        let content = content.split("<|eot_id|>").next().unwrap_or_default();
        let role = match role.trim() {
            "system" => Role::System,
            "assistant" => Role::Assistant,
            _ => Role::User,
        };
        turns.push(Turn::new(role, content.trim()));
    }
    finish(turns)
}

/// Titan's documented chat style: `User: ...\nBot:` lines.
pub fn parse_user_bot(prompt: &str) -> Vec<Turn> {
    let mut turns: Vec<Turn> = Vec::new();
    let mut preamble = String::new();
    for line in prompt.lines() {
        let trimmed = line.trim_start();
        let (role, rest) = if let Some(r) = trimmed.strip_prefix("User:") {
            (Some(Role::User), r)
        } else if let Some(r) = trimmed.strip_prefix("Bot:") {
            (Some(Role::Assistant), r)
        } else {
            (None, line)
        };
        match (role, turns.last_mut()) {
            (Some(role), _) => turns.push(Turn::new(role, rest.trim())),
            (None, Some(last)) => {
                last.content.push('\n');
                last.content.push_str(rest);
            }
            (None, None) => {
                preamble.push_str(rest);
                preamble.push('\n');
            }
        }
    }
    if !turns.iter().any(|t| t.role == Role::User) {
        return free_text(prompt);
    }
    let mut all = Vec::new();
    if !preamble.trim().is_empty() {
        all.push(Turn::new(Role::System, preamble.trim()));
    }
    for mut t in turns {
        t.content = t.content.trim().to_owned();
        all.push(t);
    }
    finish(all)
}

/// Text in no chat format: one user turn.
pub fn free_text(prompt: &str) -> Vec<Turn> {
    vec![Turn::new(Role::User, prompt.trim())]
}

/// Drops an empty final assistant turn (it only opens the answer) and empty user turns.
fn finish(mut turns: Vec<Turn>) -> Vec<Turn> {
    if turns
        .last()
        .is_some_and(|t| t.role == Role::Assistant && t.content.is_empty())
    {
        turns.pop();
    }
    turns.retain(|t| !(t.content.is_empty() && t.role != Role::User));
    if turns.is_empty() {
        turns.push(Turn::new(Role::User, ""));
    }
    turns
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(role: Role, s: &str) -> Turn {
        Turn::new(role, s)
    }

    #[test]
    fn llama2_with_system_and_history() {
        let p = "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Capital of France? [/INST]";
        assert_eq!(
            parse_inst(p),
            vec![
                t(Role::System, "Be brief."),
                t(Role::User, "Hi"),
                t(Role::Assistant, "Hello!"),
                t(Role::User, "Capital of France?"),
            ]
        );
    }

    #[test]
    fn mistral_single_turn_and_free_text() {
        assert_eq!(
            parse_inst("<s>[INST] What is 2+2? [/INST]"),
            vec![t(Role::User, "What is 2+2?")]
        );
        assert_eq!(
            parse_inst("Tell me a joke"),
            vec![t(Role::User, "Tell me a joke")]
        );
    }

    #[test]
    fn llama3_headers() {
        let p = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
        assert_eq!(
            parse_llama3(p),
            vec![t(Role::System, "Be brief."), t(Role::User, "Hi")]
        );
        // A started answer is a prefill.
        let p = "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nSure,";
        assert_eq!(
            parse_llama3(p),
            vec![t(Role::User, "Hi"), t(Role::Assistant, "Sure,")]
        );
        assert_eq!(parse_llama3("plain"), vec![t(Role::User, "plain")]);
    }

    #[test]
    fn titan_user_bot() {
        assert_eq!(
            parse_user_bot("You are kind.\nUser: Hi there\nsecond line\nBot:"),
            vec![
                t(Role::System, "You are kind."),
                t(Role::User, "Hi there\nsecond line")
            ]
        );
        assert_eq!(
            parse_user_bot("Summarise: the cat sat."),
            vec![t(Role::User, "Summarise: the cat sat.")]
        );
    }
}
