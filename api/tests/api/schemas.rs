//! Real answers of the API against the schemas its document gives them: each answer (a build
//! queued, read, listed, cancelled and retried, tokens, webhooks, the fleet, errors...) is
//! validated with a JSON Schema 2020-12 validator (Python's `jsonschema`, which
//! `ensure_openapi_tools` installs with `openapi-spec-validator`) against the schema of its
//! operation's status and content type. A schema that drifts from what is served fails here.

use std::process::Command;

use serde_json::{json, Value};

use crate::helpers::{build_body, spawn_app, unique, Options, TestApp, TOKEN};

/// Validates `answers.json` (`[{method, path, status, contentType, body}]`) against
/// `openapi.json`; prints each mismatch and exits 1 if there is one.
const VALIDATE: &str = r##"
import json, re, sys
from jsonschema import Draft202012Validator

doc = json.load(open("openapi.json"))
answers = json.load(open("answers.json"))
def pattern(path):
    r = re.escape(path).replace(r"\{path\}", ".+")
    return re.compile("^" + re.sub(r"\\\{[A-Za-z]+\\\}", "[^/]+", r) + "$")
templates = [(pattern(p), p) for p in doc["paths"]]
failures = []
for a in answers:
    what = "%s %s -> %s" % (a["method"], a["path"], a["status"])
    matches = [p for r, p in templates if r.match(a["path"].split("?")[0])]
    if not matches:
        failures.append(what + ": no documented path"); continue
    op = doc["paths"][matches[0]].get(a["method"].lower())
    if op is None:
        failures.append(what + ": method not documented"); continue
    response = op["responses"].get(str(a["status"]))
    if response is None:
        failures.append(what + ": status not documented"); continue
    if "$ref" in response:
        response = doc["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    media = response.get("content", {}).get(a["contentType"])
    if media is None:
        failures.append(what + ": %s not documented" % a["contentType"]); continue
    # The document is the root, so that its "#/components/schemas/..." references resolve.
    schema = dict(doc)
    schema.update(media["schema"])
    errors = sorted(Draft202012Validator(schema).iter_errors(a["body"]), key=str)
    for e in errors:
        failures.append("%s: %s at %s" % (what, e.message, "/".join(map(str, e.absolute_path))))
print("\n".join(failures))
print("%d answers checked" % len(answers))
sys.exit(1 if failures else 0)
"##;

/// Records answers to check.
struct Answers<'a> {
    app: &'a TestApp,
    list: Vec<Value>,
}

impl Answers<'_> {
    /// Sends `method path` with `body` (signed as the back end, or with the operator token),
    /// records the answer, and returns its status and JSON body.
    async fn send(&mut self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let raw = body.map(Value::to_string).unwrap_or_default();
        let res = if method == "GET" {
            self.app.get(path).await
        } else if path.starts_with("/v1/tokens") || path.starts_with("/v1/webhooks") {
            self.app
                .client
                .request(method.parse().unwrap(), format!("{}{path}", self.app.api))
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .body(raw)
                .send()
                .await
                .unwrap()
        } else {
            self.app.signed(method, path, raw.as_bytes()).await
        };
        let status = res.status().as_u16();
        let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
        let body: Value = res.json().await.unwrap();
        self.list.push(json!({
            "method": method,
            "path": path,
            "status": status,
            "contentType": content_type,
            "body": body,
        }));
        (status, body)
    }
}

/// The served document and the validator, in a folder of their own.
struct Validator {
    dir: tempfile::TempDir,
    python: std::path::PathBuf,
}

impl Validator {
    async fn new(app: &TestApp) -> Self {
        let python = crate::openapi::tools().join("venv/bin/python");
        let dir = tempfile::tempdir().unwrap();
        let doc = app
            .client
            .get(format!("{}/openapi.json", app.api))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        std::fs::write(dir.path().join("openapi.json"), doc).unwrap();
        std::fs::write(dir.path().join("validate.py"), VALIDATE).unwrap();
        Validator { dir, python }
    }

    /// Whether every answer matches its schema, and what the validator said.
    fn check(&self, answers: &[Value]) -> (bool, String) {
        let file = self.dir.path().join("answers.json");
        std::fs::write(file, Value::from(answers.to_vec()).to_string()).unwrap();
        let out = Command::new(&self.python)
            .current_dir(self.dir.path())
            .arg("validate.py")
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), said)
    }

    /// Every answer matches its schema.
    fn assert_all(&self, answers: &[Value]) {
        let (ok, said) = self.check(answers);
        assert!(ok, "answers that do not match their schemas:\n{said}");
        assert!(
            said.contains(&format!("{} answers checked", answers.len())),
            "{said}"
        );
    }
}

