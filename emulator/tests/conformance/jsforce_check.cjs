// Real-client conformance: drives the emulator with jsforce (pinned 3.10.16, Node 20).
// Run by tests/emulator_fidelity_jsforce.rs with EMULATOR_URL, SF_USERNAME, SF_PASSWORD,
// SF_CONSUMER_KEY, SF_CONSUMER_SECRET set and NODE_PATH pointing at a node_modules that
// holds jsforce. Prints "all jsforce checks passed" at the end; any failed check exits 1.
'use strict';

const assert = require('node:assert/strict');
const jsforce = require('jsforce');

const url = process.env.EMULATOR_URL;
const username = process.env.SF_USERNAME;
const password = process.env.SF_PASSWORD;
const clientId = process.env.SF_CONSUMER_KEY;
const clientSecret = process.env.SF_CONSUMER_SECRET;
const version = '60.0';
const poll = { pollInterval: 50, pollTimeout: 30000 };

function ok(name) {
  console.log(`ok - ${name}`);
}

async function soapLogin() {
  // jsforce's default username/password path: SOAP partner login.
  const conn = new jsforce.Connection({ loginUrl: url, version });
  const info = await conn.login(username, password);
  assert.match(info.id, /^005/);
  assert.match(info.organizationId, /^00D/);
  assert.equal(conn.instanceUrl, url);
  assert.ok(conn.accessToken);
  const identity = await conn.identity();
  assert.equal(identity.username, username);
  ok('SOAP login (default login path) and identity');

  const bad = new jsforce.Connection({ loginUrl: url, version });
  await assert.rejects(bad.login(username, 'wrong-password'), /INVALID_LOGIN/);
  ok('SOAP login with a bad password is refused with INVALID_LOGIN');
  return conn;
}

async function oauthLogin() {
  const conn = new jsforce.Connection({
    oauth2: { loginUrl: url, clientId, clientSecret },
    version,
  });
  const info = await conn.login(username, password);
  assert.match(info.id, /^005/);
  assert.equal(conn.instanceUrl, url);
  ok('OAuth 2.0 username-password login');
  return conn;
}

async function webServerFlow() {
  // The emulator runs with oauthWeb.autoApprove, so authorize redirects at once.
  const redirectUri = 'http://localhost:1717/OauthRedirect';
  const oauth2 = new jsforce.OAuth2({ loginUrl: url, clientId, clientSecret, redirectUri });
  const res = await fetch(oauth2.getAuthorizationUrl({ state: 'jsforce-state' }), { redirect: 'manual' });
  assert.equal(res.status, 303);
  const location = new URL(res.headers.get('location'));
  assert.equal(location.origin + location.pathname, redirectUri);
  assert.equal(location.searchParams.get('state'), 'jsforce-state');
  const code = location.searchParams.get('code');
  assert.ok(code);
  const conn = new jsforce.Connection({ oauth2, version });
  const info = await conn.authorize(code);
  assert.match(info.id, /^005/);
  assert.ok(conn.refreshToken, 'the web-server flow issues a refresh token');
  ok('OAuth 2.0 web-server flow (authorization code) with a refresh token');

  // A client that only holds the refresh token: jsforce refreshes on the 401 and retries.
  const later = new jsforce.Connection({ oauth2, instanceUrl: url, refreshToken: conn.refreshToken, version });
  let refreshed = false;
  later.on('refresh', () => {
    refreshed = true;
  });
  const limits = await later.limits();
  assert.ok(limits.DailyApiRequests);
  assert.ok(refreshed);
  ok('refresh-token-only client logs in on demand');
}

async function crud(conn) {
  const account = conn.sobject('Account');
  const created = await account.create({ Name: 'jsforce Acme', Industry: 'Technology' });
  assert.equal(created.success, true);
  const id = created.id;
  const read = await account.retrieve(id);
  assert.equal(read.Name, 'jsforce Acme');
  const updated = await account.update({ Id: id, Name: 'jsforce Acme 2' });
  assert.equal(updated.success, true);
  assert.equal((await account.retrieve(id)).Name, 'jsforce Acme 2');
  const deleted = await account.destroy(id);
  assert.equal(deleted.success, true);
  await assert.rejects(account.retrieve(id), (err) => ['ENTITY_IS_DELETED', 'NOT_FOUND'].includes(err.errorCode));
  ok('CRUD on Account');
}

