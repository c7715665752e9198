// spec/helpers/sdk_parity.js: runs operations through the official
// TypeScript SDK (npm `cloudflare`, pinned by tools/npm.sh) against the
// project's emulator, and reports what reached the emulator for each one,
// for spec/41-sdk_parity_spec.lua to compare with cfiam's requests.
//
//   node sdk_parity.js INPUT.json     (prints one JSON document)
//
// INPUT: { prefix (npm prefix holding node_modules/cloudflare), base_url,
//   admin_url (the emulator's /__emulator admin URL), seed (the emulator
//   state every case starts from), cases: [ { name, auth: {token} |
//   {email, key}, op, args } ] }
// Each case: reset the emulator to `seed`, clear its request log, run the
// SDK call (list operations iterate every page, as `for await` does), then
// read the log. Output: { version, cases: { [name] = { ok, items, error:
// {status, name, message}, requests } } }.
'use strict';
const fs = require('fs');
const path = require('path');

const input = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const Cloudflare = require(path.join(input.prefix, 'node_modules', 'cloudflare'));
const version = require(path.join(input.prefix, 'node_modules', 'cloudflare', 'package.json')).version;

async function admin(method, p, body) {
  const res = await fetch(input.admin_url + p, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const doc = await res.json();
  if (res.status !== 200 || !doc.success) {
    throw new Error('emulator admin ' + method + ' ' + p + ': ' + JSON.stringify(doc));
  }
  return doc.result;
}

function client(auth) {
  // Every credential explicit (null when unused), so that CLOUDFLARE_*
  // variables in the environment cannot add headers.
  return new Cloudflare({
    baseURL: input.base_url,
    apiToken: auth.token || null,
    apiEmail: auth.email || null,
    apiKey: auth.key || null,
    userServiceKey: null,
    maxRetries: 0,
    timeout: 10000,
  });
}

async function collect(pager) {
  const items = [];
  for await (const item of pager) items.push(item.id);
  return items;
}

// lua-cjson encodes an empty Lua table as {}: read it as the empty list.
const list = (x) => (Array.isArray(x) ? x : Object.values(x || {}));

// The same JSON value with every object's keys in sorted order: cfiam
// writes bodies with sorted keys, JSON.stringify in insertion order, so the
// SDK is given its input spelled in that order (the same input).
function sorted(x) {
  if (Array.isArray(x)) return x.map(sorted);
  if (x === null || typeof x !== 'object') return x;
  const out = {};
  for (const k of Object.keys(x).sort()) out[k] = sorted(x[k]);
  return out;
}

const OPS = {
  'userGroups.get': (cf, a) => cf.iam.userGroups.get(a.group, { account_id: a.account })
    .then((g) => [g.id]),
  'userGroups.create': (cf, a) => cf.iam.userGroups.create(
    Object.assign({ account_id: a.account }, sorted(a.body))).then((g) => [g.id]),
  'userGroups.update': (cf, a) => cf.iam.userGroups.update(a.group,
    Object.assign({ account_id: a.account }, sorted(a.body))).then((g) => [g.id]),
  'userGroups.delete': (cf, a) => cf.iam.userGroups.delete(a.group, { account_id: a.account })
    .then((r) => [r.id]),
  'members.update': (cf, a) => cf.iam.userGroups.members.update(a.group,
    { account_id: a.account, members: list(a.ids).map((id) => ({ id })) }).then((page) =>
    page.getPaginatedItems().map((m) => m.id)),
  'members.create': (cf, a) => cf.iam.userGroups.members.create(a.group,
    { account_id: a.account, members: list(a.ids).map((id) => ({ id })) }).then((page) =>
    page.getPaginatedItems().map((m) => m.id)),
  'members.delete': (cf, a) => cf.iam.userGroups.members.delete(a.member,
    { account_id: a.account, user_group_id: a.group }).then((m) => [m.id]),
  'members.list': (cf, a) => collect(cf.iam.userGroups.members.list(a.group,
    Object.assign({ account_id: a.account }, a.query || {}))),
  'userGroups.list': (cf, a) => collect(cf.iam.userGroups.list(
    Object.assign({ account_id: a.account }, a.query || {}))),
  'accounts.members.list': (cf, a) => collect(cf.accounts.members.list(
    Object.assign({ account_id: a.account }, a.query || {}))),
};

(async () => {
  const out = { version, cases: {} };
  for (const c of input.cases) {
    const op = OPS[c.op];
    if (!op) throw new Error('unknown op ' + c.op);
    await admin('POST', '/reset', input.seed);
    await admin('DELETE', '/requests');
    const r = { ok: true, items: null, error: null };
    try {
      r.items = await op(client(c.auth), c.args);
    } catch (e) {
      r.ok = false;
      r.error = { status: e.status === undefined ? null : e.status, name: e.constructor.name,
        message: String(e.message).slice(0, 300) };
    }
    r.requests = await admin('GET', '/requests');
    out.cases[c.name] = r;
  }
  process.stdout.write(JSON.stringify(out));
})().catch((e) => {
  process.stderr.write('sdk_parity.js: ' + (e.stack || e) + '\n');
  process.exit(1);
});
