//! Bedrock's OpenAI and Anthropic paths over the same pipeline: shapes, streams, errors in
//! each API's own form, authentication and the ledger.

use crate::support::{App, REPLY};
use outcrop_engine::{FakeEngine, Reply};
use outcrop_service::AccessMode;
use serde_json::{json, Value};

const NOVA: &str = "us.amazon.nova-micro-v1:0";
const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";

fn chat(model: &str, extra: Value) -> Vec<u8> {
    let mut body = json!({ "model": model, "messages": [
        { "role": "system", "content": "Be brief." },
        { "role": "user", "content": "Hello there" },
    ]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body.to_string().into_bytes()
}

/// The server-sent events of a body: (event name or "", data) pairs.
fn events(text: &str) -> Vec<(String, String)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = String::new();
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = d.to_owned();
                }
            }
            (name, data)
        })
        .collect()
}

#[tokio::test]
async fn openai_chat_completion_and_its_ledger_record() {
    let app = App::open().await;
    let (status, _, body) = app
        .signed(
            "POST",
            "/openai/v1/chat/completions",
            &chat(NOVA, json!({"max_completion_tokens": 50})),
            "test",
            "test",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], NOVA);
    assert_eq!(body["choices"][0]["message"]["content"], REPLY);
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let u = &body["usage"];
    assert_eq!(
        u["total_tokens"],
        u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap()
    );
    let record = &app.ledger(1).await[0];
    assert_eq!(
        (record.operation.as_str(), record.model_id.as_str()),
        ("CreateChatCompletion", "amazon.nova-micro-v1:0")
    );
    // The conversation reached the engine as the same chat turns Converse would give it.
    let request = &app.engine.requests()[0];
    assert_eq!(
        format!("{:?}", request.prompt).matches("Be brief.").count(),
        1
    );
}

#[tokio::test]
async fn openai_stream_ends_with_usage_and_done() {
    let app = App::open().await;
    let body = chat(
        NOVA,
        json!({"stream": true, "stream_options": {"include_usage": true}}),
    );
    let (status, headers, text) = app
        .signed("POST", "/v1/chat/completions", &body, "test", "test")
        .await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/event-stream");
    let text = text.as_str().unwrap().to_owned();
    let data: Vec<String> = events(&text).into_iter().map(|(_, d)| d).collect();
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let said: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(said, REPLY);
    let finish = chunks
        .iter()
        .find_map(|c| c["choices"][0]["finish_reason"].as_str());
    assert_eq!(finish, Some("stop"));
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert!(last["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    assert_eq!(app.ledger(1).await[0].operation, "CreateChatCompletion");
}

#[tokio::test]
async fn openai_tool_call_round_trip() {
    let engine = FakeEngine::scripted("fake", |r| {
        if format!("{:?}", r.prompt).contains("18 degrees") {
            Reply::Text("It is 18 degrees in Paris.".into())
        } else {
            Reply::Text(
                "<tool_call>{\"name\": \"get_weather\", \"input\": {\"city\": \"Paris\"}}".into(),
            )
        }
    });
    let app = App::start(engine, AccessMode::Open).await;
    let tools = json!([{ "type": "function", "function": { "name": "get_weather", "description": "Weather",
        "parameters": { "type": "object", "properties": { "city": { "type": "string" } }, "required": ["city"] } } }]);
    let (status, _, body) = app
        .signed(
            "POST",
            "/openai/v1/chat/completions",
            &chat(NOVA, json!({"tools": tools, "tool_choice": "auto"})),
            "test",
            "test",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"city": "Paris"}));
    // The tool's answer goes back as a `tool` message.
    let follow = json!({ "model": NOVA, "tools": tools, "messages": [
        { "role": "user", "content": "Weather in Paris?" },
        { "role": "assistant", "content": null, "tool_calls": [call] },
        { "role": "tool", "tool_call_id": call["id"], "content": "18 degrees" },
    ]});
    let (status, _, body) = app
        .signed(
            "POST",
            "/openai/v1/chat/completions",
            follow.to_string().as_bytes(),
            "test",
            "test",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "It is 18 degrees in Paris."
    );
}

