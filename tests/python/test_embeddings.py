"""Embedding models (Titan v1/v2, Cohere v3) served by the real all-MiniLM-L6-v2, through boto3
and langchain-aws: lengths, normalization, token counts, errors, and semantic sense."""
import json
import math

import pytest
from botocore.exceptions import ClientError

from conftest import Server, make_client

MODELS = ["amazon.titan-embed-text-v1", "amazon.titan-embed-text-v2:0", "cohere.embed-english-v3"]
CAT = "A cat sat on the mat."
KITTEN = "A kitten was sitting on a rug."
STOCKS = "The stock market fell sharply on Tuesday."


@pytest.fixture(scope="module")
def emb_server():
    s = Server(enable=MODELS)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def rt(emb_server):
    return make_client(emb_server)


def call(rt, model_id, body):
    r = rt.invoke_model(modelId=model_id, body=json.dumps(body))
    return r, json.loads(r["body"].read())


def cos(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def norm(v):
    return math.sqrt(sum(x * x for x in v))


def titan_v2(rt, text, **extra):
    return call(rt, "amazon.titan-embed-text-v2:0", dict(inputText=text, **extra))[1]


def test_titan_v1(rt):
    r, b = call(rt, "amazon.titan-embed-text-v1", {"inputText": CAT})
    assert len(b["embedding"]) == 1536
    assert b["inputTextTokenCount"] == int(r["ResponseMetadata"]["HTTPHeaders"]["x-amzn-bedrock-input-token-count"]) > 3


def test_titan_v2_dimensions_normalize_and_types(rt):
    b = titan_v2(rt, CAT)
    assert len(b["embedding"]) == 1024 and abs(norm(b["embedding"]) - 1) < 1e-3
    assert b["embeddingsByType"]["float"] == b["embedding"]
    for dims in (256, 512):
        v = titan_v2(rt, CAT, dimensions=dims)["embedding"]
        assert len(v) == dims and abs(norm(v) - 1) < 1e-3
    raw = titan_v2(rt, CAT, dimensions=256, normalize=False)["embedding"]
    assert norm(raw) < 1 - 1e-3, "an unnormalized projection is shorter than the unit vector"
    b = titan_v2(rt, CAT, embeddingTypes=["binary"])
    assert "embedding" not in b and set(b["embeddingsByType"]["binary"]) <= {0, 1}


def test_larger_dimensions_keep_similarities_exactly(rt):
    pairs = [(titan_v2(rt, t, dimensions=512)["embedding"], titan_v2(rt, t)["embedding"]) for t in (CAT, KITTEN)]
    assert abs(cos(pairs[0][0], pairs[1][0]) - cos(pairs[0][1], pairs[1][1])) < 1e-4


def test_related_sentences_score_closer(rt):
    cat, kitten, stocks = (titan_v2(rt, t)["embedding"] for t in (CAT, KITTEN, STOCKS))
    assert cos(cat, kitten) > cos(cat, stocks) + 0.2
    _, b = call(rt, "cohere.embed-english-v3", {"texts": [CAT, KITTEN, STOCKS], "input_type": "search_document"})
    e = b["embeddings"]
    assert b["response_type"] == "embeddings_floats" and len(e) == 3 and len(e[0]) == 1024
    assert cos(e[0], e[1]) > cos(e[0], e[2]) + 0.2
    assert b["texts"] == [CAT, KITTEN, STOCKS]


def test_cohere_embedding_types(rt):
    _, b = call(rt, "cohere.embed-english-v3", {"texts": [CAT], "input_type": "search_query",
                                                "embedding_types": ["float", "int8", "ubinary"]})
    assert b["response_type"] == "embeddings_by_type"
    assert len(b["embeddings"]["float"][0]) == 1024 and len(b["embeddings"]["ubinary"][0]) == 128
    assert all(-128 <= x <= 127 for x in b["embeddings"]["int8"][0])


@pytest.mark.parametrize("model_id,body,message", [
    ("amazon.titan-embed-text-v1", {"inputText": "x", "textGenerationConfig": {}},
     "Malformed input request: #: extraneous key [textGenerationConfig] is not permitted, please reformat your input and try again."),
    ("amazon.titan-embed-text-v2:0", {"inputText": "x", "dimensions": 300},
     "Malformed input request: #/dimensions: 300 is not a valid enum value, please reformat your input and try again."),
    ("cohere.embed-english-v3", {"texts": ["x"]},
     "Malformed input request: #: required key [input_type] not found, please reformat your input and try again."),
])
def test_embedding_validation(rt, model_id, body, message):
    with pytest.raises(ClientError) as e:
        rt.invoke_model(modelId=model_id, body=json.dumps(body))
    assert e.value.response["Error"] == {"Code": "ValidationException", "Message": message}


def test_embedding_models_neither_stream_nor_converse(rt):
    with pytest.raises(ClientError) as e:
        rt.invoke_model_with_response_stream(modelId="amazon.titan-embed-text-v2:0", body=json.dumps({"inputText": "x"}))
    assert e.value.response["Error"]["Message"] == "The model is unsupported for streaming."
    with pytest.raises(ClientError) as e:
        rt.converse(modelId="amazon.titan-embed-text-v2:0", messages=[{"role": "user", "content": [{"text": "x"}]}])
    assert e.value.response["Error"]["Message"] == (
        "This action doesn't support the model that you provided. Try again with a supported text or chat model.")


def test_langchain_bedrock_embeddings(emb_server):
    from langchain_aws import BedrockEmbeddings

    emb = BedrockEmbeddings(model_id="amazon.titan-embed-text-v2:0", region_name="us-east-1",
                            endpoint_url=emb_server.url, aws_access_key_id="test", aws_secret_access_key="test")
    docs = emb.embed_documents([CAT, STOCKS])
    query = emb.embed_query(KITTEN)
    assert len(query) == 1024 and len(docs) == 2
    assert cos(query, docs[0]) > cos(query, docs[1])
