"""Server lifecycle: health, graceful shutdown, the loopback rule, configuration."""
import json
import threading
import time

import pytest
from botocore.exceptions import ClientError

from conftest import Server, make_client

BODY = {"prompt": "\n\nHuman: Tell me a long story about the sea.\n\nAssistant:", "max_tokens_to_sample": 60, "temperature": 0}


def health(server):
    import urllib.request
    with urllib.request.urlopen(server.url + "/_outcrop/health") as r:
        return json.load(r)


def test_health_lists_the_loaded_model(server):
    make_client(server).invoke_model(modelId="anthropic.claude-v2", body=json.dumps(dict(BODY, max_tokens_to_sample=1)))
    h = health(server)
    assert h["status"] == "ok"
    (model,) = [m for m in h["models"] if m["name"] == "smollm2-135m-instruct"]
    assert model["state"] == "ready" and model["context_tokens"] > 0 and model["memory_bytes"] > 0
    assert "listening on http://127.0.0.1:" in server.logs()


def model_line(server, name):
    """The line `outcrop models list` prints for a cached model, asking `server` for states."""
    listed = server.cli("models", "list", "--server", server.url)
    return next(line for line in listed.splitlines() if line.strip().startswith(name + " "))


def test_models_load_on_their_first_request():
    """The server listens before any text model is loaded; the first request loads it (its
    time in the logs) with the model's own settings, and health and /metrics show the state."""
    import urllib.request
    s = Server(config="[backing_models.smollm2-135m-instruct.settings]\ncontext_tokens = 768\nparallel = 2\n")
    try:
        (model,) = [m for m in s.health["models"] if m["name"] == "smollm2-135m-instruct"]
        assert model["state"] == "unloaded" and "context_tokens" not in model, model
        assert model_line(s, "smollm2-135m-instruct").split()[6] == "unloaded"
        r = make_client(s).converse(modelId="anthropic.claude-v2", messages=[{"role": "user", "content": [{"text": "Hi"}]}],
                                    inferenceConfig={"maxTokens": 4})
        assert r["usage"]["outputTokens"] > 0
        (model,) = [m for m in health(s)["models"] if m["name"] == "smollm2-135m-instruct"]
        assert model["state"] == "ready", model
        assert (model["context_tokens"], model["parallel"]) == (768, 2), model
        # NAME SIZE MB ARCH QUANT CONTEXT STATE BACKS
        assert model_line(s, "smollm2-135m-instruct").split()[6] == "ready"
        assert "model loaded on demand" in s.logs()
        with urllib.request.urlopen(s.url + "/metrics") as m:
            text = m.read().decode()
        assert 'EngineModelState{backing_model="smollm2-135m-instruct",state="ready"} 1' in text
        assert 'EngineModelState{backing_model="smollm2-135m-instruct",state="unloaded"} 0' in text
    finally:
        s.stop()


def test_a_model_over_the_memory_budget_is_refused_at_start():
    with pytest.raises(RuntimeError) as e:
        Server(config='[engine]\nmemory_budget = "10MiB"\n')
    assert "memory_budget is 10 MiB" in str(e.value)


def test_sigterm_drains_in_flight_requests():
    s = Server()
    result = {}

    def call():
        try:
            r = make_client(s).invoke_model(modelId="anthropic.claude-v2", body=json.dumps(BODY))
            result["body"] = json.loads(r["body"].read())
        except Exception as e:  # noqa: BLE001 - reported below
            result["error"] = e

    t = threading.Thread(target=call)
    t.start()
    deadline = time.time() + 30
    def in_flight():
        return any("authenticated" in line and "InvokeModel" in line for line in s.logs().splitlines())

    while not in_flight() and time.time() < deadline:
        time.sleep(0.02)
    assert s.stop(timeout=300) == 0
    t.join(60)
    assert "error" not in result, result
    assert result["body"]["completion"].strip()


def test_dev_key_refused_off_loopback():
    s = Server(host="0.0.0.0", enable=[])  # the development key cannot enable anything here
    try:
        with pytest.raises(ClientError) as e:
            make_client(s).invoke_model(modelId="anthropic.claude-v2", body=json.dumps(BODY))
        assert e.value.response["Error"]["Code"] == "UnrecognizedClientException"
    finally:
        s.stop()


def test_dev_key_allowed_off_loopback_when_configured():
    s = Server(host="0.0.0.0", config="[auth]\nallow_dev_key_on_any_address = true\n")
    try:
        body = dict(BODY, max_tokens_to_sample=2)
        r = make_client(s).invoke_model(modelId="anthropic.claude-v2", body=json.dumps(body))
        assert json.loads(r["body"].read())["stop_reason"]
    finally:
        s.stop()


def test_strict_prompt_mode_rejects_the_seed_prompt():
    s = Server(config='[validation]\nclaude_prompt = "strict"\n')
    try:
        prompt = "\nHuman: こんにちわ。\nAssistant: \n"
        with pytest.raises(ClientError) as e:
            make_client(s).invoke_model(modelId="anthropic.claude-v2", body=json.dumps({"prompt": prompt, "max_tokens_to_sample": 5}))
        assert e.value.response["Error"]["Message"] == 'Invalid prompt: prompt must end with "\n\nAssistant:" turn'
        ok = {"prompt": "\n\nHuman: hi\n\nAssistant:", "max_tokens_to_sample": 2}
        make_client(s).invoke_model(modelId="anthropic.claude-v2", body=json.dumps(ok))
    finally:
        s.stop()


def test_bad_config_is_reported(tmp_path):
    with pytest.raises(RuntimeError, match="unknown field"):
        Server(config="listn = 1\n")


def test_shutdown_grace_ends_long_streams_with_an_exception_frame():
    from botocore.exceptions import EventStreamError
    s = Server(config="shutdown_grace_secs = 0\n")
    body = {"prompt": "\n\nHuman: Count from one to ten thousand.\n\nAssistant:", "max_tokens_to_sample": 4000}
    r = make_client(s).invoke_model_with_response_stream(modelId="anthropic.claude-v2", body=json.dumps(body))
    events = iter(r["body"])
    next(events)  # the stream has begun
    s.proc.send_signal(__import__("signal").SIGTERM)
    with pytest.raises(EventStreamError) as e:
        for _ in events:
            pass
    assert e.value.response["Error"] == {"Code": "serviceUnavailableException",
                                         "Message": "The service is shutting down. Try again later."}
    assert s.stop() == 0


def test_the_process_exits_by_the_shutdown_deadline_whatever_clients_do():
    """A client that never finishes its request does not hold the process past
    shutdown_deadline_secs."""
    import signal
    import socket

    s = Server(config="shutdown_grace_secs = 1\nshutdown_deadline_secs = 2\n"
                      "[limits]\nheader_read_timeout_secs = 120\n", enable=[])
    stalled = socket.create_connection(("127.0.0.1", s.port))
    stalled.sendall(b"POST /model/anthropic.claude-v2/invoke HTTP/1.1\r\nHost: a\r\n")
    time.sleep(0.2)
    started = time.monotonic()
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(timeout=30) == 0
    assert time.monotonic() - started < 6
    stalled.close()
    s.stop()
