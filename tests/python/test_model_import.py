"""Custom Model Import through boto3's `bedrock` client: a GGUF copied from a real S3-compatible
server (moto's, started here) or a local path, verified, listed, invoked by its imported-model
ARN with BedrockCompletion, OpenAI completion and OpenAI chat completion bodies (whole and
streamed) and through Converse, and deleted; with Bedrock's errors."""
import json
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import Server, free_port, make_client, shared_models_dir

GGUF = shared_models_dir() / "smollm2-135m-instruct.gguf"
ROLE = "arn:aws:iam::000000000000:role/import"
CREDS = dict(region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")


@pytest.fixture(scope="module")
def s3_url():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    url = f"http://127.0.0.1:{port}"
    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="moto",
                      aws_secret_access_key="moto")
    s3.create_bucket(Bucket="models")
    s3.upload_file(str(GGUF), "models", "smol/SmolLM2-135M-Instruct.gguf")
    s3.put_object(Bucket="models", Key="junk/weights.gguf", Body=b"not a gguf file at all" * 100)
    s3.put_object(Bucket="models", Key="empty/readme.txt", Body=b"no model here")
    yield url
    server.stop()


@pytest.fixture(scope="module")
def srv(s3_url):
    config = (f'[model_import]\ns3_endpoint = "{s3_url}"\ns3_access_key_id = "moto"\n'
              f's3_secret_access_key = "moto"\n')
    s = Server(config=config, enable=[])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def bedrock(srv):
    return boto3.client("bedrock", endpoint_url=srv.url, config=Config(retries={"total_max_attempts": 1}),
                        **CREDS)


def create(bedrock, job, model, uri):
    return bedrock.create_model_import_job(jobName=job, importedModelName=model, roleArn=ROLE,
                                           modelDataSource={"s3DataSource": {"s3Uri": uri}})["jobArn"]


