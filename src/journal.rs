//! `hostlab journal check|repair PATH`: look at a `--journal` file without
//! starting a server (docs/journal.md).

use anyhow::Context;
use hostlab_workloads::journal;

use crate::cli::JournalCommand;

pub fn main(command: JournalCommand) -> anyhow::Result<()> {
    match command {
        JournalCommand::Check { path } => {
            let r = journal::check(&path)?;
            println!("journal {}: intact", r.path);
            println!(
                "  events stored: {} (last {}), snapshot at: {}",
                r.events_stored,
                r.last_seq,
                r.snapshot_seq.map_or("none".into(), |s| s.to_string())
            );
            println!(
                "  books: {}, tasks done: {}, unfinished tasks (resume at startup): {}",
                r.books, r.tasks_done, r.tasks_unfinished
            );
            println!("  recovery read took {:.1} ms", r.replay_micros as f64 / 1000.0);
            Ok(())
        }
        JournalCommand::Repair { path } => {
            let r = journal::repair(&path).with_context(|| format!("repairing {}", path.display()))?;
            println!("journal {}: repaired", r.path);
            println!(
                "  kept events up to {} ({} after the snapshot it starts from)",
                r.last_seq, r.events_kept
            );
            println!("  the damaged original is at {}", r.damaged_copy);
            Ok(())
        }
    }
}
