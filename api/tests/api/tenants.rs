//! Tenants stay apart: every attack here is written as a tenant would write it, against real
//! daemons (root, the full sandbox: a uid per build, bubblewrap, cgroup, egress proxy), real
//! pnpm and the real registry. Each proves the victim untouched (bytes compared with the
//! registry's tarball, secrets absent from every answer, the host's controls not taken) and the
//! attacker's build failed with a clear message or changed only its own tree.
//!
//! | attack | what stops it |
//! |---|---|
//! | rewrite a package file of the shared store through `node_modules` (in place with size and mtime kept, append, `chmod` then write), from `preinstall`, `postinstall`, `prepare` and the build script | the store's files belong to the store's user, read-only to builds |
//! | rename a file over a package's in `node_modules` | changes the attacker's own tree only |
//! | a `.pnpmfile.cjs` writing into the store; `.npmrc` moving the store | the store's half of the install runs no pnpmfile and pins the store on the command line; builds do not see the store |
//! | the lockfile replaced by a link to `/proc/self/environ`, or by a FIFO | the daemon opens it beneath the project, regular files only |
//! | the output folder a link to a root-only folder, or to `/etc` | the output is opened beneath the project |
//! | a build reading and writing the workspace of a build running beside it | another uid, and a sandbox holding its own workspace only |
//! | a build taking the host's upkeep lock | not in the sandbox, and root's alone |
//! | a build reading a secret the daemon was given as a file (`KILN_HMAC_SECRET_FILE`) | not in the sandbox, and the daemon's alone |
//! | a build of another user's project (of the same name), running beside it, reading its environment values and secrets from its own environment or the processes it can see | values are read per `(user, project)` and given to that build's steps only; a sandbox with its own PID namespace |
//! | a build listing the filesystem artifact store, overwriting or appending to another tenant's published file, adding one | not in the sandbox; group-writable to the farm's own users only |

use std::io::Read;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{build_body, spawn_app, unique, Options, HMAC_SECRET};

/// The registry's `left-pad@1.3.0`: its files, from the tarball (fetched by npm, which checks
/// it against the registry's integrity hash).
async fn left_pad_from_the_registry() -> std::collections::BTreeMap<String, Vec<u8>> {
    from_the_registry("left-pad", "1.3.0").await
}

/// The files of package `name@version` as the registry serves them (`npm pack`).
async fn from_the_registry(name: &str, version: &str) -> std::collections::BTreeMap<String, Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new("npm")
        .args([
            "pack",
            &format!("{name}@{version}"),
            "--silent",
            "--pack-destination",
        ])
        .arg(dir.path())
        .current_dir(dir.path())
        .output()
        .await
        .expect("npm runs");
    assert!(out.status.success(), "npm pack: {out:?}");
    let tgz = std::fs::read(dir.path().join(format!("{name}-{version}.tgz"))).unwrap();
    let mut files = std::collections::BTreeMap::new();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&tgz[..]));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        files.insert(path.trim_start_matches("package/").to_owned(), bytes);
    }
    files
}

