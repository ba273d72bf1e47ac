//! The served OpenAPI document against the API and against real tools: every other method of a
//! documented path is a 405 naming the documented ones (so nothing undocumented is served
//! there, and everything documented is), the document validates as OpenAPI 3.1
//! (`openapi-spec-validator`), and a TypeScript client generated from it (`openapi-typescript`)
//! type-checks a build submitted and read, while wrong code against it does not. The tools are
//! installed by `ensure_openapi_tools` in `ops/lib.sh` (which `ops/test.sh` runs).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::helpers::{spawn_app, Options, TestApp, TOKEN};

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// Where `ensure_openapi_tools` installed the tools.
pub fn tools() -> PathBuf {
    let root = std::env::var_os("KILN_OPENAPI_TOOLS")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("KILN_TOOLS").map(|t| Path::new(&t).join("openapi-tools")))
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            Path::new(&home).join(".cache/kiln/openapi-tools")
        });
    for tool in [
        "venv/bin/openapi-spec-validator",
        "node_modules/.bin/openapi-typescript",
        "node_modules/.bin/tsc",
    ] {
        assert!(
            root.join(tool).exists(),
            "{} is missing: ops/lib.sh's ensure_openapi_tools installs it (ops/test.sh runs it; or \
             `source ops/lib.sh && ensure_openapi_tools`)",
            root.join(tool).display()
        );
    }
    root
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The served document, as JSON and as its bytes.
async fn served(app: &TestApp) -> (Value, String) {
    let res = app
        .client
        .get(format!("{}/openapi.json", app.api))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let raw = res.text().await.unwrap();
    (serde_json::from_str(&raw).unwrap(), raw)
}

/// A documented path with values in its templates.
fn concrete(path: &str) -> String {
    let id = "01jc0000000000000000000000";
    path.replace("{a}", id)
        .replace("{b}", id)
        .replace("{path}", "dir/index.html")
        .replace("{id}", id)
        .replace("{deliveryId}", "dl_00000000000000000000000000")
        .replace("{userId}", "u")
        .replace("{projectId}", "p")
}

#[tokio::test]
async fn every_other_method_of_a_documented_path_is_a_405_naming_the_documented_ones() {
    let app = spawn_app(Options::without_builders()).await;
    let (doc, _) = served(&app).await;
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let documented: Vec<String> = METHODS
            .iter()
            .filter(|m| item.get(m.to_ascii_lowercase()).is_some())
            .map(|m| (*m).to_owned())
            .collect();
        assert!(!documented.is_empty(), "{path} has no operation");
        let url = format!("{}{}", app.api, concrete(path));
        for method in METHODS {
            let res = app
                .client
                .request(method.parse().unwrap(), &url)
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let allow = res.headers().get("allow").map(|v| v.to_str().unwrap().to_owned());
            let body = res.text().await.unwrap();
            if documented.iter().any(|m| m == method) {
                assert!(
                    status != 405 && !body.contains("no such route"),
                    "{method} {path} is documented but answers {status}: {body}"
                );
            } else {
                assert_eq!(
                    status, 405,
                    "{method} {path} is not documented but answers {status}: {body}"
                );
                let problem: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(problem["type"], "urn:kiln:problem:method_not_allowed", "{body}");
                let allow = allow.unwrap_or_else(|| panic!("{method} {path}: a 405 without Allow"));
                let mut allowed: Vec<&str> = allow.split(',').map(str::trim).collect();
                allowed.sort_unstable();
                let mut expected: Vec<&str> = documented.iter().map(String::as_str).collect();
                expected.sort_unstable();
                assert_eq!(allowed, expected, "{method} {path}: Allow");
            }
            checked += 1;
        }
    }
    assert!(checked >= 150, "only {checked} (path, method) pairs checked");
}

/// The other direction, at its source: a route is registered only at a documented path
/// (`routes::serve`, or a resource at a `__path_*::path()`), never at a literal, so a route
/// cannot be served without being documented.
#[test]
fn routes_are_registered_only_at_documented_paths() {
    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    let mut registrations = 0;
    let mut literal = Vec::new();
    for file in &files {
        let code = std::fs::read_to_string(file).unwrap();
        for (n, line) in code.lines().enumerate() {
            let at = format!("{}:{}: {}", file.display(), n + 1, line.trim());
            if line.contains("web::resource(") || line.contains(".route(\"") {
                registrations += 1;
                if !line.contains("__path_") {
                    literal.push(at);
                }
            } else if line.contains("web::scope(") && !line.contains("web::scope(\"/v1\")") {
                literal.push(at);
            } else if line.contains("serve::<") {
                registrations += 1;
            }
        }
    }
    assert!(registrations >= 30, "only {registrations} registrations found");
    assert!(
        literal.is_empty(),
        "routes registered at a path no #[utoipa::path] documents:\n{}",
        literal.join("\n")
    );
}

