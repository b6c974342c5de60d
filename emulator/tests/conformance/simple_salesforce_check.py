"""Drive the pgforce Salesforce emulator with simple-salesforce, a real third-party client.

Every call goes through simple-salesforce's own code paths (login, REST, query pagination,
sObject Collections via `restful`, Bulk API 2.0 ingest and query). simple-salesforce always
talks https to *.salesforce.com; a requests adapter re-routes those requests to the emulator
over plain http on loopback, keeping the original Host header.

Inputs (environment):
  EMULATOR_URL       http://127.0.0.1:PORT
  SF_USERNAME        a user known to the emulator
  SF_CONSUMER_KEY    connected app client id
  SF_CONSUMER_SECRET connected app secret
  SF_PRIVATE_KEY     path to the RS256 private key whose public key the emulator trusts

Prints one line per check and exits non-zero on the first disagreement.
"""

import os
import sys
import urllib.parse

import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceMalformedRequest,
    SalesforceResourceNotFound,
    SalesforceExpiredSession,
)

EMULATOR = os.environ["EMULATOR_URL"].rstrip("/")
USERNAME = os.environ["SF_USERNAME"]
KEY = os.environ["SF_CONSUMER_KEY"]
SECRET = os.environ["SF_CONSUMER_SECRET"]
PRIVATE_KEY = os.environ["SF_PRIVATE_KEY"]
VERSION = "59.0"


class ToEmulator(HTTPAdapter):
    """Send https://<any host>/path to the emulator, keeping the Host header."""

    def send(self, request, **kwargs):
        parts = urllib.parse.urlsplit(request.url)
        target = urllib.parse.urlsplit(EMULATOR)
        request.headers["Host"] = parts.netloc
        request.url = urllib.parse.urlunsplit(
            (target.scheme, target.netloc, parts.path, parts.query, parts.fragment)
        )
        return super().send(request, **kwargs)


def session():
    s = requests.Session()
    s.mount("https://", ToEmulator())
    return s


def check(name, cond, detail=""):
    if not cond:
        print(f"FAIL {name}: {detail}")
        sys.exit(1)
    print(f"ok   {name}")