def finished(bedrock, job_arn, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = bedrock.get_model_import_job(jobIdentifier=job_arn)
        if job["status"] != "InProgress":
            return job
        time.sleep(0.3)
    raise AssertionError(f"import job still running: {job}")


def data_dir(srv):
    return Path(srv.dir.name) / "data"


def code(excinfo):
    return excinfo.value.response["Error"]["Code"]


@pytest.fixture(scope="module")
def imported(bedrock):
    """The model imported from S3 (a prefix holding one .gguf), as GetModelImportJob says."""
    job_arn = create(bedrock, "import-smol", "smol-chat", "s3://models/smol/")
    assert job_arn.startswith("arn:aws:bedrock:us-east-1:000000000000:model-import-job/")
    job = finished(bedrock, job_arn)
    assert job["status"] == "Completed", job
    return job


def test_import_from_s3_is_listed_and_described(bedrock, imported):
    arn = imported["importedModelArn"]
    assert arn.startswith("arn:aws:bedrock:us-east-1:000000000000:imported-model/")
    assert len(arn.rsplit("/", 1)[1]) == 12
    assert imported["jobName"] == "import-smol"
    assert imported["modelDataSource"] == {"s3DataSource": {"s3Uri": "s3://models/smol/"}}
    assert imported["roleArn"] == ROLE
    assert imported["endTime"] >= imported["creationTime"]

    model = bedrock.get_imported_model(modelIdentifier="smol-chat")
    assert model["modelArn"] == arn
    assert model["jobArn"] == imported["jobArn"]
    assert model["modelArchitecture"] == "llama"
    assert model["instructSupported"] is True
    assert bedrock.get_imported_model(modelIdentifier=arn)["modelName"] == "smol-chat"

    listed = bedrock.list_imported_models()["modelSummaries"]
    assert [m["modelArn"] for m in listed if m["modelName"] == "smol-chat"] == [arn]
    jobs = bedrock.list_model_import_jobs(statusEquals="Completed", nameContains="smol")
    assert [j["jobArn"] for j in jobs["modelImportJobSummaries"]] == [imported["jobArn"]]
    assert bedrock.get_model_import_job(jobIdentifier="import-smol")["jobArn"] == imported["jobArn"]


def test_invoke_with_bedrock_and_openai_bodies(srv, imported):
    rt = make_client(srv)
    arn = imported["importedModelArn"]
    prompt = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"

    answer = json.loads(rt.invoke_model(modelId=arn, body=json.dumps(
        {"prompt": prompt, "max_gen_len": 12, "temperature": 0})).get("body").read())
    assert set(answer) == {"generation", "prompt_token_count", "generation_token_count", "stop_reason"}
    assert answer["generation"].strip()
    assert answer["prompt_token_count"] > 5 and 0 < answer["generation_token_count"] <= 12

    completion = json.loads(rt.invoke_model(modelId=arn, body=json.dumps(
        {"prompt": prompt, "max_tokens": 6, "temperature": 0, "n": 2})).get("body").read())
    assert completion["object"] == "text_completion"
    assert [c["index"] for c in completion["choices"]] == [0, 1]
    assert completion["choices"][0]["text"] == completion["choices"][1]["text"]  # temperature 0
    assert completion["usage"]["completion_tokens"] <= 12

    chat = json.loads(rt.invoke_model(modelId=arn, body=json.dumps(
        {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8})).get("body").read())
    assert chat["object"] == "chat.completion"
    assert chat["model"] == arn
    assert chat["choices"][0]["message"]["role"] == "assistant"
    assert chat["choices"][0]["message"]["content"]
    assert chat["usage"]["prompt_tokens"] > 0

    import urllib.request
    with urllib.request.urlopen(srv.url + "/_outcrop/health") as r:
        health = json.load(r)
    assert health["status"] == "ok"
    (model,) = [m for m in health["models"] if m["name"] == arn]
    assert model["state"] == "ready" and model["memory_bytes"] > 0, model


def test_streams_and_converse(srv, imported):
    rt = make_client(srv)
    arn = imported["importedModelArn"]
    streamed = rt.invoke_model_with_response_stream(modelId=arn, body=json.dumps(
        {"prompt": "<|im_start|>user\nCount to five.<|im_end|>\n<|im_start|>assistant\n", "max_gen_len": 10}))
    chunks = [json.loads(e["chunk"]["bytes"]) for e in streamed["body"]]
    assert "".join(c["generation"] for c in chunks).strip()
    assert chunks[-1]["stop_reason"] in ("stop", "length")
    assert chunks[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] <= 10

    streamed = rt.invoke_model_with_response_stream(modelId=arn, body=json.dumps(
        {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5}))
    chunks = [json.loads(e["chunk"]["bytes"]) for e in streamed["body"]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert chunks[-1]["usage"]["completion_tokens"] <= 5

    said = rt.converse(modelId=arn, messages=[{"role": "user", "content": [{"text": "Hello"}]}],
                       inferenceConfig={"maxTokens": 6})
    assert said["output"]["message"]["content"][0]["text"]
    assert said["usage"]["outputTokens"] <= 6


def test_import_errors(srv, bedrock, imported):
    with pytest.raises(ClientError) as e:
        create(bedrock, "import-again", "smol-chat", "s3://models/smol/")
    assert code(e) == "ConflictException" and "smol-chat" in str(e.value)
    with pytest.raises(ClientError) as e:
        create(bedrock, "import-smol", "other-name", "s3://models/smol/")
    assert code(e) == "ConflictException" and "jobName" in str(e.value)
    with pytest.raises(ClientError) as e:
        create(bedrock, "-bad name", "x", "s3://models/smol/")
    assert code(e) == "ValidationException" and "jobName" in str(e.value)
    with pytest.raises(ClientError) as e:
        bedrock.create_model_import_job(jobName="j", importedModelName="m", roleArn="not-a-role",
                                        modelDataSource={"s3DataSource": {"s3Uri": "s3://models/smol/"}})
    assert code(e) == "ValidationException" and "roleArn" in str(e.value)
    with pytest.raises(ClientError) as e:
        create(bedrock, "j-http", "m-http", "https://example.invalid/model.gguf")
    assert code(e) == "ValidationException"

    # Sources that cannot be imported end the job Failed, with the reason.
    for job, uri, reason in [("import-junk", "s3://models/junk/weights.gguf", "not a GGUF"),
                             ("import-missing", "s3://models/nothing/model.gguf", "could not be read"),
                             ("import-empty", "s3://models/empty/", "holds no .gguf")]:
        done = finished(bedrock, create(bedrock, job, f"m-{job}", uri))
        assert done["status"] == "Failed" and reason in done["failureMessage"], done
        assert "importedModelArn" not in done
    failed = bedrock.list_model_import_jobs(statusEquals="Failed")["modelImportJobSummaries"]
    assert {j["jobName"] for j in failed} == {"import-junk", "import-missing", "import-empty"}
    page = bedrock.list_model_import_jobs(maxResults=2, sortOrder="Ascending")
    assert len(page["modelImportJobSummaries"]) == 2 and "nextToken" in page

    with pytest.raises(ClientError) as e:
        bedrock.get_imported_model(modelIdentifier="no-such-model")
    assert code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        bedrock.get_model_import_job(jobIdentifier="no-such-job")
    assert code(e) == "ResourceNotFoundException"

    rt = make_client(srv)
    with pytest.raises(ClientError) as e:
        rt.invoke_model(modelId="arn:aws:bedrock:us-east-1:000000000000:imported-model/zzzzzzzzzzzz",
                        body=json.dumps({"prompt": "x"}))
    assert code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        rt.invoke_model(modelId=imported["importedModelArn"], body=json.dumps({"prompt": "x", "max_gen_len": 0}))
    assert code(e) == "ValidationException" and "max_gen_len" in str(e.value)


def test_import_from_a_path_then_delete(srv, bedrock):
    job = finished(bedrock, create(bedrock, "import-local", "smol-local", f"file://{GGUF}"))
    assert job["status"] == "Completed", job
    arn = job["importedModelArn"]
    rt = make_client(srv)
    out = json.loads(rt.invoke_model(modelId=arn, body=json.dumps({"prompt": "Hello", "max_gen_len": 3}))
                     ["body"].read())
    assert out["generation_token_count"] <= 3
    files = list((data_dir(srv) / "imported-models").rglob("*.gguf"))
    assert len(files) == 2 and all(f.stat().st_size == GGUF.stat().st_size for f in files)

    bedrock.delete_imported_model(modelIdentifier=arn)
    assert "smol-local" not in [m["modelName"] for m in bedrock.list_imported_models()["modelSummaries"]]
    assert len(list((data_dir(srv) / "imported-models").rglob("*.gguf"))) == 1
    with pytest.raises(ClientError) as e:
        rt.invoke_model(modelId=arn, body=json.dumps({"prompt": "Hello"}))
    assert code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        bedrock.delete_imported_model(modelIdentifier=arn)
    assert code(e) == "ResourceNotFoundException"


def test_iam_governs_imports(srv, imported, tmp_path):
    srv.cli("users", "create", "importer", "--no-default-policy")
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["bedrock:ListImportedModels", "bedrock:InvokeModel"], "Resource": "*"}]}))
    srv.cli("policies", "put", "--user", "importer", "--name", "ReadImports", "--document", str(policy))
    key = json.loads(srv.cli("keys", "create", "--user", "importer"))["AccessKey"]
    limited = boto3.client("bedrock", endpoint_url=srv.url, region_name="us-east-1",
                           aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                           config=Config(retries={"total_max_attempts": 1}))
    assert limited.list_imported_models()["modelSummaries"]
    with pytest.raises(ClientError) as e:
        create(limited, "import-denied", "denied", "s3://models/smol/")
    assert code(e) == "AccessDeniedException" and "bedrock:CreateModelImportJob" in str(e.value)
    with pytest.raises(ClientError) as e:
        limited.delete_imported_model(modelIdentifier=imported["importedModelArn"])
    assert code(e) == "AccessDeniedException"
    rt = make_client(srv, key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    out = json.loads(rt.invoke_model(modelId=imported["importedModelArn"],
                                     body=json.dumps({"prompt": "Hi", "max_gen_len": 2}))["body"].read())
    assert out["generation_token_count"] <= 2
