"""Fixtures of the cluster tests: a real S3-protocol server (moto) on 127.0.0.1.

The server runs in a thread of the test process and listens on loopback only; nothing
reaches outside the machine. Clients find it in one of two ways, as users would:
- the URI query (`s3://bucket/key?endpoint_override=...&scheme=http&access_key=...`), which
  reaches every Ray worker without touching its environment (the shared local Ray may
  already be running);
- AWS_* environment variables, for subprocesses and submitted jobs (`s3.env`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest

BUCKET = "rayswap-test"


@dataclass(frozen=True)
class S3Server:
    host: str
    port: int
    bucket: str = BUCKET

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to reach the server through the AWS SDK's variables."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",  # never ask the cloud metadata service
        }

    def uri(self, key: str) -> str:
        """s3://KEY:SECRET@bucket/key?endpoint_override=...: reaches the server with no env.

        pyarrow takes credentials from the URI's user info and the endpoint from its query;
        rayswap keeps both when it lists or joins paths and strips them from rows and logs.
        """
        query = urlencode(
            {
                "endpoint_override": f"{self.host}:{self.port}",
                "scheme": "http",
                "region": "us-east-1",
            }
        )
        return f"s3://testing:testing@{self.bucket}/{key}?{query}"

    def plain(self, key: str) -> str:
        """s3://bucket/key for processes that have `env`."""
        return f"s3://{self.bucket}/{key}"

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def keys(self, prefix: str) -> list[str]:
        pages = (
            self.client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=self.bucket, Prefix=prefix)
        )
        keys = (obj["Key"] for page in pages for obj in page.get("Contents", []))
        return sorted(k for k in keys if not k.endswith("/"))  # not pyarrow's folder markers


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server on 127.0.0.1 (free port) with one empty bucket."""
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    s3 = S3Server(host, port)
    s3.client().create_bucket(Bucket=BUCKET)
    yield s3
    server.stop()


@pytest.fixture(scope="session")
def s3_videos(s3_server, sample_clips) -> dict[str, str]:
    """The generated sample clips uploaded to s3://bucket/videos/<identity>/ (plain keys)."""
    client = s3_server.client()
    keys = {}
    for identity, path in sample_clips.items():
        key = f"videos/{identity}/{os.path.basename(path)}"
        client.upload_file(str(path), s3_server.bucket, key)
        keys[identity] = key
    return keys
