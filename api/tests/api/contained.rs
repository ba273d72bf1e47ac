//! Hostile builds: scripts that fork-bomb, allocate forever, spin forever, fill the disk, print
//! without end, or publish what they must not. Each fails with the limit (or the reason) named,
//! its processes are killed, nothing is published, and the daemon goes on building.
//!
//! Each kill is timed from the moment the script says it starts its attack (`ATTACK <ms>`) to
//! the line Kiln writes when it killed the build (`… killed at <time>`); the table is printed
//! (`--nocapture` shows it).

use serde_json::{json, Value};

use crate::helpers::{build_body, spawn_app, unique, Options};

/// A project whose build script is `script` (run by `sh`), with `files` beside it.
fn project(script: &str, files: &[(&str, &str)]) -> Value {
    let mut all = vec![
        json!({ "path": "package.json", "content": json!({ "name": "p", "private": true, "scripts": { "build": "sh attack.sh" } }).to_string() }),
        json!({ "path": "attack.sh", "content": format!("echo ATTACK $(date +%s%3N)\n{script}\n") }),
    ];
    all.extend(
        files
            .iter()
            .map(|(path, content)| json!({ "path": path, "content": content })),
    );
    Value::Array(all)
}

/// Milliseconds from the script's `ATTACK` line to Kiln's kill line, when both are there.
fn breach_to_kill_ms(log: &str) -> Option<i64> {
    let attack: i64 = log
        .lines()
        .find_map(|l| l.strip_prefix("ATTACK "))?
        .trim()
        .parse()
        .ok()?;
    let killed = log
        .lines()
        .find_map(|l| l.split_once("killed at ").map(|(_, t)| t.trim().to_owned()))?;
    let killed = chrono::DateTime::parse_from_rfc3339(&killed).ok()?;
    Some(killed.timestamp_millis() - attack)
}

/// Prints a gigabyte without a newline: the daemon must neither hold it (a line is cut at a
/// bound and the rest dropped) nor let it run past the log limit.
const GIGABYTE_NO_NEWLINE: &str = "head -c 1073741824 /dev/zero | tr '\\0' x";

