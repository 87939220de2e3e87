//! The state and recovery sections.

use super::*;

pub(super) fn state(out: &mut String, rows: &[SummaryRow], charts: &[Chart]) {
    let rows: Vec<&SummaryRow> = rows.iter().filter(|r| r.scenario == "state").collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## Where are all my books? (state across recycles)\n\n| model | recycle | journal | books before | books after | lost |\n|---|---|---|---|---|---|"
    );
    for r in rows {
        for e in &r.entries {
            let Some(s) = &e.state else { continue };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                r.model,
                s.kind,
                if s.journal { "yes" } else { "no" },
                s.books_before,
                s.books_after,
                s.books_before.saturating_sub(s.books_after)
            );
        }
    }
    let _ = writeln!(
        out,
        "\nJournal runs use a fresh SQLite file per run (`journals/` in this folder); their overlapped \
         recycles warm up with `/ping,/healthz` (a new process reads the state only after the switch).\n"
    );
    charts_of(out, charts, "state");
}

pub(super) fn recovery(out: &mut String, results: &Results) {
    let entries: Vec<_> = results
        .entries
        .iter()
        .filter_map(|e| Some((e, e.recovery.as_ref()?)))
        .collect();
    if entries.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## Recovery from the journal (edge restarted on a journal)\n\n| variant | events | start-to-ready ms | recovery ms | events replayed | replay events/s | books expected | books recovered | tasks accepted | resumed | done | all done ms |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for (e, r) in entries {
        let rate = if r.replay_events_per_sec > 0.0 {
            format!("{:.0}", r.replay_events_per_sec)
        } else {
            "-".into()
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} |",
            e.variant,
            r.events,
            r.startup_ms,
            r.recovery_ms,
            r.events_replayed,
            rate,
            r.books_expected,
            r.books_recovered,
            r.tasks_accepted,
            r.tasks_resumed,
            r.tasks_done,
            r.all_done_ms.map_or("-".into(), |v| format!("{v:.0}"))
        );
    }
    let _ = writeln!(
        out,
        "\nRecovery ms is the process's own figure (read the snapshot, replay the newer events); \
         start-to-ready includes process start. Tasks: accepted with `Prefer: respond-async` (202), \
         the process SIGKILLed right after the last one, then restarted; done counts each completion. \
         Unfinished tasks in the journal: the journal a crash between acceptance and completion leaves \
         (tasks accepted, none completed), written by the journal itself; all done ms runs from the \
         process start to the last resumed task done.\n"
    );
}
