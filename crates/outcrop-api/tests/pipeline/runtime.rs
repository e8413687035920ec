//! Every runtime operation through the AWS SDK for Rust, answered by the fake engine.

use crate::support::{claude_body, user_message, App, REPLY};
use aws_sdk_bedrockruntime::types::{ConverseStreamOutput, CountTokensInput, ResponseStream};
use serde_json::Value;

#[tokio::test]
async fn invoke_model_answers_with_the_family_body_and_counts() {
    let app = App::open().await;
    let body = app
        .invoke(
            "anthropic.claude-v2",
            &claude_body("\n\nHuman: Hi there\n\nAssistant:", 50),
        )
        .await
        .unwrap();
    assert_eq!(body["completion"], format!(" {REPLY}"));
    assert_eq!(body["stop_reason"], "stop_sequence");
    let request = &app.engine.requests()[0];
    assert_eq!(request.max_tokens, 50);
    assert!(request.stop_sequences.iter().any(|s| s == "\n\nHuman:"));
}

#[tokio::test]
async fn max_tokens_cut_the_answer() {
    let app = App::open().await;
    let body = app
        .invoke(
            "anthropic.claude-v2",
            &claude_body("\n\nHuman: Hi\n\nAssistant:", 2),
        )
        .await
        .unwrap();
    assert_eq!(body["completion"], " Hello from ");
    assert_eq!(body["stop_reason"], "max_tokens");
}

#[tokio::test]
async fn streams_give_the_text_in_chunks_with_metrics_last() {
    let app = App::open().await;
    let mut stream = app
        .stream(
            "anthropic.claude-v2",
            &claude_body("\n\nHuman: Hi\n\nAssistant:", 50),
        )
        .await;
    let (mut text, mut chunks, mut last) = (String::new(), 0, Value::Null);
    while let Some(event) = stream.recv().await.unwrap() {
        if let ResponseStream::Chunk(part) = event {
            let chunk: Value = serde_json::from_slice(part.bytes().unwrap().as_ref()).unwrap();
            text.push_str(chunk["completion"].as_str().unwrap_or_default());
            chunks += 1;
            last = chunk;
        }
    }
    assert_eq!(
        text,
        format!(" {REPLY}"),
        "Claude's completions start with a space"
    );
    assert!(chunks >= 5, "one chunk per token, got {chunks}");
    let metrics = &last["amazon-bedrock-invocationMetrics"];
    assert_eq!(metrics["outputTokenCount"], 5);
}

#[tokio::test]
async fn converse_and_converse_stream() {
    let app = App::open().await;
    let client = app.client().await;
    let out = client
        .converse()
        .model_id("us.anthropic.claude-3-7-sonnet-20250219-v1:0")
        .messages(user_message("What is up?"))
        .send()
        .await
        .unwrap();
    let message = out.output().unwrap().as_message().unwrap();
    assert_eq!(message.content()[0].as_text().unwrap(), REPLY);
    let usage = out.usage().unwrap();
    assert_eq!((usage.input_tokens(), usage.output_tokens()), (4, 5));

    let out = client
        .converse_stream()
        .model_id("amazon.nova-lite-v1:0")
        .messages(user_message("What is up?"))
        .send()
        .await
        .unwrap();
    let mut stream = out.stream;
    let mut text = String::new();
    let mut stop = None;
    while let Some(event) = stream.recv().await.unwrap() {
        match event {
            ConverseStreamOutput::ContentBlockDelta(d) => {
                text.push_str(d.delta().unwrap().as_text().unwrap());
            }
            ConverseStreamOutput::MessageStop(s) => stop = Some(s.stop_reason().clone()),
            _ => {}
        }
    }
    assert_eq!(text, REPLY);
    assert_eq!(stop.unwrap().as_str(), "end_turn");
}

#[tokio::test]
async fn count_tokens_counts_as_the_engine_does() {
    let app = App::open().await;
    let out = app
        .client()
        .await
        .count_tokens()
        .model_id("anthropic.claude-3-5-haiku-20241022-v1:0")
        .input(CountTokensInput::Converse(
            aws_sdk_bedrockruntime::types::ConverseTokensRequest::builder()
                .messages(user_message("one two three"))
                .build(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(out.input_tokens(), 4);
    assert!(app.engine.requests().iter().all(|r| r.max_tokens == 0));
}

#[tokio::test]
async fn embeddings_have_the_length_each_id_returns() {
    let app = App::open().await;
    for (model, body, len) in [
        (
            "amazon.titan-embed-text-v1",
            r#"{"inputText": "a b c"}"#,
            1536,
        ),
        (
            "amazon.titan-embed-text-v2:0",
            r#"{"inputText": "a b c", "dimensions": 256}"#,
            256,
        ),
    ] {
        let body = app.invoke(model, body.as_bytes()).await.unwrap();
        assert_eq!(body["embedding"].as_array().unwrap().len(), len, "{model}");
        assert_eq!(body["inputTextTokenCount"], 3);
    }
}