#[tokio::test]
async fn real_answers_match_the_schemas_the_document_gives_them() {
    let app = spawn_app(Options::without_builders()).await;
    let mut a = Answers {
        app: &app,
        list: Vec::new(),
    };
    let (user, project) = ("u_schema", unique("schema"));
    let files = json!([
        { "path": "index.html", "content": "<h1>one</h1>" },
        { "path": "app.js", "content": "console.log(1)\n" },
    ]);

    a.send("GET", "/healthz", None).await;
    a.send("GET", "/readyz", None).await;
    let (status, queued) = a
        .send("POST", "/v1/builds", Some(&build_body(user, &project, files)))
        .await;
    assert_eq!(status, 202, "{queued}");
    let id = queued["buildId"].as_str().unwrap().to_owned();
    let (status, build) = a.send("GET", &format!("/v1/builds/{id}"), None).await;
    assert_eq!(status, 200);
    assert!(
        build["queuePosition"].is_number(),
        "a queued build has its estimate: {build}"
    );
    // Another build of the project while this one is queued: a problem naming it.
    let again = build_body(user, &project, json!([{ "path": "index.html", "content": "x" }]));
    assert_eq!(a.send("POST", "/v1/builds", Some(&again)).await.0, 409);
    a.send("GET", &format!("/v1/builds?userId={user}&limit=5"), None)
        .await;
    a.send("GET", &format!("/v1/builds/{id}/events"), None).await;
    assert_eq!(
        a.send("POST", &format!("/v1/builds/{id}/cancel"), Some(&json!({})))
            .await
            .0,
        200
    );
    let (status, retried) = a
        .send("POST", &format!("/v1/builds/{id}/retry"), Some(&json!({})))
        .await;
    assert_eq!(status, 202, "{retried}");
    let retry = retried["buildId"].as_str().unwrap().to_owned();
    let (status, seed) = a
        .send(
            "POST",
            "/build-preview-for-new-project",
            Some(&build_body(
                user,
                &unique("seed"),
                json!([{ "path": "index.html", "content": "s" }]),
            )),
        )
        .await;
    assert_eq!((status, &seed["success"]), (202, &json!(true)), "{seed}");

    let versions = format!("/v1/projects/{user}/{project}");
    a.send("GET", &format!("{versions}/versions"), None).await;
    assert_eq!(a.send("GET", &format!("{versions}/latest"), None).await.0, 404);
    a.send("GET", &format!("{versions}/versions/{id}/files"), None)
        .await;
    a.send("GET", &format!("{versions}/versions/{id}/diff/{retry}"), None)
        .await;
    assert_eq!(
        a.send("POST", &format!("{versions}/versions/{id}/pin"), Some(&json!({})))
            .await
            .0,
        200
    );
    assert_eq!(
        a.send("DELETE", &format!("{versions}/versions/{id}/pin"), None)
            .await
            .0,
        200
    );
    let (status, _) = a
        .send(
            "POST",
            &format!("{versions}/rollback"),
            Some(&json!({ "versionId": "nope" })),
        )
        .await;
    assert_eq!(status, 422);
    // The project: read, changed, shared, its links revoked.
    assert_eq!(a.send("GET", &versions, None).await.0, 200);
    let patch = json!({ "buildCommand": "pnpm run build", "previewAccess": "private", "indexable": false });
    assert_eq!(a.send("PATCH", &versions, Some(&patch)).await.0, 200);
    assert_eq!(
        a.send("PATCH", &versions, Some(&json!({ "colour": 1 }))).await.0,
        422
    );
    let shares = format!("{versions}/share-links");
    let link = json!({ "versionId": id, "ttlSecs": 60 });
    assert_eq!(a.send("POST", &shares, Some(&link)).await.0, 201);
    assert_eq!(
        a.send("POST", &shares, Some(&json!({ "ttlSecs": 0 }))).await.0,
        422
    );
    assert_eq!(a.send("DELETE", &shares, None).await.0, 200);
    assert_eq!(
        a.send("GET", &format!("/v1/projects/{user}/never-made"), None)
            .await
            .0,
        404
    );

    let (status, token) = a
        .send("POST", "/v1/tokens", Some(&json!({ "userId": user })))
        .await;
    assert_eq!(status, 201);
    a.send("GET", &format!("/v1/tokens?userId={user}"), None).await;
    let token_id = token["id"].as_str().unwrap();
    assert_eq!(
        a.send("DELETE", &format!("/v1/tokens/{token_id}"), None).await.0,
        200
    );

    let hook = json!({ "url": "https://example.com/h", "eventTypes": ["build_queued"], "userId": user });
    let (status, hook) = a.send("POST", "/v1/webhooks", Some(&hook)).await;
    assert_eq!(status, 201);
    let hook_id = hook["id"].as_str().unwrap();
    a.send("GET", "/v1/webhooks", None).await;
    a.send("GET", &format!("/v1/webhooks/{hook_id}"), None).await;
    a.send("GET", &format!("/v1/webhooks/{hook_id}/deliveries"), None)
        .await;
    assert_eq!(
        a.send("POST", "/v1/webhooks", Some(&json!({ "url": "ftp://x" })))
            .await
            .0,
        422
    );

    a.send("GET", "/v1/builders", None).await;
    a.send("GET", "/v1/builders/history", None).await;
    assert_eq!(
        a.send("GET", "/v1/builds/01jc0000000000000000000000", None)
            .await
            .0,
        404
    );
    assert_eq!(a.send("GET", "/v1/builds/not-an-id", None).await.0, 400);

    let validate = Validator::new(&app).await;
    validate.assert_all(&a.list);
    assert!(a.list.len() >= 29, "only {} answers", a.list.len());

    // The validator does refuse: a build whose progress is a string and without its latestUrl.
    let mut wrong = a.list[3].clone();
    assert_eq!(wrong["path"], format!("/v1/builds/{id}"));
    wrong["body"]["progress"] = "half".into();
    wrong["body"].as_object_mut().unwrap().remove("latestUrl");
    let (ok, said) = validate.check(&[wrong]);
    assert!(!ok, "a wrong build passed: {said}");
    assert!(said.contains("'half' is not of type 'integer'"), "{said}");
    assert!(said.contains("'latestUrl' is a required property"), "{said}");
}

