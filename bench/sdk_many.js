// bench/sdk_many.js: the official TypeScript SDK (npm cloudflare@7.3.0) in
// bench/many.sh's workload e: 100 groups, each its first member page then
// a PUT of its members.
// usage: node bench/sdk_many.js loop|all16 BASE_URL N
//   loop   one group after another (await in a for loop)
//   all16  Promise.all over batches of 16 groups (each: list, then update)
// Each run on a fresh client, after one untimed warm-up run. Prints
// "ms <median of the N runs>".
'use strict';
const path = require('path');

const [mode, baseURL, nArg] = process.argv.slice(2);
const n = Number(nArg);
const env = process.env;
const Cloudflare = require(path.join(env.BENCH_SDK_PREFIX, 'node_modules', 'cloudflare')).default;
const account = env.BENCH_ACCOUNT;
const members = [{ id: env.BENCH_SMALL_ID }];
const groups = [];
for (let i = 1; i <= 100; i++) groups.push((0xe0000 + i).toString(16).padStart(32, '0'));
const now = () => Number(process.hrtime.bigint()) / 1e6; // ms

async function one(c, g) {
  await c.iam.userGroups.members.list(g, { account_id: account, per_page: 50 });
  await c.iam.userGroups.members.update(g, { account_id: account, members });
}

async function run() {
  const c = new Cloudflare({ apiToken: 'test-token', baseURL, maxRetries: 0 });
  if (mode === 'loop') {
    for (const g of groups) await one(c, g);
  } else {
    for (let i = 0; i < groups.length; i += 16) {
      await Promise.all(groups.slice(i, i + 16).map((g) => one(c, g)));
    }
  }
}

async function main() {
  await run();
  const times = [];
  for (let i = 0; i < n; i++) {
    const t0 = now();
    await run();
    times.push(now() - t0);
  }
  times.sort((a, b) => a - b);
  console.log(`ms ${times[Math.floor((n - 1) / 2)].toFixed(1)}`);
}

main().catch((e) => { console.error('sdk_many:', e.message); process.exit(1); });
