//! Against a stand-in OpenAI server in process (one layer's unit test; the real servers are
//! in `tests/python/test_remote.py`).
use super::*;
use axum::routing::post;
use axum::{Json, Router};
use outcrop_engine::collect;
use outcrop_types::{Sampling, Turn};
use std::sync::Mutex;

type Seen = Arc<Mutex<Vec<Value>>>;

async fn serve(status: u16, seen: Seen) -> String {
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |Json(body): Json<Value>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(body);
                if status != 200 {
                    let error = json!({ "error": { "message": "slow down" } }).to_string();
                    return (axum::http::StatusCode::from_u16(status).unwrap(), error);
                }
                let chunks = [
                    json!({ "choices": [{ "delta": { "role": "assistant", "content": "" } }] }),
                    json!({ "choices": [{ "delta": { "content": "Hello" } }] }),
                    json!({ "choices": [{ "delta": { "content": " world" }, "finish_reason": "stop" }] }),
                    json!({ "choices": [], "usage": { "prompt_tokens": 9, "completion_tokens": 2 } }),
                ];
                let mut sse: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
                sse.push_str("data: [DONE]\n\n");
                (axum::http::StatusCode::OK, sse)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn engine(endpoints: Vec<String>) -> OpenAiEngine {
    OpenAiEngine::new(OpenAiConfig {
        name: "remote".into(),
        endpoints,
        model: "served".into(),
        api_key: Some("k".into()),
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(10),
        max_in_flight: 4,
        eject_after: 3,
        health_interval: None,
        prefix_affinity: false,
        context_tokens: 4096,
    })
    .unwrap()
}

fn request(constraint: Option<Constraint>) -> GenerationRequest {
    GenerationRequest {
        prompt: Prompt::Chat(vec![
            Turn::new(Role::System, "Be brief."),
            Turn::new(Role::User, "Hi"),
        ]),
        max_tokens: 20,
        sampling: Sampling {
            seed: 7,
            constraint,
            ..Sampling::greedy()
        },
        stop_sequences: vec!["END".into()],
        label: None,
        exclusive: false,
        tier: Default::default(),
    }
}

#[tokio::test]
async fn streams_text_and_the_servers_usage() {
    let seen = Seen::default();
    let url = serve(200, seen.clone()).await;
    // The first endpoint cannot be reached: the next one answers.
    let e = engine(vec!["http://127.0.0.1:9/v1".into(), url]);
    let schema = Constraint::Json {
        schema: r#"{"type":"object"}"#.into(),
    };
    let g = collect(e.submit(request(Some(schema))).unwrap())
        .await
        .unwrap();
    assert_eq!(g.text, "Hello world");
    assert_eq!((g.usage.input_tokens, g.usage.output_tokens), (9, 2));
    assert_eq!(g.reason, StopReason::EndOfTurn);
    let body = seen.lock().unwrap()[0].clone();
    assert_eq!(body["model"], "served");
    assert_eq!(
        body["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    );
    assert_eq!(
        (body["seed"].clone(), body["stop"].clone()),
        (json!(7), json!(["END"]))
    );
    assert_eq!(body["stream_options"]["include_usage"], true);
    assert_eq!(
        body["response_format"]["json_schema"]["schema"],
        json!({"type": "object"})
    );
}

#[tokio::test]
async fn refusals_become_bedrock_exceptions() {
    let url = serve(429, Seen::default()).await;
    let err = collect(engine(vec![url]).submit(request(None)).unwrap())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        EngineError::Generation(fault(FaultKind::Throttling, "slow down"))
    );
    let err = collect(
        engine(vec!["http://127.0.0.1:9/v1".into()])
            .submit(request(None))
            .unwrap(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::Generation(GenerationError::Fault {
                kind: FaultKind::ServiceUnavailable,
                ..
            })
        ),
        "{err:?}"
    );
}
