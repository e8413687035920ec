//! Anthropic on Bedrock: the text-completions body (`anthropic.claude-v2`, `-v2:1`, `-instant-v1`).
mod prompt;
mod text;

pub use prompt::{parse_prompt, PromptMode};
pub use text::{completion_body, parse_text_request, TextChunks};
