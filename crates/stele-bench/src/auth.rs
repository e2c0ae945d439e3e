//! The cost of access control on ingest: one event per request (where a request's fixed
//! costs weigh most) against a server without keys and one checking an ingest key, in the
//! same run, interleaved, each on a fresh store.

use crate::Common;
use crate::ingest::{drive_as, server_config, single_event_bodies};
use crate::report::Report;
use crate::server;
use anyhow::{Context, ensure};
use clap::Args;
use std::time::Duration;
use stele_testkit::Server;

#[derive(Args, Debug)]
pub struct AuthArgs {
    #[command(flatten)]
    pub common: Common,
    /// Requests (one event each) per run.
    #[arg(long, default_value_t = 50_000)]
    pub events: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Runs of each kind, interleaved.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
}

/// Ingest with keys, as a share of ingest without.
const TARGET_RATIO: f64 = 0.95;

pub async fn run(args: AuthArgs) -> anyhow::Result<Report> {
    ensure!(
        args.events > 0 && args.connections > 0 && args.rounds > 0,
        "nothing to send"
    );
    ensure!(
        args.common.database_url.is_none(),
        "this scenario runs on SQLite"
    );
    let bodies = single_event_bodies(&args.common, args.events)?;
    let config = server_config(None, 1, args.connections);
    let (mut open, mut secured) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..args.rounds {
        for with_keys in [false, true] {
            let dir = tempfile::tempdir()?;
            let data = dir.path().join("server");
            let (server, key) = if with_keys {
                server::settle();
                let server =
                    Server::launch_secured(&data, Some(&config)).map_err(anyhow::Error::msg)?;
                let key = ingest_key(&server).await?;
                (server, Some(key))
            } else {
                (server::start(&data, Some(&config))?, None)
            };
            let (elapsed, _) = drive_as(
                &server.url,
                bodies.clone(),
                args.connections,
                key.as_deref(),
            )
            .await?;
            server.try_stop().map_err(anyhow::Error::msg)?;
            *(if with_keys { &mut secured } else { &mut open }) += elapsed;
        }
    }
    let n = (args.events * args.rounds) as f64;
    let (open_rate, secured_rate) = (n / open.as_secs_f64(), n / secured.as_secs_f64());
    let mut report = Report::new("auth");
    report
        .set("events", args.events)
        .set("rounds", args.rounds)
        .set("connections", args.connections)
        .set("with_keys_per_s", secured_rate)
        .set("baseline_per_s", open_rate)
        .set("ratio", secured_rate / open_rate)
        .set("target_ratio", TARGET_RATIO)
        .set("target_met", secured_rate / open_rate >= TARGET_RATIO);
    Ok(report)
}

/// An ingest key of the default tenant, made with the bootstrap admin key.
async fn ingest_key(server: &Server) -> anyhow::Result<String> {
    let admin = server
        .admin_key
        .as_deref()
        .context("the server made no bootstrap key")?;
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/v1/keys", server.url))
        .bearer_auth(admin)
        .json(&serde_json::json!({"name": "bench", "role": "ingest", "scope": ["default"]}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(answer["key"]
        .as_str()
        .context("no key in the answer")?
        .to_string())
}
