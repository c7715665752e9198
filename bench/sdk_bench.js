// bench/sdk_bench.js: the official TypeScript SDK (npm cloudflare@7.3.0,
// installed by tools/npm.sh into vendor/npm) doing make bench's workloads.
// usage: node bench/sdk_bench.js a|b|c BASE_URL CAFILE|- N
// The test CA reaches Node's TLS through NODE_EXTRA_CA_CERTS (run.sh sets
// it). Node's fetch keeps connections alive in its global pool, so a fresh
// client per listing (c) may reuse the previous listing's connection.
// Workloads and output as in bench/cfiam_bench.lua.
'use strict';
const fs = require('fs');
const path = require('path');

const [workload, baseURL, , nArg] = process.argv.slice(2);
const n = Number(nArg);
const env = process.env;
const Cloudflare = require(path.join(env.BENCH_SDK_PREFIX, 'node_modules', 'cloudflare')).default;
const account = env.BENCH_ACCOUNT;

const client = () => new Cloudflare({ apiToken: 'test-token', baseURL, maxRetries: 0 });
const now = () => Number(process.hrtime.bigint()) / 1e6; // ms
const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e3; }; // ms

async function main() {
  if (workload === 'a') {
    const c = client();
    const group = env.BENCH_G_SMALL;
    const members = [{ id: env.BENCH_SMALL_ID }];
    const once = async () => {
      const page = await c.iam.userGroups.members.update(group, { account_id: account, members });
      if (page.result.length !== 1) throw new Error('unexpected answer');
    };
    for (let i = 0; i < Math.floor(n / 10) + 1; i++) await once();
    const t0 = now();
    const c0 = cpu();
    for (let i = 0; i < n; i++) await once();
    const us = ((now() - t0) * 1e3) / n;
    console.log(`us_per_call ${us.toFixed(3)} cpu_us_per_call ${(((cpu() - c0) * 1e3) / n).toFixed(3)}`);
  } else if (workload === 'b') {
    const ids = fs.readFileSync(path.join(env.BENCH_OUT, env.BENCH_B_IDS || 'ids_large.txt'), 'utf8').trim().split('\n');
    const c = client();
    const t0 = now();
    const c0 = cpu();
    const members = ids.map((id) => ({ id }));
    const page = await c.iam.userGroups.members.update(env.BENCH_B_GROUP || env.BENCH_G_LARGE, { account_id: account, members });
    const ms = now() - t0;
    const cpuMs = cpu() - c0;
    const rss = process.resourceUsage().maxRSS; // KiB
    console.log(`ms ${ms.toFixed(3)} cpu_ms ${cpuMs.toFixed(3)} rss_kib ${rss} members ${page.result.length}`);
  } else if (workload === 'c') {
    let t0 = 0;
    let c0 = 0;
    let all = [];
    for (let l = 0; l <= n; l++) {
      if (l === 1) {
        t0 = now();
        c0 = cpu();
      }
      const c = client();
      all = [];
      for await (const m of c.iam.userGroups.members.list(env.BENCH_G_LIST, { account_id: account, per_page: 500 })) {
        all.push(m);
      }
    }
    console.log(`ms ${((now() - t0) / n).toFixed(3)} cpu_ms ${((cpu() - c0) / n).toFixed(3)} members ${all.length}`);
  } else {
    throw new Error(`unknown workload ${workload}`);
  }
}

main().catch((e) => {
  console.error(`sdk_bench: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
