"""Every Lambda function's real binary, invoked through the Lambda Runtime API that
`cargo lambda watch` emulates, with the sample events in events/, against a real PostgreSQL
database and the SQS emulator; every answer is checked. The Docker-free stand-in for
`sam local invoke`. Run by infra/scripts/test.sh:

    "$(infra/scripts/ensure-python-tools.sh cargo-lambda==1.9.2)/python" infra/scripts/lambda-invoke-test.py

Needs TEST_DATABASE_URL (a role that can create databases) and SQS_TEST_ENDPOINT (the moto
server test.sh starts); cargo-lambda and boto3 come from the project's virtual environment. It builds the function
binaries (dev profile), creates its own database and queue, starts two `cargo lambda watch`
servers (the migrate function connects as the tables' owner, the others as a member of
offers_api) and stops everything it started.
"""

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import datetime
import uuid
from pathlib import Path

import boto3

# A campaign window running now (UTC dates, the tenants' default zone): the platform refuses
# a campaign whose end has passed, and releases nothing before its start.
CAMPAIGN_START = (datetime.date.today() - datetime.timedelta(days=2)).isoformat()
CAMPAIGN_END = (datetime.date.today() + datetime.timedelta(days=30)).isoformat()

ROOT = Path(__file__).resolve().parent.parent.parent
VENV_BIN = Path(sys.executable).parent
ADMIN_URL = os.environ.get("TEST_DATABASE_URL",
                           "postgres://postgres:postgres@127.0.0.1:5432/postgres")
DB_NAME = "offers_lambda_invoke"
OWNER_URL = ADMIN_URL.rsplit("/", 1)[0] + "/" + DB_NAME
API_ROLE, API_ROLE_PASSWORD = "offers_invoke_api", "invoke-api-role-password"


def role_url(role):
    """OWNER_URL as login role `role` (password API_ROLE_PASSWORD)."""
    return re.sub(r"://[^@/]*@", f"://{role}:{API_ROLE_PASSWORD}@", OWNER_URL, count=1)


API_URL = role_url(API_ROLE)
# Paths that span tenants connect as a second role, also in offers_platform (migration V014).
PLATFORM_ROLE = "offers_invoke_platform"
PLATFORM_URL = role_url(PLATFORM_ROLE)
SQS_ENDPOINT = os.environ["SQS_TEST_ENDPOINT"]
# The credentials of events/auth-api/token.json and the job of the SQS fixture.
SUPER_ADMIN, SUPER_ADMIN_PASSWORD = "root.admin", "root admin password"
FIXTURE_JOB = "0193a5e0-7c1d-7b6e-9a41-5d2f0c8e1a01"
FUNCTIONS = ["auth-api", "admin-api", "offers-api", "campaigns-api", "customers-api",
             "delivery-webhook", "campaign-processor", "outbox-relay", "customer-import",
             "housekeeping", "migrate"]
PASSWORD = "invoke user password 1"


def log(message):
    print(f"[lambda-invoke] {message}", flush=True)


def run(*args, **kwargs):
    kwargs.setdefault("check", True)
    return subprocess.run(args, **kwargs)


def psql(sql, url=OWNER_URL):
    return run("psql", url, "-v", "ON_ERROR_STOP=1", "-Atqc", sql,
               capture_output=True, text=True).stdout.strip()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def target_dir():
    return Path(run(str(ROOT / "infra/scripts/target-dir.sh"), capture_output=True,
                    text=True).stdout.strip())


class Watch:
    """`cargo lambda watch` on a free port with its own environment file."""

    def __init__(self, env, log_name):
        self.port = free_port()
        self.env_file = tempfile.NamedTemporaryFile("w", suffix=".env", delete=False)
        self.env_file.write("".join(f"{k}={v}\n" for k, v in env.items()))
        self.env_file.close()
        self.log_path = ROOT / ".local" / log_name
        self.log_path.parent.mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            [str(VENV_BIN / "cargo-lambda"), "lambda", "watch", "--ignore-changes", "--quiet",
             "--invoke-address", "127.0.0.1", "--invoke-port", str(self.port),
             "--env-file", self.env_file.name],
            cwd=ROOT, stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT,
            env=dict(os.environ, PATH=f"{VENV_BIN}:{os.environ['PATH']}"))
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"cargo lambda watch did not start; see {self.log_path}")

    def invoke(self, function, event):
        """`cargo lambda invoke FUNCTION --data-file EVENT`; the function's answer as JSON."""
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as data:
            json.dump(event, data)
        result = run(str(VENV_BIN / "cargo-lambda"), "lambda", "invoke", function,
                     "--invoke-address", "127.0.0.1", "--invoke-port", str(self.port),
                     "--data-file", data.name, "--output-format", "json",
                     capture_output=True, text=True, check=False, cwd=ROOT)
        os.unlink(data.name)
        if result.returncode != 0:
            raise AssertionError(f"invoking {function} failed: {result.stderr}{result.stdout}")
        return json.loads(result.stdout)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.unlink(self.env_file.name)


