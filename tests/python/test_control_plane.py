"""The Bedrock control plane (boto3 `bedrock` client) on the same endpoint as the runtime."""
import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError


@pytest.fixture
def bedrock(server):
    return boto3.client("bedrock", endpoint_url=server.url, region_name="eu-west-1",
                        aws_access_key_id="test", aws_secret_access_key="test",
                        config=Config(retries={"max_attempts": 1}))


def test_list_foundation_models(bedrock):
    models = {m["modelId"]: m for m in bedrock.list_foundation_models()["modelSummaries"]}
    assert {"anthropic.claude-v2", "anthropic.claude-v2:1", "anthropic.claude-instant-v1"} <= set(models)
    m = models["anthropic.claude-v2"]
    assert m["modelArn"] == "arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-v2"
    assert (m["providerName"], m["modelName"]) == ("Anthropic", "Claude")
    assert m["inputModalities"] == ["TEXT"] and m["outputModalities"] == ["TEXT"]
    assert m["responseStreamingSupported"] is True
    assert m["inferenceTypesSupported"] == ["ON_DEMAND"]
    assert m["modelLifecycle"]["status"] in ("ACTIVE", "LEGACY")


def test_list_filters(bedrock):
    anthropic = bedrock.list_foundation_models(byProvider="anthropic")["modelSummaries"]
    assert {m["providerName"] for m in anthropic} == {"Anthropic"} and len(anthropic) > 3
    meta = {m["modelId"] for m in bedrock.list_foundation_models(byProvider="Meta")["modelSummaries"]}
    assert "meta.llama3-8b-instruct-v1:0" in meta and all(m.startswith("meta.") for m in meta)
    assert bedrock.list_foundation_models(byProvider="Nobody")["modelSummaries"] == []
    # Models offered only through inference profiles are not on-demand.
    on_demand = {m["modelId"] for m in bedrock.list_foundation_models(byInferenceType="ON_DEMAND")["modelSummaries"]}
    assert "anthropic.claude-v2" in on_demand and "anthropic.claude-sonnet-4-5-20250929-v1:0" not in on_demand
    assert bedrock.list_foundation_models(byOutputModality="TEXT")["modelSummaries"]
    embedding = {m["modelId"] for m in bedrock.list_foundation_models(byOutputModality="EMBEDDING")["modelSummaries"]}
    assert embedding == {"amazon.titan-embed-text-v1", "amazon.titan-embed-text-v2:0",
                         "cohere.embed-english-v3", "cohere.embed-multilingual-v3"}
    assert bedrock.list_foundation_models(byInferenceType="PROVISIONED")["modelSummaries"] == []
    assert bedrock.list_foundation_models(byCustomizationType="FINE_TUNING")["modelSummaries"] == []


def test_list_filter_errors(bedrock):
    with pytest.raises(ClientError) as e:
        bedrock.list_foundation_models(byOutputModality="AUDIO")
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert "at 'byOutputModality' failed to satisfy constraint" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        bedrock.list_foundation_models(byProvider="bad/provider")
    assert e.value.response["Error"]["Code"] == "ValidationException"


@pytest.mark.parametrize("identifier", ["anthropic.claude-v2:1",
                                        "arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-v2:1"])
def test_get_foundation_model(bedrock, identifier):
    d = bedrock.get_foundation_model(modelIdentifier=identifier)["modelDetails"]
    assert d["modelId"] == "anthropic.claude-v2:1"
    assert d["modelArn"] == "arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-v2:1"


def test_get_unknown_model(bedrock):
    with pytest.raises(ClientError) as e:
        bedrock.get_foundation_model(modelIdentifier="anthropic.claude-v9")
    assert e.value.response["Error"] == {"Code": "ValidationException", "Message": "The provided model identifier is invalid."}
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_control_plane_requires_a_signature(server):
    from helpers import error_of, raw
    status, code, msg, _ = error_of(raw(server, "GET", "/foundation-models"))
    assert (status, code.split(":")[0], msg) == (403, "MissingAuthenticationTokenException", "Missing Authentication Token")


def test_aws_cli_lists_models(client_env):
    import json
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "awscli", "bedrock", "list-foundation-models", "--region", "us-east-1",
                        "--by-provider", "Anthropic"], env=client_env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    ids = [m["modelId"] for m in json.loads(r.stdout)["modelSummaries"]]
    assert "anthropic.claude-v2" in ids
