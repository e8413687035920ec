"""What only a capable model shows, with the default chat model (Qwen2.5-Coder-0.5B-Instruct)
behind the Claude ids: the seed's Japanese question answered in Japanese, a tool call the model
chooses itself, and an agent's loop (call, result, answer) over ConverseStream."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DEFAULT_CHAT_MODEL, Server, make_client

SEED = Path(__file__).parent / "seed"
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
WEATHER = {"tools": [{"toolSpec": {
    "name": "get_weather", "description": "Current weather for a city.",
    "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}},
                             "required": ["city"]}}}}]}
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def default_server():
    s = Server(env={"OUTCROP_CHAT_MODEL": DEFAULT_CHAT_MODEL},
               enable=["anthropic.claude-v2", HAIKU])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def rt(default_server):
    return make_client(default_server)


def test_the_seed_question_is_answered_in_japanese(default_server):
    """The seed script, verbatim, with its default sampling: the answer is Japanese and says
    what it is (an AI, an assistant, a model)."""
    import os
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=default_server.url, AWS_ACCESS_KEY_ID="test",
               AWS_SECRET_ACCESS_KEY="test")
    out = subprocess.run([sys.executable, str(SEED / "invoke_claude_v2.py")], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    import ast
    completion = ast.literal_eval(out.stdout.strip().splitlines()[-1])["completion"]
    letters = [c for c in completion if not c.isspace() and not c.isascii()]
    assert len(JAPANESE.findall(completion)) >= 10, completion
    assert len(JAPANESE.findall(completion)) >= 0.8 * len(letters), completion
    assert re.search(r"AI|アシスタント|人工知能|モデル|プログラム", completion), completion


def test_the_model_chooses_to_call_a_tool(rt):
    r = rt.converse(modelId=HAIKU, toolConfig=WEATHER,
                    messages=[{"role": "user", "content": [{"text": "What's the weather in Paris right now?"}]}],
                    inferenceConfig={"maxTokens": 100, "temperature": 0})
    assert r["stopReason"] == "tool_use", r["output"]
    (use,) = [b["toolUse"] for b in r["output"]["message"]["content"] if "toolUse" in b]
    assert use["name"] == "get_weather"
    assert "Paris" in use["input"]["city"]
    assert use["toolUseId"].startswith("tooluse_")


def test_the_model_answers_without_a_tool_when_none_is_needed(rt):
    r = rt.converse(modelId=HAIKU, toolConfig=WEATHER,
                    messages=[{"role": "user", "content": [{"text": "What is 2 + 3? Answer with the number only."}]}],
                    inferenceConfig={"maxTokens": 20, "temperature": 0})
    assert r["stopReason"] == "end_turn", r["output"]
    assert "5" in r["output"]["message"]["content"][0]["text"]


def stream_turn(rt, messages):
    """One ConverseStream turn, read as an agent framework does: the assistant message it
    adds to the conversation, and the stop reason."""
    r = rt.converse_stream(modelId=HAIKU, messages=messages, toolConfig=WEATHER,
                           inferenceConfig={"maxTokens": 150, "temperature": 0})
    blocks, stop = {}, None
    for ev in r["stream"]:
        if "contentBlockStart" in ev:
            start = ev["contentBlockStart"]["start"]["toolUse"]
            blocks[ev["contentBlockStart"]["contentBlockIndex"]] = {"toolUse": dict(start, input="")}
        elif "contentBlockDelta" in ev:
            i, d = ev["contentBlockDelta"]["contentBlockIndex"], ev["contentBlockDelta"]["delta"]
            if "text" in d:
                blocks.setdefault(i, {"text": ""})["text"] += d["text"]
            elif "toolUse" in d:
                blocks[i]["toolUse"]["input"] += d["toolUse"]["input"]
        elif "messageStop" in ev:
            stop = ev["messageStop"]["stopReason"]
    content = [blocks[i] for i in sorted(blocks)]
    for b in content:
        if "toolUse" in b:
            b["toolUse"]["input"] = json.loads(b["toolUse"]["input"])
    return {"role": "assistant", "content": content}, stop


def test_an_agent_loop_completes_over_converse_stream(rt):
    messages = [{"role": "user", "content": [{"text": "What's the weather in Paris right now?"}]}]
    calls = 0
    for _ in range(4):
        message, stop = stream_turn(rt, messages)
        messages.append(message)
        if stop != "tool_use":
            break
        results = []
        for b in message["content"]:
            if "toolUse" in b:
                calls += 1
                assert b["toolUse"]["name"] == "get_weather"
                results.append({"toolResult": {"toolUseId": b["toolUse"]["toolUseId"],
                                               "content": [{"json": {"temperature_c": 18, "sky": "cloudy"}}]}})
        messages.append({"role": "user", "content": results})
    assert calls >= 1, messages
    assert stop == "end_turn", messages
    answer = "".join(b.get("text", "") for b in messages[-1]["content"])
    assert "18" in answer, answer


def test_tools_come_with_a_neutral_system_prompt(rt):
    """The template's own default system prompt ("You are Qwen, created by Alibaba Cloud...")
    is replaced: a request with tools and no system prompt counts as many tokens as one whose
    system prompt is Outcrop's neutral default."""
    def count(system):
        extra = {"system": system} if system else {}
        return rt.count_tokens(modelId=HAIKU, input={"converse": dict(
            messages=[{"role": "user", "content": [{"text": "Hi"}]}], toolConfig=WEATHER, **extra)})["inputTokens"]
    assert count(None) == count([{"text": "You are a helpful assistant."}])
    assert count(None) != count([{"text": "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."}])


def test_tool_definitions_reach_the_model_through_its_template(rt):
    """The tools are rendered by the model's own template (its "# Tools" section), so a longer
    description is counted in the prompt."""
    def count(description):
        tools = json.loads(json.dumps(WEATHER))
        tools["tools"][0]["toolSpec"]["description"] = description
        return rt.count_tokens(modelId=HAIKU, input={"converse": dict(
            messages=[{"role": "user", "content": [{"text": "Hi"}]}], toolConfig=tools)})["inputTokens"]
    assert count("Current weather for a city, in degrees Celsius.") > count("Current weather.")
