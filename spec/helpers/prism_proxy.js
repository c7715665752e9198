// spec/helpers/prism_proxy.js: starts Prism (the OpenAPI mock server the
// official SDKs test against) on a free loopback port and puts a recording
// proxy in front of it, for spec/helpers/prism.lua.
//
//   node prism_proxy.js PRISM_BIN SPEC_FILE LOG_FILE
//
// Prints "READY <proxy port> <prism port>" once Prism says it listens (or
// "FAILED <reason>" and exits 1). Every exchange through the proxy appends
// one JSON line to LOG_FILE *before* the answer is sent on, so when a
// client call returns its line is already there:
//   {"method","url","req_headers","status","violations","res_headers","body"}
// "violations" is Prism's sl-violations header (null when absent); cfiam
// does not expose response headers, which is why the proxy exists.
//
// Prism's list examples never run out of pages (count 1, total_count 2000
// on every page), so no listing against it can complete. A request that
// carries "X-Conformance-Finite-Lists: 1" (set through cfiam's `headers`
// option; the proxy removes it before Prism sees the request) gets Prism's
// 2xx list answer trimmed to a one-page listing: page 1 unchanged except
// total_count = its item count, later pages empty. Prism's verdict on the
// request itself is untouched; the log keeps Prism's own body too.
// Stops Prism and exits on SIGTERM/SIGINT, or when its parent process is
// gone (so a crashed test run leaves nothing behind).
'use strict';
const http = require('http');
const net = require('net');
const fs = require('fs');
const { spawn } = require('child_process');

const [prismBin, specFile, logFile] = process.argv.slice(2);
if (!prismBin || !specFile || !logFile) {
  console.log('FAILED usage: node prism_proxy.js PRISM_BIN SPEC_FILE LOG_FILE');
  process.exit(1);
}
const parent = process.ppid;
let prism = null;

function stop(code) {
  if (prism && prism.exitCode === null) prism.kill('SIGTERM');
  process.exit(code);
}
process.on('SIGTERM', () => stop(0));
process.on('SIGINT', () => stop(0));
// Parent gone: nobody will stop us, so stop ourselves.
setInterval(() => {
  try { process.kill(parent, 0); } catch (e) { stop(0); }
}, 500).unref();

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = s.address().port;
      s.close(() => resolve(port));
    });
  });
}

function startPrism(port) {
  return new Promise((resolve, reject) => {
    prism = spawn(process.execPath,
      [prismBin, 'mock', '-h', '127.0.0.1', '-p', String(port), specFile],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const onData = (chunk) => {
      out += chunk.toString();
      if (out.includes('Prism is listening')) resolve();
      else if (/✖\s+fatal/.test(out)) reject(new Error(out.slice(-500).replace(/\s+/g, ' ')));
      if (out.length > 65536) out = out.slice(-4096);
    };
    prism.stdout.on('data', onData);
    prism.stderr.on('data', onData);
    prism.on('exit', (code) => reject(new Error('prism exited with ' + code + ': ' +
      out.slice(-500).replace(/\s+/g, ' '))));
  });
}

const FINITE = 'x-conformance-finite-lists';

// Prism's list answer as page `page` of a listing that ends after page 1.
function finiteList(url, status, body) {
  if (status < 200 || status > 299) return body;
  let j;
  try { j = JSON.parse(body.toString()); } catch (e) { return body; }
  if (!j || !Array.isArray(j.result) || !j.result_info) return body;
  const page = Number(new URL(url, 'http://x').searchParams.get('page') || 1);
  const n = j.result.length;
  if (page > 1) { j.result = []; j.result_info.count = 0; }
  j.result_info.page = page;
  j.result_info.total_count = n;
  return Buffer.from(JSON.stringify(j));
}

function startProxy(prismPort) {
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const finite = req.headers[FINITE] === '1';
      const headers = Object.assign({}, req.headers, { host: '127.0.0.1:' + prismPort });
      delete headers[FINITE];
      const up = http.request({ host: '127.0.0.1', port: prismPort, method: req.method,
        path: req.url, headers }, (ur) => {
        const rchunks = [];
        ur.on('data', (c) => rchunks.push(c));
        ur.on('end', () => {
          const rbody = Buffer.concat(rchunks);
          const sent = finite ? finiteList(req.url, ur.statusCode, rbody) : rbody;
          fs.appendFileSync(logFile, JSON.stringify({
            method: req.method, url: req.url, req_headers: headers,
            req_body: body.length ? body.toString() : null,
            status: ur.statusCode, violations: ur.headers['sl-violations'] || null,
            res_headers: ur.headers, body: rbody.toString(),
            finite, sent_body: sent === rbody ? null : sent.toString(),
          }) + '\n');
          const rh = Object.assign({}, ur.headers, { 'content-length': String(sent.length) });
          delete rh['transfer-encoding'];
          res.writeHead(ur.statusCode, rh);
          res.end(sent);
        });
      });
      up.on('error', (e) => {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end('prism_proxy: ' + e.message);
      });
      up.end(body);
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve(server.address().port));
  });
}

// Bound the start: a Prism that never says it listens fails the suite.
const startDeadline = setTimeout(() => {
  console.log('FAILED prism did not say it listens within 60 s');
  stop(1);
}, 60000);

(async () => {
  try {
    fs.writeFileSync(logFile, '');
    const prismPort = await freePort();
    await startPrism(prismPort);
    const proxyPort = await startProxy(prismPort);
    clearTimeout(startDeadline);
    console.log('READY ' + proxyPort + ' ' + prismPort);
  } catch (e) {
    console.log('FAILED ' + e.message);
    stop(1);
  }
})();
