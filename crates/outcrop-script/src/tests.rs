use super::*;
use outcrop_engine::collect;
use outcrop_types::{RequestLabel, Sampling, Turn};

fn request(
    text: &str,
    model: &str,
    tools: &[&str],
    constraint: Option<Constraint>,
) -> GenerationRequest {
    GenerationRequest {
        prompt: Prompt::Chat(vec![Turn::new(Role::User, text)]),
        max_tokens: 100,
        sampling: Sampling {
            constraint,
            ..Sampling::greedy()
        },
        stop_sequences: Vec::new(),
        label: Some(RequestLabel {
            model_id: model.into(),
            operation: "Converse".into(),
            tools: tools.iter().map(|t| t.to_string()).collect(),
            tool_result: false,
        }),
        exclusive: false,
        tier: Default::default(),
        cache: Default::default(),
    }
}

fn script(text: &str) -> (tempfile::TempDir, ScriptEngine) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("script.toml");
    std::fs::write(&path, text).unwrap();
    let engine = ScriptEngine::load("script", &path, None).unwrap();
    (dir, engine)
}

#[tokio::test]
async fn texts_tool_calls_and_declared_tokens() {
    let (_dir, engine) = script(
        r#"
        [[rule]]
        contains = "weather"
        reply = { tool_call = { name = "get_weather", input = { city = "Paris" } } }
        [[rule]]
        reply = { text = "one two three", input_tokens = 42 }
        "#,
    );
    let g = collect(engine.submit(request("hi", "m", &[], None)).unwrap())
        .await
        .unwrap();
    assert_eq!(g.text, "one two three");
    assert_eq!((g.usage.input_tokens, g.usage.output_tokens), (42, 3));

    let auto = Constraint::JsonAfter {
        trigger: "<tool_call>".into(),
        schema: "{}".into(),
        close: "</tool_call>".into(),
    };
    let g = collect(
        engine
            .submit(request("the weather?", "m", &["get_weather"], Some(auto)))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        g.text,
        "<tool_call>\n{\"arguments\":{\"city\":\"Paris\"},\"name\":\"get_weather\"}\n</tool_call>"
    );
    let forced = Constraint::Json {
        schema: "{}".into(),
    };
    let g = collect(
        engine
            .submit(request(
                "the weather?",
                "m",
                &["get_weather"],
                Some(forced.clone()),
            ))
            .unwrap(),
    )
    .await
    .unwrap();
    assert!(g.text.starts_with('{'));
    // A call to a tool the request does not offer is refused with the names.
    let err = collect(
        engine
            .submit(request("the weather?", "m", &["other"], Some(forced)))
            .unwrap(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("not one of the request's tools"),
        "{err}"
    );
}

#[tokio::test]
async fn faults_before_the_first_byte_and_after_chunks() {
    let (_dir, engine) = script(
        r#"
        [[rule]]
        contains = "now"
        reply = { fault = "ThrottlingException", message = "Too many requests." }
        [[rule]]
        reply = { fault = "modelStreamErrorException", text = "a b c d e", after_chunks = 2, message = "Broke." }
        "#,
    );
    let mut events = engine.submit(request("fail now", "m", &[], None)).unwrap();
    assert_eq!(
        events.recv().await,
        Some(GenerationEvent::Failed(fault(
            FaultKind::Throttling,
            "Too many requests."
        )))
    );
    let mut events = engine.submit(request("later", "m", &[], None)).unwrap();
    let mut seen = Vec::new();
    while let Some(e) = events.recv().await {
        seen.push(e);
    }
    assert!(matches!(seen[0], GenerationEvent::Started { .. }));
    assert_eq!(
        seen[1..3],
        [
            GenerationEvent::Text("a ".into()),
            GenerationEvent::Text("b ".into())
        ]
    );
    assert_eq!(
        seen[3],
        GenerationEvent::Failed(fault(FaultKind::ModelStreamError, "Broke."))
    );
}

#[tokio::test]
async fn unmatched_requests_fall_through_or_are_named() {
    let (_dir, engine) =
        script("[[rule]]\nmodel = \"anthropic.*\"\nreply = { text = \"scripted\" }\n");
    let err = collect(
        engine
            .submit(request("What is up?", "meta.llama3", &[], None))
            .unwrap(),
    )
    .await
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("No rule")
            && message.contains("meta.llama3")
            && message.contains("What is up?"),
        "{message}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    std::fs::write(
        &path,
        "[[rule]]\nmodel = \"anthropic.*\"\nreply = { text = \"scripted\" }\n",
    )
    .unwrap();
    let fallback: Arc<dyn Engine> = Arc::new(FakeEngine::replying("real", "from the model"));
    let engine = ScriptEngine::load("script", &path, Some(fallback)).unwrap();
    let g = collect(
        engine
            .submit(request("x", "meta.llama3", &[], None))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(g.text, "from the model");
    let g = collect(
        engine
            .submit(request("x", "anthropic.claude", &[], None))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(g.text, "scripted");
}

#[tokio::test]
async fn the_script_is_read_again_when_it_changes() {
    let (dir, engine) = script("[[rule]]\nreply = { text = \"first\" }\n");
    let path = dir.path().join("script.toml");
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&path, "[[rule]]\nreply = { text = \"second\" }\n").unwrap();
    let later = SystemTime::now() + Duration::from_secs(1);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let g = collect(engine.submit(request("x", "m", &[], None)).unwrap())
        .await
        .unwrap();
    assert_eq!(g.text, "second");
    // A broken edit keeps the rules in use.
    std::fs::write(&path, "[[rule]]\nreply = {}\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(later + Duration::from_secs(1))
        .unwrap();
    let g = collect(engine.submit(request("x", "m", &[], None)).unwrap())
        .await
        .unwrap();
    assert_eq!(g.text, "second");
}

#[tokio::test]
async fn a_rule_with_times_answers_that_many_requests() {
    let (_dir, engine) = script(
        "[[rule]]\ntimes = 2\nreply = { fault = \"ThrottlingException\" }\n[[rule]]\nreply = { text = \"ok\" }\n",
    );
    for _ in 0..2 {
        let err = collect(engine.submit(request("x", "m", &[], None)).unwrap())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("Scripted ThrottlingException"),
            "{err}"
        );
    }
    let g = collect(engine.submit(request("x", "m", &[], None)).unwrap())
        .await
        .unwrap();
    assert_eq!(g.text, "ok");
}

#[tokio::test]
async fn several_tool_calls_are_written_in_turn_and_refused_when_one_is_forced() {
    let (_dir, engine) = script(
        r#"
        [[rule]]
        reply = { tool_calls = [{ name = "a", input = { x = 1 } }, { name = "b" }] }
        "#,
    );
    let auto = Constraint::JsonAfter {
        trigger: "<tool_call>".into(),
        schema: "{}".into(),
        close: "</tool_call>".into(),
    };
    let g = collect(
        engine
            .submit(request("go", "m", &["a", "b"], Some(auto)))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        g.text,
        "<tool_call>\n{\"arguments\":{\"x\":1},\"name\":\"a\"}\n</tool_call>\n<tool_call>\n{\"arguments\":{},\"name\":\"b\"}\n</tool_call>"
    );
    let forced = Constraint::Json {
        schema: "{}".into(),
    };
    let err = collect(
        engine
            .submit(request("go", "m", &["a", "b"], Some(forced)))
            .unwrap(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("forces one"), "{err}");
    assert!(parse("[[rule]]\nreply = { tool_calls = [] }").is_err());
}
