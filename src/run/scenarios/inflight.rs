//! Tasks in flight across a recycle (issue 19, the state scenario's second
//! count): clients post long tasks (`Prefer: respond-async`, 5,000 rows)
//! from just before an overlapped or stop-start recycle until it is done; then
//! each accepted task is looked up on the new process and counted as
//! finished, lost or run twice.
//!
//! The tasks go to one task actor (ids picked by the model's own routing,
//! `GET /stats` `actors.routing`), so any backlog builds on one queue.
//! Validating a task is quicker than receiving its rows, so few are ever
//! unfinished at a given moment: how many were at the trigger is measured,
//! not assumed, and posting goes on through the recycle, so tasks reach the
//! old process up to its last moment (and, during a stop-start's downtime,
//! the front that holds them for the new one).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use hostlab_workloads::hashing::actor_for;

use super::task_body;
use crate::run::results::InflightFigures;
use crate::run::servers::Http;

/// The recycle kinds tasks are sent across.
pub(super) const KINDS: [&str; 2] = ["overlapped", "stop-start"];

/// Rows of each task (the API's maximum: the longest task there is).
pub(super) const ROWS: usize = 5_000;

/// Clients posting at once.
const CLIENTS: usize = 4;

/// Tasks accepted before the trigger (or [`LEAD_IN`] passes).
const BEFORE: usize = 10;
const LEAD_IN: Duration = Duration::from_secs(10);

/// Longest wait after the recycle for every accepted task to be done or
/// known lost.
const SETTLE: Duration = Duration::from_secs(20);

/// What was sent across the recycle.
#[derive(Debug, Default)]
pub(super) struct Sent {
    pub sent: u64,
    /// Ids answered 202, in no particular order.
    pub accepted: Vec<String>,
    /// Accepted when the recycle was triggered.
    pub accepted_at_recycle: u64,
    /// `GET /stats` `tasks.done` right before the trigger.
    pub done_at_recycle: u64,
}

/// What `GET /tasks/{id}` said last, after the recycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Done,
    /// 404: the new process does not know the task.
    Unknown,
    /// Pending, running, failed, or no answer yet.
    Open,
}

/// `n` task ids the model routes to one actor (its first), from
/// `actors.routing` (`pool:N`; any other routing: plain ids).
pub(super) fn ids(routing: &str, n: u64) -> Vec<String> {
    let pool = routing.strip_prefix("pool:").and_then(|p| p.parse::<u32>().ok());
    (0..)
        .map(|i| format!("inflight-{i}"))
        .filter(|id| pool.is_none_or(|p| actor_for(id, p) == 0))
        .take(n as usize)
        .collect()
}

/// Clients posting tasks of [`ROWS`] rows with `Prefer: respond-async`
/// until told to stop or `cap` tasks are accepted. A task answered
/// otherwise than 202 (no process to take it, 503) is not accepted; it is
/// not sent again (its client waits 100 ms and goes on with a new id).
pub(super) struct Posting {
    stop: Arc<AtomicBool>,
    accepted: Arc<Mutex<Vec<String>>>,
    clients: tokio::task::JoinSet<u64>,
}

