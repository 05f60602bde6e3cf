"""LocalStack ready hook: create the platform's buckets, idempotently.

LocalStack runs `.py` hooks inside its own process, in a container and on the host alike, so
this one file creates the buckets in both. Its names equal the Storage Service's seed rows and
the Resource Service's stub; a static test checks that they stay equal.
"""

import os

import boto3

BUCKETS = ("resources-staging", "resources-permanent")

# The hook runs beside the gateway it serves: same machine, the port LocalStack listens on.
port = os.environ.get("GATEWAY_LISTEN", ":4566").split(",")[0].rsplit(":", 1)[-1]
s3 = boto3.client(
    "s3",
    endpoint_url=f"http://127.0.0.1:{port}",
    aws_access_key_id="test",
    aws_secret_access_key="test",
    region_name="us-east-1",
)
existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
# The same lifecycle rule as the Storage Service's (service_kit.s3.ABORT_INCOMPLETE_RULE): this
# hook runs inside LocalStack, where the project's packages are not importable.
ABORT_INCOMPLETE = {
    "ID": "abort-incomplete-multipart",
    "Status": "Enabled",
    "Filter": {"Prefix": ""},
    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
}
# The mark of a bucket the platform created (service_kit.s3.PLATFORM_TAG): the Storage Service
# writes lifecycle rules only to such buckets.
PLATFORM_TAG = {"Key": "created-by", "Value": "song-platform"}
for bucket in BUCKETS:
    if bucket not in existing:
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [PLATFORM_TAG]})
        print(f"created bucket {bucket}")
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": [ABORT_INCOMPLETE]}
    )
