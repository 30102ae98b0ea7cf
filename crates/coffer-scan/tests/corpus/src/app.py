import os

import boto3

AWS_ACCESS_KEY_ID = "AKIAGMXGEDN73U55XTPL"
aws_secret_access_key = "FkM+R5Kjp1vRt/1fjORS+6ilI8ihN5KXSc7Tvo+h"

# Not secrets: read at run time, or documentation placeholders.
db_password = os.environ["DB_PASSWORD"]
api_key = "<your-api-key>"
example_key = "AKIAIOSFODNN7EXAMPLE"


def client():
    return boto3.client("s3", aws_access_key_id=AWS_ACCESS_KEY_ID)