#[tokio::test]
async fn the_document_describes_every_operation_and_is_served_rendered_at_docs() {
    let app = spawn_app(Options::without_builders()).await;
    let (doc, _) = served(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let mut operation_ids = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let what = format!("{method} {path}");
            assert!(
                operation_ids.insert(op["operationId"].as_str().unwrap().to_owned()),
                "{what}: operationId twice"
            );
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{what}: no summary"
            );
            // Every template is a declared path parameter (OpenAPI's rule the old table broke).
            let declared: Vec<&str> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .map(|p| p["name"].as_str().unwrap())
                        .collect()
                })
                .unwrap_or_default();
            for template in path.split('{').skip(1).map(|t| t.split('}').next().unwrap()) {
                assert!(
                    declared.contains(&template),
                    "{what}: {{{template}}} is not declared"
                );
            }
            let responses = op["responses"].as_object().unwrap();
            for (status, response) in responses {
                let response = match response["$ref"].as_str() {
                    Some(r) => &doc["components"]["responses"][r.rsplit('/').next().unwrap()],
                    None => response,
                };
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        response["content"]["application/problem+json"]["schema"]["$ref"],
                        "#/components/schemas/Problem",
                        "{what}: {status} is not a Problem"
                    );
                }
                if status == "201" {
                    assert!(
                        response["headers"]["Location"].is_object(),
                        "{what}: a 201 without Location"
                    );
                }
            }
            let public = ["/healthz", "/readyz", "/openapi.json", "/docs"].contains(&path.as_str());
            if public {
                assert_eq!(op["security"], serde_json::json!([]), "{what}");
            } else {
                for status in ["400", "401", "429", "503"] {
                    assert!(responses.contains_key(status), "{what}: no {status}");
                }
                assert_eq!(
                    op["security"],
                    serde_json::json!([{"bearer": []}, {"hmac": [], "hmacTimestamp": []}]),
                    "{what}"
                );
            }
            let seed = ["/build-preview-for-new-project", "/rebuild-preview"].contains(&path.as_str());
            assert_eq!(
                op["deprecated"] == true,
                seed,
                "{what}: deprecated is for the seed aliases only"
            );
        }
    }
    // The statuses the old table had drifted from.
    let op = |path: &str, method: &str| doc["paths"][path][method]["responses"].clone();
    assert!(op("/v1/projects/{userId}/{projectId}/versions/{id}/artifact", "get")["404"].is_object());
    assert!(op("/v1/projects/{userId}/{projectId}/versions/{id}/pin", "post")["404"].is_object());
    assert!(op("/v1/projects/{userId}/{projectId}/versions/{id}/pin", "delete")["404"].is_object());
    assert!(op("/v1/projects/{userId}/{projectId}/rollback", "post")["422"].is_object());
    assert_eq!(
        doc["paths"]["/v1/builds"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/BuildRequest"
    );

    let res = app.client.get(format!("{}/docs", app.api)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = res.text().await.unwrap();
    assert!(
        html.contains("<html") && html.contains("\"openapi\":\"3.1.0\""),
        "{html}"
    );
}

#[tokio::test]
async fn the_document_validates_as_openapi_3_1() {
    let tools = tools();
    let app = spawn_app(Options::without_builders()).await;
    let (mut doc, raw) = served(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let validator = tools.join("venv/bin/openapi-spec-validator");

    let file = dir.path().join("openapi.json");
    std::fs::write(&file, raw).unwrap();
    let out = run(Command::new(&validator).arg(&file));
    assert!(
        out.status.success(),
        "the served document is not valid OpenAPI 3.1:\n{}",
        text(&out)
    );

    // The validator does reject: a path template without its parameter.
    let paths = doc["paths"].as_object_mut().unwrap();
    let item = paths.remove("/v1/builds/{id}").unwrap();
    paths.insert("/v1/builds/{id}/{undeclared}".into(), item);
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, doc.to_string()).unwrap();
    let out = run(Command::new(&validator).arg(&broken));
    assert!(
        !out.status.success(),
        "the validator took a broken document:\n{}",
        text(&out)
    );
}

/// Submits a build with a typed body and reads the build's fields.
const CLIENT: &str = r#"
import createClient from "openapi-fetch";
import type { components, paths } from "./kiln-api";

type Build = components["schemas"]["Build"];

export async function submitAndRead(baseUrl: string, token: string): Promise<string> {
  const kiln = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${token}` } });
  const queued = await kiln.POST("/v1/builds", {
    params: { header: { "Idempotency-Key": "k-1" } },
    body: {
      userId: "u_1",
      projectId: "site",
      prompt: "a landing page",
      files: [{ path: "index.html", content: "<h1>hi</h1>" }],
      onConflict: "supersede",
    },
  });
  if (!queued.data) {
    const detail: string | undefined = queued.error?.detail;
    throw new Error(detail ?? "no answer");
  }
  const id: string = queued.data.buildId;
  const statusUrl: string = queued.data.statusUrl;
  const { data: build, error } = await kiln.GET("/v1/builds/{id}", { params: { path: { id } } });
  if (!build) {
    const code: string = error.type;
    throw new Error(code);
  }
  const status: "queued" | "running" | "deployed" | "failed" | "cancelled" | "superseded" = build.status;
  const progress: number = build.progress;
  const total: number | null | undefined = build.metrics.totalMs;
  const step: Build["failedStep"] = build.failedStep;
  const position: number | undefined = build.queuePosition;
  return `${statusUrl} ${status} ${progress} ${total} ${step} ${position} ${build.latestUrl}`;
}
"#;

/// Wrong code against the client: each must fail to type-check, naming what is wrong.
const WRONG: &[(&str, &str, &str)] = &[
    (
        "a field a build does not have",
        "buildStatus",
        r#"
import createClient from "openapi-fetch";
import type { paths } from "./kiln-api";
export async function read(kiln: ReturnType<typeof createClient<paths>>): Promise<string> {
  const { data } = await kiln.GET("/v1/builds/{id}", { params: { path: { id: "x" } } });
  return data ? data.buildStatus : "";
}
"#,
    ),
    (
        "a file of POST /v1/builds' body without its path",
        "'path' is missing",
        r#"
import createClient from "openapi-fetch";
import type { paths } from "./kiln-api";
export async function submit(kiln: ReturnType<typeof createClient<paths>>) {
  await kiln.POST("/v1/builds", { body: { userId: "u_1", projectId: "site", files: [{ content: "<h1>hi</h1>" }] } });
}
"#,
    ),
    (
        "the progress (a number) read as a string",
        "Type 'number' is not assignable to type 'string'",
        r#"
import createClient from "openapi-fetch";
import type { paths } from "./kiln-api";
export async function read(kiln: ReturnType<typeof createClient<paths>>): Promise<string> {
  const { data } = await kiln.GET("/v1/builds/{id}", { params: { path: { id: "x" } } });
  const progress: string = data!.progress;
  return progress;
}
"#,
    ),
];

/// `tsc --noEmit` in strict mode over `file`.
fn tsc(tools: &Path, dir: &Path, file: &str) -> Output {
    run(Command::new(tools.join("node_modules/.bin/tsc"))
        .current_dir(dir)
        .args([
            "--noEmit",
            "--strict",
            "--noUncheckedIndexedAccess",
            "--target",
            "ES2022",
            "--module",
            "ESNext",
            "--moduleResolution",
            "Bundler",
            "--lib",
            "ES2022,DOM",
            "--skipLibCheck",
            file,
        ]))
}

#[tokio::test]
async fn a_typescript_client_generated_from_the_document_type_checks() {
    let tools = tools();
    let app = spawn_app(Options::without_builders()).await;
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(tools.join("node_modules"), dir.path().join("node_modules")).unwrap();

    // Generated from the served document, as a client's build would (saved first: the API runs
    // on this test's thread, which the tools' processes block).
    let (_, raw) = served(&app).await;
    std::fs::write(dir.path().join("openapi.json"), raw).unwrap();
    let out = run(Command::new(tools.join("node_modules/.bin/openapi-typescript"))
        .current_dir(dir.path())
        .args(["openapi.json", "-o", "kiln-api.d.ts"]));
    assert!(out.status.success(), "openapi-typescript failed:\n{}", text(&out));
    let types = std::fs::read_to_string(dir.path().join("kiln-api.d.ts")).unwrap();
    assert!(types.contains("\"/v1/builds/{id}\""), "{types}");

    std::fs::write(dir.path().join("client.ts"), CLIENT).unwrap();
    let out = tsc(&tools, dir.path(), "client.ts");
    assert!(
        out.status.success(),
        "the client does not type-check:\n{}",
        text(&out)
    );

    for (i, (what, name, code)) in WRONG.iter().enumerate() {
        let file = format!("wrong{i}.ts");
        std::fs::write(dir.path().join(&file), code).unwrap();
        let out = tsc(&tools, dir.path(), &file);
        let said = text(&out);
        assert!(!out.status.success(), "{what}: type-checks, but must not");
        assert!(said.contains(name), "{what}: tsc does not name {name}:\n{said}");
    }
}