def main():
    # --- OAuth: JWT bearer (aud https://login.salesforce.com, RS256) -----------------
    sf = Salesforce(
        username=USERNAME,
        consumer_key=KEY,
        privatekey_file=PRIVATE_KEY,
        domain="login",
        session=session(),
        version=VERSION,
    )
    check("jwt bearer login", bool(sf.session_id))

    # --- OAuth: client credentials (to the My Domain host) ------------------------------
    cc = Salesforce(
        consumer_key=KEY,
        consumer_secret=SECRET,
        domain="acme.my",
        session=session(),
        version=VERSION,
    )
    check("client credentials login", bool(cc.session_id))

    # --- describe -------------------------------------------------------------------------
    g = sf.describe()
    names = {o["name"] for o in g["sobjects"]}
    check("describeGlobal lists Account and Contact", {"Account", "Contact"} <= names)
    d = sf.Account.describe()
    ext = [f for f in d["fields"] if f["name"] == "External_Id__c"]
    check("describe Account.External_Id__c externalId+unique",
          ext and ext[0]["externalId"] and ext[0]["unique"], ext)
    check("describe keyPrefix", d["keyPrefix"] == "001", d.get("keyPrefix"))
    limits = sf.limits()
    check("limits has DailyApiRequests", "DailyApiRequests" in limits)

    # --- CRUD -----------------------------------------------------------------------------
    created = sf.Account.create({"Name": "Acme", "External_Id__c": "ss-1"})
    acc_id = created["id"]
    check("create returns 18-char 001 id", created["success"] and len(acc_id) == 18
          and acc_id.startswith("001"), created)
    got = sf.Account.get(acc_id)
    check("get returns attributes and fields",
          got["attributes"]["type"] == "Account" and got["Name"] == "Acme", got)
    status = sf.Account.update(acc_id, {"Name": "Acme Corp"})
    check("update returns 204", status == 204, status)
    by_ext = sf.Account.get_by_custom_id("External_Id__c", "ss-1")
    check("get by external id", by_ext["Id"] == acc_id and by_ext["Name"] == "Acme Corp", by_ext)

    # --- upsert by external id --------------------------------------------------------------
    status = sf.Account.upsert("External_Id__c/ss-2", {"Name": "Globex"})
    check("upsert insert returns 201", status == 201, status)
    status = sf.Account.upsert("External_Id__c/ss-2", {"Name": "Globex Inc"})
    check("upsert update returns 200 (v46+)", status in (200, 204), status)
    raw = sf.Account.upsert("External_Id__c/ss-2", {"Name": "Globex Inc"}, raw_response=True)
    body = raw.json() if raw.content else {}
    check("upsert update body created=false", body.get("created") is False, body)

    # --- sObject Collections ----------------------------------------------------------------
    records = [{"attributes": {"type": "Account"}, "Name": f"Page {i:03d}",
                "External_Id__c": f"page-{i}"} for i in range(450)]
    for start in range(0, len(records), 200):
        chunk = records[start:start + 200]
        res = sf.restful("composite/sobjects/Account/External_Id__c", method="PATCH",
                         json={"allOrNone": False, "records": chunk})
        check(f"collections upsert chunk {start}",
              len(res) == len(chunk) and all(r["success"] and r["created"] for r in res),
              res[:2])
    too_many = [{"attributes": {"type": "Account"}, "Name": "x"}] * 201
    try:
        sf.restful("composite/sobjects", method="POST", json={"records": too_many})
        check("collections reject 201 records", False, "no error")
    except SalesforceMalformedRequest as e:
        check("collections reject 201 records", e.status == 400, e.content)

    # --- query with pagination --------------------------------------------------------------
    q = "SELECT Id, Name FROM Account WHERE Name LIKE 'Page%' ORDER BY Name"
    first = sf.query(q, headers={"Sforce-Query-Options": "batchSize=200"})
    check("query first page", first["totalSize"] == 450 and not first["done"]
          and len(first["records"]) == 200 and "nextRecordsUrl" in first,
          {k: first.get(k) for k in ("totalSize", "done", "nextRecordsUrl")})
    everything = sf.query_all(q)
    check("query_all follows nextRecordsUrl", len(everything["records"]) == 450,
          len(everything["records"]))
    check("query order", everything["records"][0]["Name"] == "Page 000")
    try:
        sf.query("SELECT Id FRM Account")
        check("malformed query", False, "no error")
    except SalesforceMalformedRequest as e:
        check("malformed query → MALFORMED_QUERY", e.content[0]["errorCode"] == "MALFORMED_QUERY",
              e.content)
    try:
        sf.query("SELECT Nope__c FROM Account")
        check("unknown field", False, "no error")
    except SalesforceMalformedRequest as e:
        check("unknown field → INVALID_FIELD", e.content[0]["errorCode"] == "INVALID_FIELD", e.content)

    # --- delete, queryAll -------------------------------------------------------------------
    sf.Account.delete(acc_id)
    try:
        sf.Account.get(acc_id)
        check("get deleted", False, "no error")
    except SalesforceResourceNotFound as e:
        check("get deleted → 404", e.status == 404, e.content)
    live = sf.query(f"SELECT Id FROM Account WHERE Id = '{acc_id}'")
    check("query hides deleted", live["totalSize"] == 0, live)
    alls = sf.query_all(f"SELECT Id, IsDeleted FROM Account WHERE Id = '{acc_id}'",
                        include_deleted=True)
    check("queryAll shows deleted", alls["totalSize"] == 1 and alls["records"][0]["IsDeleted"],
          alls)

    # --- Bulk API 2.0 ingest + query round trip ------------------------------------------------
    rows = [{"Name": f"Bulk {i}", "External_Id__c": f"bulk-{i}"} for i in range(300)]
    rows.append({"Name": "x" * 300, "External_Id__c": "bulk-too-long"})
    results = sf.bulk2.Account.upsert(records=rows, external_id_field="External_Id__c")
    processed = sum(r["numberRecordsProcessed"] for r in results)
    failed = sum(r["numberRecordsFailed"] for r in results)
    check("bulk2 upsert processed", processed == 301 and failed == 1, results)
    job_id = results[0]["job_id"]
    failed_csv = sf.bulk2.Account.get_failed_records(job_id)
    check("bulk2 failedResults has sf__Error STRING_TOO_LONG",
          "sf__Error" in failed_csv and "STRING_TOO_LONG" in failed_csv, failed_csv[:300])
    ok_csv = sf.bulk2.Account.get_successful_records(job_id)
    check("bulk2 successfulResults has sf__Id,sf__Created",
          ok_csv.startswith('"sf__Id","sf__Created"') and ok_csv.count("\n") >= 300,
          ok_csv[:200])
    unprocessed = sf.bulk2.Account.get_unprocessed_records(job_id)
    check("bulk2 unprocessedRecords", isinstance(unprocessed, str))
    pages = list(sf.bulk2.Account.query("SELECT Id, Name FROM Account WHERE Name LIKE 'Bulk%'",
                                        max_records=120))
    lines = sum(p.strip().count("\n") for p in pages)
    check("bulk2 query pages by maxRecords", len(pages) == 3 and lines == 300,
          (len(pages), lines))

    # --- expired session → 401 INVALID_SESSION_ID -------------------------------------------------
    bad = Salesforce(instance_url=EMULATOR.replace("http://", "https://"),
                     session_id="00Dxx0000000000!bogus", session=session(), version=VERSION)
    try:
        bad.query("SELECT Id FROM Account")
        check("bad token", False, "no error")
    except SalesforceExpiredSession as e:
        check("bad token → 401 INVALID_SESSION_ID", e.status == 401, e.content)

    print("all simple-salesforce checks passed")


if __name__ == "__main__":
    main()
