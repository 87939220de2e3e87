//! Claim rules on state and recycle evidence (C4: state lost on an idle
//! recycle; C5: overlapped recycles fail nothing; C6: pool routing controls
//! memory; C7: the journal recovers state). Each rule states the evidence it
//! needs and says "not measured" when that evidence is missing or zero.

use super::Verdict;
use crate::run::results::{Entry, Results, RoutingFigures};

/// One state measurement (scenario `state`): books before and after a recycle.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StateRun {
    pub model: String,
    pub kind: String,
    pub books_before: u64,
    pub books_after: u64,
}

impl StateRun {
    fn text(&self) -> String {
        format!(
            "{} {}: {} -> {} books",
            self.model, self.kind, self.books_before, self.books_after
        )
    }
}

/// Rule for C4 (in-memory state is lost when the host recycles an idle
/// app). Evidence: an idle-terminate recycle without a journal that had
/// books before it (0 books before cannot show a loss). Holds when one of
/// those lost books, does not hold when all kept them, not measured
/// without one.
pub(crate) fn verdict_state_lost(runs: &[StateRun]) -> (Verdict, String) {
    let (usable, empty): (Vec<&StateRun>, Vec<&StateRun>) = runs.iter().partition(|r| r.books_before > 0);
    if usable.is_empty() {
        let why = if empty.is_empty() {
            "the state scenario did not run an idle-terminate recycle".to_string()
        } else {
            let list = empty.iter().map(|r| r.text()).collect::<Vec<_>>().join(", ");
            format!("no book was present before the recycle, so none could be lost ({list})")
        };
        return (Verdict::NotMeasured, why);
    }
    let text = usable.iter().map(|r| r.text()).collect::<Vec<_>>().join(", ");
    if usable.iter().any(|r| r.books_after < r.books_before) {
        (
            Verdict::Holds,
            format!("books lost after an idle terminate without a journal ({text})"),
        )
    } else {
        (
            Verdict::DoesNotHold,
            format!("every idle terminate kept its books ({text})"),
        )
    }
}

/// One overlapped recycle with warm-up under fixed-rate load, as C5 needs it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OverlappedRun {
    pub model: String,
    pub failed: u64,
    /// Successful requests in the intervals that ended before the recycle
    /// was triggered.
    pub ok_before: u64,
    /// Successful requests in the intervals that began after the recycle
    /// completed (manager's `total_ms` after the trigger).
    pub ok_after: u64,
    /// The recycle's duration from the admin status (`last_recycle`), or
    /// why it does not show a completed overlapped recycle inside the load.
    pub completed: Result<u64, String>,
    /// A soak's run: how many overlapped recycles it holds (the manager
    /// counted every one); `ok_before` / `ok_after` are then the successes
    /// before its first and after its last recycle.
    pub soak_recycles: Option<u64>,
}

impl OverlappedRun {
    /// The figures of a recycle entry: the timeline on both sides of the
    /// event and the manager's own report of the recycle.
    pub(crate) fn of(e: &Entry) -> Option<OverlappedRun> {
        let r = e.recycle.as_ref()?;
        let load = e.load.as_ref();
        let timeline = load.map_or(&[][..], |l| &l.timeline[..]);
        let load_end_ms = load.map_or(0, |l| (l.duration_s * 1e3) as u64);
        let last = r.admin_status.as_ref().map(|s| &s["last_recycle"]);
        let completed = match last {
            None => Err("no admin status after the run".to_string()),
            Some(l) if !l.is_object() => Err("the admin status reports no recycle".into()),
            Some(l) if !l["error"].is_null() => Err(format!("the recycle failed: {}", l["error"])),
            Some(l) if l["skipped"] == true => Err("the manager skipped the recycle".into()),
            Some(l) if l["overlapped"] != true => Err("the manager did not overlap the recycle".into()),
            Some(l) => match l["total_ms"].as_u64() {
                None => Err("the admin status gives no recycle duration".into()),
                Some(ms) if r.event_ms + ms >= load_end_ms => Err(format!(
                    "the recycle ended {} ms after the trigger, after the load ({} ms from the trigger)",
                    ms,
                    load_end_ms.saturating_sub(r.event_ms)
                )),
                Some(ms) => Ok(ms),
            },
        };
        let done_ms = completed.as_ref().map_or(u64::MAX, |ms| r.event_ms + ms);
        Some(OverlappedRun {
            model: e.model.clone(),
            failed: r.analysis.failed_requests,
            ok_before: timeline
                .iter()
                .filter(|i| i.t_ms + i.duration_ms <= r.event_ms)
                .map(|i| i.ok)
                .sum(),
            ok_after: timeline.iter().filter(|i| i.t_ms >= done_ms).map(|i| i.ok).sum(),
            completed,
            soak_recycles: None,
        })
    }

