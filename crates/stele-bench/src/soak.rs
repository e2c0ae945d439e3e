//! Ingest at a fixed rate for a long time, watching memory and latency.

use crate::Common;
use crate::report::Report;
use clap::Args;

#[derive(Args, Debug)]
pub struct SoakArgs {
    #[command(flatten)]
    pub common: Common,
}

pub async fn run(args: SoakArgs) -> anyhow::Result<Report> {
    let _ = args;
    anyhow::bail!("the soak scenario is being written")
}
