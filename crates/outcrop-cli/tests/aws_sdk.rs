//! The AWS SDK for Rust (`aws-sdk-bedrockruntime`) against the real `outcrop` binary and real
//! models: the tiny chat model for wire behaviour, the default one for an agent's tool loop.
//! The model cache is OUTCROP_MODELS_DIR (default ~/.cache/outcrop/models); the server pulls
//! a model there if it is missing.

use aws_sdk_bedrockruntime::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::Client;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn models_dir() -> String {
    std::env::var("OUTCROP_MODELS_DIR").unwrap_or_else(|_| {
        format!(
            "{}/.cache/outcrop/models",
            std::env::var("HOME").unwrap_or_default()
        )
    })
}

/// Starts `outcrop serve` on a free port, its chat ids backed by `chat_model`, and waits for
/// its "listening on" line.
fn start_server_with(chat_model: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    // Model access is covered by the boto3 suite; these tests run with every model enabled.
    let config = dir.path().join("outcrop.toml");
    std::fs::write(&config, "[access]\nmode = \"open\"\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_outcrop"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path())
        .env("OUTCROP_MODELS_DIR", models_dir())
        .env("OUTCROP_LOG", "info")
        .env("OUTCROP_CHAT_MODEL", chat_model)
        .env_remove("OUTCROP_CONFIG")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("outcrop binary runs");
    let stderr = child.stderr.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut lines = BufReader::new(stderr).lines();
    let url = loop {
        assert!(Instant::now() < deadline, "server did not start in time");
        let line = lines
            .next()
            .expect("server exited before listening")
            .unwrap();
        if let Some(at) = line.find("listening on ") {
            break line[at + "listening on ".len()..].trim().to_owned();
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Server {
        child,
        url,
        _dir: dir,
    }
}

fn start_server() -> Server {
    start_server_with("smollm2-135m-instruct")
}

async fn client(url: &str, key: &str, secret: &str) -> Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(url)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(key, secret, None, None, "test"))
        .load()
        .await;
    Client::new(&config)
}

#[tokio::test]
async fn aws_sdk_invoke_model_and_errors() {
    let server = start_server();
    let runtime = client(&server.url, "test", "test").await;

    let body = r#"{"prompt": "\n\nHuman: Say hello.\n\nAssistant:", "max_tokens_to_sample": 16, "temperature": 0}"#;
    for model in [
        "anthropic.claude-v2",
        "anthropic.claude-v2:1",
        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-instant-v1",
    ] {
        let out = runtime
            .invoke_model()
            .model_id(model)
            .content_type("application/json")
            .body(Blob::new(body))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{model}: {e:?}"));
        assert_eq!(out.content_type(), "application/json");
        let json: serde_json::Value = serde_json::from_slice(out.body().as_ref()).unwrap();
        assert!(
            !json["completion"].as_str().unwrap().trim().is_empty(),
            "{json}"
        );
        assert!(
            ["stop_sequence", "max_tokens"].contains(&json["stop_reason"].as_str().unwrap()),
            "{json}"
        );
    }

    let err = runtime
        .invoke_model()
        .model_id("anthropic.claude-v2")
        .body(Blob::new(
            r#"{"prompt": "hello", "max_tokens_to_sample": 5}"#,
        ))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_validation_exception(), "{err:?}");
    assert_eq!(
        err.meta().message(),
        Some("Invalid prompt: prompt must start with \"\n\nHuman:\" turn, prompt must end with \"\n\nAssistant:\" turn")
    );

    let err = runtime
        .invoke_model()
        .model_id("anthropic.claude-v9")
        .body(Blob::new(body))
        .send()
        .await
        .unwrap_err();
    let err = err.into_service_error();
    assert!(err.is_validation_exception(), "{err:?}");
    assert_eq!(
        err.meta().message(),
        Some("The provided model identifier is invalid.")
    );

    let stranger = client(&server.url, "AKIANOBODY", "secret").await;
    let err = stranger
        .invoke_model()
        .model_id("anthropic.claude-v2")
        .body(Blob::new(body))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.into_service_error().meta().code(),
        Some("UnrecognizedClientException")
    );
}

