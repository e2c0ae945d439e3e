//! Query latency on a loaded store: p50/p99 of a fixed query mix.

use crate::Common;
use crate::report::Report;
use clap::Args;

#[derive(Args, Debug)]
pub struct QueryArgs {
    #[command(flatten)]
    pub common: Common,
}

pub async fn run(args: QueryArgs) -> anyhow::Result<Report> {
    let _ = args;
    anyhow::bail!("the query scenario is being written")
}
