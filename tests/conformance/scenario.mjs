// Conformance scenario: the official @objectstack/client (pinned in package.json) drives a running
// `objectos serve presets/crm`, replaying /work/shared/docs/wire/reference-transcript.md step by step
// and asserting on the values the client returns (records, totals, fields, error codes).
//
// Usage: node scenario.mjs <baseUrl>   (run.sh starts the server and passes the URL).
// Output: one line per step (PASS/FAIL), the failing request/response for each failure, and a final
// line `N passed, M failed`. The exit status is 1 when any step failed.
//
// The server runs with the auth plugin (the `standard` profile): the scenario signs up the first
// user (the owner) and signs in exactly as the official client does before the data steps, and
// signs out at the end (transcript steps 2, 3a-3d and 12).

import { ObjectStackClient } from '@objectstack/client';
import { isDeepStrictEqual, inspect } from 'node:util';

const baseUrl = process.argv[2] ?? process.env.OBJECTOS_URL;
if (!baseUrl) {
  console.error('usage: node scenario.mjs <baseUrl>');
  process.exit(2);
}

// The last exchange seen on the wire, so a failing step can print exactly what the server answered.
let lastExchange;
const exchanges = [];

async function recordingFetch(input, init = {}) {
  const method = init.method ?? 'GET';
  // Storage hands out relative URLs (the signed upload and download URLs), as the official server
  // does: a browser resolves them against the page, Node's fetch needs the base.
  const target = typeof input === 'string' && input.startsWith('/') ? new URL(input, baseUrl).toString() : input;
  const url = typeof target === 'string' ? target : target.toString();
  const res = await globalThis.fetch(target, init);
  const text = await res.clone().text();
  lastExchange = {
    method,
    path: url.replace(baseUrl, ''),
    requestBody: init.body,
    status: res.status,
    responseBody: text,
  };
  exchanges.push(lastExchange);
  return res;
}

// The client logs every failed request at error level; expected errors are part of this scenario,
// so its logger is silenced and failures are reported by the harness instead.
const quietLogger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  fatal() {},
  trace() {},
  child() {
    return quietLogger;
  },
};

const client = new ObjectStackClient({ baseUrl, fetch: recordingFetch, logger: quietLogger });

// --- tiny harness -------------------------------------------------------------------------------

class CheckFailed extends Error {}

const results = [];

function fmt(v) {
  return inspect(v, { depth: 6, breakLength: 120 });
}

function check(condition, what, actual) {
  if (!condition) {
    throw new CheckFailed(actual === undefined ? what : `${what}; got ${fmt(actual)}`);
  }
}

function eq(actual, expected, what) {
  if (!isDeepStrictEqual(actual, expected)) {
    throw new CheckFailed(`${what}: expected ${fmt(expected)}, got ${fmt(actual)}`);
  }
}

/** Asserts that every key of `expected` has the same value in `actual` (extra keys are allowed). */
function has(actual, expected, what) {
  check(actual !== null && typeof actual === 'object', `${what}: expected an object`, actual);
  for (const [k, v] of Object.entries(expected)) {
    eq(actual[k], v, `${what}.${k}`);
  }
}

const ISO_MILLIS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** Checks the system fields every record carries (data-api.md: id, created_at, updated_at, ...). */
function systemFields(record, what) {
  check(typeof record.id === 'string' && record.id.length > 0, `${what}.id must be a non-empty string`, record.id);
  check(ISO_MILLIS.test(record.created_at ?? ''), `${what}.created_at must be RFC 3339 UTC with millis`, record.created_at);
  check(ISO_MILLIS.test(record.updated_at ?? ''), `${what}.updated_at must be RFC 3339 UTC with millis`, record.updated_at);
}

/** Fails the step early when an earlier step did not produce the id it depends on. */
function needs(value, producer) {
  check(value !== undefined, `cannot run: ${producer} did not produce the record this step needs`);
}