    /// The evidence of a soak (overlapped recycles with warm-up, started as
    /// the `overlapped` kind): its failed requests, successes before the
    /// first and after the last recycle, and whether the manager counted
    /// every recycle the soak asked for.
    pub(crate) fn of_soak(e: &Entry) -> Option<OverlappedRun> {
        let k = e.soak.as_ref()?;
        let timeline = e.load.as_ref().map_or(&[][..], |l| &l.timeline[..]);
        let first = k.recycle_at_ms.first().copied().unwrap_or(u64::MAX);
        let last = k.recycle_at_ms.last().copied().unwrap_or(u64::MAX);
        let completed = if k.recycles_requested == 0 {
            Err("the soak asked for no recycle".to_string())
        } else if !k.recycle_errors.is_empty() {
            Err(format!("a recycle request failed: {}", k.recycle_errors.join("; ")))
        } else if k.recycles_reported != Some(k.recycles_requested) || k.recycles != k.recycles_requested {
            Err(format!(
                "the manager counted {} of the {} recycles asked for ({} accepted)",
                k.recycles_reported.map_or("none".into(), |n| n.to_string()),
                k.recycles_requested,
                k.recycles
            ))
        } else {
            Ok(0)
        };
        Some(OverlappedRun {
            model: e.model.clone(),
            failed: k.failed.total(),
            ok_before: timeline
                .iter()
                .filter(|i| i.t_ms + i.duration_ms <= first)
                .map(|i| i.ok)
                .sum(),
            ok_after: timeline.iter().filter(|i| i.t_ms > last).map(|i| i.ok).sum(),
            completed,
            soak_recycles: Some(k.recycles_requested),
        })
    }

    fn judge(&self) -> (Verdict, String) {
        let soak = self.soak_recycles.map(|_| format!("{} soak", self.model));
        let m = soak.as_ref().unwrap_or(&self.model);
        if self.failed > 0 {
            return (Verdict::DoesNotHold, format!("{m}: {} failed", self.failed));
        }
        match &self.completed {
            Err(why) => (Verdict::NotMeasured, format!("{m}: {why}")),
            Ok(_) if self.ok_before == 0 => (
                Verdict::NotMeasured,
                format!("{m}: no request succeeded before the recycle"),
            ),
            Ok(ms) if self.ok_after == 0 => (
                Verdict::NotMeasured,
                format!("{m}: no request succeeded after the recycle completed ({ms} ms)"),
            ),
            Ok(_) if self.soak_recycles.is_some() => (
                Verdict::Holds,
                format!(
                    "{m}: 0 failed over {} overlapped recycles, {} ok before the first, {} ok after the last",
                    self.soak_recycles.unwrap_or(0),
                    self.ok_before,
                    self.ok_after
                ),
            ),
            Ok(ms) => (
                Verdict::Holds,
                format!(
                    "{m}: 0 failed, {} ok before, recycle done in {ms} ms, {} ok after",
                    self.ok_before, self.ok_after
                ),
            ),
        }
    }
}

