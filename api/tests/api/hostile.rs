//! Hostile input (issue 6): each case is a 4xx with a JSON message that says what is wrong,
//! nothing is stored or queued, and the service is healthy after.
//!
//! Every request goes out as raw bytes on a TCP connection ([`Send`]), so nothing between the
//! test and the API normalises a path (`..`, `%2e`), drops a header or refuses invalid UTF-8.
//! Each test runs a table of cases and prints how many it refused (`hostile <group>: N cases,
//! all refused`, with `--nocapture`); the totals are in README's "Hostile input" section.

use std::time::Duration;

use base64::Engine as _;
use kiln_shared::signing::sign_request;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{build_body, spawn_app, unique, Options, TestApp, HMAC_SECRET, TOKEN};

/// How a case's request is made.
enum Send {
    /// Signed by the back end (the signature covers the path exactly as sent).
    Signed {
        method: &'static str,
        path: String,
        body: Vec<u8>,
        headers: Vec<(&'static str, Vec<u8>)>,
    },
    /// With a bearer token.
    Bearer {
        token: String,
        method: &'static str,
        path: String,
        body: Vec<u8>,
    },
    /// These headers and nothing else (no credentials are added).
    Bare {
        method: &'static str,
        path: String,
        headers: Vec<(&'static str, Vec<u8>)>,
        body: Vec<u8>,
    },
}

struct Case {
    name: String,
    send: Send,
    status: u16,
    /// What the `error` message must contain.
    says: String,
}

fn case(name: impl Into<String>, send: Send, status: u16, says: impl Into<String>) -> Case {
    Case {
        name: name.into(),
        send,
        status,
        says: says.into(),
    }
}

/// `POST /v1/builds`, signed, with a raw body.
fn build_raw(body: impl Into<Vec<u8>>) -> Send {
    signed("POST", "/v1/builds", body)
}

/// `POST /v1/builds`, signed, with a JSON body.
fn build(body: Value) -> Send {
    build_raw(body.to_string())
}

fn signed(method: &'static str, path: impl Into<String>, body: impl Into<Vec<u8>>) -> Send {
    Send::Signed {
        method,
        path: path.into(),
        body: body.into(),
        headers: Vec::new(),
    }
}

fn operator(method: &'static str, path: impl Into<String>) -> Send {
    bearer(TOKEN, method, path, "")
}

fn bearer(token: &str, method: &'static str, path: impl Into<String>, body: impl Into<Vec<u8>>) -> Send {
    Send::Bearer {
        token: token.to_owned(),
        method,
        path: path.into(),
        body: body.into(),
    }
}

/// A request as bytes: the request line, `headers`, Host, Content-Length, Connection: close.
fn http(method: &str, path: &str, headers: &[(&str, Vec<u8>)], body: &[u8]) -> Vec<u8> {
    let mut out =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n").into_bytes();
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

/// An answer read off the wire.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends raw bytes to `base` (`http://host:port`) and reads the answer to the end.
async fn raw(base: &str, request: &[u8]) -> Answer {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut bytes))
        .await
        .expect("the server answers and closes")
        .unwrap();
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&bytes)));
    let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = bytes[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Answer {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
        rest = &rest[eol + 2 + size + 2..];
    }
}

fn signature_headers(method: &str, path: &str, body: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let ts = chrono::Utc::now().timestamp();
    vec![
        ("X-Kiln-Timestamp", ts.to_string().into_bytes()),
        (
            "X-Kiln-Signature",
            sign_request(HMAC_SECRET.as_bytes(), ts, method, path, body).into_bytes(),
        ),
        ("Content-Type", b"application/json".to_vec()),
    ]
}

async fn send(base: &str, send: &Send) -> Answer {
    let request = match send {
        Send::Signed {
            method,
            path,
            body,
            headers,
        } => {
            let mut all = signature_headers(method, path, body);
            all.extend(headers.iter().cloned());
            http(method, path, &all, body)
        }
        Send::Bearer {
            token,
            method,
            path,
            body,
        } => {
            let headers = [
                ("Authorization", format!("Bearer {token}").into_bytes()),
                ("Content-Type", b"application/json".to_vec()),
            ];
            http(method, path, &headers, body)
        }
        Send::Bare {
            method,
            path,
            headers,
            body,
        } => http(method, path, headers, body),
    };
    raw(base, &request).await
}

/// Sends every case and checks it was refused as it says; returns how many there were.
async fn refuse_all(app: &TestApp, group: &str, cases: &[Case]) -> usize {
    let mut wrong = Vec::new();
    for c in cases {
        if let Err(e) = refused(app, c).await {
            wrong.push(format!("{group}: {}: {e}", c.name));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
    eprintln!("hostile {group}: {} cases, all refused", cases.len());
    cases.len()
}

/// Whether a case was refused with its status, in JSON, saying what it must.
async fn refused(app: &TestApp, c: &Case) -> Result<(), String> {
    let answer = send(&app.api, &c.send).await;
    if answer.status != c.status {
        return Err(format!(
            "{} instead of {}: {}",
            answer.status,
            c.status,
            answer.text()
        ));
    }
    if !answer
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/json"))
    {
        return Err(format!("not JSON: {:?} {}", answer.headers, answer.text()));
    }
    let json: Value =
        serde_json::from_slice(&answer.body).map_err(|e| format!("not JSON ({e}): {}", answer.text()))?;
    let error = json["error"]
        .as_str()
        .ok_or_else(|| format!("no error in {json}"))?;
    if !error.contains(&c.says) {
        return Err(format!("{error:?} does not say {:?}", c.says));
    }
    Ok(())
}

/// What a refused request must not have changed.
#[derive(Debug, PartialEq, Eq)]
struct Stored {
    versions: i64,
    queued: u64,
    blobs: usize,
    tokens: i64,
    live_tokens: i64,
    webhooks: i64,
    pinned: i64,
    statuses: Vec<(String, String)>,
    latest: Vec<String>,
}

async fn stored(app: &TestApp) -> Stored {
    let count = |sql: &'static str| {
        let db = app.db.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&db).await.unwrap() }
    };
    let statuses: Vec<(String, String)> = sqlx::query_as("select id, status from versions order by id")
        .fetch_all(&app.db)
        .await
        .unwrap();
    let (mut redis, keys) = app.redis().await;
    let pattern = keys.latest("*", "*");
    let mut latest: Vec<String> = redis::AsyncCommands::keys(&mut redis, pattern).await.unwrap();
    let mut pointers = Vec::new();
    latest.sort();
    for key in &latest {
        let value: String = redis::AsyncCommands::get(&mut redis, key).await.unwrap();
        let id = serde_json::from_str::<Value>(&value).unwrap()["latestVersionId"].to_string();
        pointers.push(format!("{key}={id}"));
    }
    Stored {
        versions: app.version_count().await,
        queued: app.queue_depth().await,
        blobs: app.blob_count(),
        tokens: count("select count(*) from user_tokens").await,
        live_tokens: count("select count(*) from user_tokens where revoked_at is null").await,
        webhooks: count("select count(*) from webhooks").await,
        pinned: count("select count(*) from versions where pinned").await,
        statuses,
        latest: pointers,
    }
}

/// `/healthz` answers, and so does an ordinary request that stores something.
async fn assert_healthy(app: &TestApp) {
    let health = raw(&app.api, &http("GET", "/healthz", &[], b"")).await;
    assert_eq!(health.status, 200, "{}", health.text());
    let body = build_body(
        "u_healthy",
        &unique("after"),
        json!([{ "path": "index.html", "content": "<h1>still here</h1>" }]),
    );
    let answer = send(&app.api, &build(body)).await;
    assert_eq!(answer.status, 202, "{}", answer.text());
}

fn one(path: &str) -> Value {
    json!({ "userId": "u", "projectId": "p", "files": [{ "path": path, "content": "x" }] })
}

fn file(entry: Value) -> Value {
    json!({ "userId": "u", "projectId": "p", "files": [entry] })
}

/// `[[[…]]]` (or `{"a":{"a":…}}`) `depth` deep.
fn nested(depth: usize, object: bool) -> String {
    if object {
        format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
    } else {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }
}

/// Paths that try to leave the project, in every spelling: each is refused wherever a path is
/// taken (`files`, `deleted`, the generator contract's `templateFiles` and `files`).
fn hostile_paths() -> Vec<(&'static str, String, &'static str)> {
    vec![
        ("dot-dot", "../../etc/passwd".into(), "contains a '..'"),
        ("inner dot-dot", "src/../../x".into(), "contains a '..'"),
        ("dot segment", "./x".into(), "'..', '.' or empty segment"),
        ("empty segment", "a//b".into(), "'..', '.' or empty segment"),
        ("trailing slash", "a/".into(), "'..', '.' or empty segment"),
        ("absolute", "/etc/passwd".into(), "is absolute"),
        ("drive letter", "C:/Windows/win.ini".into(), "is absolute"),
        ("backslash", "src\\app.js".into(), "backslash"),
        ("backslash dot-dot", "..\\..\\x".into(), "backslash"),
        ("UNC", "\\\\server\\share".into(), "backslash"),
        ("nul", "a\u{0}b".into(), "NUL"),
        ("nul extension", "index.html\u{0}.png".into(), "NUL"),
        ("control", "a\u{1}b".into(), "control character"),
        ("newline", "a\nb".into(), "control character"),
        ("C1 control", "a\u{85}b".into(), "control character"),
        ("DEL", "a\u{7f}b".into(), "control character"),
        ("%2e%2e", "%2e%2e/%2e%2e/etc/passwd".into(), "percent-encoded"),
        ("%2E%2E%2F", "%2E%2E%2Fetc%2Fpasswd".into(), "percent-encoded"),
        ("..%2f", "..%2f..%2fetc".into(), "percent-encoded"),
        ("%5c", "..%5c..%5cwin.ini".into(), "percent-encoded"),
        ("double-encoded", "%252e%252e/x".into(), "percent-encoded"),
        (
            "overlong %c0%ae",
            "%c0%ae%c0%ae/%c0%afetc".into(),
            "percent-encoded",
        ),
        ("%00", "a%00.png".into(), "percent-encoded"),
        (
            "one dot leader",
            "\u{2024}\u{2024}/etc/passwd".into(),
            "U+2024 (ONE DOT LEADER)",
        ),
        ("two dot leader", "\u{2025}/x".into(), "U+2025 (TWO DOT LEADER)"),
        (
            "fullwidth full stop",
            "\u{FF0E}\u{FF0E}/\u{FF0E}\u{FF0E}/x".into(),
            "U+FF0E (FULLWIDTH FULL STOP)",
        ),
        ("small full stop", "\u{FE52}\u{FE52}/x".into(), "U+FE52"),
        ("ideographic full stop", "\u{3002}\u{3002}/x".into(), "U+3002"),
        (
            "division slash",
            "..\u{2215}..\u{2215}etc".into(),
            "U+2215 (DIVISION SLASH)",
        ),
        ("fraction slash", "..\u{2044}x".into(), "U+2044 (FRACTION SLASH)"),
        (
            "fullwidth solidus",
            "\u{FF0F}etc\u{FF0F}passwd".into(),
            "U+FF0F (FULLWIDTH SOLIDUS)",
        ),
        ("fullwidth reverse solidus", "..\u{FF3C}x".into(), "U+FF3C"),
        ("set minus", "..\u{2216}x".into(), "U+2216 (SET MINUS)"),
        (
            "yen sign (cp932 backslash)",
            "..\u{A5}..\u{A5}x".into(),
            "U+00A5 (YEN SIGN)",
        ),
        (
            "fullwidth colon",
            "C\u{FF1A}/x".into(),
            "U+FF1A (FULLWIDTH COLON)",
        ),
        (
            "right-to-left override",
            "evil\u{202E}sj.png".into(),
            "invisible character U+202E",
        ),
        (
            "zero-width space",
            "index\u{200B}.html".into(),
            "invisible character U+200B",
        ),
        (
            "byte order mark",
            "\u{FEFF}index.html".into(),
            "invisible character U+FEFF",
        ),
        (
            "34 levels deep",
            vec!["a"; 34].join("/"),
            "34 levels deep; the limit is 33",
        ),
        ("256 levels deep", vec!["a"; 256].join("/"), "256 levels deep"),
        (
            "long name",
            format!("src/{}", "n".repeat(256)),
            "longer than 255 bytes",
        ),
        ("long path", "a/".repeat(300), "longer than 512 bytes"),
        ("empty path", String::new(), "path is empty"),
    ]
}