/** Awaits `promise`, which must reject with the given httpStatus / code / message. */
async function expectError(promise, expected, what) {
  let value;
  try {
    value = await promise;
  } catch (err) {
    if (err instanceof CheckFailed) throw err;
    const got = { httpStatus: err.httpStatus, code: err.code, message: err.message };
    for (const [k, v] of Object.entries(expected)) {
      if (v instanceof RegExp) {
        check(typeof got[k] === 'string' && v.test(got[k]), `${what}: error.${k} must match ${v}`, got);
      } else {
        eq(got[k], v, `${what}: error.${k}`);
      }
    }
    return err;
  }
  throw new CheckFailed(`${what}: expected the call to fail with ${fmt(expected)}, but it resolved with ${fmt(value)}`);
}

async function step(name, fn) {
  const before = exchanges.length;
  try {
    await fn();
    results.push({ name, ok: true });
    console.log(`PASS ${name}`);
  } catch (err) {
    results.push({ name, ok: false });
    console.log(`FAIL ${name}`);
    const reason = err instanceof CheckFailed ? err.message : `unexpected ${err?.name ?? 'error'}: ${err?.message ?? err}`;
    console.log(`     ${reason}`);
    if (!(err instanceof CheckFailed) && err?.httpStatus !== undefined) {
      console.log(`     client error: ${fmt({ httpStatus: err.httpStatus, code: err.code, message: err.message })}`);
    }
    for (const x of exchanges.slice(before)) {
      const body = x.responseBody.length > 1500 ? `${x.responseBody.slice(0, 1500)}… (${x.responseBody.length} chars)` : x.responseBody;
      console.log(`     ${x.method} ${x.path}${x.requestBody ? ` body=${x.requestBody}` : ''}`);
      console.log(`       -> ${x.status} ${body}`);
    }
  }
}

// --- the transcript scenario ---------------------------------------------------------------------

const ids = {};

await step('1. discovery (client.connect)', async () => {
  const d = await client.connect();
  check(typeof d.version === 'string' && d.version.length > 0, 'discovery.version must be a non-empty string', d.version);
  eq(d.routes?.data, '/api/v1/data', 'discovery.routes.data');
  eq(d.routes?.metadata, '/api/v1/meta', 'discovery.routes.metadata');
  check(d.services?.data?.enabled === true, 'discovery.services.data.enabled must be true', d.services?.data);
});

const owner = { email: 'bench@example.com', password: 'Bench-Passw0rd!', name: 'Bench User' };

await step('2. anonymous data read (expect 401 UNAUTHENTICATED)', async () => {
  await expectError(
    client.data.find('contact', { top: 1 }),
    { httpStatus: 401, code: 'UNAUTHENTICATED', message: 'Authentication is required to access this endpoint.' },
    'anonymous find',
  );
});

await step('3a. auth bootstrap status (no owner yet)', async () => {
  const r = await client.auth.bootstrapStatus();
  eq(r.hasOwner, false, 'bootstrapStatus.hasOwner');
});

await step('3b. register (better-auth sign-up/email)', async () => {
  const r = await client.auth.register(owner);
  check(typeof r.data?.token === 'string' && r.data.token.length >= 32, 'register: data.token must be a session token', r.data);
  eq(r.data?.user?.email, owner.email, 'register: user.email');
  eq(r.data?.user?.name, owner.name, 'register: user.name');
  check(!JSON.stringify(r).includes(owner.password), 'register: the password must never come back', r);
  eq((await client.auth.bootstrapStatus()).hasOwner, true, 'bootstrapStatus.hasOwner after sign-up');
});

await step('3c. sign in (better-auth sign-in/email)', async () => {
  const r = await client.auth.login({ email: owner.email, password: owner.password });
  check(typeof r.data?.token === 'string' && r.data.token.length >= 32, 'login: data.token must be a session token', r.data);
  eq(r.data?.user?.email, owner.email, 'login: user.email');
});

await step('3d. who am I (get-session)', async () => {
  const r = await client.auth.me();
  eq(r.user?.email, owner.email, 'get-session: user.email');
  eq(r.session?.userId, r.user?.id, 'get-session: session.userId');
  check(typeof r.session?.activeOrganizationId === 'string', 'get-session: the owner has an active organization', r.session);
});

