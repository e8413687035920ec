"""Prompt caching through real clients: boto3's Converse, ConverseStream, InvokeModel and
InvokeModelWithResponseStream against a real server and model. A checkpoint's tokens are
written to the cache by the first call and read by the next that starts the same way; the
counts, the errors and the models that cannot cache are Bedrock's."""
import json
import threading

import pytest
from botocore.exceptions import ClientError

from conftest import Server, make_client

HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"
PROFILE = "us." + HAIKU
NOVA = "amazon.nova-micro-v1:0"
# Real minimums (4,096 tokens for Haiku 4.5, 1,000 for Nova) made small, so that the prompts
# stay quick on a CPU; the rule itself is Bedrock's.
CONFIG = f"""
[catalog."{HAIKU}"]
cache_min_tokens = 64
[catalog."{NOVA}"]
cache_min_tokens = 64
"""

SYSTEM = (
    "You are the help desk of Harbor Lane Library. Opening hours: Tuesday to Saturday, nine to "
    "six; closed on Sundays and Mondays. Loans last three weeks and may be renewed twice online. "
    "Late fees are ten cents a day, capped at five dollars. The reading room on the second floor "
    "is silent; group study rooms can be booked a week ahead. Children's story time is every "
    "Wednesday at ten. Answer in one or two short sentences, politely, and never invent services."
)


@pytest.fixture(scope="module")
def cached():
    s = Server(config=CONFIG, enable=[HAIKU, NOVA, "anthropic.claude-v2"])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(cached):
    return make_client(cached)


def converse(client, question, system=SYSTEM, ttl=None, model=PROFILE, **extra):
    point = {"type": "default", **({"ttl": ttl} if ttl else {})}
    return client.converse(
        modelId=model,
        system=[{"text": system}, {"cachePoint": point}],
        messages=[{"role": "user", "content": [{"text": question}]}],
        inferenceConfig={"maxTokens": 12, "temperature": 0},
        **extra,
    )


def test_a_checkpoint_is_written_once_then_read(client):
    first = converse(client, "When are you open?")["usage"]
    written = first["cacheWriteInputTokens"]
    assert written >= 64 and first["cacheReadInputTokens"] == 0
    assert first["cacheDetails"] == [{"ttl": "5m", "inputTokens": written}]
    assert first["totalTokens"] == first["inputTokens"] + written + first["outputTokens"]
    # Another question after the same system prompt reads what the first call wrote.
    second = converse(client, "How long is a loan?")["usage"]
    assert second["cacheReadInputTokens"] == written
    assert second.get("cacheWriteInputTokens", 0) == 0
    assert "cacheDetails" not in second
    assert second["totalTokens"] == second["inputTokens"] + written + second["outputTokens"]
    assert 0 < second["inputTokens"] < written


def test_one_hour_checkpoints_are_reported_by_ttl(client):
    usage = converse(client, "Can I renew a loan?", system=SYSTEM + " Be brief.", ttl="1h")["usage"]
    assert usage["cacheDetails"] == [{"ttl": "1h", "inputTokens": usage["cacheWriteInputTokens"]}]


def test_a_checkpoint_in_the_conversation_caches_the_turns_before_it(client):
    history = [
        {"role": "user", "content": [{"text": SYSTEM + " What are the opening hours?"}]},
        {"role": "assistant", "content": [{"text": "Tuesday to Saturday, nine to six."}]},
        {"role": "user", "content": [{"text": "And story time?"}, {"cachePoint": {"type": "default"}}]},
    ]
    cfg = {"maxTokens": 8, "temperature": 0}
    first = client.converse(modelId=PROFILE, messages=history, inferenceConfig=cfg)["usage"]
    assert first["cacheWriteInputTokens"] > 64
    follow = history + [
        {"role": "assistant", "content": [{"text": "Wednesdays at ten."}]},
        {"role": "user", "content": [{"text": "Thanks!"}]},
    ]
    second = client.converse(modelId=PROFILE, messages=follow, inferenceConfig=cfg)["usage"]
    assert second["cacheReadInputTokens"] == first["cacheWriteInputTokens"]


def test_converse_stream_reports_cache_counts_in_its_metadata(client):
    converse(client, "Is there a quiet room?", system=SYSTEM + " Stream.")
    stream = client.converse_stream(
        modelId=PROFILE,
        system=[{"text": SYSTEM + " Stream."}, {"cachePoint": {"type": "default"}}],
        messages=[{"role": "user", "content": [{"text": "What are the late fees?"}]}],
        inferenceConfig={"maxTokens": 12, "temperature": 0},
    )["stream"]
    usage = [e["metadata"]["usage"] for e in stream if "metadata" in e][0]
    assert usage["cacheReadInputTokens"] >= 64
    assert usage["totalTokens"] == usage["inputTokens"] + usage["cacheReadInputTokens"] + usage["outputTokens"]


def messages_body(question, system=SYSTEM):
    return json.dumps({
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 12,
        "temperature": 0,
        "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": question}],
    })


