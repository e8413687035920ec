//! The usage ledger: exactly one record per runtime call, whatever its end.

use crate::support::{claude_body, user_message, App, REPLY};
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::ResponseStream;
use outcrop_engine::{FakeEngine, Reply};
use outcrop_service::AccessMode;
use std::time::Duration;

#[tokio::test]
async fn successes_errors_and_streams_are_each_recorded_once() {
    let app = App::open().await;
    let body = claude_body("\n\nHuman: Hi\n\nAssistant:", 50);
    app.invoke("anthropic.claude-v2:1", &body).await.unwrap();
    app.invoke("anthropic.claude-v2", b"{}").await.unwrap_err();
    let mut stream = app.stream("anthropic.claude-v2", &body).await;
    while let Some(ResponseStream::Chunk(_)) = stream.recv().await.unwrap() {}
    let records = app.ledger(3).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(app.ledger(3).await.len(), 3, "no second record of any call");
    let ok = &records[0];
    assert_eq!(
        (ok.model_id.as_str(), ok.operation.as_str(), ok.status),
        ("anthropic.claude-v2:1", "InvokeModel", 200)
    );
    assert_eq!((ok.input_tokens, ok.output_tokens), (3, 5));
    assert!(ok.cost_usd.parse::<f64>().unwrap() > 0.0);
    let invalid = &records[1];
    assert_eq!(
        (invalid.status, invalid.error_code.as_deref()),
        (400, Some("ValidationException"))
    );
    assert_eq!(invalid.model_id, "anthropic.claude-v2");
    let streamed = &records[2];
    assert_eq!(
        (
            streamed.operation.as_str(),
            streamed.status,
            streamed.output_tokens
        ),
        ("InvokeModelWithResponseStream", 200, 5)
    );
    assert!(streamed.first_byte_ms.is_some());
}

#[tokio::test]
async fn refusals_before_the_model_are_recorded_under_the_identifier() {
    let app = App::open().await;
    app.invoke(
        "no.such-model",
        &claude_body("\n\nHuman: Hi\n\nAssistant:", 5),
    )
    .await
    .unwrap_err();
    let record = &app.ledger(1).await[0];
    assert_eq!(
        (
            record.model_id.as_str(),
            record.status,
            record.error_code.as_deref()
        ),
        ("no.such-model", 400, Some("ValidationException"))
    );
}

/// A client that gives up before a non-streaming answer still leaves its record.
#[tokio::test]
async fn a_client_gone_before_the_answer_is_recorded() {
    let engine = FakeEngine::scripted("fake", |_| Reply::Stall("partial ".into()));
    let app = App::start(engine, AccessMode::Open).await;
    let client = app.client().await;
    let call = client
        .invoke_model()
        .model_id("anthropic.claude-v2")
        .body(Blob::new(claude_body("\n\nHuman: Hi\n\nAssistant:", 50)))
        .send();
    assert!(tokio::time::timeout(Duration::from_millis(300), call)
        .await
        .is_err());
    let record = &app.ledger(1).await[0];
    assert_eq!(
        (record.status, record.error_code.as_deref()),
        (499, Some("ClientClosedRequest"))
    );
    for _ in 0..100 {
        if app.engine.cancelled() == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the generation was not cancelled");
}

#[tokio::test]
async fn a_stream_cut_short_records_what_was_sent() {
    let engine = FakeEngine::scripted("fake", |_| Reply::Stall("one two three ".into()));
    let app = App::start(engine, AccessMode::Open).await;
    let mut stream = app
        .stream(
            "anthropic.claude-v2",
            &claude_body("\n\nHuman: Hi\n\nAssistant:", 50),
        )
        .await;
    for _ in 0..3 {
        stream.recv().await.unwrap().unwrap();
    }
    drop(stream);
    let record = &app.ledger(1).await[0];
    assert_eq!(
        (
            record.status,
            record.error_code.as_deref(),
            record.output_tokens
        ),
        (499, Some("ClientClosedStream"), 3)
    );
}

#[tokio::test]
async fn the_answer_is_the_scripted_one() {
    // Guards the harness itself: the fake engine answers, the ledger counts its words.
    let app = App::open().await;
    let out = app
        .client()
        .await
        .converse()
        .model_id("amazon.nova-micro-v1:0")
        .messages(user_message("Hi"))
        .send()
        .await
        .unwrap();
    let text = out.output().unwrap().as_message().unwrap().content()[0]
        .as_text()
        .unwrap()
        .clone();
    assert_eq!(text, REPLY);
    assert_eq!(app.ledger(1).await[0].output_tokens, 5);
}

#[tokio::test]
async fn a_service_tier_prices_its_tokens_with_the_catalog_factor() {
    use aws_sdk_bedrockruntime::types::ServiceTierType;
    let app = App::open().await;
    let body = claude_body("\n\nHuman: Hi\n\nAssistant:", 50);
    for tier in [
        None,
        Some(ServiceTierType::Flex),
        Some(ServiceTierType::Priority),
    ] {
        let out = app
            .client()
            .await
            .invoke_model()
            .model_id("anthropic.claude-v2")
            .set_service_tier(tier.clone())
            .body(Blob::new(body.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(out.service_tier(), tier.as_ref(), "the tier is echoed");
    }
    let records = app.ledger(3).await;
    let cost = |i: usize| records[i].cost_usd.parse::<f64>().unwrap();
    assert!(cost(0) > 0.0);
    assert!((cost(1) - cost(0) * 0.5).abs() < 1e-12, "flex: half price");
    assert!((cost(2) - cost(0) * 1.75).abs() < 1e-12, "priority: +75%");
    assert_eq!(records[1].input_price_per_1k, "0.004");
}