#[tokio::test]
async fn hostile_build_requests_get_a_clear_4xx_and_nothing_is_stored() {
    let app = spawn_app(Options::without_builders()).await;
    let mut cases = Vec::new();

    // Paths, wherever a request names one.
    for (name, path, says) in hostile_paths() {
        cases.push(case(format!("files: {name}"), build(one(&path)), 422, says));
        cases.push(case(
            format!("deleted: {name}"),
            build(json!({ "userId": "u", "projectId": "p", "deleted": [path] })),
            422,
            says,
        ));
        let contract = json!({ "userId": "u", "projectId": "p",
            "output": { "templateFiles": [{ "path": "index.html", "content": "x" }],
                        "files": [{ "path": path, "content": "x" }] } });
        cases.push(case(format!("output.files: {name}"), build(contract), 422, says));
    }
    cases.push(case(
        "output.templateFiles: dot-dot",
        build(json!({ "userId": "u", "projectId": "p",
            "output": { "templateFiles": [{ "path": "../x", "content": "x" }] } })),
        422,
        "contains a '..'",
    ));
    // JSON escapes are decoded before the path is checked.
    for (name, raw_path, says) in [
        (
            "escaped dot-dot",
            r"\u002e\u002e/\u002e\u002e/etc/passwd",
            "contains a '..'",
        ),
        ("escaped slash", r"\u002fetc\u002fpasswd", "is absolute"),
        ("escaped NUL", r"a\u0000b", "NUL"),
        ("escaped backslash", r"..\\x", "backslash"),
        ("escaped fullwidth stop", r"\uff0e\uff0e/x", "U+FF0E"),
    ] {
        let body =
            format!(r#"{{"userId":"u","projectId":"p","files":[{{"path":"{raw_path}","content":"x"}}]}}"#);
        cases.push(case(name, build_raw(body), 422, says));
    }

    // A tree that cannot be written to disk, and entries that are not regular files.
    for (name, entries, says) in [
        (
            "a file and a folder",
            json!([{ "path": "a", "content": "1" }, { "path": "a/b", "content": "2" }]),
            "path a is a file, and a folder of a/b",
        ),
        (
            "deep file and folder",
            json!([{ "path": "src/x/y/z", "content": "1" }, { "path": "src/x/y", "content": "2" }]),
            "path src/x/y is a file, and a folder of src/x/y/z",
        ),
        (
            "duplicate",
            json!([{ "path": "a", "content": "1" }, { "path": "a", "content": "2" }]),
            "given twice",
        ),
    ] {
        cases.push(case(
            name,
            build(json!({ "userId": "u", "projectId": "p", "files": entries })),
            422,
            says,
        ));
    }
    for (name, entry, says) in [
        (
            "symlink type",
            json!({ "path": "link", "content": "/etc/passwd", "type": "symlink" }),
            "is of type \"symlink\": sources are regular files only",
        ),
        (
            "symlink target",
            json!({ "path": "link", "content": "", "target": "../../../etc/passwd" }),
            "is a link (it has a target)",
        ),
        (
            "linkTarget",
            json!({ "path": "link", "content": "", "linkTarget": "/root/.ssh/id_rsa" }),
            "is a link",
        ),
        (
            "symlink mode",
            json!({ "path": "link", "content": "/etc/passwd", "mode": 0o120777 }),
            "a symbolic link (mode 120777)",
        ),
        (
            "symlink mode as octal text",
            json!({ "path": "link", "content": "/etc", "mode": "120755" }),
            "a symbolic link (mode 120755)",
        ),
        (
            "directory mode",
            json!({ "path": "dir", "content": "", "mode": "040755" }),
            "a directory",
        ),
        (
            "device mode",
            json!({ "path": "dev", "content": "", "mode": 0o020666 }),
            "a special file",
        ),
        (
            "hard link type",
            json!({ "path": "h", "content": "index.html", "type": "hardlink" }),
            "of type \"hardlink\"",
        ),
        (
            "mode not a number",
            json!({ "path": "a", "content": "", "mode": "rwxrwxrwx" }),
            "not a number",
        ),
    ] {
        cases.push(case(name, build(file(entry)), 422, says));
    }

    // Values where another type belongs (400: the body is not the documented shape).
    for (name, body, says) in [
        (
            r#"userId: 42"#,
            r#"{"userId":42,"projectId":"p"}"#,
            "invalid type: integer `42`, expected a string",
        ),
        (
            r#"userId: 1.5"#,
            r#"{"userId":1.5,"projectId":"p"}"#,
            "invalid type: floating point",
        ),
        (
            r#"userId: 1e999"#,
            r#"{"userId":1e999,"projectId":"p"}"#,
            "number out of range",
        ),
        (
            r#"userId: true"#,
            r#"{"userId":true,"projectId":"p"}"#,
            "invalid type: boolean",
        ),
        (
            r#"userId: []"#,
            r#"{"userId":[],"projectId":"p"}"#,
            "invalid type: sequence",
        ),
        (
            r#"userId: {}"#,
            r#"{"userId":{},"projectId":"p"}"#,
            "invalid type: map",
        ),
        (
            r#"projectId: -1"#,
            r#"{"userId":"u","projectId":-1}"#,
            "invalid type: integer `-1`",
        ),
        (
            r#"files: "x""#,
            r#"{"userId":"u","projectId":"p","files":"x"}"#,
            "invalid type: string \"x\", expected a sequence",
        ),
        (
            r#"files: {}"#,
            r#"{"userId":"u","projectId":"p","files":{}}"#,
            "expected a sequence",
        ),
        (
            r#"files: [1]"#,
            r#"{"userId":"u","projectId":"p","files":[1]}"#,
            "invalid type: integer `1`, expected struct FileInput",
        ),
        (
            r#"files: [null]"#,
            r#"{"userId":"u","projectId":"p","files":[null]}"#,
            "invalid type: null, expected struct FileInput",
        ),
        (
            r#"path: 7"#,
            r#"{"userId":"u","projectId":"p","files":[{"path":7,"content":""}]}"#,
            "invalid type: integer `7`",
        ),
        (
            r#"path: null"#,
            r#"{"userId":"u","projectId":"p","files":[{"path":null,"content":""}]}"#,
            "invalid type: null",
        ),
        (
            r#"path: ["a"]"#,
            r#"{"userId":"u","projectId":"p","files":[{"path":["a"],"content":""}]}"#,
            "invalid type: sequence",
        ),
        (
            r#"content: 5"#,
            r#"{"userId":"u","projectId":"p","files":[{"path":"a","content":5}]}"#,
            "invalid type: integer `5`",
        ),
        (
            r#"content: null"#,
            r#"{"userId":"u","projectId":"p","files":[{"path":"a","content":null}]}"#,
            "invalid type: null",
        ),
        (
            r#"content missing"#,
            r#"{"userId":"u","projectId":"p","files":[{"path":"a"}]}"#,
            "missing field `content`",
        ),
        (
            r#"encoding: 1"#,
            r#"{"userId":"u","projectId":"p","files":[{"path":"a","content":"","encoding":1}]}"#,
            "invalid type: integer `1`",
        ),
        (
            r#"encoding: rot13"#,
            r#"{"userId":"u","projectId":"p","files":[{"path":"a","content":"1","encoding":"rot13"}]}"#,
            "encoding must be utf8 or base64, not \"rot13\"",
        ),
        (
            r#"prompt: 42"#,
            r#"{"userId":"u","projectId":"p","prompt":42}"#,
            "invalid type: integer `42`",
        ),
        (
            r#"prompt: []"#,
            r#"{"userId":"u","projectId":"p","prompt":[]}"#,
            "invalid type: sequence",
        ),
        (
            r#"framework: {}"#,
            r#"{"userId":"u","projectId":"p","framework":{}}"#,
            "invalid type: map",
        ),
        (
            r#"baseVersionId: 123"#,
            r#"{"userId":"u","projectId":"p","baseVersionId":123}"#,
            "invalid type: integer `123`",
        ),
        (
            r#"deleted: "x""#,
            r#"{"userId":"u","projectId":"p","deleted":"x"}"#,
            "expected a sequence",
        ),
        (
            r#"deleted: [1]"#,
            r#"{"userId":"u","projectId":"p","deleted":[1]}"#,
            "invalid type: integer `1`",
        ),
        (
            r#"onConflict: true"#,
            r#"{"userId":"u","projectId":"p","onConflict":true}"#,
            "invalid type: boolean",
        ),
        (
            r#"output: "x""#,
            r#"{"userId":"u","projectId":"p","output":"x"}"#,
            "expected struct GeneratorOutput",
        ),
        (
            r#"output.files: "x""#,
            r#"{"userId":"u","projectId":"p","output":{"files":"x"}}"#,
            "expected a sequence",
        ),
        (
            r#"output.templateFiles: [{path:1}]"#,
            r#"{"userId":"u","projectId":"p","output":{"templateFiles":[{"path":1,"content":""}]}}"#,
            "invalid type: integer `1`",
        ),
        (
            r#"output.techStack: "react""#,
            r#"{"userId":"u","projectId":"p","output":{"techStack":"react"}}"#,
            "expected a sequence",
        ),
        (
            "body: null",
            "null",
            "invalid type: null, expected struct BuildRequestBody",
        ),
        ("body: []", "[]", "the body must be a JSON object, not an array"),
        (
            "body: [\"u\"]",
            r#"["u","p"]"#,
            "the body must be a JSON object, not an array",
        ),
        ("body: \"text\"", r#""text""#, "invalid type: string"),
        ("body: 42", "42", "invalid type: integer `42`"),
        ("body: true", "true", "invalid type: boolean"),
        ("truncated", r#"{"userId": "#, "invalid JSON"),
        (
            "trailing garbage",
            r#"{"userId":"u","projectId":"p"} x"#,
            "trailing characters",
        ),
        (
            "two documents",
            r#"{"userId":"u"}{"userId":"v"}"#,
            "trailing characters",
        ),
        ("form-encoded", "userId=u&projectId=p", "invalid JSON"),
        ("single quotes", "{'userId':'u'}", "key must be a string"),
        ("comment", r#"{/* c */"userId":"u"}"#, "key must be a string"),
        (
            "NaN",
            r#"{"userId":"u","projectId":"p","files":[{"path":"a","content":NaN}]}"#,
            "expected value",
        ),
        ("empty body", "", "the request body is empty"),
        (
            "unknown field",
            r#"{"userId":"u","projectId":"p","isAdmin":true,"files":[]}"#,
            "unknown field `isAdmin`",
        ),
        (
            "misspelt baseVersionId",
            r#"{"userId":"u","projectId":"p","baseVersion":"x","files":[]}"#,
            "unknown field `baseVersion`",
        ),
        (
            "files at the top",
            r#"{"userId":"u","projectId":"p","templateFiles":[]}"#,
            "unknown field `templateFiles`",
        ),
    ] {
        cases.push(case(name, build_raw(body), 400, says));
    }

    // Duplicate keys: refused, naming the key, at any depth (serde's derive refuses a repeated
    // field; the free-form `output.metadata` is held to the same rule by `StrictJson`).
    for (name, body, says) in [
        (
            "userId twice",
            r#"{"userId":"u","userId":"admin","projectId":"p","files":[]}"#,
            "duplicate field `userId`",
        ),
        (
            "projectId twice",
            r#"{"userId":"u","projectId":"p","projectId":"q","files":[]}"#,
            "duplicate field `projectId`",
        ),
        (
            "files twice",
            r#"{"userId":"u","projectId":"p","files":[],"files":[{"path":"../x","content":""}]}"#,
            "duplicate field `files`",
        ),
        (
            "path twice",
            r#"{"userId":"u","projectId":"p","files":[{"path":"a","path":"../x","content":""}]}"#,
            "duplicate field `path`",
        ),
        (
            "content twice",
            r#"{"userId":"u","projectId":"p","files":[{"path":"a","content":"1","content":"2"}]}"#,
            "duplicate field `content`",
        ),
        (
            "encoding twice",
            r#"{"userId":"u","projectId":"p","files":[{"path":"a","content":"1","encoding":"utf8","encoding":"base64"}]}"#,
            "duplicate field `encoding`",
        ),
        (
            "baseVersionId twice",
            r#"{"userId":"u","projectId":"p","baseVersionId":"a","baseVersionId":"b"}"#,
            "duplicate field `baseVersionId`",
        ),
        (
            "output twice",
            r#"{"userId":"u","projectId":"p","output":{},"output":{}}"#,
            "duplicate field `output`",
        ),
        (
            "target and linkTarget",
            r#"{"userId":"u","projectId":"p","files":[{"path":"a","content":"","target":"x","linkTarget":"y"}]}"#,
            "duplicate field `target`",
        ),
        (
            "metadata key twice",
            r#"{"userId":"u","projectId":"p","output":{"files":[{"path":"a","content":"1"}],"metadata":{"plan":"free","plan":"enterprise"}}}"#,
            "duplicate key \"plan\"",
        ),
        (
            "nested metadata key twice",
            r#"{"userId":"u","projectId":"p","output":{"files":[{"path":"a","content":"1"}],"metadata":{"a":[{"b":1,"b":2}]}}}"#,
            "duplicate key \"b\"",
        ),
    ] {
        cases.push(case(name, build_raw(body), 400, says));
    }

    // Invalid UTF-8, and JSON's own ways of smuggling it.
    for (name, body, says) in [
        ("0xff in a string", b"{\"userId\":\"\xff\",\"projectId\":\"p\"}".to_vec(), "invalid unicode code point"),
        ("overlong dot-dot", b"{\"userId\":\"u\",\"projectId\":\"p\",\"files\":[{\"path\":\"\xc0\xae\xc0\xae/x\",\"content\":\"\"}]}".to_vec(), "invalid unicode code point"),
        ("encoded surrogate", b"{\"userId\":\"\xed\xa0\x80\",\"projectId\":\"p\"}".to_vec(), "invalid unicode code point"),
        ("latin-1", b"{\"userId\":\"caf\xe9\",\"projectId\":\"p\"}".to_vec(), "invalid unicode code point"),
        ("truncated sequence", b"{\"userId\":\"u\xe2\x82\",\"projectId\":\"p\"}".to_vec(), "invalid unicode code point"),
        ("0xff outside strings", b"{\"userId\":\"u\"\xff}".to_vec(), "expected `,` or `}`"),
        ("UTF-16", b"\xff\xfe{\x00}\x00".to_vec(), "expected value"),
        ("byte order mark", b"\xef\xbb\xbf{\"userId\":\"u\",\"projectId\":\"p\"}".to_vec(), "expected value"),
        ("lone surrogate escape", br#"{"userId":"\ud800","projectId":"p"}"#.to_vec(), "hex escape"),
        ("lone trailing surrogate", br#"{"userId":"u","projectId":"p","files":[{"path":"\udc00","content":""}]}"#.to_vec(), "lone leading surrogate"),
        ("content with invalid UTF-8", b"{\"userId\":\"u\",\"projectId\":\"p\",\"files\":[{\"path\":\"a\",\"content\":\"\x80\"}]}".to_vec(), "invalid unicode code point"),
    ] {
        cases.push(case(name, build_raw(body), 400, says));
    }

    // Nesting far past serde_json's recursion limit (128): refused, and the worker lives.
    for depth in [10_000, 100_000] {
        for (name, body, says) in [
            (
                "arrays",
                nested(depth, false),
                "must be a JSON object, not an array",
            ),
            ("objects", nested(depth, true), "unknown field `a`"),
            (
                "in metadata",
                format!(
                    r#"{{"userId":"u","projectId":"p","output":{{"metadata":{}}}}}"#,
                    nested(depth, true)
                ),
                "recursion limit exceeded",
            ),
            (
                "in an unknown field",
                format!(
                    r#"{{"userId":"u","projectId":"p","extra":{}}}"#,
                    nested(depth, false)
                ),
                "unknown field `extra`",
            ),
            (
                "in a file's mode",
                format!(
                    r#"{{"userId":"u","projectId":"p","files":[{{"path":"a","content":"","mode":{}}}]}}"#,
                    nested(depth, false)
                ),
                "recursion limit exceeded",
            ),
            (
                "in files",
                format!(
                    r#"{{"userId":"u","projectId":"p","files":{}}}"#,
                    nested(depth, false)
                ),
                "invalid type: sequence",
            ),
            (
                "unclosed",
                "[".repeat(depth),
                "must be a JSON object, not an array",
            ),
            ("unclosed objects", r#"{"a":"#.repeat(depth), "unknown field `a`"),
        ] {
            cases.push(case(format!("{depth} deep: {name}"), build_raw(body), 400, says));
        }
    }

    // What the seed's routes take is checked the same way.
    for (route, body) in [
        ("/build-preview-for-new-project", one("../x").to_string()),
        ("/rebuild-preview", one("\u{FF0E}\u{FF0E}/x").to_string()),
        ("/build-preview-for-new-project", nested(10_000, true)),
    ] {
        let says = if body.starts_with('{') && body.contains("userId") {
            "path"
        } else {
            "unknown field `a`"
        };
        let status = if says == "path" { 422 } else { 400 };
        cases.push(case(
            format!("seed {route}"),
            signed("POST", route, body),
            status,
            says,
        ));
    }

    // Caps and the rest of admission's checks.
    let many: Vec<Value> = (0..5001)
        .map(|i| json!({ "path": format!("f{i}.txt"), "content": "" }))
        .collect();
    let big = "a".repeat(10 * 1024 * 1024 + 1);
    let unknown_base = ulid::Ulid::new().to_string();
    for (name, body, status, says) in [
        (
            "too many files",
            json!({ "userId": "u", "projectId": "p", "files": many }),
            422,
            "5001 files given; the limit is 5000".to_owned(),
        ),
        (
            "huge file",
            json!({ "userId": "u", "projectId": "p", "files": [{ "path": "big.txt", "content": big }] }),
            422,
            "the limit is 10485760 bytes per file".into(),
        ),
        (
            "bad base64",
            json!({ "userId": "u", "projectId": "p", "files": [{ "path": "a.png", "content": "%%%", "encoding": "base64" }] }),
            422,
            "not valid base64".into(),
        ),
        (
            "missing userId",
            json!({ "projectId": "p", "files": [] }),
            422,
            "userId is required".into(),
        ),
        (
            "null userId",
            json!({ "userId": null, "projectId": "p", "files": [] }),
            422,
            "userId is required".into(),
        ),
        (
            "malformed userId",
            json!({ "userId": "u 1", "projectId": "p", "files": [] }),
            422,
            "userId must be".into(),
        ),
        (
            "userId with a slash",
            json!({ "userId": "u/../admin", "projectId": "p", "files": [] }),
            422,
            "userId must be".into(),
        ),
        (
            "userId with a colon (a Redis key separator)",
            json!({ "userId": "u:latest:v", "projectId": "p", "files": [] }),
            422,
            "userId must be".into(),
        ),
        (
            "malformed projectId",
            json!({ "userId": "u", "projectId": "p/../q", "files": [] }),
            422,
            "projectId must be".into(),
        ),
        (
            "fullwidth projectId",
            json!({ "userId": "u", "projectId": "p\u{FF0E}\u{FF0E}", "files": [] }),
            422,
            "projectId must be".into(),
        ),
        (
            "long projectId",
            json!({ "userId": "u", "projectId": "p".repeat(65), "files": [] }),
            422,
            "projectId must be".into(),
        ),
        (
            "malformed base",
            json!({ "userId": "u", "projectId": "p", "baseVersionId": "v3", "files": [] }),
            422,
            "baseVersionId is not a valid id".into(),
        ),
        (
            "unknown base",
            json!({ "userId": "u", "projectId": "p", "baseVersionId": unknown_base, "files": [] }),
            422,
            "is not a version of project u/p".into(),
        ),
        (
            "no files",
            json!({ "userId": "u", "projectId": "p" }),
            422,
            "a first build needs the project's files".into(),
        ),
        (
            "prompt only, no generator",
            json!({ "userId": "u", "projectId": "p", "prompt": "a site" }),
            422,
            "no generator configured".into(),
        ),
        (
            "huge prompt",
            json!({ "userId": "u", "projectId": "p", "prompt": "p".repeat(100_001) }),
            422,
            "prompt is longer than 100000 bytes".into(),
        ),
        (
            "deleted without base",
            json!({ "userId": "u", "projectId": "p", "files": [{ "path": "a", "content": "1" }], "deleted": ["b"] }),
            422,
            "deleted needs a base version".into(),
        ),
        (
            "bad framework",
            json!({ "userId": "u", "projectId": "p", "framework": "<script>", "files": [] }),
            422,
            "framework must be".into(),
        ),
        (
            "bad onConflict",
            json!({ "userId": "u", "projectId": "p", "onConflict": "overwrite", "files": [] }),
            422,
            "onConflict must be".into(),
        ),
    ] {
        cases.push(case(name, build(body), status, says));
    }
    // Over the 50 MB body cap: 413 before the body is read.
    cases.push(case(
        "body over 50 MB",
        build_raw(vec![b' '; 50 * 1024 * 1024 + 1]),
        413,
        "the request body is larger than 50 MB",
    ));

    let before = stored(&app).await;
    refuse_all(&app, "build requests", &cases).await;
    assert_eq!(stored(&app).await, before, "nothing was stored");
    assert_eq!(app.version_count().await, 0, "no version was recorded");
    assert_eq!(app.queue_depth().await, 0, "nothing was queued");
    assert_eq!(app.blob_count(), 0, "no blob was stored");
    assert_healthy(&app).await;
}

#[tokio::test]
async fn traversal_in_url_paths_is_refused_in_every_encoding() {
    let app = spawn_app(Options::without_builders()).await;
    let project = unique("urls");
    let id = app
        .submit(&build_body(
            "u",
            &project,
            json!([{ "path": "index.html", "content": "<h1>x</h1>" }, { "path": "src/a.js", "content": "1" }]),
        ))
        .await;
    let files = format!("/v1/projects/u/{project}/versions/{id}/files");
    let mut cases = Vec::new();
    for (name, tail, says) in [
        ("dot-dot", "../../../etc/passwd", "contains a '..'"),
        ("src/../..", "src/../../x", "contains a '..'"),
        ("%2e%2e", "%2e%2e/%2e%2e/etc/passwd", "contains a '..'"),
        ("%2E%2E", "%2E%2E/%2E%2E/etc/passwd", "contains a '..'"),
        ("..%2f", "..%2f..%2fetc%2fpasswd", "contains a '..'"),
        ("%2e%2e%2f", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "contains a '..'"),
        ("..%5c", "..%5c..%5cwin.ini", "backslash"),
        (
            "double-encoded",
            "%252e%252e/%252e%252e/etc/passwd",
            "percent-encoded",
        ),
        ("absolute", "/etc/passwd", "is absolute"),
        ("%2f absolute", "%2fetc%2fpasswd", "is absolute"),
        ("nul", "index.html%00.png", "NUL"),
        ("control", "a%0ab", "control character"),
        ("one dot leader", "%e2%80%a4%e2%80%a4/etc/passwd", "U+2024"),
        ("fullwidth full stop", "%ef%bc%8e%ef%bc%8e/x", "U+FF0E"),
        ("division slash", "..%e2%88%95..%e2%88%95etc", "U+2215"),
        ("fullwidth solidus", "%ef%bc%8fetc%ef%bc%8fpasswd", "U+FF0F"),
        ("right-to-left override", "a%e2%80%aeb", "U+202E"),
        ("overlong %c0%ae", "%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd", "UTF-8"),
        ("invalid UTF-8", "a%ff", "UTF-8"),
        ("deep", &vec!["a"; 40].join("/"), "40 levels deep"),
    ] {
        cases.push(case(
            format!("files/{name}"),
            operator("GET", format!("{files}/{tail}")),
            400,
            says,
        ));
    }
    // Ids in paths: every spelling of a traversal is a malformed id.
    for (name, path, says) in [
        (
            "build ../",
            "/v1/builds/..%2f..%2fetc%2fpasswd".to_owned(),
            "build id is not a valid id",
        ),
        (
            "build %2e%2e",
            "/v1/builds/%2e%2e".to_owned(),
            "build id is not a valid id",
        ),
        (
            "build %00",
            format!("/v1/builds/{id}%00"),
            "build id is not a valid id",
        ),
        (
            "build fullwidth",
            "/v1/builds/%ef%bc%8e%ef%bc%8e".to_owned(),
            "build id is not a valid id",
        ),
        (
            "build overlong",
            "/v1/builds/%c0%ae%c0%ae".to_owned(),
            "build id is not a valid id",
        ),
        (
            "events of ../",
            "/v1/builds/%2e%2e/events".to_owned(),
            "build id is not a valid id",
        ),
        (
            "logs of ../",
            "/v1/builds/%2e%2e%2f/logs".to_owned(),
            "build id is not a valid id",
        ),
        (
            "user ..",
            format!("/v1/projects/%2e%2e/{project}/versions"),
            "userId must be",
        ),
        (
            "user ../..",
            "/v1/projects/..%2f..%2fetc/p/versions".to_owned(),
            "userId must be",
        ),
        (
            "project ..",
            "/v1/projects/u/%2e%2e/latest".to_owned(),
            "projectId must be",
        ),
        (
            "project with %2f",
            "/v1/projects/u/p%2f..%2fq/latest".to_owned(),
            "projectId must be",
        ),
        (
            "project fullwidth",
            "/v1/projects/u/p%ef%bc%8e%ef%bc%8e/latest".to_owned(),
            "projectId must be",
        ),
        (
            "project nul",
            "/v1/projects/u/p%00/latest".to_owned(),
            "projectId must be",
        ),
        (
            "version ../",
            format!("/v1/projects/u/{project}/versions/%2e%2e/files"),
            "version id is not a valid id",
        ),
        (
            "diff ../",
            format!("/v1/projects/u/{project}/versions/{id}/diff/%2e%2e%2f{id}"),
            "b is not a valid id",
        ),
        (
            "token ../",
            "/v1/tokens/%2e%2e%2f%2e%2e".to_owned(),
            "a token id is 26 characters",
        ),
        (
            "webhook ../",
            "/v1/webhooks/wh_%2e%2e".to_owned(),
            "webhook id must be",
        ),
    ] {
        let method = if name.starts_with("token") {
            "DELETE"
        } else {
            "GET"
        };
        cases.push(case(name, operator(method, path), 400, says));
    }
    // Paths that escape the routes answer as the unknown routes they are.
    for path in [
        "/v1/builds/../../etc/passwd".to_owned(),
        "/v1/../../etc/passwd".to_owned(),
        format!("/v1/projects/u/{project}/versions/{id}/files"),
    ] {
        cases.push(case(
            format!("route {path}"),
            operator("GET", path.replace("/files", "/files/")),
            if path.ends_with("/files") { 400 } else { 404 },
            if path.ends_with("/files") {
                "path is empty"
            } else {
                "no such route"
            },
        ));
    }

    let before = stored(&app).await;
    refuse_all(&app, "URL paths", &cases).await;
    assert_eq!(stored(&app).await, before, "nothing was stored");

    // The preview listener serves only what a version's manifest names, whatever the path says
    // (it answers browsers in text; no file outside the store is ever read).
    let preview = format!("http://127.0.0.1:{}", app.preview_port);
    let host = format!("{id}.localhost:{}", app.preview_port);
    let mut refused = 0;
    for path in [
        "/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2fetc%2fpasswd",
        "/%252e%252e/etc/passwd",
        "/..%5c..%5cwin.ini",
        "/%c0%ae%c0%ae/etc/passwd",
        "/index.html%00.png",
        "/%ef%bc%8e%ef%bc%8e/etc/passwd",
        "//etc/passwd",
    ] {
        let request = http("GET", path, &[("Host", host.clone().into_bytes())], b"");
        // The first Host is the one http() adds; send the preview host only.
        let request = String::from_utf8_lossy(&request)
            .replace("Host: 127.0.0.1\r\n", "")
            .into_bytes();
        let answer = raw(&preview, &request).await;
        assert_eq!(answer.status, 404, "preview {path}: {}", answer.text());
        assert!(answer.text().contains("not"), "preview {path}: {}", answer.text());
        refused += 1;
    }
    for host in [
        "..",
        "%2e%2e.localhost",
        "a_b.localhost",
        "x.y.localhost",
        "localhost",
    ] {
        let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let answer = raw(&preview, request.as_bytes()).await;
        assert_eq!(answer.status, 404, "preview host {host}: {}", answer.text());
        refused += 1;
    }
    eprintln!("hostile preview paths and hosts: {refused} cases, all refused");
    assert_healthy(&app).await;
}

#[tokio::test]
async fn other_bodies_queries_and_headers_are_refused() {
    let app = spawn_app(Options::without_builders()).await;
    let project = unique("other");
    let id = app
        .submit(&build_body(
            "u",
            &project,
            json!([{ "path": "index.html", "content": "x" }]),
        ))
        .await;
    let rollback = format!("/v1/projects/u/{project}/rollback");
    let mut cases = Vec::new();
    // Bodies of the other routes that take one.
    for (name, path, body, status, says) in [
        (
            "tokens: userId 42",
            "/v1/tokens",
            r#"{"userId":42}"#.to_owned(),
            400,
            "invalid type: integer `42`",
        ),
        (
            "tokens: userId twice",
            "/v1/tokens",
            r#"{"userId":"a","userId":"b"}"#.into(),
            400,
            "duplicate field `userId`",
        ),
        (
            "tokens: description []",
            "/v1/tokens",
            r#"{"userId":"a","description":[]}"#.into(),
            400,
            "invalid type: sequence",
        ),
        (
            "tokens: control characters",
            "/v1/tokens",
            r#"{"userId":"a","description":"a\u0007b"}"#.into(),
            400,
            "without control characters",
        ),
        (
            "tokens: deep",
            "/v1/tokens",
            nested(10_000, true),
            400,
            "unknown field `a`",
        ),
        (
            "tokens: raw NUL",
            "/v1/tokens",
            "{\"userId\":\"\u{fffd}\"}".replace('\u{fffd}', "\u{0}"),
            400,
            "control character",
        ),
        (
            "rollback: versionId 42",
            &rollback,
            r#"{"versionId":42}"#.into(),
            400,
            "invalid type: integer `42`",
        ),
        (
            "rollback: versionId twice",
            &rollback,
            format!(r#"{{"versionId":"{id}","versionId":"{id}"}}"#),
            400,
            "duplicate field `versionId`",
        ),
        (
            "rollback: versionId null",
            &rollback,
            r#"{"versionId":null}"#.into(),
            422,
            "versionId is required",
        ),
        (
            "rollback: versionId ../",
            &rollback,
            r#"{"versionId":"../../x"}"#.into(),
            422,
            "versionId is not a valid id",
        ),
        (
            "rollback: deep",
            &rollback,
            nested(10_000, false),
            400,
            "must be a JSON object, not an array",
        ),
        (
            "rollback: unknown field",
            &rollback,
            format!(r#"{{"versionId":"{id}","force":true}}"#),
            400,
            "unknown field `force`",
        ),
        (
            "rollback: not JSON",
            &rollback,
            "versionId=x".into(),
            400,
            "invalid JSON",
        ),
        (
            "webhooks: url 42",
            "/v1/webhooks",
            r#"{"url":42}"#.into(),
            400,
            "invalid type: integer `42`",
        ),
        (
            "webhooks: url twice",
            "/v1/webhooks",
            r#"{"url":"http://a/","url":"http://b/"}"#.into(),
            400,
            "duplicate field `url`",
        ),
        (
            "webhooks: eventTypes text",
            "/v1/webhooks",
            r#"{"url":"http://a/","eventTypes":"x"}"#.into(),
            400,
            "expected a sequence",
        ),
        (
            "webhooks: eventTypes [1]",
            "/v1/webhooks",
            r#"{"url":"http://a/","eventTypes":[1]}"#.into(),
            400,
            "invalid type: integer `1`",
        ),
        (
            "webhooks: file URL",
            "/v1/webhooks",
            r#"{"url":"file:///etc/passwd"}"#.into(),
            422,
            "must be an http:// or https:// URL",
        ),
        (
            "webhooks: deep",
            "/v1/webhooks",
            format!(r#"{{"url":"http://a/","eventTypes":{}}}"#, nested(10_000, false)),
            400,
            "invalid type: sequence, expected a string",
        ),
    ] {
        cases.push(case(name, signed("POST", path.to_owned(), body), status, says));
    }
    cases.push(case(
        "tokens: 0xff",
        signed("POST", "/v1/tokens", b"{\"userId\":\"\xff\"}".to_vec()),
        400,
        "invalid unicode code point",
    ));
    // Query strings: repeated, mistyped, out of range, invalid UTF-8, injected.
    for (name, path, says) in [
        (
            "limit twice",
            "/v1/builds?limit=1&limit=100".to_owned(),
            "duplicate field `limit`",
        ),
        (
            "userId twice",
            "/v1/builds?userId=u&userId=admin".into(),
            "duplicate field `userId`",
        ),
        ("limit text", "/v1/builds?limit=all".into(), "invalid digit"),
        (
            "limit huge",
            "/v1/builds?limit=99999999999999999999".into(),
            "number too large",
        ),
        (
            "limit 0",
            "/v1/builds?limit=0".into(),
            "limit must be between 1 and 100",
        ),
        (
            "limit -1",
            "/v1/builds?limit=-1".into(),
            "limit must be between 1 and 100",
        ),
        (
            "unknown parameter",
            "/v1/builds?colour=blue".into(),
            "unknown field `colour`",
        ),
        ("userId %ff", "/v1/builds?userId=%ff".into(), "userId must be"),
        (
            "userId injected",
            "/v1/builds?userId=u%27%20or%201%3D1--".into(),
            "userId must be",
        ),
        ("status unknown", "/v1/builds?status=deployed%00".into(), "status"),
        (
            "before cursor",
            "/v1/builds?before=zzz".into(),
            "before is not a valid id",
        ),
        (
            "before cursor ../",
            "/v1/builds?before=..%2f..".into(),
            "before is not a valid id",
        ),
        (
            "versions cursor",
            format!("/v1/projects/u/{project}/versions?before=%2e%2e"),
            "before is not a valid id",
        ),
        (
            "events after -1",
            format!("/v1/builds/{id}/events?after=-1"),
            "after must be an event id",
        ),
        (
            "events after huge",
            format!("/v1/builds/{id}/events?after=4294967296"),
            "after must be an event id",
        ),
        (
            "events limit 0",
            format!("/v1/builds/{id}/events?limit=0"),
            "limit must be 1-1000",
        ),
        (
            "events after text",
            format!("/v1/builds/{id}/events?after=1e3"),
            "invalid digit",
        ),
        (
            "logs after -1",
            format!("/v1/builds/{id}/logs?after=-1"),
            "after must be a line number",
        ),
        (
            "logs follow maybe",
            format!("/v1/builds/{id}/logs?follow=maybe"),
            "was not `true` or `false`",
        ),
        (
            "diff mode",
            format!("/v1/projects/u/{project}/versions/{id}/diff/{id}?mode=%2e%2e"),
            "mode must be stat or patch",
        ),
        (
            "artifact source",
            format!("/v1/projects/u/{project}/versions/{id}/artifact?source=yes"),
            "was not `true` or `false`",
        ),
        (
            "tokens userId",
            "/v1/tokens?userId=..%2fadmin".into(),
            "userId must be",
        ),
        (
            "deliveries cursor",
            "/v1/webhooks/wh_01aaaaaaaaaaaaaaaaaaaaaaaa/deliveries?before=..".into(),
            "delivery id must be",
        ),
    ] {
        cases.push(case(format!("query: {name}"), operator("GET", path), 400, says));
    }
    // Headers whose values are checked.
    let stream = format!("/v1/builds/{id}/events/stream");
    for (name, path, header, value, says) in [
        (
            "Last-Event-ID text",
            stream.clone(),
            "Last-Event-ID",
            b"latest".to_vec(),
            "Last-Event-ID must be a number",
        ),
        (
            "Last-Event-ID 0xff",
            stream.clone(),
            "Last-Event-ID",
            b"\xff".to_vec(),
            "Last-Event-ID must be a number",
        ),
        (
            "Last-Event-ID -1",
            stream.clone(),
            "Last-Event-ID",
            b"-1".to_vec(),
            "after must be an event id",
        ),
        (
            "Last-Event-ID huge",
            stream.clone(),
            "Last-Event-ID",
            b"99999999999999999999".to_vec(),
            "Last-Event-ID must be a number",
        ),
        (
            "Last-Event-ID on logs",
            format!("/v1/builds/{id}/logs?follow=true"),
            "Last-Event-ID",
            b"-5".to_vec(),
            "after must be a line number",
        ),
    ] {
        let send = Send::Bare {
            method: "GET",
            path,
            headers: vec![
                ("Authorization", format!("Bearer {TOKEN}").into_bytes()),
                (header, value),
            ],
            body: Vec::new(),
        };
        cases.push(case(name, send, 400, says));
    }
    for (name, key) in [
        ("Idempotency-Key 0xff", b"\xff\xfe".to_vec()),
        ("Idempotency-Key empty", Vec::new()),
        ("Idempotency-Key 256 bytes", vec![b'k'; 256]),
    ] {
        let body = build_body("u", &unique("idem"), json!([{ "path": "a", "content": "1" }])).to_string();
        let send = Send::Signed {
            method: "POST",
            path: "/v1/builds".into(),
            body: body.into_bytes(),
            headers: vec![("Idempotency-Key", key)],
        };
        cases.push(case(
            name,
            send,
            400,
            "Idempotency-Key must be 1-255 visible characters",
        ));
    }

    let before = stored(&app).await;
    refuse_all(&app, "other bodies, queries and headers", &cases).await;
    assert_eq!(stored(&app).await, before, "nothing was stored");
    assert_healthy(&app).await;
}

#[tokio::test]
async fn a_signature_is_accepted_once_and_forged_ones_never() {
    let app = spawn_app(Options::without_builders()).await;
    let now = chrono::Utc::now().timestamp();
    let body = build_body("u", &unique("sig"), json!([{ "path": "a", "content": "1" }])).to_string();
    let sign = |key: &[u8], ts: i64, method: &str, path: &str, body: &[u8]| {
        sign_request(key, ts, method, path, body)
    };
    let with = |ts: String, sig: String| -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("X-Kiln-Timestamp", ts.into_bytes()),
            ("X-Kiln-Signature", sig.into_bytes()),
        ]
    };
    let post = |headers: Vec<(&'static str, Vec<u8>)>, body: &str| Send::Bare {
        method: "POST",
        path: "/v1/builds".into(),
        headers,
        body: body.as_bytes().to_vec(),
    };

    // A first use is accepted; the same bytes again, here or on another instance, are not.
    let good = sign(HMAC_SECRET.as_bytes(), now, "POST", "/v1/builds", body.as_bytes());
    let first = send(&app.api, &post(with(now.to_string(), good.clone()), &body)).await;
    assert_eq!(first.status, 202, "{}", first.text());
    let other_api = app.another_api().await;
    let replayed = "this X-Kiln-Signature was already used";
    let upper = format!("sha256={}", good["sha256=".len()..].to_ascii_uppercase());
    let mut cases = vec![
        case(
            "replay",
            post(with(now.to_string(), good.clone()), &body),
            401,
            replayed,
        ),
        case(
            "replay in upper case",
            post(with(now.to_string(), upper), &body),
            401,
            replayed,
        ),
        case(
            "replay with a space",
            post(with(format!(" {now}"), format!(" {good} ")), &body),
            401,
            replayed,
        ),
        case(
            "replay with an Idempotency-Key",
            post(
                {
                    let mut h = with(now.to_string(), good.clone());
                    h.push(("Idempotency-Key", b"fresh-key".to_vec()));
                    h
                },
                &body,
            ),
            401,
            replayed,
        ),
    ];
    let mut count = refuse_all(&app, "signature replays", &cases).await;
    let on_other = send(&other_api, &post(with(now.to_string(), good.clone()), &body)).await;
    assert_eq!(
        on_other.status,
        401,
        "a replay on another API instance: {}",
        on_other.text()
    );
    assert!(on_other.text().contains(replayed));
    count += 1;

    // A DELETE is a change too: a token revoked, then revoked again by a replay.
    let (status, token) = app
        .send_json("POST", "/v1/tokens", &json!({ "userId": "u" }))
        .await;
    assert_eq!(status, 201);
    let delete = format!("/v1/tokens/{}", token["id"].as_str().unwrap());
    let ts = chrono::Utc::now().timestamp();
    let sig = sign(HMAC_SECRET.as_bytes(), ts, "DELETE", &delete, b"");
    let revoke = || Send::Bare {
        method: "DELETE",
        path: delete.clone(),
        headers: with(ts.to_string(), sig.clone()),
        body: Vec::new(),
    };
    assert_eq!(send(&app.api, &revoke()).await.status, 200);
    cases = vec![case("replayed DELETE", revoke(), 401, replayed)];
    count += refuse_all(&app, "signature replays", &cases).await;

    // A retry of one request with its Idempotency-Key is answered (with the first answer),
    // never admitted twice.
    let keyed_body = build_body("u", &unique("keyed"), json!([{ "path": "a", "content": "1" }])).to_string();
    let ts = chrono::Utc::now().timestamp();
    let keyed = || {
        let mut h = with(
            ts.to_string(),
            sign(
                HMAC_SECRET.as_bytes(),
                ts,
                "POST",
                "/v1/builds",
                keyed_body.as_bytes(),
            ),
        );
        h.push(("Idempotency-Key", b"retry-1".to_vec()));
        post(h, &keyed_body)
    };
    let a = send(&app.api, &keyed()).await;
    let b = send(&app.api, &keyed()).await;
    assert_eq!((a.status, b.status), (202, 202), "{} {}", a.text(), b.text());
    assert_eq!(b.header("idempotent-replayed"), Some("true"));
    assert_eq!(a.body, b.body);

    // Forgeries and everything malformed.
    let tampered = body.replace("\"1\"", "\"2\"");
    let user_token = "kiln_ut_".to_owned() + &"ab".repeat(32);
    let stale = "X-Kiln-Timestamp is more than 300 seconds away";
    let sig_for = |key: &[u8], ts: i64| sign(key, ts, "POST", "/v1/builds", body.as_bytes());
    cases = vec![
        case(
            "tampered body",
            post(with(now.to_string(), good.clone()), &tampered),
            401,
            "does not match",
        ),
        case(
            "another path",
            post(
                with(
                    now.to_string(),
                    sign(
                        HMAC_SECRET.as_bytes(),
                        now,
                        "POST",
                        "/rebuild-preview",
                        body.as_bytes(),
                    ),
                ),
                &body,
            ),
            401,
            "does not match",
        ),
        case(
            "another method",
            post(
                with(
                    now.to_string(),
                    sign(HMAC_SECRET.as_bytes(), now, "GET", "/v1/builds", body.as_bytes()),
                ),
                &body,
            ),
            401,
            "does not match",
        ),
        case(
            "another timestamp",
            post(with((now + 1).to_string(), good.clone()), &body),
            401,
            "does not match",
        ),
        case(
            "guessed secret",
            post(with(now.to_string(), sig_for(b"guess", now)), &body),
            401,
            "does not match",
        ),
        case(
            "empty secret",
            post(with(now.to_string(), sig_for(b"", now)), &body),
            401,
            "does not match",
        ),
        case(
            "operator token as the key",
            post(with(now.to_string(), sig_for(TOKEN.as_bytes(), now)), &body),
            401,
            "does not match",
        ),
        case(
            "user token as the key",
            post(with(now.to_string(), sig_for(user_token.as_bytes(), now)), &body),
            401,
            "does not match",
        ),
        case(
            "body only",
            post(
                with(
                    now.to_string(),
                    format!(
                        "sha256={}",
                        hex::encode(
                            <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(HMAC_SECRET.as_bytes())
                                .map(|mut m| {
                                    hmac::Mac::update(&mut m, body.as_bytes());
                                    hmac::Mac::finalize(m).into_bytes()
                                })
                                .unwrap()
                        )
                    ),
                ),
                &body,
            ),
            401,
            "does not match",
        ),
        case(
            "stale",
            post(
                with(
                    (now - 301).to_string(),
                    sig_for(HMAC_SECRET.as_bytes(), now - 301),
                ),
                &body,
            ),
            401,
            stale,
        ),
        case(
            "future",
            post(
                with(
                    (now + 400).to_string(),
                    sig_for(HMAC_SECRET.as_bytes(), now + 400),
                ),
                &body,
            ),
            401,
            stale,
        ),
        case(
            "i64::MIN",
            post(
                with(i64::MIN.to_string(), sig_for(HMAC_SECRET.as_bytes(), i64::MIN)),
                &body,
            ),
            401,
            stale,
        ),
        case(
            "i64::MIN + now",
            post(
                with(
                    (i64::MIN + now).to_string(),
                    sig_for(HMAC_SECRET.as_bytes(), i64::MIN + now),
                ),
                &body,
            ),
            401,
            stale,
        ),
        case(
            "i64::MAX",
            post(with(i64::MAX.to_string(), good.clone()), &body),
            401,
            stale,
        ),
        case(
            "timestamp past i64",
            post(with("99999999999999999999".into(), good.clone()), &body),
            401,
            "not a unix time",
        ),
        case(
            "timestamp in ms",
            post(with((now * 1000).to_string(), good.clone()), &body),
            401,
            stale,
        ),
        case(
            "timestamp 1e9",
            post(with("1e9".into(), good.clone()), &body),
            401,
            "not a unix time",
        ),
        case(
            "timestamp hex",
            post(with("0x6553f100".into(), good.clone()), &body),
            401,
            "not a unix time",
        ),
        case(
            "timestamp date",
            post(with("2026-11-23T00:00:00Z".into(), good.clone()), &body),
            401,
            "not a unix time",
        ),
        case(
            "timestamp empty",
            post(with(String::new(), good.clone()), &body),
            401,
            "not a unix time",
        ),
        case(
            "timestamp 0xff",
            post(
                vec![
                    ("X-Kiln-Timestamp", b"\xff".to_vec()),
                    ("X-Kiln-Signature", good.clone().into_bytes()),
                ],
                &body,
            ),
            401,
            "the x-kiln-timestamp header is not valid text",
        ),
        case(
            "md5",
            post(with(now.to_string(), "md5=abc".into()), &body),
            401,
            "sha256=<64 hex digits>",
        ),
        case(
            "upper-case prefix",
            post(with(now.to_string(), good.replace("sha256=", "SHA256=")), &body),
            401,
            "sha256=<64 hex digits>",
        ),
        case(
            "no prefix",
            post(with(now.to_string(), good["sha256=".len()..].to_owned()), &body),
            401,
            "sha256=<64 hex digits>",
        ),
        case(
            "63 digits",
            post(with(now.to_string(), good[..good.len() - 1].to_owned()), &body),
            401,
            "sha256=<64 hex digits>",
        ),
        case(
            "65 digits",
            post(with(now.to_string(), format!("{good}0")), &body),
            401,
            "sha256=<64 hex digits>",
        ),
        case(
            "not hex",
            post(with(now.to_string(), format!("sha256={}", "g".repeat(64))), &body),
            401,
            "sha256=<64 hex digits>",
        ),
        case(
            "base64",
            post(
                with(
                    now.to_string(),
                    format!(
                        "sha256={}",
                        base64::engine::general_purpose::STANDARD.encode([0u8; 32])
                    ),
                ),
                &body,
            ),
            401,
            "sha256=<64 hex digits>",
        ),
        case(
            "stripe style",
            post(
                with(
                    now.to_string(),
                    format!("t={now},v1={}", &good["sha256=".len()..]),
                ),
                &body,
            ),
            401,
            "sha256=<64 hex digits>",
        ),
        case(
            "signature 0xff",
            post(
                vec![
                    ("X-Kiln-Timestamp", now.to_string().into_bytes()),
                    ("X-Kiln-Signature", b"sha256=\xff".to_vec()),
                ],
                &body,
            ),
            401,
            "the x-kiln-signature header is not valid text",
        ),
        case(
            "signature only",
            post(vec![("X-Kiln-Signature", good.clone().into_bytes())], &body),
            401,
            "X-Kiln-Signature needs X-Kiln-Timestamp",
        ),
        case(
            "timestamp only",
            post(vec![("X-Kiln-Timestamp", now.to_string().into_bytes())], &body),
            401,
            "X-Kiln-Timestamp needs X-Kiln-Signature",
        ),
        case(
            "two signatures",
            post(
                {
                    let mut h = with(now.to_string(), sig_for(b"guess", now));
                    h.push(("X-Kiln-Signature", good.clone().into_bytes()));
                    h
                },
                &body,
            ),
            401,
            "x-kiln-signature header is sent more than once",
        ),
        case(
            "two timestamps",
            post(
                {
                    let mut h = with((now - 1000).to_string(), good.clone());
                    h.push(("X-Kiln-Timestamp", now.to_string().into_bytes()));
                    h
                },
                &body,
            ),
            401,
            "x-kiln-timestamp header is sent more than once",
        ),
    ];
    count += refuse_all(&app, "forged signatures", &cases).await;

    // A nonce makes the same request twice in a second two signatures; it is signed, so it can
    // be neither added, changed nor dropped, and a nonce's request is accepted once too.
    let nonced = |nonce: &str, body: &str| {
        let ts = chrono::Utc::now().timestamp();
        let sig = kiln_shared::signing::sign_request_with_nonce(
            HMAC_SECRET.as_bytes(),
            ts,
            nonce,
            "POST",
            "/v1/builds",
            body.as_bytes(),
        );
        vec![
            ("X-Kiln-Timestamp", ts.to_string().into_bytes()),
            ("X-Kiln-Nonce", nonce.as_bytes().to_vec()),
            ("X-Kiln-Signature", sig.into_bytes()),
        ]
    };
    let twice = build_body("u", &unique("twice"), json!([{ "path": "a", "content": "1" }])).to_string();
    let first = send(&app.api, &post(nonced("n-1", &twice), &twice)).await;
    assert_eq!(first.status, 202, "{}", first.text());
    let again = nonced("n-1", &twice);
    let swapped = |mut h: Vec<(&'static str, Vec<u8>)>, nonce: &[u8]| {
        h[1].1 = nonce.to_vec();
        h
    };
    let dropped = |h: Vec<(&'static str, Vec<u8>)>| -> Vec<(&'static str, Vec<u8>)> {
        h.into_iter().filter(|(k, _)| *k != "X-Kiln-Nonce").collect()
    };
    cases = vec![
        case(
            "a nonce's request replayed",
            post(again.clone(), &twice),
            401,
            replayed,
        ),
        case(
            "the nonce changed",
            post(swapped(again.clone(), b"n-2"), &twice),
            401,
            "does not match",
        ),
        case(
            "the nonce dropped",
            post(dropped(again.clone()), &twice),
            401,
            "does not match",
        ),
        case(
            "a nonce added",
            post(
                {
                    let mut h = with(now.to_string(), good.clone());
                    h.push(("X-Kiln-Nonce", b"n-3".to_vec()));
                    h
                },
                &body,
            ),
            401,
            "does not match",
        ),
        case(
            "a nonce with a dot",
            post(swapped(again.clone(), b"a.b"), &twice),
            401,
            "X-Kiln-Nonce must be 1-64 characters",
        ),
        case(
            "a nonce too long",
            post(swapped(again.clone(), &[b'n'; 65]), &twice),
            401,
            "X-Kiln-Nonce must be 1-64 characters",
        ),
        case(
            "two nonces",
            post(
                {
                    let mut h = again.clone();
                    h.push(("X-Kiln-Nonce", b"n-4".to_vec()));
                    h
                },
                &twice,
            ),
            401,
            "x-kiln-nonce header is sent more than once",
        ),
    ];
    count += refuse_all(&app, "nonces", &cases).await;
    // The same request with another nonce, in the same second: a request of its own (here a 409,
    // as the project's first build is still queued).
    let other = send(&app.api, &post(nonced("n-5", &twice), &twice)).await;
    assert_eq!(other.status, 409, "{}", other.text());
    eprintln!("hostile signatures: {count} cases, all refused");
    assert_eq!(
        app.version_count().await,
        3,
        "only the first request, the keyed one and the nonced one were admitted"
    );
    assert_eq!(app.queue_depth().await, 3);
    assert_healthy(&app).await;
}

#[tokio::test]
async fn credentials_from_the_wrong_place_are_refused() {
    let app = spawn_app(Options::without_builders()).await;
    let (status, made) = app
        .send_json("POST", "/v1/tokens", &json!({ "userId": "u" }))
        .await;
    assert_eq!(status, 201);
    let user_token = made["token"].as_str().unwrap().to_owned();
    let body = build_body("u", &unique("creds"), json!([{ "path": "a", "content": "1" }])).to_string();
    let post = |path: &str, headers: Vec<(&'static str, Vec<u8>)>| Send::Bare {
        method: "POST",
        path: path.to_owned(),
        headers,
        body: body.as_bytes().to_vec(),
    };
    let auth = |v: String| vec![("Authorization", v.into_bytes())];
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{TOKEN}:"));
    let in_query = "credentials are not accepted in the query string";
    let mut cases = Vec::new();
    for (name, query) in [
        ("?token=", format!("token={TOKEN}")),
        ("?access_token=", format!("access_token={TOKEN}")),
        ("?api_key=", format!("api_key={TOKEN}")),
        ("?Token= (any case)", format!("Token={TOKEN}")),
        ("?signature=", "signature=sha256%3D00&x-kiln-timestamp=1".into()),
        ("?token= with a user token", format!("token={user_token}")),
    ] {
        cases.push(case(
            name,
            post(&format!("/v1/builds?{query}"), vec![]),
            401,
            in_query,
        ));
    }
    // Even beside valid credentials: the token has leaked into a URL, and the client must know.
    cases.push(case(
        "?token= and a valid header",
        bearer(TOKEN, "GET", format!("/v1/builds?token={TOKEN}"), ""),
        401,
        in_query,
    ));
    for (name, headers, says) in [
        (
            "cookie",
            vec![("Cookie", format!("token={TOKEN}").into_bytes())],
            "cookies are not used for authentication",
        ),
        (
            "cookie with a user token",
            vec![("Cookie", format!("kiln_token={user_token}").into_bytes())],
            "cookies are not used for authentication",
        ),
        (
            "X-Api-Key",
            vec![("X-Api-Key", TOKEN.as_bytes().to_vec())],
            "x-api-key is not read by Kiln",
        ),
        (
            "X-Auth-Token",
            vec![("X-Auth-Token", TOKEN.as_bytes().to_vec())],
            "x-auth-token is not read by Kiln",
        ),
        (
            "X-Kiln-Token",
            vec![("X-Kiln-Token", user_token.as_bytes().to_vec())],
            "x-kiln-token is not read by Kiln",
        ),
        (
            "Proxy-Authorization",
            vec![("Proxy-Authorization", format!("Bearer {TOKEN}").into_bytes())],
            "proxy-authorization is not read by Kiln",
        ),
        (
            "Basic",
            auth(format!("Basic {basic}")),
            "the Basic authentication scheme is not accepted",
        ),
        (
            "Token scheme",
            auth(format!("Token {TOKEN}")),
            "the Token authentication scheme is not accepted",
        ),
        (
            "Digest",
            auth("Digest username=\"op\"".into()),
            "the Digest authentication scheme is not accepted",
        ),
        ("no scheme", auth(TOKEN.into()), "must be: Bearer <token>"),
        ("empty bearer", auth("Bearer ".into()), "must be: Bearer <token>"),
        ("bearer only", auth("Bearer".into()), "must be: Bearer <token>"),
        (
            "two Authorization headers",
            vec![
                ("Authorization", format!("Bearer {user_token}").into_bytes()),
                ("Authorization", format!("Bearer {TOKEN}").into_bytes()),
            ],
            "the authorization header is sent more than once",
        ),
        (
            "Authorization 0xff",
            auth("Bearer \u{0}".into())
                .into_iter()
                .map(|(k, _)| (k, b"Bearer \xff".to_vec()))
                .collect(),
            "the authorization header is not valid text",
        ),
        (
            "HMAC secret as a bearer token",
            auth(format!("Bearer {HMAC_SECRET}")),
            "the bearer token is not valid",
        ),
        (
            "user token, upper case",
            auth(format!("Bearer {}", user_token.to_ascii_uppercase())),
            "the bearer token is not valid",
        ),
        (
            "user token and more",
            auth(format!("Bearer {user_token}x")),
            "the bearer token is not valid",
        ),
        (
            "user token cut short",
            auth(format!("Bearer {}", &user_token[..40])),
            "the bearer token is not valid",
        ),
        (
            "user token twice over",
            auth(format!("Bearer {user_token} {user_token}")),
            "the bearer token is not valid",
        ),
        (
            "operator token with a suffix",
            auth(format!("Bearer {TOKEN}.")),
            "the bearer token is not valid",
        ),
        (
            "operator token, another case",
            auth(format!("Bearer {}", TOKEN.to_ascii_uppercase())),
            "the bearer token is not valid",
        ),
        ("token in the body only", vec![], "authentication required"),
    ] {
        cases.push(case(name, post("/v1/builds", headers), 401, says));
    }
    // A user token signing as if it were the back end's secret.
    let ts = chrono::Utc::now().timestamp();
    let forged = sign_request(user_token.as_bytes(), ts, "POST", "/v1/builds", body.as_bytes());
    cases.push(case(
        "user token as the HMAC key",
        post(
            "/v1/builds",
            vec![
                ("X-Kiln-Timestamp", ts.to_string().into_bytes()),
                ("X-Kiln-Signature", forged.into_bytes()),
            ],
        ),
        401,
        "X-Kiln-Signature does not match the request",
    ));
    // And a revoked token, wherever it is sent.
    let (status, _) = app
        .send_json(
            "DELETE",
            &format!("/v1/tokens/{}", made["id"].as_str().unwrap()),
            &Value::Null,
        )
        .await;
    assert_eq!(status, 200);
    cases.push(case(
        "revoked user token",
        post("/v1/builds", auth(format!("Bearer {user_token}"))),
        401,
        "the bearer token is not valid",
    ));
    for c in &mut cases {
        if let Send::Bare { headers, .. } = &mut c.send {
            headers.push(("Content-Type", b"application/json".to_vec()));
        }
    }

    let before = stored(&app).await;
    refuse_all(&app, "credentials from the wrong place", &cases).await;
    assert_eq!(stored(&app).await, before, "nothing was stored");
    assert_eq!(app.version_count().await, 0);
    assert_healthy(&app).await;
}

/// A request with `token`: (status, JSON body or null).
async fn as_user(app: &TestApp, token: &str, method: &'static str, path: &str, body: &str) -> (u16, Value) {
    let answer = send(&app.api, &bearer(token, method, path, body)).await;
    (
        answer.status,
        serde_json::from_slice(&answer.body).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_user_token_reaches_nothing_of_another_user_on_any_route() {
    let app = spawn_app(Options::default()).await;
    let token_for = |user: &'static str| {
        let app = &app;
        async move {
            let (status, made) = app
                .send_json("POST", "/v1/tokens", &json!({ "userId": user }))
                .await;
            assert_eq!(status, 201, "{made}");
            (
                made["id"].as_str().unwrap().to_owned(),
                made["token"].as_str().unwrap().to_owned(),
            )
        }
    };
    let (_, alice) = token_for("u_alice").await;
    let (bob_token_id, _) = token_for("u_bob").await;
    let site = |text: &str| json!([{ "path": "index.html", "content": format!("<h1>{text}</h1>") }]);

    // Bob's project: a deployed version, and a failed one (which retry would take).
    let bobs = unique("bobs");
    let b1 = app.submit(&build_body("u_bob", &bobs, site("bob"))).await;
    assert_eq!(app.wait(&b1).await["status"], "deployed");
    let failing = json!([{ "path": "package.json",
        "content": r#"{"name":"f","private":true,"scripts":{"build":"exit 1"}}"# }]);
    let b2 = app
        .submit(&json!({ "userId": "u_bob", "projectId": bobs, "files": failing, "deleted": ["index.html"] }))
        .await;
    assert_eq!(app.wait(&b2).await["status"], "failed");
    // Alice's own project, with a deployed version.
    let alices = unique("alices");
    let a1 = app.submit(&build_body("u_alice", &alices, site("alice"))).await;
    assert_eq!(app.wait(&a1).await["status"], "deployed");
    let (status, hook) = app
        .send_json(
            "POST",
            "/v1/webhooks",
            &json!({ "url": "http://127.0.0.1:9/", "userId": "u_bob" }),
        )
        .await;
    assert_eq!(status, 201);
    let hook = hook["id"].as_str().unwrap().to_owned();

    // Every route, on Bob's things, and the same route on a thing that does not exist: the
    // same 404, word for word.
    let missing = ulid::Ulid::new().to_string().to_ascii_lowercase();
    let bob = format!("/v1/projects/u_bob/{bobs}");
    let nobody = "/v1/projects/u_bob/never-made".to_owned();
    let mine = format!("/v1/projects/u_alice/{alices}");
    // (name, method, path to Bob's thing, path to an absent one, body, the id of Bob's that
    // stands where the absent one's id is named)
    let routes: Vec<(&str, &str, String, String, String, String)> = vec![
        (
            "read a build",
            "GET",
            format!("/v1/builds/{b1}"),
            format!("/v1/builds/{missing}"),
            String::new(),
            b1.clone(),
        ),
        (
            "its events",
            "GET",
            format!("/v1/builds/{b1}/events"),
            format!("/v1/builds/{missing}/events"),
            String::new(),
            b1.clone(),
        ),
        (
            "its event stream",
            "GET",
            format!("/v1/builds/{b1}/events/stream"),
            format!("/v1/builds/{missing}/events/stream"),
            String::new(),
            b1.clone(),
        ),
        (
            "its log",
            "GET",
            format!("/v1/builds/{b1}/logs"),
            format!("/v1/builds/{missing}/logs"),
            String::new(),
            b1.clone(),
        ),
        (
            "its log, followed",
            "GET",
            format!("/v1/builds/{b1}/logs?follow=true"),
            format!("/v1/builds/{missing}/logs?follow=true"),
            String::new(),
            b1.clone(),
        ),
        (
            "cancel",
            "POST",
            format!("/v1/builds/{b1}/cancel"),
            format!("/v1/builds/{missing}/cancel"),
            "{}".into(),
            b1.clone(),
        ),
        (
            "retry",
            "POST",
            format!("/v1/builds/{b2}/retry"),
            format!("/v1/builds/{missing}/retry"),
            "{}".into(),
            b2.clone(),
        ),
        (
            "list by user",
            "GET",
            "/v1/builds?userId=u_bob".into(),
            "/v1/builds?userId=u_nobody".into(),
            String::new(),
            String::new(),
        ),
        (
            "versions",
            "GET",
            format!("{bob}/versions"),
            format!("{nobody}/versions"),
            String::new(),
            String::new(),
        ),
        (
            "latest",
            "GET",
            format!("{bob}/latest"),
            format!("{nobody}/latest"),
            String::new(),
            String::new(),
        ),
        (
            "rollback",
            "POST",
            format!("{bob}/rollback"),
            format!("{nobody}/rollback"),
            format!(r#"{{"versionId":"{b1}"}}"#),
            String::new(),
        ),
        (
            "diff",
            "GET",
            format!("{bob}/versions/{b1}/diff/{b2}"),
            format!("{nobody}/versions/{b1}/diff/{b2}"),
            String::new(),
            String::new(),
        ),
        (
            "files",
            "GET",
            format!("{bob}/versions/{b1}/files"),
            format!("{nobody}/versions/{b1}/files"),
            String::new(),
            String::new(),
        ),
        (
            "a file",
            "GET",
            format!("{bob}/versions/{b1}/files/index.html"),
            format!("{nobody}/versions/{b1}/files/index.html"),
            String::new(),
            String::new(),
        ),
        (
            "export",
            "GET",
            format!("{bob}/versions/{b1}/artifact"),
            format!("{nobody}/versions/{b1}/artifact"),
            String::new(),
            String::new(),
        ),
        (
            "export sources",
            "GET",
            format!("{bob}/versions/{b1}/artifact?source=true"),
            format!("{nobody}/versions/{b1}/artifact?source=true"),
            String::new(),
            String::new(),
        ),
        (
            "pin",
            "POST",
            format!("{bob}/versions/{b1}/pin"),
            format!("{nobody}/versions/{b1}/pin"),
            String::new(),
            String::new(),
        ),
        (
            "unpin",
            "DELETE",
            format!("{bob}/versions/{b1}/pin"),
            format!("{nobody}/versions/{b1}/pin"),
            String::new(),
            String::new(),
        ),
        // Bob's versions through Alice's own project.
        (
            "diff with a foreign version",
            "GET",
            format!("{mine}/versions/{a1}/diff/{b1}"),
            format!("{mine}/versions/{a1}/diff/{missing}"),
            String::new(),
            b1.clone(),
        ),
        (
            "files of a foreign version",
            "GET",
            format!("{mine}/versions/{b1}/files"),
            format!("{mine}/versions/{missing}/files"),
            String::new(),
            b1.clone(),
        ),
        (
            "a file of a foreign version",
            "GET",
            format!("{mine}/versions/{b1}/files/index.html"),
            format!("{mine}/versions/{missing}/files/index.html"),
            String::new(),
            b1.clone(),
        ),
        (
            "export a foreign version",
            "GET",
            format!("{mine}/versions/{b1}/artifact?source=true"),
            format!("{mine}/versions/{missing}/artifact?source=true"),
            String::new(),
            b1.clone(),
        ),
        (
            "pin a foreign version",
            "POST",
            format!("{mine}/versions/{b1}/pin"),
            format!("{mine}/versions/{missing}/pin"),
            String::new(),
            b1.clone(),
        ),
        (
            "list tokens",
            "GET",
            "/v1/tokens?userId=u_bob".into(),
            "/v1/tokens?userId=u_nobody".into(),
            String::new(),
            String::new(),
        ),
        (
            "revoke a token",
            "DELETE",
            format!("/v1/tokens/{bob_token_id}"),
            format!("/v1/tokens/{missing}"),
            String::new(),
            bob_token_id.clone(),
        ),
    ];
    let mut cases = Vec::new();
    for (name, method, theirs, absent, body, id) in routes {
        let method: &'static str = match method {
            "GET" => "GET",
            "POST" => "POST",
            _ => "DELETE",
        };
        let (status, expected) = as_user(&app, &alice, method, &absent, &body).await;
        assert_eq!(status, 404, "{name} (absent): {expected}");
        let says = expected["error"]
            .as_str()
            .unwrap()
            .replace(&missing, &id)
            .replace("never-made", &bobs)
            .replace("u_nobody", "u_bob");
        cases.push(case(name, bearer(&alice, method, theirs, body), 404, says));
    }
    // Rolling Alice's project back to Bob's version: the answer for a version that is not there.
    let (status, expected) = as_user(
        &app,
        &alice,
        "POST",
        &format!("{mine}/rollback"),
        &format!(r#"{{"versionId":"{missing}"}}"#),
    )
    .await;
    assert_eq!(status, 404, "{expected}");
    cases.push(case(
        "roll back to a foreign version",
        bearer(
            &alice,
            "POST",
            format!("{mine}/rollback"),
            format!(r#"{{"versionId":"{b1}"}}"#),
        ),
        404,
        expected["error"].as_str().unwrap().replace(&missing, &b1),
    ));
    // Creating things for Bob, or as the operator.
    for (name, method, path, body, says) in [
        (
            "build for another user",
            "POST",
            "/v1/builds".to_owned(),
            build_body("u_bob", &bobs, site("mine now")).to_string(),
            "user u_bob not found",
        ),
        (
            "seed new project",
            "POST",
            "/build-preview-for-new-project".into(),
            build_body("u_bob", &unique("new"), site("x")).to_string(),
            "user u_bob not found",
        ),
        (
            "seed rebuild",
            "POST",
            "/rebuild-preview".into(),
            build_body("u_bob", &bobs, site("x")).to_string(),
            "user u_bob not found",
        ),
        (
            "make a token",
            "POST",
            "/v1/tokens".into(),
            r#"{"userId":"u_bob"}"#.into(),
            "no such route",
        ),
        (
            "make a token for oneself",
            "POST",
            "/v1/tokens".into(),
            r#"{"userId":"u_alice"}"#.into(),
            "no such route",
        ),
        (
            "list webhooks",
            "GET",
            "/v1/webhooks".into(),
            String::new(),
            "no such route",
        ),
        (
            "make a webhook",
            "POST",
            "/v1/webhooks".into(),
            r#"{"url":"http://127.0.0.1:9/","userId":"u_alice"}"#.into(),
            "no such route",
        ),
        (
            "read a webhook",
            "GET",
            format!("/v1/webhooks/{hook}"),
            String::new(),
            "no such route",
        ),
        (
            "delete a webhook",
            "DELETE",
            format!("/v1/webhooks/{hook}"),
            String::new(),
            "no such route",
        ),
        (
            "webhook deliveries",
            "GET",
            format!("/v1/webhooks/{hook}/deliveries"),
            String::new(),
            "no such route",
        ),
        (
            "redeliver",
            "POST",
            format!("/v1/webhooks/{hook}/deliveries/dl_0123456789abcdef0123456789/redeliver"),
            String::new(),
            "no such route",
        ),
        (
            "the fleet",
            "GET",
            "/v1/builders".into(),
            String::new(),
            "no such route",
        ),
        (
            "the fleet's history",
            "GET",
            "/v1/builders/history".into(),
            String::new(),
            "no such route",
        ),
        (
            "metrics",
            "GET",
            "/metrics".into(),
            String::new(),
            "no such route",
        ),
    ] {
        cases.push(case(name, bearer(&alice, method, path, body), 404, says));
    }
    // A base version of Bob's in Alice's own request: as unknown as a missing one (422, the
    // answer for an unknown base).
    cases.push(case(
        "a foreign base version",
        bearer(
            &alice,
            "POST",
            "/v1/builds",
            json!({ "userId": "u_alice", "projectId": alices,
            "baseVersionId": b1, "files": site("x") })
            .to_string(),
        ),
        422,
        format!("baseVersionId {b1} is not a version of project u_alice/{alices}"),
    ));

    let before = stored(&app).await;
    refuse_all(&app, "cross-tenant", &cases).await;
    assert_eq!(
        stored(&app).await,
        before,
        "nothing of Bob's changed, nothing was stored"
    );

    // Lists filter rather than refuse: Alice's list never holds Bob's builds.
    let (status, page) = as_user(&app, &alice, "GET", &format!("/v1/builds?projectId={bobs}"), "").await;
    assert_eq!(
        (status, page["builds"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{page}"
    );
    let (status, page) = as_user(&app, &alice, "GET", "/v1/builds?limit=100", "").await;
    assert_eq!(status, 200);
    assert!(
        page["builds"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["userId"] == "u_alice"),
        "{page}"
    );
    // An Idempotency-Key Bob's back end used is not Alice's to replay.
    let key = "shared-key";
    let bob_again = json!({ "userId": "u_bob", "projectId": unique("idem"), "files": site("b") }).to_string();
    let answer = send(
        &app.api,
        &Send::Signed {
            method: "POST",
            path: "/v1/builds".into(),
            body: bob_again.into_bytes(),
            headers: vec![("Idempotency-Key", key.as_bytes().to_vec())],
        },
    )
    .await;
    assert_eq!(answer.status, 202);
    let alice_body =
        json!({ "userId": "u_alice", "projectId": unique("idem"), "files": site("a") }).to_string();
    let answer = send(
        &app.api,
        &Send::Bare {
            method: "POST",
            path: "/v1/builds".into(),
            headers: vec![
                ("Authorization", format!("Bearer {alice}").into_bytes()),
                ("Idempotency-Key", key.as_bytes().to_vec()),
            ],
            body: alice_body.into_bytes(),
        },
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.text());
    assert!(answer.header("idempotent-replayed").is_none());
    let json: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(json["userId"], "u_alice");
    assert_healthy(&app).await;
}

#[tokio::test]
async fn malformed_ids_in_paths_and_queries_are_400_and_unknown_ones_404() {
    let app = spawn_app(Options::without_builders()).await;
    let res = app.get("/v1/builds/not-a-ulid").await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("build id is not a valid id"));
    let res = app.get(&format!("/v1/builds/{}", ulid::Ulid::new())).await;
    assert_eq!(res.status(), 404);
    assert!(res.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .ends_with("not found"));
    assert_eq!(app.get("/v1/projects/u%20x/p/versions").await.status(), 400);
    assert_eq!(app.get("/v1/projects/u/p/latest").await.status(), 404);
    assert_eq!(app.get("/v1/nothing-here").await.status(), 404);
}
