'use strict';
// Kiln's egress bridge. It runs inside a build's network namespace, which has no network but
// its own loopback: it listens on 127.0.0.1:PORT, hands every connection to the builder's
// egress proxy through a Unix socket (which lets the package registry through and nothing
// else), and runs the install command with the proxy configured. It exits as the command
// does. Written by Kiln (builder/src/sandbox/egress-bridge.js); it holds no secret.
const net = require('net');
const { spawn } = require('child_process');

// The fleet's package cache, a registry the proxy serves (written in by the daemon; null
// when the cache is off). It is given to pnpm through the environment, over a project's .npmrc.
const REGISTRY = null;

const [socket, port, ...command] = process.argv.slice(2);
const proxy = `http://127.0.0.1:${port}`;
if (REGISTRY) process.env.npm_config_registry = REGISTRY;
for (const name of ['HTTPS_PROXY', 'HTTP_PROXY', 'https_proxy', 'http_proxy',
  'npm_config_https_proxy', 'npm_config_proxy']) {
  process.env[name] = proxy;
}
for (const name of ['NO_PROXY', 'no_proxy', 'npm_config_noproxy']) delete process.env[name];

const server = net.createServer((client) => {
  const upstream = net.connect(socket);
  const end = () => { client.destroy(); upstream.destroy(); };
  client.on('error', end);
  upstream.on('error', end);
  client.on('close', end);
  upstream.on('close', end);
  client.pipe(upstream);
  upstream.pipe(client);
});

server.listen(Number(port), '127.0.0.1', () => {
  const child = spawn(command[0], command.slice(1), { stdio: 'inherit' });
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
    process.on(signal, () => child.kill(signal));
  }
  child.on('error', (e) => {
    process.stderr.write(`[kiln] cannot start ${command[0]}: ${e.message}\n`);
    process.exit(127);
  });
  child.on('exit', (code, signal) => {
    server.close();
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    } else {
      process.exit(code);
    }
  });
});