await step('4a. metadata: object contact', async () => {
  const r = await client.meta.getItem('object', 'contact');
  eq(r.type, 'object', 'response.type');
  eq(r.name, 'contact', 'response.name');
  const item = r.item;
  check(item && typeof item === 'object', 'response.item must be the object definition', r);
  eq(item.name, 'contact', 'item.name');
  eq(item.label, 'Contact', 'item.label');
  has(item.fields?.name, { type: 'text', label: 'Name', required: true, maxLength: 200 }, 'item.fields.name');
  has(item.fields?.email, { type: 'email' }, 'item.fields.email');
  has(item.fields?.amount, { type: 'currency' }, 'item.fields.amount');
  has(item.fields?.status, { type: 'select', label: 'Status' }, 'item.fields.status');
  eq(
    (item.fields.status.options ?? []).map((o) => o.value),
    ['new', 'active', 'closed'],
    'item.fields.status.options[].value',
  );
  eq(item.fields.status.options[0].default, true, 'item.fields.status.options[0].default');
  has(item.fields?.account, { type: 'lookup', reference: 'account' }, 'item.fields.account');
});

await step('4b. metadata: list object types', async () => {
  const r = await client.meta.getTypes();
  check(Array.isArray(r.types), 'response.types must be an array', r);
  check(r.types.includes('object'), "response.types must include 'object'", r.types);
});

await step('5a. create account', async () => {
  const r = await client.data.create('account', { name: 'Acme Corp' });
  eq(r.object, 'account', 'response.object');
  check(typeof r.id === 'string' && r.id.length > 0, 'response.id must be a non-empty string', r.id);
  eq(r.record?.id, r.id, 'response.record.id');
  eq(r.record.name, 'Acme Corp', 'response.record.name');
  systemFields(r.record, 'response.record');
  ids.account = r.id;
});

const contacts = [
  { name: 'Alice Anchor', email: 'alice@example.com', amount: 1200.5, status: 'active' },
  { name: 'Bob Baseline', email: 'bob@example.com', amount: 80, status: 'new' },
  { name: 'Carol Compare', email: 'carol@example.com', amount: 455.25, status: 'active' },
];

for (const [i, label] of ['5b. create contact #1', '5c. create contact #2', '5d. create contact #3'].entries()) {
  await step(label, async () => {
    const input = i === 0 ? { ...contacts[0], account: ids.account } : contacts[i];
    const r = await client.data.create('contact', input);
    eq(r.object, 'contact', 'response.object');
    eq(r.record?.id, r.id, 'response.record.id');
    has(r.record, { ...input, account: input.account ?? null }, 'response.record');
    systemFields(r.record, 'response.record');
    ids[`contact${i + 1}`] = r.id;
  });
}

await step('6. get contact by id', async () => {
  const r = await client.data.get('contact', ids.contact1);
  eq(r.object, 'contact', 'response.object');
  eq(r.id, ids.contact1, 'response.id');
  has(r.record, { id: ids.contact1, ...contacts[0], account: ids.account }, 'response.record');
});

await step('7a. list: where status=active, orderBy -amount, limit 2 (GET query string)', async () => {
  const r = await client.data.find('contact', { where: { status: 'active' }, orderBy: '-amount', limit: 2 });
  eq(r.object, 'contact', 'response.object');
  eq(r.records?.map((x) => x.name), ['Alice Anchor', 'Carol Compare'], 'records[].name');
  eq(r.records.map((x) => x.amount), [1200.5, 455.25], 'records[].amount');
  eq(r.records[0].id, ids.contact1, 'records[0].id');
  eq(r.total, 2, 'response.total');
  eq(r.hasMore, false, 'response.hasMore');
});

await step('7b. list: filter AST + select + offset (GET ?filter=JSON)', async () => {
  const r = await client.data.find('contact', {
    filter: ['amount', '>', 100],
    select: ['name', 'amount', 'status'],
    sort: 'name',
    top: 10,
    skip: 0,
  });
  eq(
    r.records,
    [
      { name: 'Alice Anchor', amount: 1200.5, status: 'active' },
      { name: 'Carol Compare', amount: 455.25, status: 'active' },
    ],
    'records (exactly the selected fields, like the transcript)',
  );
  eq(r.total, 2, 'response.total');
  eq(r.hasMore, false, 'response.hasMore');
});

await step('7b2. list: offset skips rows (GET ?skip=1)', async () => {
  const r = await client.data.find('contact', { filter: ['amount', '>', 100], select: ['name'], sort: 'name', top: 10, skip: 1 });
  eq(r.records?.map((x) => x.name), ['Carol Compare'], 'records[].name');
  eq(r.total, 2, 'response.total (true total, not the page length)');
});

