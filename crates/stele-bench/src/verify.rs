//! `stele verify` throughput on a loaded store, and proof latency.

use crate::Common;
use crate::report::Report;
use clap::Args;

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub common: Common,
}

pub async fn run(args: VerifyArgs) -> anyhow::Result<Report> {
    let _ = args;
    anyhow::bail!("the verify scenario is being written")
}
