//! `hostlab load`: placeholder until the measurement core lands.

use clap::Args;

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Target URL.
    pub url: String,
}

pub fn main(_args: LoadArgs) -> anyhow::Result<()> {
    anyhow::bail!("`hostlab load` is not built yet")
}
