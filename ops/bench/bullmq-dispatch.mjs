// ops/bench/bullmq-dispatch.mjs - the BullMQ side of Kiln's dispatch benchmark.
//
//   node ops/bench/bullmq-dispatch.mjs --redis redis://127.0.0.1:PORT --queue NAME \
//        [--jobs 100] [--warmup 5] [--workers 2] [--pause-ms 100] [--spawn SHIM]
//
// Starts `workers` worker processes (this script again, with --worker: a BullMQ Worker of
// concurrency 1 each, the way Kiln's daemons are processes of their own), waits until they are
// ready, then adds jobs one at a time: `pause-ms` of quiet, the clock read, `queue.add`, and a
// wait until a worker's processor function reports that it was invoked. The processor reads the
// clock as its first act and reports it over the IPC channel (the report's own latency does not
// count). Both clocks are process.hrtime.bigint(): CLOCK_MONOTONIC, one clock for every process
// on the machine. Prints one JSON line: {p50Ms, p99Ms, samples, bullmqVersion}.
//
// With --spawn SHIM (the benchmark's pnpm shim, src/bin/pnpm-shim.rs), the processor instead
// starts the build's process, as a BullMQ + Node worker farm must: `child_process.spawn` of a
// copy of the shim as `pnpm install` (with no other pnpm on its PATH, the shim records its start
// and exits), and the sample ends when that process ran its first instructions, as Kiln's does.
// The shim's clock is CLOCK_REALTIME; each worker converts it to CLOCK_MONOTONIC with an offset
// read once at its start (performance.timeOrigin + performance.now(), microsecond precision).
// BullMQ and ioredis come from ./node (npm ci there; run.sh does it).

import { createRequire } from 'node:module';
import { fork, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(new URL('./node/package.json', import.meta.url));
const { Queue, Worker } = require('bullmq');
const bullmqVersion = require('bullmq/package.json').version;
const PREFIX = 'kiln-bench-bull';

function args() {
  const out = {
    jobs: 100,
    warmup: 5,
    workers: 2,
    'pause-ms': 100,
    redis: '',
    queue: '',
    spawn: '',
    worker: false,
  };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, '');
    if (key === 'worker') {
      out.worker = true;
      continue;
    }
    if (!(key in out) || argv[i + 1] === undefined) {
      throw new Error(`unknown or incomplete argument ${argv[i]}`);
    }
    out[key] = typeof out[key] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
    i++;
  }
  if (!out.redis || !out.queue) throw new Error('--redis and --queue are required');
  return out;
}

function connection(redis) {
  const url = new URL(redis);
  return { host: url.hostname, port: Number(url.port || 6379), maxRetriesPerRequest: null };
}

// Nearest rank, as in ops/bench/src/stats.rs.
function percentile(sorted, p) {
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(Math.max(rank, 1), sorted.length) - 1];
}

// The same no-op project Kiln's side builds.
function noopBody(project) {
  return {
    userId: 'bench-user',
    projectId: project,
    files: [
      { path: 'package.json', content: '{"name":"kiln-bench-noop","private":true}' },
      { path: 'public/index.html', content: `<h1>${project}</h1>` },
    ],
  };
}

// The shim, copied into a folder of this worker's (it records into starts.log beside itself).
function shimCopy(shim) {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-bench-bull-'));
  copyFileSync(shim, join(dir, 'pnpm'));
  return dir;
}

// Starts the shim as `pnpm install` and resolves with the CLOCK_MONOTONIC time of its start.
function startProcess(dir, offsetNs) {
  const log = join(dir, 'starts.log');
  rmSync(log, { force: true });
  return new Promise((resolve, reject) => {
    const child = spawn(join(dir, 'pnpm'), ['install'], { cwd: dir, env: { PATH: dir }, stdio: 'ignore' });
    child.once('error', reject);
    child.once('exit', () => {
      try {
        const realtime = BigInt(readFileSync(log, 'utf8').split(' ')[0]);
        resolve(realtime - offsetNs);
      } catch (e) {
        reject(e);
      }
    });
  });
}

async function runWorker(opts) {
  const dir = opts.spawn ? shimCopy(opts.spawn) : null;
  // CLOCK_REALTIME - CLOCK_MONOTONIC, in ns.
  const offsetNs =
    BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6)) - process.hrtime.bigint();
  const worker = new Worker(
    opts.queue,
    async (job) => {
      const invoked = dir ? await startProcess(dir, offsetNs) : process.hrtime.bigint();
      process.send({ seq: job.data.seq, invoked: invoked.toString() });
    },
    { connection: connection(opts.redis), prefix: PREFIX, concurrency: 1 },
  );
  worker.on('error', (e) => console.error(`[bullmq worker] ${e.message}`));
  await worker.waitUntilReady();
  process.send({ ready: true });
  process.on('message', async (m) => {
    if (m && m.stop) {
      await worker.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
      process.exit(0);
    }
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const opts = args();
  if (opts.worker) return runWorker(opts);

  const self = fileURLToPath(import.meta.url);
  const waiting = new Map(); // seq -> resolve(invoked)
  const workers = [];
  const ready = [];
  for (let w = 0; w < opts.workers; w++) {
    const forwarded = ['--worker', '--redis', opts.redis, '--queue', opts.queue];
    if (opts.spawn) forwarded.push('--spawn', opts.spawn);
    const child = fork(self, forwarded, {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    ready.push(
      new Promise((resolve, reject) => {
        child.once('exit', (code) => reject(new Error(`worker exited with ${code}`)));
        child.on('message', (m) => {
          if (m.ready) resolve();
          else if (m.seq !== undefined) waiting.get(m.seq)?.(BigInt(m.invoked));
        });
      }),
    );
    workers.push(child);
  }
  const queue = new Queue(opts.queue, { connection: connection(opts.redis), prefix: PREFIX });
  queue.on('error', (e) => console.error(`[bullmq] ${e.message}`));
  try {
    await Promise.all(ready);
    await queue.waitUntilReady();
    // Let every worker settle into its blocking wait for the first job.
    await sleep(300);
    const samples = [];
    for (let seq = 0; seq < opts.warmup + opts.jobs; seq++) {
      await sleep(opts['pause-ms']);
      const invoked = new Promise((resolve) => waiting.set(seq, resolve));
      const data = { seq, ...noopBody(`d${seq}`) };
      const added = process.hrtime.bigint();
      await queue.add('build', data);
      const at = await Promise.race([invoked, sleep(30000).then(() => null)]);
      waiting.delete(seq);
      if (at === null) throw new Error(`job ${seq} was not picked up within 30 s`);
      if (seq >= opts.warmup) samples.push(Number(at - added) / 1e6);
    }
    const sorted = [...samples].sort((a, b) => a - b);
    console.log(
      JSON.stringify({
        p50Ms: percentile(sorted, 50),
        p99Ms: percentile(sorted, 99),
        samples,
        bullmqVersion,
      }),
    );
  } finally {
    await queue.close();
    for (const child of workers) {
      if (child.connected) child.send({ stop: true });
    }
    await Promise.all(workers.map((c) => (c.exitCode !== null ? null : new Promise((r) => c.once('exit', r)))));
  }
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
