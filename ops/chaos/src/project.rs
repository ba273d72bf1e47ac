//! The projects the chaos suite builds: a `package.json` without dependencies whose build is a
//! small node script. It waits `sleepMs` (so that faults land mid-build), then writes
//! `dist/index.html` (naming the submission's token), `dist/builder.txt` (the build's `HOME`,
//! which names the daemon whose workspace ran it) and `parts` asset files. Every submission has
//! a token of its own (`token.txt`), so every build's sources and output differ and an output
//! can be traced to the request and the daemon that produced it.
//!
//! A recipe can also hold the build at its install (a `postinstall` script) or its build step
//! forever, with a child that ignores SIGTERM, for the cancel scenario.

use serde_json::{json, Value};

const BUILD_JS: &str = r#"const fs = require('fs');
const p = JSON.parse(fs.readFileSync('params.json', 'utf8'));
const token = fs.readFileSync('token.txt', 'utf8').trim();
const stage = process.argv[2] || 'build';
function hold() {
  // A child that ignores SIGTERM: only the SIGKILL after the grace period stops it.
  require('child_process').spawn('sh', ['-c', 'trap "" TERM; sleep 120'], { stdio: 'ignore' });
  setInterval(() => {}, 1000);
}
function build() {
  fs.mkdirSync('dist/assets', { recursive: true });
  fs.writeFileSync('dist/index.html', `<!doctype html><title>${token}</title><h1>${token}</h1>\n`);
  fs.writeFileSync('dist/builder.txt', process.env.HOME || '');
  const filler = 'x'.repeat(p.partBytes);
  for (let i = 0; i < p.parts; i++) {
    fs.writeFileSync(`dist/assets/part-${i}.js`, `// ${token} ${i}\n${filler}\n`);
  }
}
if (stage === 'install') {
  if (p.holdInstall) hold();
} else if (p.holdBuild) {
  hold();
} else {
  setTimeout(build, p.sleepMs);
}
"#;

/// What one build does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// How long the build script waits before writing its output.
    pub sleep_ms: u64,
    /// Asset files written (besides index.html and builder.txt).
    pub parts: usize,
    pub part_bytes: usize,
    /// `pnpm install` never ends (its postinstall holds).
    pub hold_install: bool,
    /// `pnpm run build` never ends.
    pub hold_build: bool,
}

impl Recipe {
    pub fn quick(sleep_ms: u64, parts: usize) -> Self {
        Self {
            sleep_ms,
            parts,
            part_bytes: 512,
            hold_install: false,
            hold_build: false,
        }
    }

    /// The files of the output a finished build must have stored.
    pub fn expected_outputs(&self) -> usize {
        self.parts + 2
    }

    /// The request's `files` for a submission with `token`.
    pub fn files(&self, token: &str) -> Value {
        let mut scripts = json!({ "build": "node build.js build" });
        if self.hold_install {
            scripts["postinstall"] = json!("node build.js install");
        }
        let package = json!({ "name": "chaos-project", "private": true, "scripts": scripts });
        let params = json!({
            "sleepMs": self.sleep_ms,
            "parts": self.parts,
            "partBytes": self.part_bytes,
            "holdInstall": self.hold_install,
            "holdBuild": self.hold_build,
        });
        json!([
            { "path": "package.json", "content": package.to_string() },
            { "path": "build.js", "content": BUILD_JS },
            { "path": "params.json", "content": params.to_string() },
            { "path": "token.txt", "content": token },
        ])
    }
}
