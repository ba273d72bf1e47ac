// ops/bench/bullmq-admission.mjs - the BullMQ side of Kiln's admission benchmark.
//
//   node ops/bench/bullmq-admission.mjs --redis redis://127.0.0.1:PORT --queue NAME \
//        [--requests 5000] [--warmup 200] [--concurrency 32]
//
// Adds `warmup` jobs (dedup ids w0..), then `requests` jobs (dedup ids p0..) to a fresh queue with
// `queue.add(name, data, { deduplication: { id } })`, `concurrency` adds in flight, and prints
// one JSON line: {rate, p50Ms, p99Ms, errors, errorSamples, bullmqVersion, jobsInQueue}.
// The job data is the same body Kiln admits (a static site of one index.html).
// BullMQ and ioredis come from ./node (npm ci there; run.sh does it).

import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';

const require = createRequire(new URL('./node/package.json', import.meta.url));
const { Queue } = require('bullmq');
const bullmqVersion = require('bullmq/package.json').version;

function args() {
  const out = { requests: 5000, warmup: 200, concurrency: 32, redis: '', queue: '' };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in out) || argv[i + 1] === undefined) {
      throw new Error(`unknown or incomplete argument ${argv[i]}`);
    }
    out[key] = typeof out[key] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
  }
  if (!out.redis || !out.queue) throw new Error('--redis and --queue are required');
  return out;
}

function siteBody(project) {
  return {
    userId: 'bench-user',
    projectId: project,
    files: [
      {
        path: 'index.html',
        content: `<!doctype html>\n<title>${project}</title>\n<h1>Kiln bench ${project}</h1>\n`,
      },
    ],
  };
}

// Nearest rank, as in ops/bench/src/stats.rs.
function percentile(sorted, p) {
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(Math.max(rank, 1), sorted.length) - 1];
}

async function blast(queue, prefix, n, concurrency) {
  const items = Array.from({ length: n }, (_, i) => `${prefix}${i}`);
  const latencies = [];
  const errorSamples = [];
  let errors = 0;
  let next = 0;
  const started = performance.now();
  async function sender() {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      const id = items[i];
      const data = siteBody(id);
      const t0 = performance.now();
      try {
        await queue.add('build', data, { deduplication: { id } });
      } catch (e) {
        errors++;
        if (errorSamples.length < 3) errorSamples.push(String(e && e.message ? e.message : e));
      }
      latencies.push(performance.now() - t0);
    }
  }
  await Promise.all(Array.from({ length: concurrency }, sender));
  const seconds = (performance.now() - started) / 1000;
  return { seconds, latencies, errors, errorSamples };
}

async function main() {
  const opts = args();
  const url = new URL(opts.redis);
  const queue = new Queue(opts.queue, {
    connection: { host: url.hostname, port: Number(url.port || 6379) },
    prefix: 'kiln-bench-bull',
  });
  queue.on('error', (e) => console.error(`[bullmq] ${e.message}`));
  try {
    await queue.waitUntilReady();
    const warm = await blast(queue, 'w', opts.warmup, opts.concurrency);
    if (warm.errors) throw new Error(`warm-up: ${warm.errors} errors: ${warm.errorSamples}`);
    const run = await blast(queue, 'p', opts.requests, opts.concurrency);
    const sorted = [...run.latencies].sort((a, b) => a - b);
    const counts = await queue.getJobCounts('waiting', 'prioritized', 'delayed');
    const jobsInQueue = Object.values(counts).reduce((a, b) => a + b, 0);
    console.log(
      JSON.stringify({
        rate: opts.requests / run.seconds,
        p50Ms: percentile(sorted, 50),
        p99Ms: percentile(sorted, 99),
        errors: run.errors,
        errorSamples: run.errorSamples,
        bullmqVersion,
        jobsInQueue,
      }),
    );
  } finally {
    await queue.close();
  }
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
