//! `kiln login`, `kiln logout`, `kiln whoami` (who the credentials in use are, asked of the
//! API) and `kiln link` (a folder's project).

use std::io::{IsTerminal, Read};
use std::path::Path;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::client::{ApiFailure, Client};
use crate::config::{self, ConfigFile, Credentials, Profile, Resolved, DEFAULT_PROFILE, DEFAULT_URL};
use crate::link::Link;
use crate::output::line;

/// Who a set of credentials is, as the API sees it.
#[derive(Debug)]
enum Identity {
    /// A user token: its user.
    User(String),
    /// An operator token or the back end's signature: everything.
    Privileged,
}

/// Asks the API who the credentials are: `GET /v1/tokens` lists a user token's own tokens
/// (naming its user), and asks a privileged caller which user it means (`bad_request`).
async fn identify(client: &Client) -> anyhow::Result<Identity> {
    let (status, answer) = client.send("GET", "/v1/tokens", None).await?;
    if (200..300).contains(&status) {
        let user = answer["tokens"][0]["userId"].as_str().unwrap_or("?");
        return Ok(Identity::User(user.to_owned()));
    }
    let failure = ApiFailure::of(status, &answer);
    if failure.code() == Some("bad_request") {
        return Ok(Identity::Privileged);
    }
    Err(failure.into())
}

/// The token to save: from standard input with `--with-token`, else `--token`/`KILN_TOKEN`,
/// else asked for on a terminal without echo.
fn read_token(given: Option<String>, with_token: bool, url: &str) -> anyhow::Result<String> {
    let token = if with_token {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the token from standard input")?;
        text
    } else if let Some(token) = given {
        token
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("A token for {url} (kiln token create makes one): "))?
    } else {
        bail!("no token: pipe it in with --with-token, or set KILN_TOKEN");
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        bail!("the token is empty");
    }
    Ok(token)
}

/// `kiln login [URL]`: checks the token against the API, then saves it as a profile (the
/// current one from now on).
pub(super) async fn login(
    url: Option<String>,
    token: Option<String>,
    profile: Option<String>,
    with_token: bool,
    json_out: bool,
) -> anyhow::Result<()> {
    let path = config::path().context("no configuration folder: set XDG_CONFIG_HOME or HOME")?;
    let url = url.unwrap_or_else(|| DEFAULT_URL.to_owned());
    let url = url.trim_end_matches('/').to_owned();
    let token = read_token(token, with_token, &url)?;
    let resolved = Resolved {
        url: url.clone(),
        credentials: Credentials::Token(token.clone()),
        profile: None,
    };
    let who = identify(&Client::new(&resolved)?)
        .await
        .with_context(|| format!("the token does not work on {url}"))?;
    let name = profile.unwrap_or_else(|| DEFAULT_PROFILE.to_owned());
    let mut file = ConfigFile::load(&path)?;
    file.profiles.insert(
        name.clone(),
        Profile {
            url: url.clone(),
            token,
        },
    );
    file.current = Some(name.clone());
    file.save(&path)?;
    if json_out {
        line(&json!({ "profile": name, "url": url, "as": describe_json(&who), "path": path }).to_string());
    } else {
        line(&format!(
            "Logged in to {url} as {} (profile {name}).",
            describe(&who, None)
        ));
        eprintln!("Saved in {}.", path.display());
    }
    Ok(())
}

/// `kiln logout`: removes the profile (and its token) from the file.
pub(super) fn logout(profile: Option<&str>, resolved: &Resolved) -> anyhow::Result<()> {
    let path = config::path().context("no configuration folder: set XDG_CONFIG_HOME or HOME")?;
    let mut file = ConfigFile::load(&path)?;
    let Some(name) = profile
        .map(str::to_owned)
        .or_else(|| resolved.profile.clone())
        .or_else(|| file.current.clone())
    else {
        bail!("not logged in: no profile in {}", path.display());
    };
    let Some(removed) = file.profiles.remove(&name) else {
        bail!("no profile {name:?} in {}", path.display());
    };
    if file.current.as_deref() == Some(name.as_str()) {
        file.current = None;
    }
    file.save(&path)?;
    line(&format!("Logged out of {} (profile {name}).", removed.url));
    eprintln!("The token still works until it is revoked (kiln token revoke <id>).");
    Ok(())
}

fn describe(who: &Identity, credentials: Option<&Credentials>) -> String {
    match (who, credentials) {
        (Identity::User(user), _) => format!("user {user}"),
        (Identity::Privileged, Some(Credentials::Secret(_))) => "the product back end (HMAC secret)".into(),
        (Identity::Privileged, _) => "an operator".into(),
    }
}

fn describe_json(who: &Identity) -> Value {
    match who {
        Identity::User(user) => json!({ "kind": "user", "userId": user }),
        Identity::Privileged => json!({ "kind": "privileged" }),
    }
}

/// `kiln whoami`: the API, the profile, and who the credentials are.
pub(super) async fn whoami(client: &Client, resolved: &Resolved, json_out: bool) -> anyhow::Result<()> {
    let who = identify(client).await?;
    let source = match (&resolved.credentials, &resolved.profile) {
        (Credentials::Secret(_), _) => "KILN_HMAC_SECRET".to_owned(),
        (_, Some(profile)) => format!("profile {profile}"),
        _ => "--token/KILN_TOKEN".to_owned(),
    };
    if json_out {
        line(
            &json!({ "url": resolved.url, "profile": resolved.profile, "from": source,
                      "as": describe_json(&who) })
            .to_string(),
        );
    } else {
        line(&format!("api      {}", resolved.url));
        line(&format!(
            "as       {}",
            describe(&who, Some(&resolved.credentials))
        ));
        line(&format!("from     {source}"));
    }
    Ok(())
}

/// `kiln link <user>/<project>`.
pub(super) fn link(target: &str, dir: &Path, json_out: bool) -> anyhow::Result<()> {
    let link = Link::parse(target)?;
    let file = link.write(dir)?;
    if json_out {
        line(&json!({ "userId": link.user, "projectId": link.project, "path": file }).to_string());
    } else {
        line(&format!(
            "Linked {} to {}/{}.",
            dir.display(),
            link.user,
            link.project
        ));
        eprintln!(
            "Saved in {}; `kiln submit` there needs no --user/--project.",
            file.display()
        );
    }
    Ok(())
}
