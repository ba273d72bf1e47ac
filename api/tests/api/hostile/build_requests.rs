//! Build request bodies: every way a `POST /v1/builds` can be wrong.

use serde_json::{json, Value};

use super::inputs::{file, hostile_paths, nested, one};
use super::table::{assert_healthy, case, refuse_all, stored};
use super::wire::{build, build_raw, signed};
use crate::helpers::{spawn_app, Options};

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
        (
            "force as a string",
            json!({ "userId": "u", "projectId": "p", "force": "yes", "files": [] }),
            422,
            "force must be true or false, not a string".into(),
        ),
        (
            "force as a number",
            json!({ "userId": "u", "projectId": "p", "force": 1, "files": [] }),
            422,
            "force must be true or false, not a number".into(),
        ),
        // One-off settings: folders under the rules of paths, one-line commands, and none of
        // the project's own (who sees its previews).
        (
            "settings.rootDir out of the tree",
            json!({ "userId": "u", "projectId": "p", "settings": { "rootDir": "../x" }, "files": [] }),
            422,
            "settings.rootDir: ".into(),
        ),
        (
            "settings.outputDir absolute",
            json!({ "userId": "u", "projectId": "p", "settings": { "outputDir": "/etc" }, "files": [] }),
            422,
            "settings.outputDir: ".into(),
        ),
        (
            "settings.buildCommand with a newline",
            json!({ "userId": "u", "projectId": "p", "settings": { "buildCommand": "true\nrm -rf /" }, "files": [] }),
            422,
            "settings.buildCommand must be one line".into(),
        ),
        (
            "settings.installCommand over 1 KB",
            json!({ "userId": "u", "projectId": "p", "settings": { "installCommand": "x".repeat(1025) }, "files": [] }),
            422,
            "settings.installCommand is 1025 bytes".into(),
        ),
        (
            "settings.previewAccess in a build request",
            json!({ "userId": "u", "projectId": "p", "settings": { "previewAccess": "public" }, "files": [] }),
            422,
            "settings.previewAccess is a setting of the project".into(),
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
