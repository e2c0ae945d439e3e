//! Kill -9 cycles under concurrent ingest: nothing acknowledged may be lost.

use crate::Common;
use crate::report::Report;
use clap::Args;

#[derive(Args, Debug)]
pub struct CrashArgs {
    #[command(flatten)]
    pub common: Common,
}

pub async fn run(args: CrashArgs) -> anyhow::Result<Report> {
    let _ = args;
    anyhow::bail!("the crash scenario is being written")
}
