//! The HTTP client side of the CLI: `stele send` and `stele query`.

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde_json::Value;
use std::io::Read;
use std::path::PathBuf;
use stele_api::{IngestResponse, Problem};

/// Events per request when sending a large file.
const SEND_CHUNK: usize = 10_000;

#[derive(Args)]
pub struct SendArgs {
    /// Server URL.
    #[arg(long, env = "STELE_URL", default_value = "http://127.0.0.1:7700")]
    url: String,
    /// API key (`stl_…`), sent as a bearer token.
    #[arg(long, env = "STELE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Log for events that do not name one.
    #[arg(long)]
    tenant: Option<String>,
    /// Print every receipt as JSON instead of a summary.
    #[arg(long)]
    json: bool,
    /// A file of events: one JSON object, a JSON array, or NDJSON; `-` or nothing for standard input.
    file: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Ndjson,
}

#[derive(Args)]
pub struct QueryArgs {
    /// Server URL.
    #[arg(long, env = "STELE_URL", default_value = "http://127.0.0.1:7700")]
    url: String,
    /// API key (`stl_…`), sent as a bearer token.
    #[arg(long, env = "STELE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    #[arg(long)]
    tenant: Option<String>,
    /// occurred_at >= FROM (RFC 3339)
    #[arg(long)]
    from: Option<String>,
    /// occurred_at < TO (RFC 3339)
    #[arg(long)]
    to: Option<String>,
    #[arg(long)]
    actor_id: Option<String>,
    #[arg(long)]
    actor_type: Option<String>,
    #[arg(long)]
    ip: Option<String>,
    /// Exact action, or a prefix ending in `*` (e.g. `user.*`).
    #[arg(long)]
    action: Option<String>,
    #[arg(long)]
    category: Option<String>,
    /// Minimum level.
    #[arg(long)]
    level: Option<String>,
    #[arg(long)]
    outcome: Option<String>,
    #[arg(long)]
    resource_type: Option<String>,
    #[arg(long)]
    resource_id: Option<String>,
    #[arg(long)]
    correlation_id: Option<String>,
    #[arg(long)]
    request_id: Option<String>,
    #[arg(long)]
    trace_id: Option<String>,
    #[arg(long)]
    error_code: Option<String>,
    /// `step.name`
    #[arg(long)]
    step: Option<String>,
    /// duration_ms >= this
    #[arg(long)]
    min_duration_ms: Option<String>,
    /// duration_ms <= this
    #[arg(long)]
    max_duration_ms: Option<String>,
    /// received_at >= this (RFC 3339)
    #[arg(long)]
    received_from: Option<String>,
    /// received_at < this (RFC 3339)
    #[arg(long)]
    received_to: Option<String>,
    /// Words that must all occur in the event's text (any case).
    #[arg(long)]
    text: Option<String>,
    /// Newest first.
    #[arg(long)]
    desc: bool,
    /// Most events to print.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

/// An HTTP client that sends `api_key` (if any) as a bearer token with every request.
pub fn http_client(api_key: Option<&str>) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(key) = api_key {
        let mut value =
            reqwest::header::HeaderValue::from_str(&format!("Bearer {}", key.trim()))
                .map_err(|_| anyhow::anyhow!("the API key holds characters a header cannot"))?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .build()?)
}

fn endpoint(url: &str, path: &str) -> String {
    format!("{}{path}", url.trim_end_matches('/'))
}

/// Turns an error answer (problem+json) into a readable message.
async fn failure(response: reqwest::Response) -> anyhow::Error {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    match serde_json::from_str::<Problem>(&text) {
        Ok(problem) => anyhow::anyhow!("{problem}"),
        Err(_) => anyhow::anyhow!("{status}: {text}"),
    }
}

/// Reads events from JSON (an object or an array) or NDJSON.
fn parse_events(input: &[u8]) -> anyhow::Result<Vec<Value>> {
    let mut events = Vec::new();
    for (i, value) in serde_json::Deserializer::from_slice(input)
        .into_iter::<Value>()
        .enumerate()
    {
        match value.with_context(|| format!("input value {} is not valid JSON", i + 1))? {
            Value::Array(items) => events.extend(items),
            other => events.push(other),
        }
    }
    Ok(events)
}