await step('7c. query: POST /query with QueryAST', async () => {
  const r = await client.data.query('contact', {
    where: { status: 'active', amount: { $gte: 100 } },
    orderBy: [{ field: 'amount', order: 'desc' }],
    limit: 5,
  });
  eq(r.object, 'contact', 'response.object');
  eq(r.records?.map((x) => x.id), [ids.contact1, ids.contact3], 'records[].id');
  has(r.records[0], { ...contacts[0], account: ids.account }, 'records[0]');
  eq(r.total, 2, 'response.total');
  eq(r.hasMore, false, 'response.hasMore');
});

await step('7d. list with lookup expand', async () => {
  const r = await client.data.find('contact', { where: { status: 'active' }, limit: 5, expand: ['account'] });
  eq(r.records?.map((x) => x.name), ['Alice Anchor', 'Carol Compare'], 'records[].name (creation order when no sort is given)');
  const acc = r.records[0].account;
  check(acc !== null && typeof acc === 'object', 'records[0].account must be the expanded account record', acc);
  has(acc, { id: ids.account, name: 'Acme Corp' }, 'records[0].account');
  eq(r.records[1].account, null, 'records[1].account (no account set)');
  eq(r.total, 2, 'response.total');
});

await step('8. update contact #2 (PATCH)', async () => {
  const r = await client.data.update('contact', ids.contact2, { status: 'closed', amount: 99.99 });
  eq(r.object, 'contact', 'response.object');
  eq(r.id, ids.contact2, 'response.id');
  has(r.record, { id: ids.contact2, name: 'Bob Baseline', email: 'bob@example.com', amount: 99.99, status: 'closed', account: null }, 'response.record');
  check(r.record.updated_at >= r.record.created_at, 'record.updated_at must not be before created_at', r.record);
});

await step('8b. get updated contact', async () => {
  const r = await client.data.get('contact', ids.contact2);
  has(r.record, { name: 'Bob Baseline', amount: 99.99, status: 'closed' }, 'response.record');
});

await step('9. delete contact #3', async () => {
  const r = await client.data.delete('contact', ids.contact3);
  eq(r.object, 'contact', 'response.object');
  eq(r.id, ids.contact3, 'response.id');
  eq(r.success, true, 'response.success');
});

await step('9b. get deleted contact (expect 404 RECORD_NOT_FOUND)', async () => {
  await expectError(
    client.data.get('contact', ids.contact3),
    { httpStatus: 404, code: 'RECORD_NOT_FOUND', message: `Record ${ids.contact3} not found in contact` },
    'get deleted',
  );
});

await step('10a. count via find({aggregations}) -> GET refused with 400 INVALID_QUERY', async () => {
  await expectError(
    client.data.find('contact', { aggregations: [{ function: 'count', alias: 'n' }] }),
    { httpStatus: 400, code: 'INVALID_QUERY', message: /aggregations/ },
    'GET ?aggregations',
  );
});

await step('10b. count via query({aggregations}) -> POST /query', async () => {
  const r = await client.data.query('contact', { aggregations: [{ function: 'count', alias: 'n' }] });
  eq(r.records, [{ n: 2 }], 'records');
  eq(r.total, 1, 'response.total (one aggregate row)');
});

await step('10c. count via total of a 1-row page', async () => {
  const r = await client.data.find('contact', { top: 1 });
  eq(r.records?.length, 1, 'records.length');
  // Without a sort the transcript's server answers in creation order, so the first row is contact #1.
  eq(r.records[0].id, ids.contact1, 'records[0].id (creation order when no sort is given)');
  eq(r.total, 2, 'response.total');
  eq(r.hasMore, true, 'response.hasMore');
});

await step('11a. validation error: create without required name', async () => {
  const err = await expectError(
    client.data.create('contact', { email: 'noname@example.com' }),
    { httpStatus: 400, code: 'VALIDATION_FAILED', message: 'Name is required' },
    'create without name',
  );
  check(Array.isArray(err.fields), 'error.fields must list the field errors', err.details);
  has(err.fields[0], { field: 'name', code: 'required', message: 'Name is required' }, 'error.fields[0]');
});

