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
        native_tools: true,
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
        cache: Default::default(),
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

/// A stream in vLLM's format (its protocol's field names): an empty priming delta, a tool
/// call's id and name, its arguments in pieces, `finish_reason: "tool_calls"` with
/// `stop_reason: null`, then the usage alone in a last chunk whose `choices` is empty.
const VLLM_TOOL_STREAM: &str = concat!(
    r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"Qwen/Qwen2.5-1.5B-Instruct","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"Qwen/Qwen2.5-1.5B-Instruct","choices":[{"index":0,"delta":{"tool_calls":[{"id":"chatcmpl-tool-a1","type":"function","index":0,"function":{"name":"get_weather"}}]},"logprobs":null,"finish_reason":null}]}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"Qwen/Qwen2.5-1.5B-Instruct","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\": \"Par"}}]},"logprobs":null,"finish_reason":null}]}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"Qwen/Qwen2.5-1.5B-Instruct","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"is\"}"}}]},"logprobs":null,"finish_reason":null}]}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"Qwen/Qwen2.5-1.5B-Instruct","choices":[{"index":0,"delta":{"tool_calls":[{"id":"chatcmpl-tool-b2","type":"function","index":0,"function":{"name":"get_time","arguments":"{}"}}]},"logprobs":null,"finish_reason":null}]}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"Qwen/Qwen2.5-1.5B-Instruct","choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"tool_calls","stop_reason":null}]}"#,
    "\n\n",
    r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"Qwen/Qwen2.5-1.5B-Instruct","choices":[],"usage":{"prompt_tokens":181,"total_tokens":201,"completion_tokens":20}}"#,
    "\n\n",
    "data: [DONE]\n\n",
);

async fn serve_sse(sse: &'static str, seen: Seen) -> String {
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |Json(body): Json<Value>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(body);
                sse
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn native_tool_calls_come_back_in_the_local_text_form() {
    let seen = Seen::default();
    let url = serve_sse(VLLM_TOOL_STREAM, seen.clone()).await;
    let mut r = request(Some(Constraint::JsonAfter {
        trigger: "<tool_call>".into(),
        schema: "{}".into(),
        close: "</tool_call>".into(),
    }));
    r.prompt = Prompt::ChatWithTools {
        turns: vec![Turn::new(Role::User, "Weather and time in Paris?")],
        tools: outcrop_types::ToolPrompt {
            definitions: vec![outcrop_types::ToolDefinition {
                name: "get_weather".into(),
                description: "The weather.".into(),
                parameters: r#"{"type":"object","properties":{"city":{"type":"string"}}}"#.into(),
            }],
            instructions: "Call tools like this...".into(),
        },
    };
    let g = collect(engine(vec![url]).submit(r).unwrap()).await.unwrap();
    assert_eq!(
        g.text,
        "<tool_call>\n{\"arguments\":{\"city\":\"Paris\"},\"name\":\"get_weather\"}\n</tool_call>\n<tool_call>\n{\"arguments\":{},\"name\":\"get_time\"}\n</tool_call>"
    );
    // The usage is the last chunk's, which has no choices.
    assert_eq!((g.usage.input_tokens, g.usage.output_tokens), (181, 20));
    let body = seen.lock().unwrap()[0].clone();
    assert_eq!(body["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(body["tool_choice"], "auto");
    // The tools went as tools, not as instructions in a system turn.
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": "Weather and time in Paris?"}])
    );
}

#[tokio::test]
async fn count_tokens_uses_vllms_tokenize() {
    let seen = Seen::default();
    let app = Router::new().route(
        "/tokenize",
        post({
            let seen = seen.clone();
            move |Json(body): Json<Value>| async move {
                seen.lock().unwrap().push(body);
                Json(json!({"count": 42, "max_model_len": 32768, "tokens": [1, 2], "token_strs": null}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let n = engine(vec![url])
        .count_tokens(Prompt::Chat(vec![Turn::new(Role::User, "Hi")]))
        .await
        .unwrap();
    assert_eq!(n, 42);
    let body = seen.lock().unwrap()[0].clone();
    assert_eq!(body["model"], "served");
    assert_eq!(body["messages"], json!([{"role": "user", "content": "Hi"}]));
    assert_eq!(body["add_generation_prompt"], true);
}
