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

/// Tasks in flight across a recycle (issue 19), beside C7's journal runs.
pub(super) fn inflight(out: &mut String, results: &Results) {
    let entries: Vec<_> = results
        .entries
        .iter()
        .filter_map(|e| Some((e, e.inflight.as_ref()?)))
        .collect();
    if entries.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## Tasks in flight across a recycle\n\n| model | recycle | journal | tasks sent | accepted | accepted before the recycle | of them unfinished then | finished | lost (of them unknown) | run twice | resumed |\n|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for (e, f) in entries {
        let o = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} ({}) | {} | {} |",
            e.model,
            f.kind,
            if f.journal { "yes" } else { "no" },
            f.tasks_sent,
            f.tasks_accepted,
            f.accepted_at_recycle,
            f.in_flight_at_recycle,
            f.tasks_finished,
            f.tasks_lost,
            f.lost_unknown,
            o(f.tasks_run_twice),
            o(f.tasks_resumed)
        );
    }
    let _ = writeln!(
        out,
        "\nEach run: 4 clients post tasks of {} rows with `Prefer: respond-async`, all to one task actor, \
         from just before the recycle (triggered once 10 were accepted) until it is done; a task answered \
         otherwise than 202 is not accepted and not sent again. Unfinished then: accepted before the trigger \
         minus the server's done count at the trigger. Afterwards every accepted task is looked up on the new \
         process until it reads `done` (finished) or 404 (unknown), or 20 s pass; lost is accepted minus \
         finished. Run twice is the server's done count (`GET /stats` `tasks.done`) minus finished, shown \
         only where that count spans the recycle: with a journal (it carries the count) or on split (its \
         actors outlive a front recycle); without either the old process took its count with it (`-`). \
         Resumed: unfinished tasks the new process took over from the journal. Method: docs/run.md \
         \"Tasks in flight\".\n",
        results
            .entries
            .iter()
            .find_map(|e| e.inflight.as_ref())
            .map_or(0, |f| f.rows_per_task)
    );
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