#[tokio::test]
async fn openai_errors_are_in_openai_shape() {
    let app = App::open().await;
    let cases = [
        (
            json!({"messages": [{"role": "user", "content": "x"}]}),
            400,
            "model is required",
        ),
        (
            json!({"model": "no.such-model", "messages": [{"role": "user", "content": "x"}]}),
            400,
            "model identifier is invalid",
        ),
        (json!({"model": NOVA}), 400, "messages is required"),
        (
            json!({"model": NOVA, "n": 9, "messages": [{"role": "user", "content": "x"}]}),
            400,
            "n must be an integer from 1 to 8",
        ),
        (
            json!({"model": NOVA, "n": 2, "stream": true, "messages": [{"role": "user", "content": "x"}]}),
            400,
            "cannot be streamed",
        ),
        (
            json!({"model": NOVA, "logprobs": true, "messages": [{"role": "user", "content": "x"}]}),
            400,
            "logprobs",
        ),
        (
            json!({"model": NOVA, "temperature": 3, "messages": [{"role": "user", "content": "x"}]}),
            400,
            "temperature",
        ),
        (
            json!({"model": NOVA, "messages": [{"role": "wizard", "content": "x"}]}),
            400,
            "role 'wizard'",
        ),
        (
            json!({"model": NOVA, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}),
            400,
            "text only",
        ),
        (
            json!({"model": NOVA, "response_format": {"type": "xml"}, "messages": [{"role": "user", "content": "x"}]}),
            400,
            "response_format.type",
        ),
    ];
    for (body, status, message) in cases {
        let (got, _, answer) = app
            .signed(
                "POST",
                "/openai/v1/chat/completions",
                body.to_string().as_bytes(),
                "test",
                "test",
            )
            .await;
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["error"]["type"], "invalid_request_error", "{answer}");
        assert_eq!(answer["error"]["code"], "ValidationException", "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains(message),
            "{body}: {answer}"
        );
    }
    // Unsigned, and an unknown route under the prefix: still OpenAI's shape.
    let request = axum::http::Request::post("/openai/v1/chat/completions")
        .body(axum::body::Body::from(chat(NOVA, json!({}))))
        .unwrap();
    let (status, _, answer) = app.send(request).await;
    assert_eq!(status, 403);
    assert_eq!(
        answer["error"]["code"],
        "MissingAuthenticationTokenException"
    );
    let (status, _, answer) = app
        .signed("POST", "/openai/v1/embeddings", b"{}", "test", "test")
        .await;
    assert_eq!(status, 404);
    assert_eq!(answer["error"]["code"], "UnknownOperationException");
}

#[tokio::test]
async fn openai_models_lists_what_the_caller_may_invoke() {
    let app = App::start(FakeEngine::replying("fake", REPLY), AccessMode::Explicit).await;
    let (status, _, body) = app
        .signed("GET", "/openai/v1/models", b"", "test", "test")
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"], json!([]), "no model access granted yet");
    outcrop_service::access::create_agreement(
        &app.state.service,
        &app.root(),
        "amazon.nova-micro-v1:0",
        &outcrop_service::access::offer_token("amazon.nova-micro-v1:0"),
    )
    .await
    .unwrap();
    let (_, _, body) = app.signed("GET", "/v1/models", b"", "test", "test").await;
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["amazon.nova-micro-v1:0"]);
    assert_eq!(body["data"][0]["owned_by"], "amazon");
}

