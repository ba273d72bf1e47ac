//! `kiln builders`: the live fleet (an operator token or the back end's secret).

use serde_json::Value;

use crate::client::Client;
use crate::output::{self, line};

pub(super) async fn builders(client: &Client, json_out: bool) -> anyhow::Result<()> {
    let fleet = client.ok("GET", "/v1/builders", None).await?;
    if json_out {
        line(&fleet.to_string());
        return Ok(());
    }
    let count = |v: &Value| v.as_u64().map_or_else(|| "-".to_owned(), |n| n.to_string());
    let rows = fleet["builders"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            let running: Vec<&str> = b["running"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["buildId"].as_str().or(r.as_str()))
                .collect();
            let seen = b["lastSeenMsAgo"]
                .as_u64()
                .map_or_else(|| "-".to_owned(), |ms| format!("{:.1}s ago", ms as f64 / 1000.0));
            vec![
                b["id"].as_str().unwrap_or("?").to_owned(),
                format!(
                    "{}/{}",
                    b["running"].as_array().map_or(0, Vec::len),
                    count(&b["capacity"])
                ),
                seen,
                running.join(" "),
            ]
        })
        .collect();
    output::table(&["BUILDER", "BUSY", "SEEN", "RUNNING"], 3, rows);
    line(&format!(
        "{} running on {} slots",
        count(&fleet["running"]),
        count(&fleet["slots"])
    ));
    Ok(())
}