/// Rule for C5 (an overlapped recycle with warm-up fails no request).
/// Evidence per run: requests that succeeded before the recycle and after
/// it completed, and the manager's report of a completed overlapped
/// recycle inside the load. Does not hold when any run failed a request;
/// holds when every run has the evidence and failed none; otherwise not
/// measured.
pub(crate) fn verdict_zero_failures(runs: &[OverlappedRun]) -> (Verdict, String) {
    if runs.is_empty() {
        return (
            Verdict::NotMeasured,
            "the recycle scenario did not run an overlapped recycle".into(),
        );
    }
    let each: Vec<(Verdict, String)> = runs.iter().map(OverlappedRun::judge).collect();
    let text = each.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>().join("; ");
    let verdict = if each.iter().any(|(v, _)| *v == Verdict::DoesNotHold) {
        Verdict::DoesNotHold
    } else if each.iter().all(|(v, _)| *v == Verdict::Holds) {
        Verdict::Holds
    } else {
        Verdict::NotMeasured
    };
    (verdict, text)
}

/// Routing figures C6 compares, for one mode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RoutingPoint {
    pub live_actors: u64,
    /// RSS after the tasks; `None` when the server could not read it.
    pub rss_bytes: Option<u64>,
    pub tasks_sent: u64,
    pub tasks_ok: u64,
}

impl RoutingPoint {
    pub(crate) fn of(r: &RoutingFigures) -> RoutingPoint {
        RoutingPoint {
            live_actors: r.live_actors,
            rss_bytes: r.rss_after_bytes,
            tasks_sent: r.tasks_sent,
            tasks_ok: r.tasks_ok,
        }
    }

    /// Why this point cannot take part in the comparison, if it cannot.
    fn unusable(&self, mode: &str) -> Option<String> {
        if self.tasks_sent == 0 || self.tasks_ok < self.tasks_sent {
            return Some(format!(
                "{mode}: {} of {} tasks answered, so the modes did not do the same work",
                self.tasks_ok, self.tasks_sent
            ));
        }
        match self.rss_bytes {
            None | Some(0) => Some(format!("{mode}: the server could not read its RSS")),
            Some(_) if self.live_actors == 0 => Some(format!("{mode}: no live actor reported")),
            Some(_) => None,
        }
    }
}

/// Rule for C6 (routing to 10 actors instead of one per task controls
/// memory). Evidence: both modes answered every task and reported their
/// RSS and live actors. Holds when the pool kept fewer live actors *and*
/// less memory than per-task; does not hold when it kept as many actors or
/// as much memory; not measured without the evidence.
pub(crate) fn verdict_routing(pool: Option<RoutingPoint>, per_task: Option<RoutingPoint>) -> (Verdict, String) {
    let (Some(p), Some(t)) = (pool, per_task) else {
        return (
            Verdict::NotMeasured,
            "the routing scenario did not measure both modes".into(),
        );
    };
    let unusable: Vec<String> = [p.unusable("pool"), t.unusable("per-task")]
        .into_iter()
        .flatten()
        .collect();
    if !unusable.is_empty() {
        return (Verdict::NotMeasured, unusable.join("; "));
    }
    let (p_rss, t_rss) = (p.rss_bytes.unwrap_or_default(), t.rss_bytes.unwrap_or_default());
    let text = format!(
        "pool {} actors / {:.1} MiB, per-task {} actors / {:.1} MiB, {} tasks each",
        p.live_actors,
        crate::run::summary::mib(p_rss),
        t.live_actors,
        crate::run::summary::mib(t_rss),
        p.tasks_ok
    );
    if p.live_actors < t.live_actors && p_rss < t_rss {
        (Verdict::Holds, text)
    } else {
        (Verdict::DoesNotHold, text)
    }
}

/// The claimed replay rate of C7 (Akka.Persistence Redis), events/s.
pub(crate) const CLAIMED_REPLAY_PER_SEC: (f64, f64) = (17_000.0, 37_000.0);

/// One restart from a journal of books (scenario `recovery`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReplayRun {
    /// The entry's variant, e.g. `100000 events`.
    pub run: String,
    pub snapshot: bool,
    pub events_replayed: u64,
    pub replay_events_per_sec: f64,
    pub books_expected: u64,
    pub books_recovered: u64,
}

/// Tasks accepted before a restart and how they finished after it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TaskRun {
    pub run: String,
    pub accepted: u64,
    pub resumed: u64,
    pub done: u64,
}

/// Tasks posted across a recycle with a journal (the state scenario's
/// tasks in flight) and what became of them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InflightRun {
    pub run: String,
    pub accepted: u64,
    /// Accepted before the trigger and not done then.
    pub unfinished: u64,
    pub finished: u64,
    pub run_twice: Option<u64>,
}

