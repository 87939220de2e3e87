//! `hostlab run`: the main job. Not built yet: it says which scenarios exist
//! and that none can run, and exits 1 so no script mistakes it for a result.

use crate::cli::RunArgs;

/// Scenarios of the main job (DESIGN.md, issue "The main job").
pub const SCENARIOS: [&str; 6] = ["throughput", "latency", "recycle", "coldstart", "state", "routing"];

pub fn main(_args: RunArgs) -> anyhow::Result<()> {
    anyhow::bail!(
        "the main job is not built yet: scenarios {} are all still to come. \
         What works today: `hostlab serve edge|edge-actix` and `hostlab load URL`",
        SCENARIOS.join(", ")
    )
}
