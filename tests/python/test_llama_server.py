"""Bedrock ids served by llama.cpp's own llama-server (built by bench/build-llama-server on the
llama.cpp engine Outcrop vendors), two endpoints of one model behind a gateway Outcrop: every
family and Converse with tool use through it, token counts that are the engine's own, one
endpoint killed mid-run and brought back, and an engine that hangs."""
import http.server
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conftest import ROOT, Server, free_port, make_client, shared_models_dir
from test_families import FAMILIES

MODEL_FILE = shared_models_dir() / "smollm2-135m-instruct.gguf"
# A model trained for tool calls, whose template llama-server renders tools with.
TOOL_MODEL_FILE = shared_models_dir() / "qwen2.5-coder-0.5b-instruct.gguf"
TOOL_MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
HANGING = "amazon.titan-text-lite-v1"


def llama_server_binary() -> str:
    explicit = os.environ.get("OUTCROP_LLAMA_SERVER")
    if explicit:
        return explicit
    return subprocess.run([str(ROOT / "bench" / "build-llama-server")], check=True,
                          capture_output=True, text=True).stdout.strip()


class LlamaServer:
    def __init__(self, binary, port=None, model=MODEL_FILE):
        self.binary, self.port = binary, port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"llama-server-{self.port}.log", "w")
        self.proc = subprocess.Popen(
            [binary, "-m", str(model), "--host", "127.0.0.1", "--port", str(self.port),
             "-c", "8192", "-np", "4", "-t", "1", "--jinja", "--no-webui"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline:
            assert self.proc.poll() is None, Path(self.log.name).read_text()
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("llama-server did not start")

    def chat(self, body):
        request = urllib.request.Request(self.url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as r:
            return json.load(r)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.log.close()


class Hanging(http.server.BaseHTTPRequestHandler):
    """An engine that lists its model, then never answers a generation."""

    def do_GET(self):
        body = b'{"object": "list", "data": [{"id": "stuck"}]}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        time.sleep(30)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def setup():
    binary = llama_server_binary()
    engines = [LlamaServer(binary), LlamaServer(binary)]
    qwen = LlamaServer(binary, model=TOOL_MODEL_FILE)
    hanging = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hanging)
    threading.Thread(target=hanging.serve_forever, daemon=True).start()
    urls = ", ".join(f'"{e.url}/v1"' for e in engines)
    gateway = Server(config=(
        '[access]\nmode = "open"\n'
        f'[backing_models.smollm2-135m-instruct]\nengine = "openai"\nurls = [{urls}]\nmodel = "smollm2"\n'
        'health_interval_secs = 0.5\neject_after = 2\n'
        f'[catalog."{TOOL_MODEL}"]\nbacking_model = "qwen-remote"\n'
        f'[backing_models.qwen-remote]\nengine = "openai"\nurl = "{qwen.url}/v1"\nmodel = "qwen"\nnative_tools = true\n'
        f'[catalog."{HANGING}"]\nbacking_model = "stuck"\n'
        f'[backing_models.stuck]\nengine = "openai"\nurl = "http://127.0.0.1:{hanging.server_port}/v1"\n'
        'model = "stuck"\ntimeout_secs = 2\n'), enable=[])
    yield engines, gateway, qwen
    gateway.stop()
    for e in [*engines, qwen]:
        if e.proc.poll() is None:
            e.kill()
    hanging.shutdown()


def test_a_gateway_of_remote_models_loads_no_model(setup):
    _, gateway, _ = setup
    with urllib.request.urlopen(gateway.url + "/_outcrop/health", timeout=5) as r:
        models = json.load(r)["models"]
    assert {m["name"] for m in models} == {"smollm2-135m-instruct", "stuck", "qwen-remote"}
    assert all("endpoints" in m for m in models), models
    assert "model loaded" not in gateway.logs() and "llama" not in gateway.logs().lower(), gateway.logs()


def health(gateway):
    with urllib.request.urlopen(gateway.url + "/_outcrop/health", timeout=5) as r:
        models = json.load(r)["models"]
    return next(m for m in models if m["name"] == "smollm2-135m-instruct")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_streams_through_llama_server(setup, family):
    _, gateway, _ = setup
    model_id, body, text_of, chunk_text = FAMILIES[family]
    rt = make_client(gateway)
    r = rt.invoke_model(modelId=model_id, body=json.dumps(body))
    answer = json.loads(r["body"].read())
    out_tokens = int(r["ResponseMetadata"]["HTTPHeaders"]["x-amzn-bedrock-output-token-count"])
    assert 0 < out_tokens <= 24 and text_of(answer).strip()
    chunks = [json.loads(e["chunk"]["bytes"]) for e in
              rt.invoke_model_with_response_stream(modelId=model_id, body=json.dumps(body))["body"]]
    assert len(chunks) > 2, "the stream is incremental"
    assert "".join(chunk_text(c) for c in chunks) == text_of(answer)


def test_token_counts_are_the_engines_own(setup):
    engines, gateway, _ = setup
    r = make_client(gateway).converse(
        modelId="anthropic.claude-3-haiku-20240307-v1:0", messages=[{"role": "user", "content": [{"text": "Name a colour."}]}],
        inferenceConfig={"maxTokens": 12, "temperature": 0})
    direct = engines[0].chat({"model": "smollm2", "messages": [{"role": "user", "content": "Name a colour."}],
                              "max_tokens": 12, "temperature": 0})
    assert r["usage"]["inputTokens"] == direct["usage"]["prompt_tokens"]
    assert r["usage"]["outputTokens"] == direct["usage"]["completion_tokens"]
    assert r["output"]["message"]["content"][0]["text"] == direct["choices"][0]["message"]["content"]
    # CountTokens is the engine's count of the same rendered prompt.
    count = make_client(gateway).count_tokens(
        modelId="anthropic.claude-3-haiku-20240307-v1:0",
        input={"converse": {"messages": [{"role": "user", "content": [{"text": "Name a colour."}]}]}})
    assert count["inputTokens"] == direct["usage"]["prompt_tokens"]


def test_converse_tool_use_is_valid_for_its_schema(setup):
    _, gateway, _ = setup
    tool = {"toolSpec": {"name": "get_weather", "description": "The weather in a city.", "inputSchema": {"json": {
        "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"], "additionalProperties": False}}}}
    r = make_client(gateway).converse(
        modelId="anthropic.claude-3-haiku-20240307-v1:0",
        messages=[{"role": "user", "content": [{"text": "What is the weather in Paris for two days?"}]}],
        toolConfig={"tools": [tool], "toolChoice": {"tool": {"name": "get_weather"}}},
        inferenceConfig={"maxTokens": 64, "temperature": 0})
    assert r["stopReason"] == "tool_use"
    call = next(c["toolUse"] for c in r["output"]["message"]["content"] if "toolUse" in c)
    assert call["name"] == "get_weather"
    assert isinstance(call["input"]["city"], str) and isinstance(call["input"]["days"], int)
    assert set(call["input"]) == {"city", "days"}


def test_a_tool_call_the_model_chooses_on_a_remote_engine_is_tool_use(setup):
    _, gateway, qwen = setup
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    tool = {"toolSpec": {"name": "get_weather", "description": "The current weather in a city.", "inputSchema": {"json": schema}}}
    question = "What is the weather in Paris right now?"
    r = make_client(gateway).converse(modelId=TOOL_MODEL, messages=[{"role": "user", "content": [{"text": question}]}],
                                      toolConfig={"tools": [tool]}, inferenceConfig={"maxTokens": 64, "temperature": 0})
    # The same request straight to llama-server, with the tool as OpenAI's `tools`.
    direct = qwen.chat({"model": "qwen", "max_tokens": 64, "temperature": 0,
                        "messages": [{"role": "user", "content": question}],
                        "tools": [{"type": "function", "function": {"name": "get_weather",
                                                                    "description": "The current weather in a city.", "parameters": schema}}]})
    # This model writes its call as bare JSON, which llama-server leaves as text; Outcrop reads
    # it as the call it names (its OpenAI-form `tool_calls` are unit-tested in outcrop-remote).
    message = direct["choices"][0]["message"]
    if message.get("tool_calls"):
        expected = {"name": message["tool_calls"][0]["function"]["name"],
                    "arguments": json.loads(message["tool_calls"][0]["function"]["arguments"])}
    else:
        expected = json.loads(message["content"])
    assert r["stopReason"] == "tool_use", r
    call = next(c["toolUse"] for c in r["output"]["message"]["content"] if "toolUse" in c)
    assert call["name"] == expected["name"] == "get_weather"
    assert call["input"] == expected["arguments"] and isinstance(call["input"]["city"], str)


def test_a_killed_endpoint_fails_its_streams_then_rejoins(setup):
    engines, gateway, _ = setup
    assert health(gateway)["healthy_endpoints"] == 2
    prompt = {"prompt": "\n\nHuman: Count from one to five hundred in words.\n\nAssistant:", "max_tokens_to_sample": 600}
    outcomes, started = [], threading.Barrier(3)

    def stream():
        body = make_client(gateway).invoke_model_with_response_stream(modelId="anthropic.claude-v2", body=json.dumps(prompt))["body"]
        try:
            for i, _ in enumerate(body):
                if i == 2:
                    started.wait(30)
            outcomes.append("completed")
        except Exception as e:  # botocore's EventStreamError
            outcomes.append(getattr(e, "response", {}).get("Error", {}).get("Code", repr(e)))

    threads = [threading.Thread(target=stream) for _ in range(2)]
    for t in threads:
        t.start()
    started.wait(30)  # both streams are flowing, one on each endpoint
    port = engines[0].port
    engines[0].kill()
    for t in threads:
        t.join(120)
    assert sorted(outcomes) == ["completed", "modelStreamErrorException"], outcomes
    # New requests go to the live endpoint (the dead one is retried elsewhere before any byte).
    for _ in range(4):
        r = make_client(gateway).converse(modelId="anthropic.claude-v2", messages=[{"role": "user", "content": [{"text": "Hi"}]}],
                                          inferenceConfig={"maxTokens": 4})
        assert r["output"]["message"]["content"]
    deadline = time.time() + 10
    while health(gateway)["healthy_endpoints"] != 1 and time.time() < deadline:
        time.sleep(0.2)
    assert health(gateway)["healthy_endpoints"] == 1
    # Back on the same port: the health check lets it rejoin.
    engines[0] = LlamaServer(engines[0].binary, port)
    deadline = time.time() + 10
    while health(gateway)["healthy_endpoints"] != 2 and time.time() < deadline:
        time.sleep(0.2)
    assert health(gateway)["healthy_endpoints"] == 2
    # With the other one gone, the rejoined endpoint serves alone.
    engines[1].kill()
    r = make_client(gateway).converse(modelId="anthropic.claude-v2", messages=[{"role": "user", "content": [{"text": "Hi"}]}],
                                      inferenceConfig={"maxTokens": 4})
    assert r["output"]["message"]["content"]
    with urllib.request.urlopen(gateway.url + "/metrics", timeout=5) as m:
        metrics = m.read().decode()
    assert 'EngineEndpoints{backing_model="smollm2-135m-instruct"} 2' in metrics


def test_an_engine_that_hangs_times_out(setup):
    _, gateway, _ = setup
    began = time.time()
    with pytest.raises(ClientError) as e:
        make_client(gateway).converse(modelId=HANGING, messages=[{"role": "user", "content": [{"text": "Hi"}]}])
    assert e.value.response["Error"]["Code"] == "ModelTimeoutException"
    assert time.time() - began < 20