/// Tries every way to change the files of `node_modules/left-pad` and prints what happened:
/// `index.js` in place, same size, its mtime put back (pnpm trusts such a store file); the
/// others by append and by `chmod` then write (which change size and mtime, so they get their
/// own files: pnpm would notice those and fetch the package again).
const POISON_JS: &str = r#"
const fs = require('fs');
const where = process.argv[2];
const file = 'node_modules/left-pad/index.js';
const say = (how, f) => { try { f(); console.log(`POISON ${where} ${how}: done`); } catch (e) { console.log(`POISON ${where} ${how}: ${e.code || e.message}`); } };
const real = fs.realpathSync(file);
const st = fs.statSync(real);
const evil = Buffer.alloc(st.size, 'X'); evil.write('/*pwned*/');
say('in-place', () => { const fd = fs.openSync(real, 'r+'); fs.writeSync(fd, evil, 0, evil.length, 0); fs.closeSync(fd); fs.utimesSync(real, st.atime, st.mtime); });
say('append', () => fs.appendFileSync(fs.realpathSync('node_modules/left-pad/COPYING'), '/*pwned*/'));
say('chmod', () => { const t = fs.realpathSync('node_modules/left-pad/test.js'); fs.chmodSync(t, 0o666); fs.writeFileSync(t, 'pwned'); });
say('store', () => { const s = require('child_process').execSync('pnpm store path', { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim(); fs.writeFileSync(s + '/pwned', 'x'); });
if (where === 'build') {
  say('rename-over', () => { fs.writeFileSync(real + '.tmp', evil); fs.renameSync(real + '.tmp', real); });
  fs.mkdirSync('dist', { recursive: true });
  fs.writeFileSync('dist/index.html', '<h1>attacker</h1>');
  fs.copyFileSync(file, 'dist/left-pad.js');
}
"#;

const PNPMFILE: &str = r#"
const fs = require('fs');
if (!process.env.ATTACK_IN_PNPMFILE) {
  process.env.ATTACK_IN_PNPMFILE = '1';
  let wrote = 0;
  try {
    const s = require('child_process').execSync('pnpm store path', { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    for (const d of fs.readdirSync(s + '/files').slice(0, 3)) for (const f of fs.readdirSync(s + '/files/' + d)) { try { fs.writeFileSync(s + '/files/' + d + '/' + f, 'pwned'); wrote++; } catch (e) {} }
  } catch (e) {}
  console.error(`PNPMFILE uid ${process.getuid()} wrote ${wrote} store files`);
}
module.exports = { hooks: {} };
"#;

/// The attacker's project; `settings`: with a `.pnpmfile.cjs` and an `.npmrc` that tries to
/// move the store and the virtual store (two attackers, so that the plain one's in-place
/// write meets the shared store however pnpm treats the other's settings).
fn attacker(settings: bool) -> Value {
    let mut files = json!([
        { "path": "package.json", "content": json!({
            "name": "attacker", "private": true,
            "dependencies": { "left-pad": "1.3.0" },
            "scripts": {
                "preinstall": "node poison.js preinstall || true",
                "postinstall": "node poison.js postinstall",
                "prepare": "node poison.js prepare",
                "build": "node poison.js build"
            }
        }).to_string() },
        { "path": "poison.js", "content": POISON_JS },
    ]);
    if settings {
        let list = files.as_array_mut().unwrap();
        list.push(json!({ "path": ".pnpmfile.cjs", "content": PNPMFILE }));
        list.push(json!({ "path": ".npmrc", "content": "store-dir=/tmp/attacker-store\nside-effects-cache=true\nvirtual-store-dir=/tmp/vs\n" }));
    }
    files
}

fn victim() -> Value {
    json!([
        { "path": "package.json", "content": json!({
            "name": "victim", "private": true,
            "dependencies": { "left-pad": "1.3.0" },
            "scripts": { "build": "node -e \"require('fs').mkdirSync('dist',{recursive:true});require('fs').writeFileSync('dist/index.html','<h1>victim</h1>');for (const f of ['index.js','package.json','README.md','COPYING','test.js']) require('fs').copyFileSync('node_modules/left-pad/'+f,'dist/'+f)\"" }
        }).to_string() },
    ])
}

#[tokio::test]
async fn no_build_changes_the_package_files_another_tenant_reads() {
    // The store inside the work folder (the default): node_modules files are hard links to it.
    let app = spawn_app(Options {
        timeout_secs: 300,
        ..Options::default()
    })
    .await;
    let registry = left_pad_from_the_registry().await;

    let plain = app
        .submit(&build_body("u_attacker", &unique("poison"), attacker(false)))
        .await;
    let plain = app.wait(&plain).await;
    let plain_log = app.log_text(plain["id"].as_str().unwrap()).await;
    assert_eq!(plain["status"], "deployed", "{plain}\n{plain_log}");
    let attack_id = app
        .submit(&build_body("u_attacker", &unique("poison"), attacker(true)))
        .await;
    let attack = app.wait(&attack_id).await;
    let log = app.log_text(&attack_id).await;
    assert_eq!(attack["status"], "deployed", "{attack}\n{log}");
    for (step, how, log) in ["preinstall", "postinstall", "prepare", "build"]
        .into_iter()
        .flat_map(|step| ["in-place", "append", "chmod"].map(|how| (step, how)))
        .flat_map(|(step, how)| [(step, how, &plain_log), (step, how, &log)])
    {
        let line = log
            .lines()
            .find(|l| l.contains(&format!("POISON {step} {how}:")))
            .unwrap_or_else(|| panic!("the attack {step} {how} ran:\n{log}"));
        assert!(!line.ends_with("done"), "{line}\n{log}");
    }
    assert!(
        !log.contains("store files") || log.contains("wrote 0 store files"),
        "{log}"
    );
    // A build that writes where `pnpm store path` says writes into its own sandbox's folders:
    // the store is not there.
    let store = &app.settings.builder.pnpm_store;
    assert!(store.join("v10").is_dir(), "the install used the store");
    assert!(!store.join("v10/pwned").exists() && !store.join("pwned").exists());
    // Renaming over its own file changed its own tree.
    assert!(log.contains("POISON build rename-over: done"), "{log}");
    let own = app
        .preview(&attack_id, "/left-pad.js")
        .await
        .bytes()
        .await
        .unwrap();
    assert!(
        own.starts_with(b"/*pwned*/"),
        "the attacker's own tree is its own"
    );

    let id = app
        .submit(&build_body("u_victim", &unique("victim"), victim()))
        .await;
    let victim = app.wait(&id).await;
    assert_eq!(victim["status"], "deployed", "{victim}");
    let id = id.as_str();
    for file in ["index.js", "package.json", "README.md", "COPYING", "test.js"] {
        let served = app.preview(id, &format!("/{file}")).await.bytes().await.unwrap();
        assert_eq!(&served[..], &registry[file][..], "{file} as the registry has it");
    }
    // Nothing was written where the project's settings pointed.
    assert!(!std::path::Path::new("/tmp/attacker-store").exists());
    assert!(!std::path::Path::new("/tmp/vs").exists());
}

/// The build's half of an install gets its own copies of the files packages declare as
/// commands (pnpm `chmod`s them when it links commands after running scripts). A build that
/// then rewrites such a file changes its own copy: the store's file, which another tenant's
/// build reads, stays as the registry serves it.
#[tokio::test]
async fn a_build_that_rewrites_a_packages_command_changes_its_own_copy_only() {
    let app = spawn_app(Options::default()).await;
    let registry = from_the_registry("semver", "7.6.3").await;
    let command = "node_modules/semver/bin/semver.js";
    let rewrite = format!(
        "node -e \"const fs=require('fs');const f=fs.realpathSync('{command}');fs.writeFileSync(f,'/*pwned*/');console.log('REWROTE', f)\""
    );
    let copy = format!("mkdir -p dist && cp {command} dist/semver.js && echo ok > dist/index.html");
    let project = |script: Option<&str>| {
        let mut scripts = json!({ "build": copy });
        if let Some(script) = script {
            scripts["postinstall"] = json!(script);
        }
        json!([{ "path": "package.json", "content": json!({
            "name": "p", "private": true,
            "dependencies": { "semver": "7.6.3" },
            "scripts": scripts,
        }).to_string() }])
    };
    let attack = app
        .submit(&build_body("u_attacker", &unique("bin"), project(Some(&rewrite))))
        .await;
    let built = app.wait(&attack).await;
    let log = app.log_text(&attack).await;
    assert_eq!(built["status"], "deployed", "{built}\n{log}");
    assert!(log.contains("REWROTE"), "the rewrite ran: {log}");
    let own = app.preview(&attack, "/semver.js").await.bytes().await.unwrap();
    assert_eq!(&own[..], b"/*pwned*/", "the attacker's own copy");

    let victim = app
        .submit(&build_body("u_victim", &unique("bin"), project(None)))
        .await;
    assert_eq!(app.wait(&victim).await["status"], "deployed");
    let served = app.preview(&victim, "/semver.js").await.bytes().await.unwrap();
    assert_eq!(
        &served[..],
        &registry["bin/semver.js"][..],
        "as the registry has it"
    );
}

/// A build whose `postinstall` (or build) leaves `what` in place of `path`.
fn planting(script: &str) -> Value {
    json!([
        { "path": "package.json", "content": json!({
            "name": "planter", "private": true,
            "scripts": { "postinstall": script, "build": "mkdir -p dist && echo ok > dist/index.html" }
        }).to_string() },
    ])
}

#[tokio::test]
async fn the_daemon_never_follows_a_link_or_opens_a_fifo_a_build_left() {
    let app = spawn_app(Options {
        builders: 2,
        timeout_secs: 120,
        ..Options::default()
    })
    .await;
    // A root-only file the attacker names.
    let secret_dir = tempfile::tempdir().unwrap();
    let secret = secret_dir.path().join("root-only.txt");
    std::fs::write(&secret, "root-only-bytes").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();

    let cases = [
        (
            "lockfile to /proc/self/environ",
            planting("rm -f pnpm-lock.yaml; ln -s /proc/self/environ pnpm-lock.yaml"),
            "install",
            "pnpm-lock.yaml",
        ),
        (
            "lockfile to a root-only file",
            planting(&format!(
                "rm -f pnpm-lock.yaml; ln -s {} pnpm-lock.yaml",
                secret.display()
            )),
            "install",
            "pnpm-lock.yaml",
        ),
        (
            "lockfile a FIFO",
            planting("rm -f pnpm-lock.yaml; mkfifo pnpm-lock.yaml"),
            "install",
            "pnpm-lock.yaml",
        ),
        (
            "output folder a link to a root-only folder",
            json!([{ "path": "package.json", "content": json!({
                "name": "o", "private": true,
                "scripts": { "build": format!("ln -s {} dist", secret_dir.path().display()) }
            }).to_string() }]),
            "output",
            "dist",
        ),
        (
            "output folder a link to /etc",
            json!([{ "path": "package.json", "content": json!({
                "name": "o", "private": true, "scripts": { "build": "ln -s /etc dist" }
            }).to_string() }]),
            "output",
            "dist",
        ),
    ];
    let mut ids = Vec::new();
    for (name, files, _, _) in &cases {
        ids.push(
            app.submit(&build_body("u_planter", &unique("plant"), files.clone()))
                .await,
        );
        let _ = name;
    }
    for ((name, _, step, names), id) in cases.iter().zip(&ids) {
        let build = tokio::time::timeout(Duration::from_secs(180), app.wait(id))
            .await
            .unwrap_or_else(|_| panic!("{name}: the build ends (nothing blocks a worker)"));
        assert_eq!(
            build["status"],
            "failed",
            "{name}: {build}\n{}",
            app.log_text(id).await
        );
        assert_eq!(build["failedStep"], *step, "{name}: {build}");
        let error = build["error"].as_str().unwrap();
        assert!(error.contains(names), "{name}: the error names {names}: {error}");
        // Nothing of the host in any answer about the build.
        let mut answers = vec![build.to_string(), app.log_text(id).await];
        let files = app
            .get(&format!(
                "/v1/projects/u_planter/{}/versions",
                build["projectId"].as_str().unwrap()
            ))
            .await;
        answers.push(files.text().await.unwrap());
        for path in ["pnpm-lock.yaml", "package.json"] {
            let url = format!(
                "/v1/projects/u_planter/{}/versions/{id}/files/{path}",
                build["projectId"].as_str().unwrap()
            );
            answers.push(app.get(&url).await.text().await.unwrap());
        }
        for answer in &answers {
            assert!(
                !answer.contains(HMAC_SECRET),
                "{name}: the HMAC secret leaked: {answer}"
            );
            assert!(
                !answer.contains("root-only-bytes"),
                "{name}: a root-only file leaked"
            );
            for env in ["KILN_", "PATH=", "HOME="] {
                assert!(
                    !answer.contains(env),
                    "{name}: the daemon's environment leaked ({env}): {answer}"
                );
            }
        }
        let preview = app.preview(id, "/root-only.txt").await;
        assert_ne!(preview.status(), 200, "{name}");
    }
}

#[tokio::test]
async fn a_build_cannot_reach_a_build_running_beside_it_nor_the_hosts_upkeep_lock() {
    let app = spawn_app(Options {
        builders: 2,
        timeout_secs: 120,
        ..Options::default()
    })
    .await;
    let work = app.settings.builder.work_dir.clone();
    // The victim keeps a secret in its workspace and publishes after a while.
    let victim = app
        .submit(&build_body(
            "u_victim",
            &unique("beside"),
            json!([
                { "path": "package.json", "content": json!({ "name": "v", "private": true, "scripts": {
                    "build": "mkdir -p dist && echo '<h1>victim</h1>' > dist/index.html && sleep 12"
                } }).to_string() },
                { "path": ".env", "content": "VICTIM_SECRET=s3cr3t-victim-value\n" },
            ]),
        ))
        .await;
    app.wait_for_status(&victim, "running").await;
    // The attacker knows the victim's workspace path exactly (the test, root, looks it up).
    let workspace = loop {
        let found = std::fs::read_dir(&work)
            .unwrap()
            .filter_map(Result::ok)
            .find(|e| e.file_name().to_string_lossy().starts_with(&victim));
        if let Some(found) = found {
            if found.path().join("project/dist/index.html").exists() {
                break found.path();
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ws = workspace.display();
    let pause = work.join(".kiln-upkeep-pause");
    let store = app.settings.builder.pnpm_store.display();
    let script = format!(
        r#"
for p in {ws} {ws}/project {ws}/project/.env {store} {store}/v10/projects {work}/.kiln-store-home; do
  if ls "$p" >/dev/null 2>&1 || cat "$p" >/dev/null 2>&1; then echo "REACHED $p"; else echo "BLOCKED $p"; fi
done
if echo '<h1>pwned</h1>' > {ws}/project/dist/index.html 2>/dev/null; then echo "REACHED write"; else echo "BLOCKED write"; fi
if (exec 9<{pause} && flock -n 9 && echo "REACHED lock" && sleep 4) 2>/dev/null; then :; else echo "BLOCKED lock"; fi
if echo '["*"]' > /run/kiln/allowed-build-scripts.json 2>/dev/null; then echo "REACHED allowed"; else echo "BLOCKED allowed"; fi
# Its host path is not in the sandbox (what this writes lands in the sandbox's own folders).
echo '["*"]' > {work}/.kiln-allowed-build-scripts.json 2>/dev/null || true
mkdir -p dist && echo '<h1>attacker</h1>' > dist/index.html
"#,
        pause = pause.display(),
        work = work.display()
    );
    let attacker = app
        .submit(&build_body(
            "u_attacker",
            &unique("beside"),
            json!([
                { "path": "package.json", "content": json!({ "name": "a", "private": true, "scripts": { "build": "sh attack.sh" } }).to_string() },
                { "path": "attack.sh", "content": script },
            ]),
        ))
        .await;
    // While the attacker runs, the host's upkeep lock stays free.
    let mut seen_paused = false;
    loop {
        seen_paused |= kiln_builder::upkeep::paused(&work);
        let build = app.get_json(&format!("/v1/builds/{attacker}")).await;
        if ["deployed", "failed"].contains(&build["status"].as_str().unwrap()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!seen_paused, "a build held the host's upkeep pause");
    let attack = app.wait(&attacker).await;
    let log = app.log_text(&attacker).await;
    assert_eq!(attack["status"], "deployed", "{attack}\n{log}");
    assert!(!log.contains("REACHED"), "{log}");
    assert_eq!(log.matches("BLOCKED").count(), 9, "{log}");
    // The operator's list of allowed build scripts is as the daemon wrote it.
    let allowed = std::fs::read_to_string(work.join(".kiln-allowed-build-scripts.json")).unwrap();
    assert_eq!(allowed, r#"["sharp","@swc/core","better-sqlite3"]"#);

    let victim_build = app.wait(&victim).await;
    assert_eq!(victim_build["status"], "deployed", "{victim_build}");
    let page = app.preview(&victim, "/").await.text().await.unwrap();
    assert_eq!(page.trim(), "<h1>victim</h1>");
    assert!(!log.contains("s3cr3t-victim-value"));
}

#[tokio::test]
async fn the_generators_links_are_never_written_through_and_it_sees_its_own_workspace_only() {
    // A folder of the host's, root's alone, that the generator's output aims at.
    let target = tempfile::tempdir().unwrap();
    std::fs::set_permissions(target.path(), std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    // It runs in `<work>/<workspace>/project`; the shared pnpm store is `<work>/pnpm-store`.
    let script = format!(
        r#"cat > /dev/null
if ls "$PWD/../../pnpm-store" >/dev/null 2>&1; then echo "GEN store: REACHED" >&2; else echo "GEN store: BLOCKED" >&2; fi
ln -s {target} site
printf '%s' '{{"files":[{{"path":"site/index.html","content":"<h1>pwned</h1>"}}]}}'"#,
        target = target.path().display()
    );
    let app = spawn_app(Options {
        generator: Some(script),
        ..Options::default()
    })
    .await;
    let body = json!({ "userId": "u_gen", "projectId": unique("genlink"), "prompt": "a site" });
    let id = app.submit(&body).await;
    let build = app.wait(&id).await;
    let log = app.log_text(&id).await;
    assert_eq!(build["status"], "failed", "{build}\n{log}");
    assert_eq!(build["failedStep"], "generate", "{build}");
    assert!(
        build["error"].as_str().unwrap().contains("site"),
        "the error names the path: {build}"
    );
    assert!(
        std::fs::read_dir(target.path()).unwrap().next().is_none(),
        "nothing was written through the generator's link"
    );
    assert!(
        app.settings
            .builder
            .pnpm_store
            .starts_with(&app.settings.builder.work_dir),
        "the store the generator looks for is where it looks"
    );
    assert!(log.contains("GEN store: BLOCKED"), "{log}");

    // A generator that leaves `node_modules` as a link into the shared store (which the
    // store's half of the install can write): the install starts without it, and the store
    // gets no project's tree.
    let package = json!({
        "name": "g", "private": true, "dependencies": { "left-pad": "1.3.0" },
        "scripts": { "build": "mkdir -p dist && cp node_modules/left-pad/index.js dist/index.html" }
    })
    .to_string();
    let output = json!({ "files": [{ "path": "package.json", "content": package }] }).to_string();
    let script =
        format!("cat > /dev/null\nln -s \"$PWD/../../pnpm-store\" node_modules\nprintf '%s' '{output}'");
    let app = spawn_app(Options {
        generator: Some(script),
        timeout_secs: 300,
        ..Options::default()
    })
    .await;
    let body = json!({ "userId": "u_gen", "projectId": unique("genmods"), "prompt": "a site" });
    let id = app.submit(&body).await;
    let build = app.wait(&id).await;
    assert_eq!(
        build["status"],
        "deployed",
        "{build}\n{}",
        app.log_text(&id).await
    );
    let store = &app.settings.builder.pnpm_store;
    for planted in [".pnpm", ".modules.yaml", "left-pad"] {
        assert!(!store.join(planted).exists(), "the store got {planted}");
    }

    // A generator that leaves package.json as a link to the daemon's environment, or a FIFO:
    // the daemon reads neither.
    for (name, plant) in [
        ("a link", "ln -sf /proc/self/environ package.json"),
        ("a FIFO", "rm -f package.json; mkfifo package.json"),
    ] {
        let script = format!(
            r#"cat > /dev/null
{plant}
printf '%s' '{{"files":[{{"path":"index.html","content":"<h1>x</h1>"}}]}}'"#
        );
        let app = spawn_app(Options {
            generator: Some(script),
            ..Options::default()
        })
        .await;
        let body = json!({ "userId": "u_gen", "projectId": unique("genpkg"), "prompt": "a site" });
        let id = app.submit(&body).await;
        let build = tokio::time::timeout(Duration::from_secs(120), app.wait(&id))
            .await
            .unwrap_or_else(|_| panic!("package.json {name}: the build ends"));
        assert_eq!(build["status"], "failed", "package.json {name}: {build}");
        let error = build["error"].as_str().unwrap();
        assert!(error.contains("package.json"), "package.json {name}: {error}");
        let answers = [build.to_string(), app.log_text(&id).await];
        for answer in answers {
            for env in ["KILN_", "PATH=", "HOME="] {
                assert!(!answer.contains(env), "package.json {name}: {answer}");
            }
        }
    }
}

/// A project with a dependency whose build script the operator may allow (esbuild's
/// `postinstall` checks and places its binary; esbuild works without it).
fn with_esbuild() -> Value {
    json!([
        { "path": "package.json", "content": json!({
            "name": "uses-esbuild", "private": true,
            "dependencies": { "esbuild": "0.25.0" },
            "scripts": { "build": "node -e \"const out = require('esbuild').transformSync('let x: number = 1', { loader: 'ts' }).code; require('fs').mkdirSync('dist', { recursive: true }); require('fs').writeFileSync('dist/index.html', out)\"" }
        }).to_string() },
    ])
}

#[tokio::test]
async fn dependency_build_scripts_run_only_when_allowed_and_as_the_builds_own_user() {
    let allowed = spawn_app(Options {
        timeout_secs: 300,
        shared_store: true,
        env: vec![("KILN_ALLOW_BUILD_SCRIPTS", "esbuild".into())],
        ..Options::default()
    })
    .await;
    let id = allowed
        .submit(&build_body("u_scripts", &unique("allowed"), with_esbuild()))
        .await;
    let build = allowed.wait(&id).await;
    let log = allowed.log_text(&id).await;
    assert_eq!(build["status"], "deployed", "{build}\n{log}");
    assert!(
        log.contains("[kiln] running install scripts: build scripts of esbuild"),
        "{log}"
    );
    assert!(log.contains("esbuild postinstall$ node install.js"), "{log}");
    assert!(log.contains("esbuild postinstall: Done"), "{log}");
    assert_eq!(
        allowed.preview(&id, "/").await.text().await.unwrap().trim(),
        "let x = 1;"
    );

    // The default list does not name it: the script never runs, the build still works.
    let default = spawn_app(Options {
        timeout_secs: 300,
        shared_store: true,
        ..Options::default()
    })
    .await;
    let id = default
        .submit(&build_body("u_scripts", &unique("default"), with_esbuild()))
        .await;
    let build = default.wait(&id).await;
    let log = default.log_text(&id).await;
    assert_eq!(build["status"], "deployed", "{build}\n{log}");
    assert!(!log.contains("postinstall"), "{log}");
    assert!(!log.contains("running install scripts"), "{log}");
}

/// The secret file the daemon read at start-up stays the daemon's: a build knowing its path can
/// neither read it nor list its folder, and the secret is in no answer.
#[tokio::test]
async fn a_build_cannot_read_a_secret_the_daemon_was_given_as_a_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let secret_file = dir.path().join("hmac");
    std::fs::write(&secret_file, format!("{HMAC_SECRET}\n")).unwrap();
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o400)).unwrap();
    // The secret comes from the file alone (an empty variable is unset).
    let app = spawn_app(Options {
        env: vec![
            ("KILN_HMAC_SECRET", String::new()),
            ("KILN_HMAC_SECRET_FILE", secret_file.display().to_string()),
        ],
        ..Options::without_builders()
    })
    .await;
    let probe = format!(
        r#"
const fs = require('fs');
const attempt = (f) => {{ try {{ return 'READ ' + f(); }} catch (e) {{ return 'ERR ' + e.code; }} }};
const result = {{
  file: attempt(() => fs.readFileSync({file:?}, 'utf8')),
  folder: attempt(() => fs.readdirSync({folder:?}).join(',')),
  environment: Object.keys(process.env).filter((k) => /SECRET|KILN/i.test(k)).join(','),
}};
fs.mkdirSync('dist', {{ recursive: true }});
fs.writeFileSync('dist/index.html', 'probe');
fs.writeFileSync('dist/probe.json', JSON.stringify(result));
console.log(JSON.stringify(result));
"#,
        file = secret_file.display().to_string(),
        folder = dir.path().display().to_string(),
    );
    let files = json!([
        { "path": "package.json", "content": json!({ "name": "probe", "private": true, "scripts": { "build": "node probe.js" } }).to_string() },
        { "path": "probe.js", "content": probe },
    ]);
    // Accepted: the API verified the signature with the secret read from the file.
    let id = app
        .submit(&build_body("u_secret_file", &unique("secret-file"), files))
        .await;
    let build = app.build_one(&id).await;
    let log = app.log_text(&id).await;
    assert_eq!(build["status"], "deployed", "{build}\n{log}");
    let result: Value = app.preview(&id, "/probe.json").await.json().await.unwrap();
    for key in ["file", "folder"] {
        assert!(
            result[key].as_str().unwrap().starts_with("ERR "),
            "the build reached the secret's {key}: {result}"
        );
    }
    assert_eq!(result["environment"], "", "{result}");
    for answer in [build.to_string(), log, result.to_string()] {
        assert!(!answer.contains(HMAC_SECRET), "the secret in an answer: {answer}");
    }
}

/// The filesystem artifact store's folders and objects are group-writable (2775/0664) so that
/// the API, the builders and maintenance can share it on one host. A build is none of them: it
/// cannot list the store, overwrite another tenant's published file, or add one beside it.
#[tokio::test]
async fn a_build_cannot_read_or_write_the_artifact_store() {
    let app = spawn_app(Options::without_builders()).await;
    let victim_page = "<h1>the victim's page</h1>";
    let victim = app
        .submit(&build_body(
            "u_store_victim",
            &unique("victim"),
            json!([{ "path": "index.html", "content": victim_page }]),
        ))
        .await;
    assert_eq!(app.build_one(&victim).await["status"], "deployed");
    let store = app.artifacts_dir.clone().unwrap();
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(victim_page.as_bytes()));
    let blob = store.join("blobs/sha256").join(&hash[..2]).join(&hash);
    assert_eq!(std::fs::read_to_string(&blob).unwrap(), victim_page);

    let probe = format!(
        r#"
const fs = require('fs');
const attempt = (f) => {{ try {{ return 'DONE ' + f(); }} catch (e) {{ return 'ERR ' + e.code; }} }};
const result = {{
  list: attempt(() => fs.readdirSync({store:?}).join(',')),
  overwrite: attempt(() => fs.writeFileSync({blob:?}, '<h1>defaced</h1>')),
  append: attempt(() => fs.appendFileSync({blob:?}, '<script>x</script>')),
  add: attempt(() => fs.writeFileSync({shard:?} + '/planted', 'x')),
  folder: attempt(() => fs.mkdirSync({shard:?} + '/zz')),
}};
fs.mkdirSync('dist', {{ recursive: true }});
fs.writeFileSync('dist/index.html', 'probe');
fs.writeFileSync('dist/probe.json', JSON.stringify(result));
"#,
        store = store.display().to_string(),
        blob = blob.display().to_string(),
        shard = blob.parent().unwrap().display().to_string(),
    );
    let files = json!([
        { "path": "package.json", "content": json!({ "name": "probe", "private": true, "scripts": { "build": "node probe.js" } }).to_string() },
        { "path": "probe.js", "content": probe },
    ]);
    let id = app
        .submit(&build_body("u_store_attacker", &unique("attacker"), files))
        .await;
    let build = app.build_one(&id).await;
    assert_eq!(
        build["status"],
        "deployed",
        "{build}\n{}",
        app.log_text(&id).await
    );
    let result: Value = app.preview(&id, "/probe.json").await.json().await.unwrap();
    for key in ["list", "overwrite", "append", "add", "folder"] {
        assert!(
            result[key].as_str().unwrap().starts_with("ERR "),
            "the build could {key} in the artifact store: {result}"
        );
    }
    assert_eq!(std::fs::read_to_string(&blob).unwrap(), victim_page);
    assert!(!blob.parent().unwrap().join("planted").exists());
    assert!(!blob.parent().unwrap().join("zz").exists());
    assert_eq!(app.preview(&victim, "/").await.text().await.unwrap(), victim_page);
}

/// A project's environment is its own: a build running beside it, of a project with the same
/// name under another user, finds none of its values, neither in its own environment nor in
/// the processes it can see (`/proc/*/environ`, `ps`). The attacker's log is not redacted for
/// the victim's values (only a build's own secrets are), so a leak would show in clear.
#[tokio::test]
async fn a_build_never_sees_another_tenants_environment() {
    const SECRET: &str = "victim-secret-9f8e7d6c5b4a";
    const PLAIN: &str = "victim-plain-value-0a1b2c";
    let app = spawn_app(Options {
        builders: 2,
        timeout_secs: 120,
        env: vec![(
            "KILN_SECRETS_KEY",
            "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=".into(),
        )],
        ..Options::default()
    })
    .await;
    let project = unique("envs");
    for (name, body) in [
        ("API_SECRET", json!({ "value": SECRET, "secret": true })),
        ("API_URL", json!({ "value": PLAIN })),
    ] {
        let (status, answer) = app
            .send_json(
                "PUT",
                &format!("/v1/projects/u_victim/{project}/env/{name}"),
                &body,
            )
            .await;
        assert_eq!(status, 200, "{answer}");
    }
    // The victim's build holds its values in its environment while the attacker runs.
    let victim = app
        .submit(&build_body(
            "u_victim",
            &project,
            json!([{ "path": "package.json", "content": json!({ "name": "v", "private": true, "scripts": {
                "build": "mkdir -p dist && echo \"<h1>$API_URL</h1>\" > dist/index.html && sleep 12"
            } }).to_string() }]),
        ))
        .await;
    app.wait_for_status(&victim, "running").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let script = r#"
echo "OWN ENV"; env
echo "PROCS"; for f in /proc/[0-9]*/environ; do tr '\0' '\n' < "$f" 2>/dev/null; done
ps e 2>/dev/null || true
mkdir -p dist && echo '<h1>attacker</h1>' > dist/index.html
"#;
    let attacker = app
        .submit(&build_body(
            "u_attacker",
            &project,
            json!([
                { "path": "package.json", "content": json!({ "name": "a", "private": true, "scripts": { "build": "sh attack.sh" } }).to_string() },
                { "path": "attack.sh", "content": script },
            ]),
        ))
        .await;
    let attack = app.wait(&attacker).await;
    let log = app.log_text(&attacker).await;
    assert_eq!(attack["status"], "deployed", "{attack}\n{log}");
    assert!(log.contains("OWN ENV") && log.contains("PATH="), "{log}");
    assert!(!log.contains("API_SECRET") && !log.contains("API_URL"), "{log}");
    assert!(!log.contains(SECRET) && !log.contains(PLAIN), "{log}");
    assert_eq!(attack.get("env"), None, "{attack}");
    let victim_build = app.wait(&victim).await;
    assert_eq!(victim_build["status"], "deployed", "{victim_build}");
    assert!(app
        .preview(&victim, "/")
        .await
        .text()
        .await
        .unwrap()
        .contains(PLAIN));
}
