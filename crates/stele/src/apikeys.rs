//! `stele keys create|list|revoke`: API keys, through a server with an admin key
//! (`--url`, `--api-key`), or directly in a store (`--data`, `--database-url`), which works
//! with the server stopped or running and needs no key (whoever can open the store could
//! change it anyway).

use crate::client::http_client;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::path::PathBuf;
use stele_auth::{NewKey, Role, Scope};
use stele_core::Timestamp;
use stele_server::access;
use stele_store::LogStore;

#[derive(Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key; prints it once, on standard output.
    Create {
        #[command(flatten)]
        target: Target,
        /// What the key is for, e.g. `billing-service`.
        #[arg(long)]
        name: String,
        /// ingest, reader, auditor or admin.
        #[arg(long)]
        role: String,
        /// A tenant the key may use (repeat for several).
        #[arg(long = "tenant", required_unless_present = "all_tenants")]
        tenants: Vec<String>,
        /// Every tenant (needed for an admin that manages keys).
        #[arg(long, conflicts_with = "tenants")]
        all_tenants: bool,
        /// When the key stops working (RFC 3339).
        #[arg(long)]
        expires: Option<String>,
    },
    /// List the API keys (never a secret).
    List {
        #[command(flatten)]
        target: Target,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an API key, from now on.
    Revoke {
        #[command(flatten)]
        target: Target,
        /// The key id (the part after `stl_`, before the next `_`).
        id: String,
    },
}

/// Where the keys are.
#[derive(Args, Clone)]
pub struct Target {
    /// A running server (with an admin API key).
    #[arg(long, conflicts_with_all = ["data", "database_url"], required_unless_present_any = ["data", "database_url"])]
    url: Option<String>,
    /// An admin API key for `--url`.
    #[arg(long, env = "STELE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// The data directory of a SQLite store.
    #[arg(long)]
    data: Option<PathBuf>,
    /// A PostgreSQL store.
    #[arg(long)]
    database_url: Option<String>,
}

impl Target {
    fn store(&self) -> anyhow::Result<Box<dyn LogStore>> {
        Ok(match (&self.database_url, &self.data) {
            (Some(url), _) => Box::new(
                stele_store::pg::PgStore::open(url).context("opening the PostgreSQL store")?,
            ),
            (None, Some(data)) => {
                let path = data.join("stele.db");
                anyhow::ensure!(path.exists(), "no store at {}", path.display());
                Box::new(
                    stele_store::sqlite::SqliteStore::open(&path)
                        .with_context(|| format!("opening {}", path.display()))?,
                )
            }
            (None, None) => bail!("name a server (--url) or a store (--data, --database-url)"),
        })
    }

    fn endpoint(&self, url: &str, path: &str) -> String {
        format!("{}{path}", url.trim_end_matches('/'))
    }
}

pub async fn run(command: ApiKeyCommand) -> anyhow::Result<()> {
    match command {
        ApiKeyCommand::Create {
            target,
            name,
            role,
            tenants,
            all_tenants,
            expires,
        } => {
            let role = Role::parse(&role).with_context(|| {
                format!("role `{role}`: expected ingest, reader, auditor or admin")
            })?;
            let scope = if all_tenants {
                Scope::All
            } else {
                Scope::Tenants(tenants)
            };
            let expires_at = expires
                .map(|t| Timestamp::parse(&t).map_err(anyhow::Error::msg))
                .transpose()?;
            let request = NewKey {
                name,
                role,
                scope,
                expires_at,
            };
            let (key, record) = match &target.url {
                Some(url) => {
                    let answer = send(
                        &target,
                        url,
                        reqwest::Method::POST,
                        "/v1/keys",
                        Some(&request),
                    )
                    .await?;
                    let key = answer["key"]
                        .as_str()
                        .context("the answer holds no key")?
                        .to_string();
                    (key, answer["record"].clone())
                }
                None => {
                    let (key, record) = offline(&target, move |store| {
                        access::create_key(store.meta(), &request)
                    })
                    .await?;
                    (
                        key.expose(),
                        json!({ "id": record.id, "name": record.name }),
                    )
                }
            };
            eprintln!(
                "created API key {} ({}); it is shown only now:",
                record["id"].as_str().unwrap_or("?"),
                record["name"].as_str().unwrap_or("?")
            );
            println!("{key}");
        }
        ApiKeyCommand::List { target, json } => {
            let keys: Vec<Value> = match &target.url {
                Some(url) => {
                    let answer =
                        send::<()>(&target, url, reqwest::Method::GET, "/v1/keys", None).await?;
                    answer["keys"].as_array().cloned().unwrap_or_default()
                }
                None => {
                    let keys = offline(&target, |store| access::list_keys(store.meta())).await?;
                    keys.iter()
                        .map(serde_json::to_value)
                        .collect::<Result<_, _>>()?
                }
            };
            if json {
                println!("{}", Value::Array(keys));
            } else {
                println!(
                    "{:<16}  {:<24}  {:<7}  {:<24}  {:<20}  STATE",
                    "ID", "NAME", "ROLE", "SCOPE", "LAST USED"
                );
                for k in &keys {
                    let scope = match &k["scope"] {
                        Value::String(s) => s.clone(),
                        other => other
                            .as_array()
                            .map(|l| {
                                l.iter()
                                    .filter_map(Value::as_str)
                                    .collect::<Vec<_>>()
                                    .join(",")
                            })
                            .unwrap_or_default(),
                    };
                    let state = if !k["revoked_at"].is_null() {
                        "revoked".to_string()
                    } else if let Some(at) = k["expires_at"].as_str() {
                        format!("expires {at}")
                    } else {
                        "active".to_string()
                    };
                    println!(
                        "{:<16}  {:<24}  {:<7}  {:<24}  {:<20}  {state}",
                        k["id"].as_str().unwrap_or(""),
                        k["name"].as_str().unwrap_or(""),
                        k["role"].as_str().unwrap_or(""),
                        scope,
                        k["last_used_at"]
                            .as_str()
                            .map_or("never", |t| &t[..t.len().min(19)]),
                    );
                }
            }
        }
        ApiKeyCommand::Revoke { target, id } => {
            match &target.url {
                Some(url) => {
                    send::<()>(
                        &target,
                        url,
                        reqwest::Method::DELETE,
                        &format!("/v1/keys/{id}"),
                        None,
                    )
                    .await?;
                }
                None => {
                    let revoking = id.clone();
                    offline(&target, move |store| {
                        access::revoke_key(store.meta(), &revoking)
                    })
                    .await?
                    .with_context(|| format!("no API key `{id}`"))?;
                }
            }
            eprintln!("revoked API key {id}");
        }
    }
    Ok(())
}

/// Runs `work` on the target's store, on a blocking thread (the PostgreSQL client may not
/// run on an async one).
async fn offline<T: Send + 'static>(
    target: &Target,
    work: impl FnOnce(&dyn LogStore) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let target = target.clone();
    tokio::task::spawn_blocking(move || work(target.store()?.as_ref())).await?
}

/// A request to the server's key routes; answers the JSON, or fails with the problem's
/// detail.
async fn send<T: serde::Serialize>(
    target: &Target,
    url: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<&T>,
) -> anyhow::Result<Value> {
    let client = http_client(target.api_key.as_deref())?;
    let mut request = client.request(method, target.endpoint(url, path));
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!(
            "{status}: {}",
            answer["detail"].as_str().unwrap_or("no detail")
        );
    }
    Ok(answer)
}