pub async fn send(args: SendArgs) -> anyhow::Result<()> {
    let mut input = Vec::new();
    match &args.file {
        Some(path) if path.as_os_str() != "-" => {
            input = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        }
        _ => {
            std::io::stdin().read_to_end(&mut input)?;
        }
    }
    let events = parse_events(&input)?;
    if events.is_empty() {
        bail!("no events in the input");
    }
    let client = http_client(args.api_key.as_deref())?;
    let (mut stored, mut duplicates) = (0usize, 0usize);
    for (n, chunk) in events.chunks(SEND_CHUNK).enumerate() {
        let mut request = client.post(endpoint(&args.url, "/v1/events")).json(&chunk);
        if let Some(tenant) = &args.tenant {
            request = request.query(&[("tenant", tenant)]);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("sending to {}", args.url))?;
        if !response.status().is_success() {
            let err = failure(response).await;
            bail!("request {} (events {}..): {err}", n + 1, n * SEND_CHUNK);
        }
        let body: IngestResponse = response.json().await?;
        for receipt in body.receipts {
            if args.json {
                println!("{}", serde_json::to_string(&receipt)?);
            }
            if receipt.duplicate {
                duplicates += 1;
            } else {
                stored += 1;
            }
        }
    }
    if !args.json {
        println!("stored {stored} events ({duplicates} already present)");
    }
    Ok(())
}

pub async fn query(args: QueryArgs) -> anyhow::Result<()> {
    let mut params: Vec<(&str, String)> = Vec::new();
    let filters = [
        ("tenant", &args.tenant),
        ("from", &args.from),
        ("to", &args.to),
        ("actor_id", &args.actor_id),
        ("actor_type", &args.actor_type),
        ("ip", &args.ip),
        ("action", &args.action),
        ("category", &args.category),
        ("level", &args.level),
        ("outcome", &args.outcome),
        ("resource_type", &args.resource_type),
        ("resource_id", &args.resource_id),
        ("correlation_id", &args.correlation_id),
        ("request_id", &args.request_id),
        ("trace_id", &args.trace_id),
        ("error_code", &args.error_code),
        ("step", &args.step),
        ("min_duration_ms", &args.min_duration_ms),
        ("max_duration_ms", &args.max_duration_ms),
        ("received_from", &args.received_from),
        ("received_to", &args.received_to),
        ("text", &args.text),
    ];
    for (key, value) in filters {
        if let Some(v) = value {
            params.push((key, v.clone()));
        }
    }
    params.push(("order", if args.desc { "desc" } else { "asc" }.to_string()));
    let client = http_client(args.api_key.as_deref())?;
    let mut printed = 0;
    let mut cursor: Option<String> = None;
    let mut all = Vec::new();
    if matches!(args.format, Format::Table) {
        println!(
            "{:>8}  {:<27}  {:<24}  {:<20}  {:<8}  {:<8}  RESOURCE",
            "SEQ", "OCCURRED_AT", "ACTION", "ACTOR", "OUTCOME", "LEVEL"
        );
    }
    while printed < args.limit {
        let mut page_params = params.clone();
        page_params.push(("limit", (args.limit - printed).min(1000).to_string()));
        if let Some(c) = &cursor {
            page_params.push(("cursor", c.clone()));
        }
        let response = client
            .get(endpoint(&args.url, "/v1/events"))
            .query(&page_params)
            .send()
            .await
            .with_context(|| format!("querying {}", args.url))?;
        if !response.status().is_success() {
            return Err(failure(response).await);
        }
        let page: Value = response.json().await?;
        for event in page["events"].as_array().into_iter().flatten() {
            printed += 1;
            match args.format {
                Format::Ndjson => println!("{event}"),
                Format::Json => all.push(event.clone()),
                Format::Table => println!("{}", table_row(event)),
            }
        }
        cursor = page["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
    }
    if matches!(args.format, Format::Json) {
        println!("{}", serde_json::to_string_pretty(&all)?);
    }
    Ok(())
}

fn table_row(e: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("-").to_string();
    let actor = e["actor"]["id"]
        .as_str()
        .or(e["actor"]["name"].as_str())
        .unwrap_or("-");
    let resource = match (e["resource"]["type"].as_str(), e["resource"]["id"].as_str()) {
        (Some(t), Some(id)) => format!("{t}/{id}"),
        (Some(t), None) => t.to_string(),
        (None, Some(id)) => id.to_string(),
        (None, None) => "-".to_string(),
    };
    format!(
        "{:>8}  {:<27}  {:<24}  {:<20}  {:<8}  {:<8}  {}",
        e["seq"],
        s(&e["occurred_at"]),
        s(&e["action"]),
        actor,
        s(&e["outcome"]),
        s(&e["level"]),
        resource
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_object_array_and_ndjson() {
        assert_eq!(parse_events(br#"{"action":"a"}"#).unwrap().len(), 1);
        assert_eq!(
            parse_events(br#"[{"action":"a"},{"action":"b"}]"#)
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            parse_events(b"{\"action\":\"a\"}\n\n{\"action\":\"b\"}\n")
                .unwrap()
                .len(),
            2
        );
        assert!(parse_events(b"{\"action\":").is_err());
    }
}