async function collections(conn) {
  const records = [];
  for (let i = 0; i < 450; i++) {
    records.push({ Name: `jsforce Bulk Account ${String(i).padStart(3, '0')}` });
  }
  const results = await conn.sobject('Account').create(records, { allOrNone: true, allowRecursive: true });
  assert.equal(results.length, 450);
  assert.ok(results.every((r) => r.success));
  const ids = results.slice(0, 3).map((r) => r.id);
  const fetched = await conn.sobject('Account').retrieve(ids);
  assert.deepEqual(fetched.map((r) => r.Id), ids);
  const mixed = await conn.sobject('Contact').create([{ LastName: 'Ok' }, { FirstName: 'No last name' }], { allOrNone: false });
  assert.equal(mixed[0].success, true);
  assert.equal(mixed[1].success, false);
  assert.equal(mixed[1].errors[0].errorCode ?? mixed[1].errors[0].statusCode, 'REQUIRED_FIELD_MISSING');
  ok('sObject Collections create (recursive batches of 200), retrieve, partial failure');
}

async function queryPaging(conn) {
  const soql = "SELECT Id, Name FROM Account WHERE Name LIKE 'jsforce Bulk Account%' ORDER BY Name";
  const headers = { 'Sforce-Query-Options': 'batchSize=200' };
  const first = await conn.query(soql, { headers, autoFetch: false });
  assert.equal(first.totalSize, 450);
  assert.equal(first.done, false);
  assert.equal(first.records.length, 200);
  assert.ok(first.nextRecordsUrl);
  const second = await conn.queryMore(first.nextRecordsUrl, { headers });
  assert.equal(second.records.length, 200);
  assert.equal(second.records[0].Name, 'jsforce Bulk Account 200');
  ok('query paging with queryMore / nextRecordsUrl');

  const all = [];
  await new Promise((resolve, reject) => {
    conn
      .query(soql, { headers })
      .on('record', (r) => all.push(r))
      .on('end', resolve)
      .on('error', reject)
      .run({ autoFetch: true, maxFetch: 10000, headers });
  });
  assert.equal(all.length, 450);
  assert.equal(new Set(all.map((r) => r.Id)).size, 450);
  ok('query autoFetch over every page');
}

async function bulk2(conn) {
  const input = [];
  for (let i = 0; i < 120; i++) {
    input.push({ LastName: `Bulk2 ${i}`, Email: `bulk2.${i}@example.com` });
  }
  input.push({ FirstName: 'no last name' });
  const res = await conn.bulk2.loadAndWaitForResults({ object: 'Contact', operation: 'insert', input, ...poll });
  assert.equal(res.successfulResults.length, 120);
  assert.equal(res.failedResults.length, 1);
  assert.match(res.failedResults[0].sf__Error, /REQUIRED_FIELD_MISSING/);
  ok('Bulk 2.0 ingest with results');

  const stream = await conn.bulk2.query("SELECT Id, LastName FROM Contact WHERE LastName LIKE 'Bulk2 %'", poll);
  const rows = [];
  await new Promise((resolve, reject) => {
    stream.on('record', (r) => rows.push(r)).on('end', resolve).on('error', reject);
  });
  assert.equal(rows.length, 120);
  assert.ok(rows.every((r) => r.LastName.startsWith('Bulk2 ')));
  ok('Bulk 2.0 query');
}

async function main() {
  const soapConn = await soapLogin();
  const oauthConn = await oauthLogin();
  await webServerFlow();
  await crud(soapConn);
  await collections(oauthConn);
  await queryPaging(soapConn);
  await bulk2(oauthConn);
  console.log('all jsforce checks passed');
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
