"""Model invocation logging configured through boto3's `bedrock` client, delivered in Bedrock's
record schema to a real S3-compatible server (moto's, started here) and to a local
CloudWatch-style log group."""
import json
import time
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from conftest import Server, free_port, make_client

CLAUDE = "anthropic.claude-v2"
TITAN = "amazon.titan-embed-text-v2:0"


@pytest.fixture(scope="module")
def s3_server():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def s3(url):
    return boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="moto",
                        aws_secret_access_key="moto")


def objects(client, bucket):
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return [json.loads(client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()) for o in listed], listed


def wait_for(predicate, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    return predicate()


def test_logging_to_s3_and_a_log_group(s3_server):
    store = s3(s3_server)
    store.create_bucket(Bucket="bedrock-logs")
    config = (f'[invocation_logging]\ns3_endpoint = "{s3_server}"\ns3_access_key_id = "moto"\n'
              f's3_secret_access_key = "moto"\n')
    srv = Server(config=config, enable=[CLAUDE, TITAN])
    try:
        bedrock = boto3.client("bedrock", endpoint_url=srv.url, region_name="us-east-1",
                               aws_access_key_id="test", aws_secret_access_key="test")
        assert "loggingConfig" not in bedrock.get_model_invocation_logging_configuration()
        logging_config = {
            "s3Config": {"bucketName": "bedrock-logs", "keyPrefix": "outcrop"},
            "cloudWatchConfig": {"logGroupName": "/aws/bedrock/invocations",
                                 "roleArn": "arn:aws:iam::000000000000:role/logs"},
            "textDataDeliveryEnabled": True,
            "embeddingDataDeliveryEnabled": False,
        }
        bedrock.put_model_invocation_logging_configuration(loggingConfig=logging_config)
        got = bedrock.get_model_invocation_logging_configuration()["loggingConfig"]
        assert got["s3Config"] == logging_config["s3Config"]

        rt = make_client(srv)
        body = {"prompt": "\n\nHuman: Hi\n\nAssistant:", "max_tokens_to_sample": 5}
        r = rt.invoke_model(modelId=CLAUDE, body=json.dumps(body))
        answer = json.loads(r["body"].read())
        request_id = r["ResponseMetadata"]["RequestId"]
        streamed = rt.invoke_model_with_response_stream(modelId=CLAUDE, body=json.dumps(body))
        list(streamed["body"])
        rt.invoke_model(modelId=TITAN, body=json.dumps({"inputText": "not logged: embeddings are off"}))
        tagged = rt.converse(modelId=CLAUDE, messages=[{"role": "user", "content": [{"text": "Hi"}]}],
                             inferenceConfig={"maxTokens": 3}, requestMetadata={"team": "search", "case": "t1"})

        records = wait_for(lambda: len(objects(store, "bedrock-logs")[0]) >= 3 and objects(store, "bedrock-logs"))
        logs, listed = records
        assert len(logs) == 3, "the embedding call is not logged"
        (converse,) = [rec for rec in logs if rec["requestId"] == tagged["ResponseMetadata"]["RequestId"]]
        assert converse["requestMetadata"] == {"team": "search", "case": "t1"}
        assert all("requestMetadata" not in rec for rec in logs if rec is not converse)
        assert all(o["Key"].startswith("outcrop/AWSLogs/000000000000/BedrockModelInvocationLogs/us-east-1/")
                   for o in listed)
        (invoke,) = [rec for rec in logs if rec["requestId"] == request_id]
        assert invoke["schemaType"] == "ModelInvocationLog" and invoke["operation"] == "InvokeModel"
        assert invoke["modelId"] == CLAUDE and invoke["accountId"] == "000000000000"
        assert invoke["identity"]["arn"] == "arn:aws:iam::000000000000:root" and invoke["region"] == "us-east-1"
        assert invoke["input"]["inputBodyJson"] == body
        assert invoke["output"]["outputBodyJson"] == answer
        headers = r["ResponseMetadata"]["HTTPHeaders"]
        assert invoke["input"]["inputTokenCount"] == int(headers["x-amzn-bedrock-input-token-count"])
        assert invoke["output"]["outputTokenCount"] == int(headers["x-amzn-bedrock-output-token-count"])
        stream_rec = next(rec for rec in logs if rec["operation"] == "InvokeModelWithResponseStream")
        assert isinstance(stream_rec["output"]["outputBodyJson"], list)

        group = Path(srv.dir.name) / "data" / "cloudwatch" / "aws" / "bedrock" / "invocations" / "invocations.jsonl"
        lines = wait_for(lambda: group.exists() and len(group.read_text().splitlines()) >= 2 and group.read_text().splitlines())
        assert {json.loads(line)["requestId"] for line in lines} >= {request_id}

        bedrock.delete_model_invocation_logging_configuration()
        assert "loggingConfig" not in bedrock.get_model_invocation_logging_configuration()
        with pytest.raises(ClientError) as e:
            bedrock.put_model_invocation_logging_configuration(loggingConfig={"textDataDeliveryEnabled": True})
        assert e.value.response["Error"]["Code"] == "ValidationException"
    finally:
        srv.stop()


def test_a_record_outlives_a_crash_until_s3_takes_it(tmp_path):
    """The record is kept in the store's outbox before the answer ends: a server killed with
    SIGKILL while its S3 endpoint is down loses nothing; the next server on the same store
    delivers it once the endpoint is up (after the dead server's lease on it ran out)."""
    import signal

    from moto.server import ThreadedMotoServer

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = (f'[invocation_logging]\ns3_endpoint = "{url}"\ns3_access_key_id = "moto"\n'
              f's3_secret_access_key = "moto"\n')
    data = tmp_path / "data"
    srv = Server(config=config, enable=[CLAUDE], data_dir=data)
    bedrock = boto3.client("bedrock", endpoint_url=srv.url, region_name="us-east-1",
                           aws_access_key_id="test", aws_secret_access_key="test")
    bedrock.put_model_invocation_logging_configuration(loggingConfig={
        "s3Config": {"bucketName": "late-logs"}, "textDataDeliveryEnabled": True})
    r = make_client(srv).invoke_model(modelId=CLAUDE, body=json.dumps(
        {"prompt": "\n\nHuman: Hi\n\nAssistant:", "max_tokens_to_sample": 3}))
    request_id = r["ResponseMetadata"]["RequestId"]
    srv.stop(sig=signal.SIGKILL)

    s3_server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    s3_server.start()
    again = None
    try:
        store = s3(url)
        store.create_bucket(Bucket="late-logs")
        again = Server(config=config, enable=[], data_dir=data)
        logs = wait_for(lambda: objects(store, "late-logs")[0], timeout=45)
        assert [rec["requestId"] for rec in logs] == [request_id]
    finally:
        if again:
            again.stop()
        s3_server.stop()
