//! Anthropic on Bedrock: the text-completions body (`anthropic.claude-v2`, `-v2:1`,
//! `-instant-v1`) and the Messages API (Claude 3 and later, and the Claude 2 ids too).
mod messages;
mod prompt;
mod text;

pub use messages::{message_body, MessageChunks};
pub use prompt::{parse_prompt, PromptMode};
pub use text::{completion_body, parse_text_request, TextChunks};

use super::{Family, ParseContext, Parsed};
use crate::{schema, ApiError};

/// Claude 2 and Instant: a Messages body (`messages` and no `prompt`) or a text-completions
/// body.
pub fn parse_text_or_messages(body: &[u8], cx: &ParseContext<'_>) -> Result<Parsed, ApiError> {
    let map = schema::object(body)?;
    if map.contains_key("messages") && !map.contains_key("prompt") {
        return messages::parse(&map, cx);
    }
    let request = parse_text_request(body, cx.prompt_mode, cx.seed)?;
    Ok(Parsed::single(Family::AnthropicText, request))
}

/// Claude 3 and later speak only the Messages API.
pub fn parse_messages_only(body: &[u8], cx: &ParseContext<'_>) -> Result<Parsed, ApiError> {
    let map = schema::object(body)?;
    if map.contains_key("prompt") && !map.contains_key("messages") {
        return Err(ApiError::Validation(format!(
            "\"{}\" is not supported on this API. Please use the Messages API instead.",
            messages::model_name(&cx.entry.id)
        )));
    }
    messages::parse(&map, cx)
}
