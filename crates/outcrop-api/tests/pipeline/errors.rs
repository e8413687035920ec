//! Bedrock's validation texts per family, throttling, and which error wins when several apply.

use crate::support::{claude_body, sdk_error, user_message, App};
use aws_sdk_bedrockruntime::types::ResponseStream;
use outcrop_engine::SubmitError;
use outcrop_service::Limits;
use serde_json::json;

async fn invoke(app: &App, model: &str, body: &[u8]) -> Result<(), (String, String)> {
    app.invoke(model, body).await.map(drop)
}

#[tokio::test]
async fn each_family_refuses_with_bedrocks_text() {
    let app = App::open().await;
    let cases = [
        ("anthropic.claude-v2", json!({"prompt": "Hi", "max_tokens_to_sample": 5}),
         "Invalid prompt: prompt must start with \"\n\nHuman:\" turn, prompt must end with \"\n\nAssistant:\" turn"),
        ("anthropic.claude-3-haiku-20240307-v1:0", json!({"anthropic_version": "bedrock-2023-05-31", "messages": [{"role": "user", "content": "Hi"}]}),
         "Malformed input request: #: subject must not be valid against schema {\"required\":[\"messages\"]}#: required key [max_tokens] not found, please reformat your input and try again."),
        ("amazon.titan-text-express-v1", json!({"inputText": "Hi", "textGenerationConfig": {"maxTokens": 5}}),
         "Malformed input request: #/textGenerationConfig: extraneous key [maxTokens] is not permitted, please reformat your input and try again."),
        ("meta.llama3-8b-instruct-v1:0", json!({"prompt": "Hi", "max_gen_len": 4096}),
         "Malformed input request: #/max_gen_len: 4096 is not less or equal to 2048, please reformat your input and try again."),
        ("mistral.mistral-7b-instruct-v0:2", json!({"max_tokens": 5}),
         "Malformed input request: #: required key [prompt] not found, please reformat your input and try again."),
        ("cohere.command-text-v14", json!({"prompt": "Hi", "max_tokens_to_sample": 5}),
         "Malformed input request: #: extraneous key [max_tokens_to_sample] is not permitted, please reformat your input and try again."),
        ("ai21.j2-mid-v1", json!({"prompt": "Hi", "temperature": 2}),
         "Malformed input request: #/temperature: 2 is not less or equal to 1, please reformat your input and try again."),
        ("us.amazon.nova-micro-v1:0", json!({"messages": [{"role": "assistant", "content": [{"text": "Hi"}]}]}),
         "A conversation must start with a user message. Try again with a conversation that starts with a user message."),
        ("anthropic.claude-3-7-sonnet-20250219-v1:0", json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}]}),
         "Invocation of model ID anthropic.claude-3-7-sonnet-20250219-v1:0 with on-demand throughput isn't supported. Retry your request with the ID or ARN of an inference profile that contains this model."),
        ("amazon.titan-embed-text-v2:0", json!({"inputText": "Hi", "dimensions": 100}),
         "Malformed input request: #/dimensions: 100 is not a valid enum value, please reformat your input and try again."),
    ];
    for (model, body, message) in cases {
        let (code, got) = invoke(&app, model, body.to_string().as_bytes())
            .await
            .unwrap_err();
        assert_eq!(
            (code.as_str(), got.as_str()),
            ("ValidationException", message),
            "{model}"
        );
    }
    assert!(
        app.engine.requests().is_empty(),
        "nothing invalid reached the engine"
    );
}

#[tokio::test]
async fn bodies_that_are_not_json_are_refused() {
    let app = App::open().await;
    for body in [&b"not json"[..], b"[]", b"", b"\xff\xfe"] {
        let (code, _) = invoke(&app, "anthropic.claude-v2", body).await.unwrap_err();
        assert_eq!(code, "ValidationException");
    }
}

#[tokio::test]
async fn a_full_engine_queue_throttles() {
    let app = App::open().await;
    app.engine.refuse(Some(SubmitError::QueueFull));
    let (code, message) = invoke(
        &app,
        "anthropic.claude-v2",
        &claude_body("\n\nHuman: x\n\nAssistant:", 5),
    )
    .await
    .unwrap_err();
    assert_eq!(code, "ThrottlingException");
    assert!(message.starts_with("Too many requests"));
    app.engine.refuse(Some(SubmitError::Stopped));
    let (code, _) = invoke(
        &app,
        "anthropic.claude-v2",
        &claude_body("\n\nHuman: x\n\nAssistant:", 5),
    )
    .await
    .unwrap_err();
    assert_eq!(code, "ServiceUnavailableException");
}

fn one_request_per_minute(app: &App, model: &str) {
    app.state.quotas.set(
        model,
        Some(Limits {
            requests_per_minute: Some(1),
            tokens_per_minute: None,
            tokens_per_day: None,
        }),
    );
}

#[tokio::test]
async fn quotas_throttle_and_win_over_an_invalid_body() {
    let app = App::open().await;
    one_request_per_minute(&app, "anthropic.claude-v2");
    let good = claude_body("\n\nHuman: x\n\nAssistant:", 5);
    invoke(&app, "anthropic.claude-v2", &good).await.unwrap();
    let (code, message) = invoke(&app, "anthropic.claude-v2", &good)
        .await
        .unwrap_err();
    assert_eq!(code, "ThrottlingException");
    assert_eq!(message, "Too many requests, please wait before trying again. You have sent too many requests.  Wait before trying again.");
    // Throttled and invalid at once: the throttle is reported, as on Bedrock.
    let (code, _) = invoke(&app, "anthropic.claude-v2", b"{}")
        .await
        .unwrap_err();
    assert_eq!(code, "ThrottlingException");
    // Converse on the same model shares its quota; another id has its own.
    let (code, _) = app
        .client()
        .await
        .converse()
        .model_id("anthropic.claude-v2")
        .messages(user_message("Hi"))
        .send()
        .await
        .map_err(sdk_error)
        .unwrap_err();
    assert_eq!(code, "ThrottlingException");
    invoke(&app, "anthropic.claude-v2:1", &good).await.unwrap();
}

#[tokio::test]
async fn a_stream_over_its_quota_ends_with_the_frame() {
    let app = App::open().await;
    one_request_per_minute(&app, "anthropic.claude-v2");
    let body = claude_body("\n\nHuman: x\n\nAssistant:", 5);
    let mut first = app.stream("anthropic.claude-v2", &body).await;
    while let Some(ResponseStream::Chunk(_)) = first.recv().await.unwrap() {}
    let mut second = app.stream("anthropic.claude-v2", &body).await;
    let error = second.recv().await.unwrap_err().into_service_error();
    assert!(error.is_throttling_exception(), "{error:?}");
}

/// Admission reserves the input plus the output the body really allows: the family's own
/// default when it names none (Cohere Command: 20 tokens).
#[tokio::test]
async fn tokens_are_reserved_as_the_family_reads_the_body() {
    let app = App::open().await;
    app.state.quotas.set(
        "cohere.command-text-v14",
        Some(Limits {
            requests_per_minute: None,
            tokens_per_minute: Some(100),
            tokens_per_day: None,
        }),
    );
    invoke(&app, "cohere.command-text-v14", br#"{"prompt": "Hi"}"#)
        .await
        .unwrap();
    let (code, message) = invoke(
        &app,
        "cohere.command-text-v14",
        br#"{"prompt": "Hi", "max_tokens": 200}"#,
    )
    .await
    .unwrap_err();
    assert_eq!(
        (code.as_str(), message.as_str()),
        (
            "ThrottlingException",
            "Too many tokens, please wait before trying again."
        )
    );
}