def test_invoke_model_with_cache_control(client):
    system = SYSTEM + " Messages API."
    r = client.invoke_model(modelId=PROFILE, body=messages_body("Do you have story time?", system))
    first = json.loads(r["body"].read())["usage"]
    assert first["cache_creation_input_tokens"] >= 64 and first["cache_read_input_tokens"] == 0
    assert first["cache_creation"] == {"ephemeral_5m_input_tokens": first["cache_creation_input_tokens"],
                                       "ephemeral_1h_input_tokens": 0}
    headers = r["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-bedrock-cache-write-input-token-count"] == str(first["cache_creation_input_tokens"])
    r = client.invoke_model(modelId=PROFILE, body=messages_body("Can I book a room?", system))
    second = json.loads(r["body"].read())["usage"]
    assert second["cache_read_input_tokens"] == first["cache_creation_input_tokens"]
    headers = r["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-bedrock-cache-read-input-token-count"] == str(second["cache_read_input_tokens"])
    assert headers["x-amzn-bedrock-input-token-count"] == str(second["input_tokens"])
    # The stream's last chunk carries the counts in its invocation metrics.
    events = client.invoke_model_with_response_stream(modelId=PROFILE, body=messages_body("Fees?", system))["body"]
    chunks = [json.loads(e["chunk"]["bytes"]) for e in events if "chunk" in e]
    metrics = chunks[-1]["amazon-bedrock-invocationMetrics"]
    assert metrics["cacheReadInputTokenCount"] == first["cache_creation_input_tokens"]
    assert metrics["cacheWriteInputTokenCount"] == 0
    delta = [c for c in chunks if c["type"] == "message_delta"][0]["usage"]
    assert delta["cache_read_input_tokens"] == first["cache_creation_input_tokens"]


def test_a_prefix_below_the_model_minimum_is_not_cached(client):
    usage = converse(client, "Hi", system="Be kind.")["usage"]
    assert usage.get("cacheWriteInputTokens", 0) == 0 and usage.get("cacheReadInputTokens", 0) == 0
    again = converse(client, "Hello", system="Be kind.")["usage"]
    assert again.get("cacheReadInputTokens", 0) == 0


def test_concurrent_users_of_one_prefix_all_read_it(client, cached):
    system = SYSTEM + " Many users."
    written = converse(client, "First!", system=system)["usage"]["cacheWriteInputTokens"]
    reads, errors = [], []

    def user(i):
        try:
            reads.append(converse(make_client(cached), f"Question number {i}?", system=system)["usage"]["cacheReadInputTokens"])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=user, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and reads == [written] * 4


def test_metrics_count_prefix_hits_and_cached_cells(client, cached):
    import re
    import urllib.request

    converse(client, "Is the reading room quiet?")
    with urllib.request.urlopen(cached.url + "/metrics") as m:
        text = m.read().decode()

    def value(name):
        found = re.findall(rf"^{name}{{[^}}]*}} (\S+)$", text, re.M)
        assert found, name
        return max(float(v) for v in found)

    assert value("EnginePrefixHits") >= 1 and value("EnginePrefixMisses") >= 1
    assert value("EnginePrefixReusedTokens") >= 64
    assert value("EngineKvCellsCached") >= 64 and value("EnginePrefixEntries") >= 1
    assert value("EnginePrefixEvictions") >= 0


def error_of(call):
    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


def test_too_many_checkpoints_are_refused(client):
    point = {"cachePoint": {"type": "default"}}
    system = [x for i in range(5) for x in ({"text": f"Part {i} of the rules."}, point)]
    code, message = error_of(lambda: client.converse(
        modelId=PROFILE, system=system, messages=[{"role": "user", "content": [{"text": "Hi"}]}]))
    assert code == "ValidationException"
    assert "A maximum of 4 blocks with cache_control may be provided. Found 5." in message


def test_a_model_without_prompt_caching_refuses_checkpoints(client):
    code, message = error_of(lambda: converse(client, "Hi", model="anthropic.claude-v2"))
    assert code == "AccessDeniedException"
    assert "did not allow prompt caching" in message


def test_nova_cannot_cache_tools(client):
    tools = {"tools": [{"toolSpec": {"name": "hours", "description": "Opening hours",
                                     "inputSchema": {"json": {"type": "object", "properties": {}}}}},
                       {"cachePoint": {"type": "default"}}]}
    code, _ = error_of(lambda: converse(client, "Hours?", model=NOVA, toolConfig=tools))
    assert code == "ValidationException"
    # Its system prompt caches.
    assert converse(client, "Hours?", model=NOVA)["usage"]["cacheWriteInputTokens"] >= 64


def test_a_one_hour_ttl_after_a_five_minute_one_is_refused(client):
    system = [{"text": SYSTEM}, {"cachePoint": {"type": "default"}},
              {"text": "More."}, {"cachePoint": {"type": "default", "ttl": "1h"}}]
    code, _ = error_of(lambda: client.converse(
        modelId=PROFILE, system=system, messages=[{"role": "user", "content": [{"text": "Hi"}]}]))
    assert code == "ValidationException"


def test_cache_tokens_are_billed_at_the_cache_prices():
    from decimal import Decimal

    s = Server(config=CONFIG, enable=[HAIKU])
    try:
        c = make_client(s)
        calls = [converse(c, "When are you open?")["usage"], converse(c, "Late fees?")["usage"],
                 converse(c, "Story time?", system=SYSTEM + " One hour.", ttl="1h")["usage"]]
        price = {"in": Decimal("0.001"), "out": Decimal("0.005"), "read": Decimal("0.0001"),
                 "write": Decimal("0.00125"), "write_1h": Decimal("0.002")}
        expected = sum(
            (u["inputTokens"] * price["in"] + u["outputTokens"] * price["out"]
             + u.get("cacheReadInputTokens", 0) * price["read"]
             + sum(d["inputTokens"] * price["write_1h" if d["ttl"] == "1h" else "write"]
                   for d in u.get("cacheDetails", []))) / 1000
            for u in calls)
        total = json.loads(s.cli("usage", "--format", "json"))["total"]
        assert Decimal(total["cost_usd"]) == expected
        assert total["cache_read_tokens"] == sum(u.get("cacheReadInputTokens", 0) for u in calls) > 0
        assert total["cache_write_tokens"] == sum(u.get("cacheWriteInputTokens", 0) for u in calls) > 0
        assert total["input_tokens"] == sum(u["inputTokens"] for u in calls)
    finally:
        s.stop()
