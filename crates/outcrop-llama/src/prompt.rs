//! Turning a [`Prompt`] into the model's own text format.
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use outcrop_types::{GenerationError, Prompt, Role, Turn};

/// Renders the prompt with the model's chat template (from the GGUF metadata, via llama.cpp's
/// template support). A trailing assistant turn is a prefill: the template opens the
/// assistant's turn and its text follows, so the answer continues it.
pub fn render(
    model: &LlamaModel,
    template: Option<&LlamaChatTemplate>,
    prompt: &Prompt,
) -> Result<String, GenerationError> {
    let turns = match prompt {
        Prompt::Raw(text) => return Ok(text.clone()),
        Prompt::Chat(turns) => turns,
    };
    let (history, prefill) = match turns.split_last() {
        Some((last, rest)) if last.role == Role::Assistant => (rest, last.content.as_str()),
        _ => (turns.as_slice(), ""),
    };
    let rendered = match template {
        Some(template) => {
            let messages = history
                .iter()
                .map(|t| LlamaChatMessage::new(t.role.as_str().to_owned(), t.content.clone()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| GenerationError::Template(e.to_string()))?;
            model
                .apply_chat_template(template, &messages, true)
                .map_err(|e| GenerationError::Template(e.to_string()))?
        }
        None => plain_transcript(history),
    };
    Ok(rendered + prefill)
}

/// For models without a chat template (base models): a plain transcript.
fn plain_transcript(turns: &[Turn]) -> String {
    let mut out = String::new();
    for t in turns {
        let who = match t.role {
            Role::System => "",
            Role::User => "User: ",
            Role::Assistant => "Assistant: ",
        };
        out.push_str(who);
        out.push_str(&t.content);
        out.push_str("\n\n");
    }
    out.push_str("Assistant:");
    out
}