#[tokio::test]
async fn anthropic_messages_whole_and_streamed() {
    let app = App::open().await;
    let body = json!({ "model": HAIKU, "max_tokens": 50, "system": "Be brief.",
        "messages": [{ "role": "user", "content": "Hello" }] });
    let (status, _, answer) = app
        .signed(
            "POST",
            "/anthropic/v1/messages",
            body.to_string().as_bytes(),
            "test",
            "test",
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["type"], "message");
    assert_eq!(answer["content"][0]["text"], REPLY);
    assert_eq!(answer["stop_reason"], "end_turn");
    assert!(answer["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(app.ledger(1).await[0].operation, "CreateMessage");

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let (status, headers, text) = app
        .signed(
            "POST",
            "/anthropic/v1/messages",
            streamed.to_string().as_bytes(),
            "test",
            "test",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/event-stream");
    let events = events(text.as_str().unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    assert!(names.contains(&"content_block_delta") && names.contains(&"message_delta"));
    for (name, data) in &events {
        let data: Value = serde_json::from_str(data).unwrap();
        assert_eq!(data["type"], name.as_str());
        assert!(data.get("amazon-bedrock-invocationMetrics").is_none());
    }
}

#[tokio::test]
async fn anthropic_errors_keys_and_routes() {
    let app = App::open().await;
    let ok = json!({ "model": HAIKU, "max_tokens": 5, "messages": [{ "role": "user", "content": "Hi" }] });
    // Only Claude's Messages models are served here.
    let mut llama = ok.clone();
    llama["model"] = json!("meta.llama3-8b-instruct-v1:0");
    let (status, _, answer) = app
        .signed(
            "POST",
            "/anthropic/v1/messages",
            llama.to_string().as_bytes(),
            "test",
            "test",
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        answer,
        json!({"type": "error", "error": {"type": "invalid_request_error",
        "message": "model `meta.llama3-8b-instruct-v1:0` isn't supported on this route"}})
    );
    // The Messages API's own validation, in Anthropic's shape.
    let (status, _, answer) = app
        .signed(
            "POST",
            "/anthropic/v1/messages",
            br#"{"model": "anthropic.claude-3-haiku-20240307-v1:0", "messages": []}"#,
            "test",
            "test",
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["type"], "invalid_request_error");
    // A Bedrock API key as `x-api-key`, as Anthropic's SDK sends it.
    app.user("alice", Some(r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "bedrock:*", "Resource": "*"}]}"#)).await;
    let key = outcrop_service::api_keys::create(&app.state.service, &app.root(), "alice", None)
        .await
        .unwrap();
    let request = |key: &str| {
        axum::http::Request::post("/anthropic/v1/messages")
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01")
            .body(axum::body::Body::from(ok.to_string()))
            .unwrap()
    };
    let (status, _, answer) = app.send(request(&key.key)).await;
    assert_eq!(status, 200, "{answer}");
    let (status, _, answer) = app.send(request("sk-ant-not-bedrock")).await;
    assert_eq!(status, 403);
    assert_eq!(answer["error"]["type"], "permission_error");
    assert_eq!(
        answer["error"]["message"],
        "Invalid API Key format: Must start with pre-defined prefix"
    );
}

#[tokio::test]
async fn openai_responses_whole_streamed_and_with_a_function_call() {
    let engine = FakeEngine::scripted("fake", |r| {
        if format!("{:?}", r.prompt).contains("18 degrees") {
            Reply::Text("Sunny, 18 degrees.".into())
        } else if r.sampling.constraint.is_some() && format!("{:?}", r.prompt).contains("weather") {
            Reply::Text(
                "<tool_call>{\"name\": \"get_weather\", \"input\": {\"city\": \"Paris\"}}".into(),
            )
        } else {
            Reply::Text(REPLY.into())
        }
    });
    let app = App::start(engine, AccessMode::Open).await;
    let body = json!({ "model": NOVA, "instructions": "Be brief.", "input": "Hello", "max_output_tokens": 40 });
    let (status, _, answer) = app
        .signed(
            "POST",
            "/openai/v1/responses",
            body.to_string().as_bytes(),
            "test",
            "test",
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["object"], "response");
    assert_eq!(answer["status"], "completed");
    assert_eq!(answer["output"][0]["type"], "message");
    assert_eq!(answer["output"][0]["content"][0]["text"], REPLY);
    assert_eq!(answer["instructions"], "Be brief.");
    assert!(answer["usage"]["output_tokens"].as_u64().unwrap() > 0);
    assert_eq!(app.ledger(1).await[0].operation, "CreateResponse");

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let (status, headers, text) = app
        .signed(
            "POST",
            "/v1/responses",
            streamed.to_string().as_bytes(),
            "test",
            "test",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/event-stream");
    let events = events(text.as_str().unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(&names[..2], ["response.created", "response.in_progress"]);
    assert_eq!(names.last(), Some(&"response.completed"));
    let deltas: String = events
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, d)| {
            serde_json::from_str::<Value>(d).unwrap()["delta"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(deltas, REPLY);
    let sequence: Vec<u64> = events
        .iter()
        .map(|(_, d)| {
            serde_json::from_str::<Value>(d).unwrap()["sequence_number"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(sequence, (0..sequence.len() as u64).collect::<Vec<_>>());

    let tools = json!([{ "type": "function", "name": "get_weather", "description": "Weather",
        "parameters": { "type": "object", "properties": { "city": { "type": "string" } }, "required": ["city"] } }]);
    let ask = json!({ "model": NOVA, "input": "What is the weather in Paris?", "tools": tools });
    let (status, _, answer) = app
        .signed(
            "POST",
            "/openai/v1/responses",
            ask.to_string().as_bytes(),
            "test",
            "test",
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let call = answer["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "function_call")
        .unwrap()
        .clone();
    assert_eq!(call["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(call["arguments"].as_str().unwrap()).unwrap(),
        json!({"city": "Paris"})
    );
    let follow = json!({ "model": NOVA, "tools": tools, "input": [
        { "role": "user", "content": "What is the weather in Paris?" },
        { "type": "function_call", "call_id": call["call_id"], "name": "get_weather", "arguments": call["arguments"] },
        { "type": "function_call_output", "call_id": call["call_id"], "output": "18 degrees" },
    ]});
    let (status, _, answer) = app
        .signed(
            "POST",
            "/openai/v1/responses",
            follow.to_string().as_bytes(),
            "test",
            "test",
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["output"][0]["content"][0]["text"],
        "Sunny, 18 degrees."
    );

    for (body, message) in [
        (
            json!({ "model": NOVA, "input": "x", "background": true }),
            "background",
        ),
        (
            json!({ "model": NOVA, "input": "x", "previous_response_id": "resp_1" }),
            "not stored",
        ),
        (
            json!({ "model": NOVA, "input": "x", "tools": [{"type": "web_search"}] }),
            "function tools",
        ),
        (json!({ "model": NOVA }), "input is required"),
    ] {
        let (status, _, answer) = app
            .signed(
                "POST",
                "/openai/v1/responses",
                body.to_string().as_bytes(),
                "test",
                "test",
            )
            .await;
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains(message),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn the_deterministic_header_runs_a_call_alone_with_a_fixed_seed() {
    let app = App::open().await;
    let body = json!({ "model": NOVA, "temperature": 0.9, "messages": [{ "role": "user", "content": "Hi" }] });
    let path = "/openai/v1/chat/completions";
    let body = body.to_string().into_bytes();
    let (status, _, _) = app.signed("POST", path, &body, "test", "test").await;
    assert_eq!(status, 200);
    for _ in 0..2 {
        let deterministic = [("x-outcrop-deterministic", "true")];
        let (status, _, _) = app
            .signed_with("POST", path, &body, "test", "test", &deterministic)
            .await;
        assert_eq!(status, 200);
    }
    let requests = app.engine.requests();
    assert!(!requests[0].exclusive);
    assert!(requests[1].exclusive && requests[2].exclusive);
    assert_eq!(
        (requests[1].sampling.seed, requests[2].sampling.seed),
        (0, 0)
    );
}

#[tokio::test]
async fn openai_n_choices_each_with_its_own_seed() {
    let app = App::open().await;
    let body = chat(NOVA, json!({"n": 3, "temperature": 1}));
    let (status, _, answer) = app
        .signed("POST", "/openai/v1/chat/completions", &body, "test", "test")
        .await;
    assert_eq!(status, 200, "{answer}");
    let choices = answer["choices"].as_array().unwrap();
    let indexes: Vec<u64> = choices
        .iter()
        .map(|c| c["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, [0, 1, 2]);
    let seeds: std::collections::HashSet<u32> = app
        .engine
        .requests()
        .iter()
        .map(|r| r.sampling.seed)
        .collect();
    assert_eq!(seeds.len(), 3);
    // The prompt is counted once, the completions all.
    let words = REPLY.split_whitespace().count() as u64;
    assert_eq!(
        answer["usage"]["completion_tokens"].as_u64().unwrap(),
        3 * words
    );
    let record = &app.ledger(1).await[0];
    assert_eq!(u64::from(record.output_tokens), 3 * words);
}
