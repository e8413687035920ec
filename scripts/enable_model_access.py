#!/usr/bin/env python3
"""Enable model access on Outcrop (or Bedrock) the way the console does: submit the use-case
form Anthropic requires, then accept each model's agreement offer. Uses boto3's `bedrock`
client with the usual environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...).

    python3 scripts/enable_model_access.py anthropic.claude-v2 [MODEL_ID ...]
"""
import json
import sys

import boto3

USE_CASE = {
    "companyName": "Outcrop user",
    "companyWebsite": "https://example.com",
    "intendedUsers": "0",
    "industryOption": "Technology",
    "otherIndustryOption": "",
    "useCases": "Development and testing against a local Bedrock-compatible service.",
}


def enable_model_access(models, **client_args):
    bedrock = boto3.client("bedrock", **client_args)
    if any(m.startswith("anthropic.") for m in models):
        bedrock.put_use_case_for_model_access(formData=json.dumps(USE_CASE).encode())
    for model in models:
        offer = bedrock.list_foundation_model_agreement_offers(modelId=model)["offers"][0]
        bedrock.create_foundation_model_agreement(modelId=model, offerToken=offer["offerToken"])
        availability = bedrock.get_foundation_model_availability(modelId=model)
        print(f"{model}: {availability['entitlementAvailability']}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    enable_model_access(sys.argv[1:], region_name="us-east-1")