#[tokio::test]
async fn aws_sdk_invoke_model_with_response_stream() {
    use aws_sdk_bedrockruntime::types::ResponseStream;
    let server = start_server();
    let runtime = client(&server.url, "test", "test").await;
    let body = r#"{"prompt": "\n\nHuman: Name three colours.\n\nAssistant:", "max_tokens_to_sample": 30, "temperature": 0}"#;
    let mut out = runtime
        .invoke_model_with_response_stream()
        .model_id("anthropic.claude-v2:1")
        .body(Blob::new(body))
        .send()
        .await
        .expect("stream starts");
    assert_eq!(out.content_type(), "application/json");
    let mut chunks = Vec::new();
    while let Some(event) = out
        .body
        .recv()
        .await
        .expect("frames decode with valid CRCs")
    {
        match event {
            ResponseStream::Chunk(part) => {
                let json: serde_json::Value =
                    serde_json::from_slice(part.bytes().unwrap().as_ref()).unwrap();
                chunks.push(json);
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert!(chunks.len() > 2, "{chunks:?}");
    let text: String = chunks
        .iter()
        .map(|c| c["completion"].as_str().unwrap())
        .collect();
    assert!(!text.trim().is_empty());
    let last = chunks.last().unwrap();
    assert!(
        last["amazon-bedrock-invocationMetrics"]["outputTokenCount"]
            .as_u64()
            .unwrap()
            >= 1,
        "{last}"
    );

    let whole = runtime
        .invoke_model()
        .model_id("anthropic.claude-v2:1")
        .body(Blob::new(body))
        .send()
        .await
        .unwrap();
    let whole: serde_json::Value = serde_json::from_slice(whole.body().as_ref()).unwrap();
    assert_eq!(
        whole["completion"].as_str().unwrap(),
        text,
        "stream equals InvokeModel at temperature 0"
    );
}

#[tokio::test]
async fn aws_sdk_converse_and_converse_stream() {
    use aws_sdk_bedrockruntime::types::{
        ContentBlock, ContentBlockDelta, ConversationRole, ConverseStreamOutput,
        InferenceConfiguration, Message, StopReason,
    };
    let server = start_server();
    let runtime = client(&server.url, "test", "test").await;
    let message = Message::builder()
        .role(ConversationRole::User)
        .content(ContentBlock::Text("Say hello.".into()))
        .build()
        .unwrap();
    let config = InferenceConfiguration::builder()
        .max_tokens(20)
        .temperature(0.0)
        .build();
    let model = "us.amazon.nova-micro-v1:0";
    let mut out = runtime
        .converse_stream()
        .model_id(model)
        .messages(message.clone())
        .inference_config(config.clone())
        .send()
        .await
        .expect("stream starts");
    let (mut events, mut text, mut output_tokens) = (Vec::new(), String::new(), 0);
    while let Some(event) = out.stream.recv().await.expect("events decode") {
        events.push(match event {
            ConverseStreamOutput::MessageStart(_) => "messageStart",
            ConverseStreamOutput::ContentBlockDelta(d) => {
                if let Some(ContentBlockDelta::Text(t)) = d.delta() {
                    text.push_str(t);
                }
                "contentBlockDelta"
            }
            ConverseStreamOutput::ContentBlockStop(_) => "contentBlockStop",
            ConverseStreamOutput::MessageStop(m) => {
                assert!(matches!(
                    m.stop_reason(),
                    StopReason::EndTurn | StopReason::MaxTokens
                ));
                "messageStop"
            }
            ConverseStreamOutput::Metadata(m) => {
                output_tokens = m.usage().unwrap().output_tokens();
                assert!(m.metrics().is_some());
                "metadata"
            }
            other => panic!("unexpected event {other:?}"),
        });
    }
    assert_eq!(events.first(), Some(&"messageStart"));
    assert_eq!(events[events.len() - 2..], ["messageStop", "metadata"]);
    assert!(output_tokens > 0);

    let whole = runtime
        .converse()
        .model_id(model)
        .messages(message)
        .inference_config(config)
        .send()
        .await
        .unwrap();
    let content = whole.output().unwrap().as_message().unwrap().content();
    assert_eq!(
        content[0].as_text().unwrap(),
        &text,
        "stream equals Converse at temperature 0"
    );
    assert_eq!(whole.usage().unwrap().output_tokens(), output_tokens);
}

/// An agent's loop with the default model: it chooses to call the tool (`auto`), gets the
/// result and answers from it, all over ConverseStream.
#[tokio::test]
async fn aws_sdk_agent_tool_loop_with_the_default_model() {
    use aws_sdk_bedrockruntime::types::{
        ContentBlock, ContentBlockDelta, ContentBlockStart, ConversationRole, ConverseStreamOutput,
        InferenceConfiguration, Message, StopReason, Tool, ToolConfiguration, ToolInputSchema,
        ToolResultBlock, ToolResultContentBlock, ToolSpecification, ToolUseBlock,
    };
    use aws_smithy_types::Document;
    let server = start_server_with("qwen2.5-coder-0.5b-instruct");
    let runtime = client(&server.url, "test", "test").await;
    let schema = Document::Object(
        [
            ("type".to_owned(), Document::String("object".into())),
            (
                "properties".to_owned(),
                Document::Object(
                    [(
                        "city".to_owned(),
                        Document::Object(
                            [("type".to_owned(), Document::String("string".into()))].into(),
                        ),
                    )]
                    .into(),
                ),
            ),
            (
                "required".to_owned(),
                Document::Array(vec![Document::String("city".into())]),
            ),
        ]
        .into(),
    );
    let tools = ToolConfiguration::builder()
        .tools(Tool::ToolSpec(
            ToolSpecification::builder()
                .name("get_weather")
                .description("Current weather for a city.")
                .input_schema(ToolInputSchema::Json(schema))
                .build()
                .unwrap(),
        ))
        .build()
        .unwrap();
    let config = InferenceConfiguration::builder()
        .max_tokens(100)
        .temperature(0.0)
        .build();
    let mut messages = vec![Message::builder()
        .role(ConversationRole::User)
        .content(ContentBlock::Text(
            "What's the weather in Paris right now?".into(),
        ))
        .build()
        .unwrap()];
    let mut called = None;
    for turn in 0..3 {
        let mut out = runtime
            .converse_stream()
            .model_id("anthropic.claude-3-haiku-20240307-v1:0")
            .set_messages(Some(messages.clone()))
            .tool_config(tools.clone())
            .inference_config(config.clone())
            .send()
            .await
            .expect("stream starts");
        let (mut text, mut tool, mut input, mut stop) = (String::new(), None, String::new(), None);
        while let Some(event) = out.stream.recv().await.expect("events decode") {
            match event {
                ConverseStreamOutput::ContentBlockStart(s) => {
                    if let Some(ContentBlockStart::ToolUse(t)) = s.start() {
                        tool = Some((t.tool_use_id().to_owned(), t.name().to_owned()));
                    }
                }
                ConverseStreamOutput::ContentBlockDelta(d) => match d.delta() {
                    Some(ContentBlockDelta::Text(t)) => text.push_str(t),
                    Some(ContentBlockDelta::ToolUse(t)) => input.push_str(t.input()),
                    _ => {}
                },
                ConverseStreamOutput::MessageStop(m) => stop = Some(m.stop_reason().clone()),
                _ => {}
            }
        }
        if stop == Some(StopReason::ToolUse) {
            let (id, name) = tool.expect("a toolUse block");
            assert_eq!(name, "get_weather", "turn {turn}");
            let args: serde_json::Value = serde_json::from_str(&input).unwrap();
            assert!(args["city"].as_str().unwrap().contains("Paris"), "{args}");
            called = Some(args);
            let city =
                Document::Object([("city".to_owned(), Document::String("Paris".into()))].into());
            messages.push(
                Message::builder()
                    .role(ConversationRole::Assistant)
                    .content(ContentBlock::ToolUse(
                        ToolUseBlock::builder()
                            .tool_use_id(&id)
                            .name(name)
                            .input(city)
                            .build()
                            .unwrap(),
                    ))
                    .build()
                    .unwrap(),
            );
            messages.push(
                Message::builder()
                    .role(ConversationRole::User)
                    .content(ContentBlock::ToolResult(
                        ToolResultBlock::builder()
                            .tool_use_id(id)
                            .content(ToolResultContentBlock::Text(
                                "18 degrees Celsius, cloudy".into(),
                            ))
                            .build()
                            .unwrap(),
                    ))
                    .build()
                    .unwrap(),
            );
            continue;
        }
        assert!(
            called.is_some(),
            "the model answered without calling the tool: {text}"
        );
        assert_eq!(stop, Some(StopReason::EndTurn), "{text}");
        assert!(
            text.contains("18"),
            "the answer uses the tool's result: {text}"
        );
        return;
    }
    panic!("the loop did not end with an answer");
}

/// Prompt caching through the SDK's own types: a `CachePoint` after a system prompt longer
/// than Claude Sonnet 4.5's 1,024-token minimum is written by the first call (with its
/// `cacheDetails`), then read by the next call that starts with it.
#[tokio::test]
async fn aws_sdk_prompt_cache_write_then_read() {
    use aws_sdk_bedrockruntime::types::{
        CachePointBlock, CachePointType, CacheTtl, ContentBlock, ConversationRole,
        InferenceConfiguration, Message, SystemContentBlock,
    };
    let server = start_server();
    let runtime = client(&server.url, "test", "test").await;
    let rules = (1..=90)
        .map(|i| format!("Rule {i}: answer questions about order number {i} politely and briefly."))
        .collect::<Vec<_>>()
        .join(" ");
    let point = CachePointBlock::builder()
        .r#type(CachePointType::Default)
        .ttl(CacheTtl::FiveMinutes)
        .build()
        .unwrap();
    let ask = |question: &str| {
        runtime
            .converse()
            .model_id("us.anthropic.claude-sonnet-4-5-20250929-v1:0")
            .system(SystemContentBlock::Text(rules.clone()))
            .system(SystemContentBlock::CachePoint(point.clone()))
            .messages(
                Message::builder()
                    .role(ConversationRole::User)
                    .content(ContentBlock::Text(question.into()))
                    .build()
                    .unwrap(),
            )
            .inference_config(InferenceConfiguration::builder().max_tokens(8).build())
            .send()
    };
    let first = ask("Where is order 7?").await.unwrap();
    let usage = first.usage().unwrap();
    let written = usage.cache_write_input_tokens().unwrap_or(0);
    assert!(written >= 1024, "{usage:?}");
    assert_eq!(usage.cache_read_input_tokens().unwrap_or(0), 0);
    let details = usage.cache_details();
    assert_eq!(details.len(), 1);
    assert_eq!(
        (details[0].ttl(), details[0].input_tokens()),
        (&CacheTtl::FiveMinutes, written)
    );
    let second = ask("And order 12?").await.unwrap();
    let usage = second.usage().unwrap();
    assert_eq!(usage.cache_read_input_tokens(), Some(written), "{usage:?}");
    assert_eq!(
        usage.total_tokens(),
        usage.input_tokens() + written + usage.output_tokens()
    );
}
