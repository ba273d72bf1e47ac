//! An HTTP answer as its status and its JSON body.

use serde_json::Value;

/// The answer's status and its body as JSON (null when it is none, or not JSON).
pub async fn json(res: reqwest::Response) -> reqwest::Result<(u16, Value)> {
    let status = res.status().as_u16();
    let text = res.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}
