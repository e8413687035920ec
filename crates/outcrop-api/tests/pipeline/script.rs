//! The script engine behind the pipeline, driven by the AWS SDK for Rust: a scripted fault
//! before the first byte and one in the middle of a stream, each read by the SDK as the
//! exception Bedrock names.

use crate::support::{sdk_error, user_message, App};
use aws_sdk_bedrockruntime::types::ConverseStreamOutput;
use std::sync::Arc;

const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";

fn app_script() -> (tempfile::TempDir, Arc<outcrop_script::ScriptEngine>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.toml");
    std::fs::write(
        &path,
        r#"
        [[rule]]
        contains = "throttle"
        reply = { fault = "ThrottlingException", message = "Rate exceeded." }
        [[rule]]
        contains = "timeout"
        reply = { fault = "ModelTimeoutException", message = "Timed out." }
        [[rule]]
        contains = "break"
        reply = { fault = "ModelStreamErrorException", message = "Broke.", text = "a b c d", after_chunks = 2 }
        [[rule]]
        reply = { text = "Scripted answer." }
        "#,
    )
    .unwrap();
    let engine = outcrop_script::ScriptEngine::load("script", &path, None).unwrap();
    (dir, Arc::new(engine))
}

#[tokio::test]
async fn scripted_answers_and_faults_reach_the_sdk_as_bedrock_exceptions() {
    let (_dir, engine) = app_script();
    let app = App::with_engine(engine).await;
    let client = app.client().await;
    let ok = client
        .converse()
        .model_id(HAIKU)
        .messages(user_message("hi"))
        .send()
        .await
        .unwrap();
    let text = ok.output().unwrap().as_message().unwrap().content()[0]
        .as_text()
        .unwrap()
        .clone();
    assert_eq!(text, "Scripted answer.");

    for (prompt, code, message) in [
        ("please throttle", "ThrottlingException", "Rate exceeded."),
        ("a timeout", "ModelTimeoutException", "Timed out."),
    ] {
        let err = client
            .converse()
            .model_id(HAIKU)
            .messages(user_message(prompt))
            .send()
            .await
            .map_err(sdk_error)
            .unwrap_err();
        assert_eq!(err, (code.to_owned(), message.to_owned()));
    }

    let mut stream = client
        .converse_stream()
        .model_id(HAIKU)
        .messages(user_message("break it"))
        .send()
        .await
        .unwrap()
        .stream;
    let mut text = String::new();
    let failure = loop {
        match stream.recv().await {
            Ok(Some(ConverseStreamOutput::ContentBlockDelta(d))) => {
                text.push_str(d.delta().unwrap().as_text().unwrap());
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("the stream ended without its fault"),
            Err(e) => break e,
        }
    };
    assert_eq!(text, "a b ");
    let service = failure.into_service_error();
    assert!(service.is_model_stream_error_exception(), "{service:?}");
    assert_eq!(service.meta().message(), Some("Broke."));
}