await step('11b. validation error: bad select value', async () => {
  const err = await expectError(
    client.data.create('contact', { name: 'Bad Status', status: 'bogus' }),
    { httpStatus: 400, code: 'VALIDATION_FAILED', message: 'Status must be one of: new, active, closed' },
    'create with bad status',
  );
  check(Array.isArray(err.fields), 'error.fields must list the field errors', err.details);
  has(err.fields[0], { field: 'status', code: 'invalid_option' }, 'error.fields[0]');
});

await step('11c. unknown object (expect 404 OBJECT_NOT_FOUND)', async () => {
  await expectError(
    client.data.find('no_such_object', { top: 1 }),
    { httpStatus: 404, code: 'OBJECT_NOT_FOUND', message: "Object 'no_such_object' is not registered" },
    'find no_such_object',
  );
});


// --- beyond the transcript: the CRM preset's own behaviour -------------------------------------

await step('crm.1 createMany contacts', async () => {
  const r = await client.data.createMany('contact', [
    { name: 'Dora Bulk', amount: 10, status: 'new' },
    { name: 'Eli Bulk', amount: 20, status: 'active' },
  ]);
  eq(r.object, 'contact', 'response.object');
  eq(r.count, 2, 'response.count');
  eq(r.records?.map((x) => x.name), ['Dora Bulk', 'Eli Bulk'], 'records[].name');
  ids.bulk = r.records.map((x) => x.id);
});

await step('crm.2 opportunity: autonumber, defaults and formula', async () => {
  const r = await client.data.create('opportunity', {
    name: 'Acme renewal',
    account: ids.account,
    amount: 50000,
    probability: 40,
    close_date: '2027-03-31',
  });
  ids.opportunity = r.id;
  const rec = r.record;
  check(/^OPP-\d{4}$/.test(rec?.number ?? ''), 'record.number must be an OPP-0000 autonumber', rec?.number);
  eq(rec.stage, 'prospecting', 'record.stage (select default)');
  eq(rec.expected_revenue, 20000, 'record.expected_revenue (amount * probability / 100)');
  eq(rec.is_private, false, 'record.is_private (boolean default)');
});

await step('crm.3 opportunity: state machine refuses prospecting -> closed_won', async () => {
  needs(ids.opportunity, 'crm.2');
  await expectError(
    client.data.update('opportunity', ids.opportunity, { stage: 'closed_won', probability: 100 }),
    { httpStatus: 400, code: 'VALIDATION_FAILED' },
    'skip the pipeline',
  );
});

await step('crm.4 opportunity: allowed transition prospecting -> qualification', async () => {
  needs(ids.opportunity, 'crm.2');
  const r = await client.data.update('opportunity', ids.opportunity, { stage: 'qualification' });
  eq(r.record?.stage, 'qualification', 'record.stage');
});

await step('crm.5 opportunity: conditional rule needs a loss reason when closed lost', async () => {
  needs(ids.opportunity, 'crm.2');
  await expectError(
    client.data.update('opportunity', ids.opportunity, { stage: 'closed_lost' }),
    { httpStatus: 400, code: 'VALIDATION_FAILED' },
    'closed lost without reason',
  );
});

await step('crm.6 account roll-ups: contact count and opportunity total', async () => {
  needs(ids.opportunity, 'crm.2');
  const r = await client.data.get('account', ids.account);
  eq(r.record?.contact_count, 1, 'record.contact_count');
  eq(r.record.total_opportunity_amount, 50000, 'record.total_opportunity_amount');
});

// --- files: the client's storage namespace (client-surface-17.4.md 2.3) and a PDF attached to the
// account's `attachments` field (a multiple file field of presets/crm) ----------------------------

const PDF = new TextEncoder().encode('%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n');
const MIB = 1024 * 1024;

await step('files.1 upload a PDF (storage.upload: presigned, signed raw PUT, complete)', async () => {
  const up = await client.storage.upload(new File([PDF], 'offer.pdf', { type: 'application/pdf' }));
  eq(up.success, true, 'envelope.success');
  has(up.data, { name: 'offer.pdf', size: PDF.length, mimeType: 'application/pdf' }, 'data');
  check(typeof up.data.fileId === 'string' && up.data.fileId.length > 0, 'data.fileId must be a non-empty string', up.data);
  ids.pdf = up.data.fileId;
});