/// The resident memory of this process (the daemons of the tests run in it), in bytes.
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().strip_suffix("kB"))
                .and_then(|kb| kb.trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

struct Case {
    name: &'static str,
    files: Value,
    /// In the build's error.
    error: &'static str,
}

#[tokio::test]
async fn hostile_build_scripts_fail_with_the_limit_named_and_the_daemon_goes_on() {
    let app = spawn_app(Options {
        builders: 4,
        timeout_secs: 120,
        env: vec![
            ("KILN_BUILD_MEMORY_MB", "256".into()),
            ("KILN_BUILD_MAX_PROCS", "64".into()),
            ("KILN_BUILD_DISK_MB", "300".into()),
            ("KILN_BUILD_CPU_SECS", "8".into()),
            ("KILN_MAX_LOG_KB", "64".into()),
        ],
        ..Options::default()
    })
    .await;
    let cases = vec![
        Case {
            name: "fork bomb",
            files: project("bomb() { bomb | bomb & }; bomb; sleep 60", &[]),
            error: "process limit 64 exceeded",
        },
        Case {
            name: "allocate forever",
            files: project(
                "node -e 'const a = []; for (;;) a.push(Buffer.alloc(16 * 1024 * 1024, 1))'",
                &[],
            ),
            error: "memory limit 256 MB exceeded",
        },
        Case {
            name: "spin forever",
            files: project("node -e 'for (;;) {}'", &[]),
            error: "CPU limit 8 s exceeded",
        },
        Case {
            name: "fill the disk",
            files: project("head -c 4000000000 /dev/zero > fill.bin; sleep 60", &[]),
            error: "disk limit 300 MB exceeded",
        },
        Case {
            name: "a 1 GB file in the output",
            files: project("mkdir -p dist; head -c 1073741824 /dev/zero > dist/big.bin", &[]),
            error: "disk limit 300 MB exceeded",
        },
        Case {
            name: "print gigabytes of logs",
            files: project("yes 'all work and no play'", &[]),
            error: "log limit 64 KB exceeded",
        },
        Case {
            name: "a gigabyte with no newline",
            files: project(GIGABYTE_NO_NEWLINE, &[]),
            error: "log limit 64 KB exceeded",
        },
        Case {
            name: "50,000 tiny files in the output",
            files: project(
                "node -e \"const fs = require('fs'); fs.mkdirSync('dist'); fs.writeFileSync('dist/index.html', 'x'); for (let i = 0; i < 50000; i++) fs.writeFileSync('dist/f' + i + '.txt', 'x')\"",
                &[],
            ),
            error: "the output has more than 20000 files",
        },
        Case {
            name: "a symlink out of the output",
            files: project("mkdir -p dist; echo hi > dist/index.html; ln -s /etc/passwd dist/leak.txt", &[]),
            error: "leak.txt is a symbolic link to /etc/passwd, which is outside the output",
        },
        Case {
            name: "a relative symlink out of the output",
            files: project("mkdir -p dist; echo hi > dist/index.html; ln -s ../../package.json dist/up.json", &[]),
            error: "is a symbolic link to ../../package.json, which is outside the output",
        },
        Case {
            name: "a hard link out of the output",
            files: project("mkdir -p dist; echo hi > dist/index.html; ln attack.sh dist/copy.sh", &[]),
            error: "copy.sh is a hard link to a file outside the output",
        },
    ];
    let blobs_before = app.blob_count();
    let mut ids = Vec::new();
    for case in &cases {
        let body = build_body("u_hostile", &unique("hostile"), case.files.clone());
        ids.push(app.submit(&body).await);
    }
    let mut table = Vec::new();
    for (case, id) in cases.iter().zip(&ids) {
        let build = app.wait(id).await;
        assert_eq!(build["status"], "failed", "{}: {build}", case.name);
        let error = build["error"].as_str().unwrap_or_default();
        assert!(error.contains(case.error), "{}: {error:?}", case.name);
        let log = app.log_text(id).await;
        table.push((
            case.name,
            error.lines().next().unwrap_or_default().to_owned(),
            breach_to_kill_ms(&log),
        ));
        let output_key = kiln_shared::store::Artifacts::manifest_key(
            kiln_shared::domain::VersionId::parse(id).unwrap(),
            kiln_shared::store::ManifestKind::Output,
        );
        let store = kiln_shared::store::Artifacts::new(std::sync::Arc::new(
            kiln_shared::store::FsStore::new(app.artifacts_dir.clone().unwrap()),
        ));
        assert!(
            store.get_manifest(&output_key).await.unwrap().is_none(),
            "{}: nothing published",
            case.name
        );
    }
    eprintln!("\n{:<34} {:>14}  error", "hostile build", "breach→kill ms");
    for (name, error, ms) in &table {
        let ms = ms.map_or("-".to_owned(), |ms| ms.to_string());
        eprintln!("{name:<34} {ms:>14}  {error}");
    }
    // Only the sources were stored: no output blob of any of them.
    assert!(app.blob_count() - blobs_before <= 2 * cases.len(), "only sources");

    // The gigabyte with no newline again, alone: the daemon, in this process, holds a bounded
    // piece of it, not the line. Resident memory is sampled while it runs (memory freed at the
    // end would hide a peak); other tests of this binary running at the same time count too,
    // hence the margin.
    let before = resident_bytes();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let sampler = tokio::spawn({
        let peak = peak.clone();
        async move {
            loop {
                peak.fetch_max(resident_bytes(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    });
    let id = app
        .submit(&build_body(
            "u_hostile",
            &unique("gigabyte"),
            project(GIGABYTE_NO_NEWLINE, &[]),
        ))
        .await;
    let build = app.wait(&id).await;
    sampler.abort();
    assert_eq!(build["status"], "failed", "{build}");
    let error = build["error"].as_str().unwrap_or_default();
    assert!(error.contains("log limit 64 KB exceeded"), "{error:?}");
    let log = app.log_text(&id).await;
    assert!(log.contains(" [kiln: line cut at 16 KB]"), "the line was cut");
    let grown = peak
        .load(std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(before);
    assert!(
        grown < 100 * 1024 * 1024,
        "the test process's resident memory grew by {} MB while a build printed a gigabyte \
         with no newline",
        grown / (1024 * 1024)
    );

    // The daemon goes on: a plain build after all that is deployed.
    let id = app
        .submit(&build_body(
            "u_hostile",
            &unique("after"),
            project("mkdir -p dist; echo fine > dist/index.html", &[]),
        ))
        .await;
    assert_eq!(app.wait(&id).await["status"], "deployed");
}

const PROBE_JS: &str = r#"
const fs = require('fs');
const net = require('net');
const path = require('path');
const [daemonPid, configFile, dataDir, redisPort, pgPort] = process.argv.slice(2);
const out = {};
const attempt = (name, f) => {
  try { const v = f(); out[name] = 'READ ' + JSON.stringify(v).slice(0, 300); } catch (e) { out[name] = 'ERR ' + e.code; }
};
attempt('environ', () => fs.readFileSync(`/proc/${daemonPid}/environ`, 'latin1'));
attempt('config', () => fs.readFileSync(configFile, 'utf8'));
attempt('data', () => fs.readdirSync(dataDir));
attempt('shadow', () => fs.readFileSync('/etc/shadow', 'utf8'));
attempt('rootHome', () => fs.readdirSync('/root'));
const work = path.dirname(path.dirname(process.env.HOME));
const own = path.basename(path.dirname(process.env.HOME));
attempt('otherWorkspaces', () => fs.readdirSync(work).filter(n => n !== own));
const probe = (host, port) => new Promise(done => {
  const s = net.connect({ host, port: Number(port), timeout: 1500 });
  s.on('connect', () => { s.destroy(); done('CONNECTED'); });
  s.on('timeout', () => { s.destroy(); done('ERR timeout'); });
  s.on('error', e => done('ERR ' + e.code));
});
(async () => {
  out.metadataService = await probe('169.254.169.254', 80);
  out.redis = await probe('127.0.0.1', redisPort);
  out.postgres = await probe('127.0.0.1', pgPort);
  fs.mkdirSync('dist', { recursive: true });
  fs.writeFileSync('dist/index.html', 'probed');
  fs.writeFileSync('dist/probe.json', JSON.stringify(out));
})();
"#;

fn port_of(url: &str) -> String {
    url::Url::parse(url).unwrap().port().unwrap().to_string()
}

#[tokio::test]
async fn a_build_cannot_read_kilns_secrets_nor_reach_its_services_or_the_metadata_address() {
    let app = spawn_app(Options {
        builders: 2,
        ..Options::default()
    })
    .await;
    // A config file as an operator would keep it: the daemon's, readable by it alone.
    let etc = tempfile::tempdir().unwrap();
    std::fs::set_permissions(etc.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = etc.path().join("kiln.toml");
    std::fs::write(&config, "hmac_secret = \"test-hmac-secret-in-a-file\"\n").unwrap();
    std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let data = app.artifacts_dir.clone().unwrap();
    let redis_port = port_of(&kiln_testkit::env::test::redis_url());
    let pg_port = port_of(&kiln_testkit::env::test::database_url());
    let script = format!(
        "node probe.js {} {} {} {redis_port} {pg_port}",
        std::process::id(),
        config.display(),
        data.display()
    );
    let files = json!([
        { "path": "package.json", "content": json!({ "name": "p", "private": true, "scripts": { "build": script } }).to_string() },
        { "path": "probe.js", "content": PROBE_JS },
    ]);
    // A second build runs at the same time, so there is another workspace to look for.
    let other = app
        .submit(&build_body(
            "u_probe",
            &unique("other"),
            project("sleep 3; mkdir -p dist; echo x > dist/index.html", &[]),
        ))
        .await;
    let id = app.submit(&build_body("u_probe", &unique("probe"), files)).await;
    let build = app.wait(&id).await;
    assert_eq!(build["status"], "deployed", "{build}");
    app.wait(&other).await;
    let probe: Value = app.preview(&id, "/probe.json").await.json().await.unwrap();
    eprintln!("what the build could reach: {probe:#}");
    for (name, result) in probe.as_object().unwrap() {
        let result = result.as_str().unwrap();
        if name == "otherWorkspaces" && result == "READ []" {
            continue; // it sees its own workspace only
        }
        assert!(result.starts_with("ERR"), "the build reached {name}: {result}");
    }
    assert!(probe.get("environ").is_some() && probe.get("redis").is_some());
}

/// Run as the project's `postinstall`: what an install script can reach. Direct connections
/// (the build's namespace has no network, not even DNS) and requests through the egress proxy.
const INSTALL_PROBE_JS: &str = r#"
const fs = require('fs');
const net = require('net');
const dns = require('dns');
const [redisPort, pgPort, registryIp] = process.argv.slice(2);
const direct = (host, port) => new Promise(done => {
  const s = net.connect({ host, port: Number(port), timeout: 3000 });
  s.on('connect', () => { s.destroy(); done('CONNECTED'); });
  s.on('timeout', () => { s.destroy(); done('ERR timeout'); });
  s.on('error', e => done('ERR ' + e.code));
});
const viaProxy = target => new Promise(done => {
  const s = net.connect({ host: '127.0.0.1', port: 3128, timeout: 20000 });
  let got = '';
  s.on('connect', () => s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`));
  s.on('data', d => { got += d; if (got.includes('\r\n')) { s.destroy(); done(got.split('\r\n')[0]); } });
  s.on('timeout', () => { s.destroy(); done('ERR timeout'); });
  s.on('error', e => done('ERR ' + e.code));
});
(async () => {
  const out = {};
  out.dns = await new Promise(done => dns.lookup('registry.npmjs.org', (e, a) => done(e ? 'ERR ' + e.code : 'RESOLVED ' + a)));
  out.directRegistryByName = await direct('registry.npmjs.org', 443);
  out.directRegistryByAddress = await direct(registryIp, 443);
  out.directMetadataService = await direct('169.254.169.254', 80);
  out.directRedis = await direct('127.0.0.1', redisPort);
  out.directPostgres = await direct('127.0.0.1', pgPort);
  out.proxyMetadataService = await viaProxy('169.254.169.254:80');
  out.proxyRedis = await viaProxy(`127.0.0.1:${redisPort}`);
  out.proxyPostgresByName = await viaProxy(`localhost:${pgPort}`);
  out.proxyRegistryOtherPort = await viaProxy('registry.npmjs.org:80');
  out.proxyRegistry = await viaProxy('registry.npmjs.org:443');
  fs.writeFileSync('install-probe.json', JSON.stringify(out));
})();
"#;

#[tokio::test]
async fn an_install_reaches_the_package_registry_through_the_egress_proxy_and_nothing_else() {
    // A deep work folder, as operators' can be: the proxy's socket (at most 107 bytes) must not
    // be made under it (the chaos suite's long paths found that).
    let deep = tempfile::tempdir().unwrap();
    let work = deep.path().join("a-work-folder-with-a-long-name".repeat(4));
    std::fs::create_dir_all(&work).unwrap();
    for dir in [deep.path(), work.as_path()] {
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o711)).unwrap();
    }
    let app = spawn_app(Options {
        env: vec![
            ("KILN_WORK_DIR", work.display().to_string()),
            ("KILN_PNPM_STORE", work.join("pnpm-store").display().to_string()),
        ],
        ..Options::default()
    })
    .await;
    let redis_port = port_of(&kiln_testkit::env::test::redis_url());
    let pg_port = port_of(&kiln_testkit::env::test::database_url());
    use std::net::ToSocketAddrs;
    let registry_ip = ("registry.npmjs.org", 443)
        .to_socket_addrs()
        .expect("the test machine resolves the registry")
        .next()
        .unwrap()
        .ip();
    let package = json!({
        "name": "egress",
        "private": true,
        "dependencies": { "is-number": "7.0.0" },
        "scripts": {
            "postinstall": format!("node install-probe.js {redis_port} {pg_port} {registry_ip}"),
            "build": "node build.js",
        },
    });
    let build_js = r#"
const fs = require('fs');
const isNumber = require('is-number');
fs.mkdirSync('dist', { recursive: true });
fs.writeFileSync('dist/index.html', 'is-number(5): ' + isNumber(5));
fs.copyFileSync('install-probe.json', 'dist/install-probe.json');
"#;
    let files = json!([
        { "path": "package.json", "content": package.to_string() },
        { "path": "install-probe.js", "content": INSTALL_PROBE_JS },
        { "path": "build.js", "content": build_js },
    ]);
    let id = app
        .submit(&build_body("u_egress", &unique("egress"), files))
        .await;
    let build = app.wait(&id).await;
    let log = app.log_text(&id).await;
    assert_eq!(build["status"], "deployed", "{build}\n{log}");

    // The dependency came from the registry, through the proxy.
    let page = app.preview(&id, "/").await.text().await.unwrap();
    assert_eq!(page, "is-number(5): true");
    let probe: Value = app
        .preview(&id, "/install-probe.json")
        .await
        .json()
        .await
        .unwrap();
    eprintln!("what the install script could reach: {probe:#}");
    let result = |name: &str| {
        probe[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} in {probe}"))
            .to_owned()
    };
    for name in [
        "dns",
        "directRegistryByName",
        "directRegistryByAddress",
        "directMetadataService",
        "directRedis",
        "directPostgres",
    ] {
        assert!(
            result(name).starts_with("ERR"),
            "the install reached {name}: {}",
            result(name)
        );
    }
    for name in [
        "proxyMetadataService",
        "proxyRedis",
        "proxyPostgresByName",
        "proxyRegistryOtherPort",
    ] {
        assert_eq!(result(name), "HTTP/1.1 403 Forbidden", "{name}");
    }
    assert_eq!(result("proxyRegistry"), "HTTP/1.1 200 Connection Established");
    // Each refusal is in the build's log, once, saying what is allowed.
    assert!(
        log.contains(
            "[kiln] egress refused: 169.254.169.254:80 (an install may reach registry.npmjs.org:443 only"
        ),
        "{log}"
    );
    assert_eq!(log.matches("egress refused: 127.0.0.1:").count(), 1, "{log}");
}

#[tokio::test]
async fn without_namespaces_nor_cgroups_the_builder_says_so_and_the_user_and_limits_still_hold() {
    let app = spawn_app(Options {
        builders: 1,
        timeout_secs: 120,
        env: vec![
            ("KILN_SANDBOX", "off".into()),
            ("KILN_BUILD_CGROUPS", "off".into()),
            ("KILN_BUILD_MEMORY_MB", "200".into()),
            ("KILN_BUILD_CPU_SECS", "3".into()),
        ],
        ..Options::default()
    })
    .await;
    // Said where operators look: the fleet view (and a warning at start-up).
    let mut fleet = app.get_json("/v1/builders").await;
    for _ in 0..100 {
        if fleet["builders"][0]["sandbox"].is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        fleet = app.get_json("/v1/builders").await;
    }
    let sandbox = fleet["builders"][0]["sandbox"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let root = nix::unistd::geteuid().is_root();
    let user = if root {
        "a user per build (200000-200255), store 199999:199999"
    } else {
        "the daemon's user"
    };
    assert_eq!(
        sandbox,
        format!("no namespaces, {user}, no cgroup (memory watched), rlimits, install on the host's network"),
        "{fleet}"
    );

    let whoami = app
        .submit(&build_body(
            "u_fallback",
            &unique("whoami"),
            project("mkdir -p dist; id -u > dist/index.html", &[]),
        ))
        .await;
    let memory = app
        .submit(&build_body(
            "u_fallback",
            &unique("memory"),
            project(
                "node -e 'const a = []; for (;;) a.push(Buffer.alloc(16 * 1024 * 1024, 1))'",
                &[],
            ),
        ))
        .await;
    let cpu = app
        .submit(&build_body(
            "u_fallback",
            &unique("cpu"),
            project("node -e 'for (;;) {}'", &[]),
        ))
        .await;
    assert_eq!(app.wait(&whoami).await["status"], "deployed");
    let uid = app.preview(&whoami, "/").await.text().await.unwrap();
    let uid: u32 = uid.trim().parse().unwrap();
    if root {
        assert!(
            (200_000..=200_255).contains(&uid),
            "builds run as a uid of KILN_BUILD_UIDS: {uid}"
        );
    } else {
        assert_eq!(
            uid,
            nix::unistd::geteuid().as_raw(),
            "builds run as the daemon's user"
        );
    }
    for (id, error) in [
        (&memory, "memory limit 200 MB exceeded"),
        (&cpu, "CPU limit 3 s exceeded"),
    ] {
        let build = app.wait(id).await;
        assert_eq!(build["status"], "failed", "{build}");
        assert!(
            build["error"].as_str().unwrap_or_default().contains(error),
            "{error}: {build}"
        );
    }
}