impl Posting {
    pub(super) async fn start(http: &Http, base: &str, cap: u64) -> anyhow::Result<Posting> {
        let stats = http.get_json(&format!("{base}/stats")).await?;
        let routing = stats["actors"]["routing"].as_str().unwrap_or("").to_owned();
        // Room for the ids refused while no process takes tasks.
        let ids = ids(&routing, cap * 2 + 400);
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let mut clients = tokio::task::JoinSet::new();
        for client in 0..CLIENTS {
            let (http, url) = (http.clone(), format!("{base}/tasks"));
            let (stop, accepted) = (stop.clone(), accepted.clone());
            let full = move |a: &Mutex<Vec<String>>| a.lock().expect("accepted ids").len() as u64 >= cap;
            let mine: Vec<String> = ids.iter().skip(client).step_by(CLIENTS).cloned().collect();
            clients.spawn(async move {
                let mut sent = 0;
                for id in mine {
                    if stop.load(Ordering::Relaxed) || full(&accepted) {
                        break;
                    }
                    sent += 1;
                    let body = task_body(&id, ROWS);
                    match http
                        .request_with(http::Method::POST, &url, Some(&body), &[("prefer", "respond-async")])
                        .await
                    {
                        Ok((202, _)) => accepted.lock().expect("accepted ids").push(id),
                        // Refused or unanswered during the recycle: not accepted.
                        _ => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
                sent
            });
        }
        Ok(Posting {
            stop,
            accepted,
            clients,
        })
    }

    fn accepted_count(&self) -> u64 {
        self.accepted.lock().expect("accepted ids").len() as u64
    }

    /// Waits until [`BEFORE`] tasks are accepted (or [`LEAD_IN`] passes),
    /// then reads the server's done count: call the trigger right after.
    pub(super) async fn lead_in(&self, http: &Http, base: &str) -> anyhow::Result<(u64, u64)> {
        let deadline = Instant::now() + LEAD_IN;
        while self.accepted_count() < BEFORE as u64 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let done = done_count(&http.get_json(&format!("{base}/stats")).await?)?;
        Ok((self.accepted_count(), done))
    }

    /// Stops the clients (call it once the recycle is done); the posts
    /// under way finish.
    pub(super) async fn finish(mut self, at_recycle: (u64, u64)) -> Sent {
        self.stop.store(true, Ordering::Relaxed);
        let mut sent = 0;
        while let Some(n) = self.clients.join_next().await {
            sent += n.unwrap_or(0);
        }
        let accepted = std::mem::take(&mut *self.accepted.lock().expect("accepted ids"));
        Sent {
            sent,
            accepted,
            accepted_at_recycle: at_recycle.0,
            done_at_recycle: at_recycle.1,
        }
    }
}

fn done_count(stats: &serde_json::Value) -> anyhow::Result<u64> {
    stats["tasks"]["done"]
        .as_u64()
        .ok_or_else(|| anyhow!("GET /stats has no `tasks.done` count: {stats}"))
}

/// After the recycle: looks every accepted task up (new connections, so on
/// the new process) until each is done or unknown, or [`SETTLE`] passes,
/// then reads the server's done count. `count_spans` says whether that
/// count spans the recycle (a journal carries it, or the actors outlive the
/// recycle): only then does it tell a task run twice.
pub(super) async fn count(
    base: &str,
    sent: &Sent,
    kind: &str,
    journal: bool,
    count_spans: bool,
) -> anyhow::Result<InflightFigures> {
    let http = Http::new();
    let mut outcomes = vec![Outcome::Open; sent.accepted.len()];
    let deadline = Instant::now() + SETTLE;
    loop {
        for (id, outcome) in sent.accepted.iter().zip(outcomes.iter_mut()) {
            if *outcome != Outcome::Open {
                continue;
            }
            *outcome = match http.get(&format!("{base}/tasks/{id}")).await {
                Ok((404, _)) => Outcome::Unknown,
                Ok((200, body)) => match serde_json::from_slice::<serde_json::Value>(&body) {
                    Ok(v) if v["status"] == "done" => Outcome::Done,
                    _ => Outcome::Open,
                },
                // Not serving yet (stop-start, a journal still opening).
                _ => Outcome::Open,
            };
        }
        if !outcomes.contains(&Outcome::Open) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats = http.get_json(&format!("{base}/stats")).await?;
    let runs = count_spans.then(|| done_count(&stats)).transpose()?;
    let resumed = stats["journal"]["recovery"]["tasks_resumed"].as_u64();
    Ok(figures(kind, journal, sent, &outcomes, runs, resumed))
}

/// The counts from each accepted task's outcome and the completions the
/// server counted (`runs`, when that count spans the recycle).
pub(super) fn figures(
    kind: &str,
    journal: bool,
    sent: &Sent,
    outcomes: &[Outcome],
    runs: Option<u64>,
    resumed: Option<u64>,
) -> InflightFigures {
    let accepted = sent.accepted.len() as u64;
    let finished = outcomes.iter().filter(|o| **o == Outcome::Done).count() as u64;
    InflightFigures {
        kind: kind.into(),
        journal,
        rows_per_task: ROWS as u64,
        tasks_sent: sent.sent,
        tasks_accepted: accepted,
        accepted_at_recycle: sent.accepted_at_recycle,
        in_flight_at_recycle: sent.accepted_at_recycle.saturating_sub(sent.done_at_recycle),
        tasks_finished: finished,
        tasks_lost: accepted - finished,
        lost_unknown: outcomes.iter().filter(|o| **o == Outcome::Unknown).count() as u64,
        tasks_run_twice: runs.map(|r| r.saturating_sub(finished)),
        tasks_resumed: resumed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_all_route_to_the_first_actor_of_the_pool() {
        let ids = ids("pool:10", 30);
        assert_eq!(ids.len(), 30);
        assert!(ids.iter().all(|id| actor_for(id, 10) == 0));
        assert_eq!(super::ids("per-task", 3), ["inflight-0", "inflight-1", "inflight-2"]);
    }

    #[test]
    fn finished_lost_and_run_twice_from_the_outcomes() {
        let sent = Sent {
            sent: 5,
            accepted: (0..4).map(|i| i.to_string()).collect(),
            accepted_at_recycle: 3,
            done_at_recycle: 1,
        };
        let outcomes = [Outcome::Done, Outcome::Done, Outcome::Unknown, Outcome::Open];
        let f = figures("stop-start", true, &sent, &outcomes, Some(3), Some(2));
        assert_eq!((f.tasks_sent, f.tasks_accepted, f.in_flight_at_recycle), (5, 4, 2));
        assert_eq!((f.tasks_finished, f.tasks_lost, f.lost_unknown), (2, 2, 1));
        assert_eq!(f.tasks_run_twice, Some(1), "3 completions of 2 finished tasks");
        let f = figures("overlapped", false, &sent, &outcomes, None, None);
        assert_eq!(f.tasks_run_twice, None, "no count across the recycle, no verdict");
    }
}