def event(name):
    return json.loads((ROOT / "events" / name).read_text())


def apigw(method, path, body=None, token=None, query=""):
    """An API Gateway HTTP API (payload 2.0) event, from the offers-api sample."""
    e = event("offers-api/list-offers.json")
    e["routeKey"] = "$default"
    e["rawPath"] = e["requestContext"]["http"]["path"] = path
    e["requestContext"]["http"]["method"] = method
    e["rawQueryString"] = query
    e.pop("queryStringParameters", None)
    e.pop("pathParameters", None)
    headers = {k: v for k, v in e["headers"].items() if k != "authorization"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    if body is not None:
        headers["content-type"] = "application/json"
        e["body"] = json.dumps(body)
    else:
        e.pop("body", None)
    headers.pop("content-length", None)
    e["headers"] = headers
    e["isBase64Encoded"] = False
    return e


def with_token(e, token):
    e["headers"]["authorization"] = f"Bearer {token}"
    return e


def answer(response, status):
    """The JSON body of an API Gateway response, after checking its status."""
    assert response["statusCode"] == status, response
    body = response.get("body") or ""
    return json.loads(body) if body else None


def main():
    log("building the function binaries (dev profile)")
    packages = []
    for name in FUNCTIONS + ["offerctl"]:
        packages += ["-p", name]
    run("cargo", "build", "--quiet", "--bins", *packages, cwd=ROOT)
    offerctl = str(target_dir() / "debug/offerctl")

    psql(f"drop database if exists {DB_NAME} with (force)", ADMIN_URL)
    psql(f"create database {DB_NAME}", ADMIN_URL)
    sqs = boto3.client("sqs", endpoint_url=SQS_ENDPOINT, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    queue_url = sqs.create_queue(QueueName=f"invoke-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    s3 = boto3.client("s3", endpoint_url=SQS_ENDPOINT, region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test")
    bucket = f"invoke-data-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    base_env = {"RUST_LOG": "info", "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test",
                "AWS_SECRET_ACCESS_KEY": "test", "AWS_ENDPOINT_URL_SQS": SQS_ENDPOINT,
                "AWS_ENDPOINT_URL_S3": SQS_ENDPOINT, "DATA_BUCKET": bucket,
                "AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH": "true"}
    owner = Watch(dict(base_env, DATABASE_URL=OWNER_URL), "lambda-watch-owner.log")
    watch = None
    try:
        log("migrate: invoke events/migrate/invoke.json")
        applied = owner.invoke("migrate", event("migrate/invoke.json"))["applied"]
        newest = max((ROOT / "migrations").glob("V*__*.sql"), key=lambda p: int(p.name[1:p.name.index("__")]))
        number, name = newest.stem[1:].split("__", 1)
        assert len(applied) >= 8 and applied[-1] == f"V{int(number)}__{name}", applied
        assert owner.invoke("migrate", event("migrate/invoke.json")) == {"applied": []}

        run(str(ROOT / "infra/scripts/ensure-api-role.sh"), OWNER_URL, API_ROLE,
            API_ROLE_PASSWORD, "tenant", stdout=subprocess.DEVNULL)
        run(str(ROOT / "infra/scripts/ensure-api-role.sh"), OWNER_URL, PLATFORM_ROLE,
            API_ROLE_PASSWORD, "platform", stdout=subprocess.DEVNULL)
        cli_env = dict(os.environ, DATABASE_URL=API_URL, DATABASE_PLATFORM_URL=PLATFORM_URL,
                       SUPER_ADMIN_PASSWORD=SUPER_ADMIN_PASSWORD)
        run(offerctl, "create-super-admin", "--username", SUPER_ADMIN, env=cli_env,
            stdout=subprocess.DEVNULL)
        run(offerctl, "import-customers", str(ROOT / "infra/demo/customers_credit_card.csv"),
            env=cli_env, stdout=subprocess.DEVNULL)

        watch = Watch(dict(base_env, DATABASE_URL=API_URL, DATABASE_PLATFORM_URL=PLATFORM_URL,
                           CAMPAIGN_QUEUE_URL=queue_url,
                           JWT_SECRET="lambda-invoke-test-jwt-secret-0123456789",
                           CAMPAIGN_RANGE_SIZE="1000000"), "lambda-watch.log")

        log("auth-api: events/auth-api/token.json")
        sa = answer(watch.invoke("auth-api", event("auth-api/token.json")), 200)["access_token"]

        log("admin-api: a tenant and its users, then events/admin-api/list-tenants.json")
        # Unknown consent counts as consent here: the demo customers have no consent records.
        answer(watch.invoke("admin-api", apigw("POST", "/sa/tenants", {"name": "credit_card",
                                                "unknown_consent_allowed": True}, sa)), 201)
        for user, role in [("maker", "create"), ("checker", "approver"), ("boss", "admin")]:
            answer(watch.invoke("admin-api", apigw("POST", "/sa/users",
                                                   {"username": user, "password": PASSWORD}, sa)), 201)
            answer(watch.invoke("admin-api", apigw("POST", "/sa/user-tenant-roles",
                                                   {"username": user, "tenant_name": "credit_card",
                                                    "role": role}, sa)), 201)
        tenants = answer(watch.invoke("admin-api", with_token(event("admin-api/list-tenants.json"), sa)), 200)
        assert [t["name"] for t in tenants] == ["credit_card"], tenants

        def sign_in(user):
            return answer(watch.invoke("auth-api", apigw(
                "POST", "/auth/token", {"username": user, "password": PASSWORD})), 200)["access_token"]
        maker, checker, boss = sign_in("maker"), sign_in("checker"), sign_in("boss")

        log("offers-api: an approved offer, then events/offers-api/list-offers.json")
        offers = "/tenants/credit_card/offers"
        offer = answer(watch.invoke("offers-api", apigw("POST", offers, {"data": {"title": "Cashback"}}, maker)), 201)
        submitted = watch.invoke("offers-api", apigw("POST", f"{offers}/{offer['id']}/submit", None, maker))
        answer(submitted, 200)
        # The checker approves the version it read (If-Match: the ETag of the submitted offer).
        approval = apigw("POST", f"{offers}/{offer['id']}/approve", None, checker)
        approval["headers"]["if-match"] = submitted["headers"]["etag"]
        answer(watch.invoke("offers-api", approval), 200)
        draft = answer(watch.invoke("offers-api", apigw("POST", offers, {"data": {"title": "Later"}}, maker)), 201)
        # The sample lists drafts (status=draft&limit=10).
        listed = answer(watch.invoke("offers-api", with_token(event("offers-api/list-offers.json"), maker)), 200)
        assert [o["id"] for o in listed] == [draft["id"]], listed

        log("customers-api: events/customers-api/list-customers.json")
        customers = answer(watch.invoke("customers-api", with_token(
            event("customers-api/list-customers.json"), sa)), 200)
        assert len(customers) == 5 and all(c["segment"] == "platinum" for c in customers), customers

        log("campaigns-api: a campaign (its job to the outbox, then SQS), "
            "events/campaigns-api/list-campaigns.json")
        criteria = {"segment": "platinum"}
        created = answer(watch.invoke("campaigns-api", apigw(
            "POST", "/tenants/credit_card/campaigns",
            {"offer_id": offer["id"], "name": "Platinum", "selection_criteria": criteria,
             "start_date": CAMPAIGN_START, "end_date": CAMPAIGN_END}, maker)), 202)
        assert created["id"] == 1 and created["processing_status"] == "queued", created
        drafts = answer(watch.invoke("campaigns-api", with_token(
            event("campaigns-api/list-campaigns.json"), maker)), 200)
        assert [c["id"] for c in drafts] == [1], drafts
        sent = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        bodies = [json.loads(m["Body"]) for m in sent.get("Messages", [])]
        assert [b["campaign_id"] for b in bodies] == [1], bodies
        for m in sent["Messages"]:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])

        log("outbox-relay: events/outbox-relay/scheduled.json sends an unsent job to SQS")
        # The fixture's job as the campaign's current one, left in the outbox as if the API
        # had died between its commit and the queue.
        psql(f"update campaigns set processing_job = '{FIXTURE_JOB}', processing_status = 'queued' "
             f"where id = 1; insert into campaign_outbox (campaign_id, tenant_name, job_id) "
             f"values (1, 'credit_card', '{FIXTURE_JOB}')")
        relayed = watch.invoke("outbox-relay", event("outbox-relay/scheduled.json"))
        assert relayed == {"jobs_redriven": 0, "ranges_redriven": 0, "jobs_failed": 0,
                           "messages_sent": 1, "campaigns_started": 0, "campaign_starts_failed": 0,
                           "campaigns_completed": 0, "campaigns_withdrawn": 0,
                           "deliveries_expired": 0}, relayed
        sent = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        assert [json.loads(m["Body"])["job_id"] for m in sent["Messages"]] == [FIXTURE_JOB], sent

        log("campaign-processor: events/campaign-processor/sqs-batch.json")
        batch = watch.invoke("campaign-processor", event("campaign-processor/sqs-batch.json"))
        assert batch == {"batchItemFailures": [
            {"itemIdentifier": "059f36b4-87a3-44ab-83d2-661975830a7d"}]}, batch
        expected = int(psql("select count(*) from customers where segment = 'platinum' and is_active"))
        campaign = answer(watch.invoke("campaigns-api", apigw(
            "GET", "/tenants/credit_card/campaigns/1", None, boss)), 200)
        assert campaign["processing_status"] == "done", campaign
        assert campaign["matched_count"] == expected, (campaign, expected)
        answer(watch.invoke("campaigns-api", apigw(
            "PUT", "/tenants/credit_card/campaigns/1", {"status": "active"}, boss)), 200)

        log("delivery-webhook: events/delivery-webhook/update-delivery-status.json")
        key_output = run(offerctl, "webhook-key", "create", "--name", "invoke",
                         "--tenant", "credit_card", env=cli_env, capture_output=True,
                         text=True).stdout
        key = re.search(r"^key:\s*(\S+)", key_output, re.M).group(1)
        customer = psql("select customer_id from campaign_customers where campaign_id = 1 "
                        "order by customer_id limit 1")
        report = event("delivery-webhook/update-delivery-status.json")
        report["headers"]["x-api-key"] = key
        items = json.loads(report["body"])
        items[0]["customer_id"] = customer
        # The database's own clock, to the microsecond: a time truncated to the second can fall
        # before the campaign's creation within that same second (the webhook says invalid).
        items[0]["sent_at"] = psql("select to_json(now())#>>'{}'")
        report["body"] = json.dumps(items)
        result = answer(watch.invoke("delivery-webhook", report), 200)
        assert result["summary"]["updated"] == 1, result
        status = psql("select delivery_status from campaign_customers "
                      f"where campaign_id = 1 and customer_id = '{customer}'")
        assert status == "sent", status

        log("customer-import: events/customer-import/s3-object-created.json (a gzip file in S3)")
        import gzip
        created = event("customer-import/s3-object-created.json")
        key = "imports/card holders 2026-12-03.csv.gz"
        body = gzip.compress((ROOT / "infra/demo/customers_credit_card.csv").read_bytes())
        record = created["Records"][0]["s3"]
        record["bucket"]["name"] = bucket
        record["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"

        def upload(object_key, data):
            """Puts `data` at `object_key` and points the S3 event at that object."""
            put = s3.put_object(Bucket=bucket, Key=object_key, Body=data)
            record["object"]["key"] = object_key.replace(" ", "+")
            record["object"]["eTag"] = put["ETag"].strip('"')
            record["object"]["size"] = len(data)

        def result_of(action):
            """The result object an import's action names (s3://bucket/key)."""
            return json.loads(s3.get_object(
                Bucket=bucket, Key=action["result"].split("/", 3)[3])["Body"].read())

        upload(key, body)
        first = watch.invoke("customer-import", created)
        assert [(a["status"], a["duplicate"]) for a in first] == [("imported", False)], first
        again = watch.invoke("customer-import", created)
        assert [(a["status"], a["duplicate"]) for a in again] == [("imported", True)], again
        # Each object version has a result object of its own: results/<key>.<version>.json
        # (the ETag in this unversioned bucket).
        assert first[0]["result"] == f"s3://{bucket}/results/{key}.{record['object']['eTag']}.json", first
        result = result_of(first[0])
        # The demo file was imported by offerctl above: every row is already as in the file.
        assert result["summary"]["rows"] == 10127 and result["summary"]["unchanged"] == 10127, result

        log("customer-import: a 300 MiB header line in a 300 KB gzip file is refused in bounded memory")
        mib = gzip.compress(b"h" * (1 << 20), 9)
        bomb = gzip.compress(b"full_name,email,", 9) + mib * 300 + gzip.compress(b"\n", 9)
        bomb_key = "imports/header bomb.csv.gz"
        upload(bomb_key, bomb)
        refused = watch.invoke("customer-import", created)
        assert [a["status"] for a in refused] == ["too_large"], refused
        result = result_of(refused[0])
        assert result["limit"] == "header_bytes", result
        assert result["peak_rss_bytes"] < 256 << 20, result
        log(f"  the function's peak RSS: {result['peak_rss_bytes']} bytes")

        log("customer-import: a tenant's conversion file under conversions/credit_card/")
        conversions_key = "conversions/credit_card/crm 2026-12-03.csv"
        when = psql("select to_json(now())#>>'{}'")
        body = (f"event_id,customer_id,occurred_at,value,currency\n"
                f"invoke-1,{customer},{when},2500,INR\n"
                f"invoke-1,{customer},{when},1,INR\n").encode()
        upload(conversions_key, body)
        recorded = watch.invoke("customer-import", created)
        assert [a["status"] for a in recorded] == ["imported"], recorded
        result = result_of(recorded[0])
        assert (result["kind"], result["tenant"]) == ("conversions", "credit_card"), result
        assert (result["summary"]["inserted"], result["summary"]["unchanged"]) == (1, 1), result
        assert psql("select value::text from conversions where tenant_name = 'credit_card' "
                    "and event_id = 'invoke-1'") == "2500.0000"

        log("customer-import, outbox-relay, campaign-processor: a file imported in parts")
        # Functions of their own with 1 MiB parts: the plain demo file (5 MB) is planned by
        # customer-import, each part's message sent by outbox-relay through SQS, staged by
        # campaign-processor, which sends the merge's message, which it then applies.
        parts_env = dict(base_env, DATABASE_URL=API_URL, DATABASE_PLATFORM_URL=PLATFORM_URL,
                         CAMPAIGN_QUEUE_URL=queue_url, CUSTOMER_IMPORT_PART_BYTES="1048576",
                         JWT_SECRET="lambda-invoke-test-jwt-secret-0123456789")
        parts = Watch(parts_env, "lambda-watch-parts.log")
        try:
            plain = (ROOT / "infra/demo/customers_credit_card.csv").read_bytes()
            parts_key = "imports/card holders in parts.csv"
            upload(parts_key, plain)
            planned = parts.invoke("customer-import", created)
            assert [a["status"] for a in planned] == ["importing"], planned
            result_key = planned[0]["result"].split("/", 3)[3]
            count = json.loads(s3.get_object(Bucket=bucket, Key=result_key)["Body"].read())["parts"]
            assert count >= 4, count
            relayed = parts.invoke("outbox-relay", event("outbox-relay/scheduled.json"))
            assert relayed["messages_sent"] == count, relayed
            template = event("campaign-processor/sqs-batch.json")["Records"][0]
            handled = 0
            while handled < count + 1:
                received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                               WaitTimeSeconds=1).get("Messages", [])
                assert received, f"{handled} of {count + 1} import messages handled"
                records = [dict(template, messageId=m["MessageId"], body=m["Body"],
                                md5OfBody=m["MD5OfBody"]) for m in received]
                answer_ = parts.invoke("campaign-processor", {"Records": records})
                assert answer_ == {"batchItemFailures": []}, answer_
                for m in received:
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
                handled += len(received)
            result = json.loads(s3.get_object(Bucket=bucket, Key=result_key)["Body"].read())
            assert result["status"] == "imported" and result["parts"] == count, result
            assert result["summary"]["rows"] == 10127, result
            log(f"  {count} parts, {result['summary']}")
        finally:
            parts.stop()

        log("housekeeping: events/housekeeping/scheduled.json archives a campaign past retention")
        deliveries = int(psql("select count(*) from campaign_customers where campaign_id = 1"))
        psql("update campaigns set status = 'completed', start_date = current_date - 500, "
             "end_date = current_date - 450 where id = 1")
        report = watch.invoke("housekeeping", event("housekeeping/scheduled.json"))
        assert report["campaigns_archived"] == 1 and report["deliveries_archived"] == deliveries, report
        assert psql("select count(*) from campaign_customers where campaign_id = 1") == "0"
        manifest = json.loads(s3.get_object(
            Bucket=bucket, Key="archive/credit_card/1.manifest.json")["Body"].read())
        assert manifest["rows"] == deliveries, manifest

        watch_log = watch.log_path.read_text()
        emf = [json.loads(line[line.index("{"):]) for line in watch_log.splitlines()
               if '"_aws"' in line and "MessagesRelayed" in line]
        assert emf and emf[0]["MessagesRelayed"] == 1, "the relay printed an EMF record"
        log(f"all {len(FUNCTIONS)} functions answered as expected")
    finally:
        owner.stop()
        if watch:
            watch.stop()
        psql(f"drop database if exists {DB_NAME} with (force)", ADMIN_URL)


if __name__ == "__main__":
    main()