await step('files.2 attach the PDF to the account (data.update attachments: [fileId])', async () => {
  needs(ids.pdf, 'files.1');
  needs(ids.account, '5a');
  const r = await client.data.update('account', ids.account, { attachments: [ids.pdf] });
  eq(r.record?.attachments, [ids.pdf], 'record.attachments');
  const g = await client.data.get('account', ids.account);
  eq(g.record?.attachments, [ids.pdf], 'stored attachments');
});

await step('files.3 download it (storage.getDownloadUrl, then the signed URL)', async () => {
  needs(ids.pdf, 'files.1');
  const url = await client.storage.getDownloadUrl(ids.pdf);
  check(typeof url === 'string' && url.startsWith('/api/v1/storage/_local/raw/'), 'a relative signed URL', url);
  // The signed URL is the credential: no Authorization header.
  const res = await recordingFetch(url);
  eq(res.status, 200, 'status');
  eq(res.headers.get('content-type'), 'application/pdf', 'content-type');
  eq(Buffer.from(await res.arrayBuffer()).equals(Buffer.from(PDF)), true, 'the downloaded bytes are the uploaded ones');
});

await step('files.4 a file type the field refuses (expect 415 UNSUPPORTED_MEDIA_TYPE)', async () => {
  needs(ids.pdf, 'files.1');
  // gzip, whatever the client claims: the type is sniffed from the content.
  const gz = new Uint8Array([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 0x03, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  const up = await client.storage.upload(new File([gz], 'offer2.pdf', { type: 'application/pdf' }));
  eq(up.data?.mimeType, 'application/gzip', 'sniffed mimeType');
  await expectError(
    client.data.update('account', ids.account, { attachments: [ids.pdf, up.data.fileId] }),
    { httpStatus: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
    'attach a gzip file',
  );
});

await step('files.5 an id that names no file (expect 400 VALIDATION_FAILED)', async () => {
  needs(ids.account, '5a');
  const err = await expectError(
    client.data.update('account', ids.account, { attachments: ['0000000000000000zzzz'] }),
    { httpStatus: 400, code: 'VALIDATION_FAILED' },
    'attach an unknown file id',
  );
  eq(err.fields?.[0]?.field, 'attachments', 'error.fields[0].field');
});

await step('files.6 chunked upload resumed after the first part (initChunkedUpload, uploadPart, resumeUpload)', async () => {
  const total = 5 * MIB + 10;
  const bytes = new Uint8Array(total);
  bytes.set(PDF);
  const init = await client.storage.initChunkedUpload({ filename: 'big.pdf', mimeType: 'application/pdf', totalSize: total });
  has(init.data, { totalChunks: 2, chunkSize: 5 * MIB }, 'init.data');
  const first = await client.storage.uploadPart(init.data.uploadId, 0, init.data.resumeToken, new Blob([bytes.slice(0, 5 * MIB)]));
  has(first.data, { chunkIndex: 0, bytesReceived: 5 * MIB }, 'uploadPart.data');
  // As after a dropped connection: progress says one chunk is there, the rest is sent, then complete.
  const done = await client.storage.resumeUpload(init.data.uploadId, bytes.buffer, 5 * MIB, init.data.resumeToken);
  has(done.data, { fileId: init.data.fileId, size: total, mimeType: 'application/pdf' }, 'complete.data');
});

await step('crm.7 delete account cascades to its opportunities and clears contact lookups', async () => {
  needs(ids.opportunity, 'crm.2');
  await client.data.delete('account', ids.account);
  await expectError(client.data.get('opportunity', ids.opportunity), { httpStatus: 404, code: 'RECORD_NOT_FOUND' }, 'get cascaded opportunity');
  const c = await client.data.get('contact', ids.contact1);
  eq(c.record?.account, null, 'contact #1 account after its account was deleted (set_null)');
});

await step('12. logout', async () => {
  await client.auth.logout();
  await expectError(client.data.find('contact', { top: 1 }), { httpStatus: 401, code: 'UNAUTHENTICATED' }, 'find after logout');
});

// --- summary ------------------------------------------------------------------------------------

const passed = results.filter((r) => r.ok).length;
const failed = results.length - passed;
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