/// The answers about deployed versions and a live builder: a farm with one builder.
#[tokio::test]
async fn answers_about_deployed_versions_match_their_schemas() {
    let app = spawn_app(Options::default()).await;
    let mut a = Answers {
        app: &app,
        list: Vec::new(),
    };
    let (user, project) = ("u_deployed", unique("deployed"));
    let site = |index: &str| {
        json!([
            { "path": "index.html", "content": index },
            { "path": "app.js", "content": "console.log('app');\n" },
        ])
    };
    let v1 = app
        .submit(&build_body(user, &project, site("<h1>one</h1>")))
        .await;
    assert_eq!(app.wait(&v1).await["status"], "deployed");
    let v2 = app
        .submit(&build_body(user, &project, site("<h1>two</h1>")))
        .await;
    assert_eq!(app.wait(&v2).await["status"], "deployed");

    let base = format!("/v1/projects/{user}/{project}");
    let (status, build) = a.send("GET", &format!("/v1/builds/{v2}"), None).await;
    assert_eq!((status, &build["progress"]), (200, &json!(100)), "{build}");
    a.send("GET", &format!("/v1/builds/{v2}/events?limit=1000"), None)
        .await;
    a.send("GET", &format!("{base}/versions"), None).await;
    assert_eq!(a.send("GET", &format!("{base}/latest"), None).await.0, 200);
    a.send("GET", &format!("{base}/versions/{v2}/files"), None).await;
    a.send("GET", &format!("{base}/versions/{v1}/diff/{v2}"), None)
        .await;
    let (status, rolled) = a
        .send(
            "POST",
            &format!("{base}/rollback"),
            Some(&json!({ "versionId": v1 })),
        )
        .await;
    assert_eq!(status, 200, "{rolled}");
    // The same build again: not failed or cancelled, so a problem with its id.
    assert_eq!(
        a.send("POST", &format!("/v1/builds/{v1}/retry"), Some(&json!({})))
            .await
            .0,
        409
    );
    let (status, fleet) = a.send("GET", "/v1/builders", None).await;
    assert_eq!(
        (status, fleet["builders"].as_array().unwrap().len()),
        (200, 1),
        "{fleet}"
    );
    let (status, history) = a.send("GET", "/v1/builders/history", None).await;
    assert!(
        status == 200 && !history["intervals"].as_array().unwrap().is_empty(),
        "{history}"
    );

    Validator::new(&app).await.assert_all(&a.list);
}
