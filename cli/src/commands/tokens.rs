//! `kiln token create|list|revoke`: user tokens.

use anyhow::bail;
use serde_json::json;

use crate::args::TokenCommand;
use crate::client::{path, with_query, ApiFailure, Client};
use crate::output::{self, line};

pub(super) async fn token(client: &Client, command: TokenCommand, json_out: bool) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create { user, name } => {
            let body = json!({ "userId": user, "description": name });
            let (status, made) = client.send("POST", "/v1/tokens", Some(&body)).await?;
            if !(200..300).contains(&status) {
                let failure = ApiFailure::of(status, &made);
                if failure.code() == Some("not_found") {
                    bail!(
                        "{failure}; only an operator token (KILN_API_TOKENS) or the back end's secret can make tokens"
                    );
                }
                return Err(failure.into());
            }
            if json_out {
                line(&made.to_string());
                return Ok(());
            }
            line(&format!("token    {}", made["token"].as_str().unwrap_or("?")));
            line(&format!("id       {}", made["id"].as_str().unwrap_or("?")));
            line(&format!("user     {}", made["userId"].as_str().unwrap_or("?")));
            if let Some(name) = made["description"].as_str() {
                line(&format!("name     {name}"));
            }
            eprintln!("Keep the token now: Kiln stores only its hash and cannot show it again.");
        }
        TokenCommand::List { user } => {
            let list = client
                .ok("GET", &with_query("/v1/tokens", [("userId", user)]), None)
                .await?;
            if json_out {
                line(&list.to_string());
                return Ok(());
            }
            let now = chrono::Utc::now();
            let rows = list["tokens"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    vec![
                        t["id"].as_str().unwrap_or("?").to_owned(),
                        t["userId"].as_str().unwrap_or("?").to_owned(),
                        output::ago(&t["createdAt"], now),
                        output::ago(&t["revokedAt"], now),
                        t["description"].as_str().unwrap_or("").to_owned(),
                    ]
                })
                .collect();
            output::table(&["ID", "USER", "CREATED", "REVOKED", "NAME"], 4, rows);
        }
        TokenCommand::Revoke { id } => {
            let revoked = client.ok("DELETE", &path(&["v1", "tokens", &id]), None).await?;
            if json_out {
                line(&revoked.to_string());
            } else {
                line(&format!(
                    "revoked  {} (user {}, at {})",
                    revoked["id"].as_str().unwrap_or("?"),
                    revoked["userId"].as_str().unwrap_or("?"),
                    revoked["revokedAt"].as_str().unwrap_or("?")
                ));
            }
        }
    }
    Ok(())
}
