//! The routes table of `docs/reference/api.md` against the routes the API documents in
//! `GET /openapi.json` (the table every served route is checked against in `auth.rs`), both
//! ways, so the book cannot drift from the code.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::{spawn_app, Options};

const PAGE: &str = "docs/reference/api.md";

/// `(METHOD, path)` of each row of the page's routes table: a row whose first cell is an HTTP
/// method and whose second is a path in backticks.
fn table_routes(markdown: &str) -> Vec<(String, String)> {
    const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
    let mut routes = Vec::new();
    for line in markdown.lines() {
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() < 3 || !METHODS.contains(&cells[0]) {
            continue;
        }
        let path = cells[1]
            .strip_prefix('`')
            .and_then(|p| p.strip_suffix('`'))
            .unwrap_or_else(|| panic!("{PAGE}: the path of {line:?} is not in backticks"));
        routes.push((cells[0].to_owned(), path.to_owned()));
    }
    routes
}

#[tokio::test]
async fn the_routes_table_lists_exactly_the_documented_routes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let markdown = std::fs::read_to_string(root.join(PAGE)).expect("the API reference page");
    let rows = table_routes(&markdown);
    let in_table: BTreeSet<(String, String)> = rows.iter().cloned().collect();
    assert_eq!(in_table.len(), rows.len(), "{PAGE} lists a route twice");

    let app = spawn_app(Options::without_builders()).await;
    let doc: Value = app.public_json("/openapi.json").await;
    let mut in_code = BTreeSet::new();
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for method in methods.as_object().unwrap().keys() {
            in_code.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    assert!(in_code.len() >= 10, "only {} routes documented", in_code.len());

    let missing: Vec<_> = in_code.difference(&in_table).collect();
    let extra: Vec<_> = in_table.difference(&in_code).collect();
    assert!(
        missing.is_empty(),
        "routes the API documents but {PAGE} does not list: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "routes {PAGE} lists but the API does not document: {extra:?}"
    );
}