/// What a run measured with `--journal` (claim C7).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct JournalEvidence {
    /// State runs with a journal.
    pub state_runs: Vec<StateRun>,
    /// Restarts from a journal of books.
    pub replays: Vec<ReplayRun>,
    /// Tasks accepted through the API, then a real SIGKILL.
    pub real_crash: Vec<TaskRun>,
    /// Tasks in a journal the tool wrote itself as a crash would leave it
    /// (every task accepted, none finished).
    pub synthetic: Vec<TaskRun>,
    /// Tasks in flight across a recycle with a journal.
    pub inflight: Vec<InflightRun>,
}

/// Rule for C7 (persistent actors recover state after a crash; replay at
/// 17-37k events/s). Does not hold if a journal run lost a book, a restart
/// recovered a different number of books than it was given, an accepted
/// task did not finish exactly once, or the slowest replay is below 17k
/// events/s. Holds when books were recovered (at least one run with books
/// to lose) and the replay rate was measured; otherwise not measured. The
/// reason names each run it used, and keeps the real-crash resume count
/// apart from the one on a journal the tool wrote.
pub(crate) fn verdict_journal(e: &JournalEvidence) -> (Verdict, String) {
    if e.state_runs.is_empty()
        && e.replays.is_empty()
        && e.real_crash.is_empty()
        && e.synthetic.is_empty()
        && e.inflight.is_empty()
    {
        return (
            Verdict::NotMeasured,
            "no --journal measurement in this run (scenarios state and recovery)".into(),
        );
    }
    let mut broken = Vec::new();
    for r in e.state_runs.iter().filter(|r| r.books_after < r.books_before) {
        broken.push(format!("books lost with the journal ({})", r.text()));
    }
    for r in e.replays.iter().filter(|r| r.books_recovered != r.books_expected) {
        broken.push(format!(
            "{}: {} of {} books recovered",
            r.run, r.books_recovered, r.books_expected
        ));
    }
    for t in e.real_crash.iter().chain(&e.synthetic).filter(|t| t.done != t.accepted) {
        broken.push(format!(
            "{}: {} tasks accepted, {} done after the restart (each must finish once)",
            t.run, t.accepted, t.done
        ));
    }
    for t in e.synthetic.iter().filter(|t| t.resumed != t.accepted) {
        broken.push(format!(
            "{}: {} of {} unfinished tasks resumed",
            t.run, t.resumed, t.accepted
        ));
    }
    for t in e.inflight.iter().filter(|t| t.finished < t.accepted) {
        broken.push(format!(
            "{}: {} of {} accepted tasks lost across the recycle with the journal",
            t.run,
            t.accepted - t.finished,
            t.accepted
        ));
    }
    for t in &e.inflight {
        if let Some(n) = t.run_twice.filter(|n| *n > 0) {
            broken.push(format!("{}: {n} tasks ran twice across the recycle", t.run));
        }
    }
    let rates: Vec<&ReplayRun> = e
        .replays
        .iter()
        .filter(|r| !r.snapshot && r.events_replayed > 0 && r.replay_events_per_sec > 0.0)
        .collect();
    let slowest = rates
        .iter()
        .min_by(|a, b| a.replay_events_per_sec.total_cmp(&b.replay_events_per_sec));
    let (lo, hi) = CLAIMED_REPLAY_PER_SEC;
    if let Some(r) = slowest.filter(|r| r.replay_events_per_sec < lo) {
        broken.push(format!(
            "{}: replay {:.0} events/s, below the claimed {lo:.0}-{hi:.0}/s",
            r.run, r.replay_events_per_sec
        ));
    }
    if !broken.is_empty() {
        return (Verdict::DoesNotHold, broken.join("; "));
    }

    let mut parts = Vec::new();
    let mut missing = Vec::new();
    let state_kept: Vec<&StateRun> = e.state_runs.iter().filter(|r| r.books_before > 0).collect();
    let replays_kept: Vec<&ReplayRun> = e.replays.iter().filter(|r| r.books_expected > 0).collect();
    if state_kept.is_empty() && replays_kept.is_empty() {
        missing.push("no journal run had books to recover".to_string());
    }
    if !state_kept.is_empty() {
        parts.push(format!(
            "{} journal recycles and restarts kept all {} books they had",
            state_kept.len(),
            state_kept.iter().map(|r| r.books_before).sum::<u64>()
        ));
    }
    if !replays_kept.is_empty() {
        parts.push(format!(
            "every book recovered in {}",
            replays_kept
                .iter()
                .map(|r| format!("{} ({})", r.run, r.books_recovered))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    match slowest {
        None => missing.push("no replay rate measured (recovery without a snapshot)".to_string()),
        Some(r) => parts.push(format!(
            "slowest replay {:.0} events/s ({}) >= {lo:.0}/s claimed (each: {})",
            r.replay_events_per_sec,
            r.run,
            rates
                .iter()
                .map(|r| format!("{} {:.0}/s", r.run, r.replay_events_per_sec))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
    for t in &e.real_crash {
        parts.push(format!(
            "real SIGKILL ({}): {} accepted tasks all finished once, {} resumed{}",
            t.run,
            t.accepted,
            t.resumed,
            if t.resumed == 0 {
                " (no task was unfinished at the kill, so it did not exercise resuming)"
            } else {
                ""
            }
        ));
    }
    for t in &e.synthetic {
        parts.push(format!(
            "journal written by the tool ({}): {} of {} unfinished tasks resumed and finished once",
            t.run, t.resumed, t.accepted
        ));
    }
    if !e.inflight.is_empty() {
        parts.push(format!(
            "tasks in flight across {} journal recycles ({}): {} accepted, all finished, {} unfinished at the trigger, none ran twice",
            e.inflight.len(),
            e.inflight.iter().map(|t| t.run.as_str()).collect::<Vec<_>>().join(", "),
            e.inflight.iter().map(|t| t.accepted).sum::<u64>(),
            e.inflight.iter().map(|t| t.unfinished).sum::<u64>()
        ));
    }
    if e.real_crash.is_empty() && e.synthetic.is_empty() {
        parts.push("resuming tasks not measured".into());
    }
    if !missing.is_empty() {
        missing.extend(parts);
        return (Verdict::NotMeasured, missing.join("; "));
    }
    (Verdict::Holds, parts.join("; "))
}

/// C7's evidence from a result set: `state` runs with a journal and every
/// `recovery` entry, task runs sorted by where their journal came from.
pub(crate) fn journal_evidence(results: &Results) -> JournalEvidence {
    let mut e = JournalEvidence::default();
    for entry in &results.entries {
        if let Some(s) = entry.state.as_ref().filter(|s| s.journal) {
            e.state_runs.push(StateRun {
                model: entry.model.clone(),
                kind: s.kind.clone(),
                books_before: s.books_before,
                books_after: s.books_after,
            });
        }
        if let Some(f) = entry.inflight.as_ref().filter(|f| f.journal) {
            e.inflight.push(InflightRun {
                run: format!("{} {}", entry.model, f.kind),
                accepted: f.tasks_accepted,
                unfinished: f.in_flight_at_recycle,
                finished: f.tasks_finished,
                run_twice: f.tasks_run_twice,
            });
        }
        let Some(r) = &entry.recovery else { continue };
        if r.tasks_accepted > 0 {
            let run = TaskRun {
                run: entry.variant.clone(),
                accepted: r.tasks_accepted,
                resumed: r.tasks_resumed,
                done: r.tasks_done,
            };
            // Result sets older than the `synthetic` key name it by variant.
            if r.synthetic || entry.variant == "unfinished tasks in the journal" {
                e.synthetic.push(run);
            } else {
                e.real_crash.push(run);
            }
        } else {
            e.replays.push(ReplayRun {
                run: entry.variant.clone(),
                snapshot: r.snapshot,
                events_replayed: r.events_replayed,
                replay_events_per_sec: r.replay_events_per_sec,
                books_expected: r.books_expected,
                books_recovered: r.books_recovered,
            });
        }
    }
    e
}

#[cfg(test)]
#[path = "evidence_tests.rs"]
mod tests;
