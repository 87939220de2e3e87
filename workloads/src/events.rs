//! What the journal records ([`Event`]) and the state those events rebuild
//! ([`DurableState`]). Recovery and snapshots share one [`DurableState::apply`],
//! so "latest snapshot + newer events" and "every event from the start" go
//! through the same code and must agree (a test checks it).

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::fifo;
use crate::model::{Book, IDEMPOTENCY_KEYS, TaskRecord, TaskRequest};

/// One change to the workload's state, appended before the client is answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    /// A book was stored (with the `Idempotency-Key` that created it, if any).
    BookAdded {
        book: Book,
        idempotency_key: Option<String>,
    },
    BookDeleted {
        id: u64,
    },
    /// A task was accepted for later (`Prefer: respond-async`): until its
    /// [`Event::TaskCompleted`] it is unfinished and resumes after a restart.
    TaskAccepted {
        task: TaskRequest,
    },
    /// A task finished; its record as `GET /tasks/{id}` shows it.
    TaskCompleted {
        record: TaskRecord,
    },
}

impl Event {
    /// The name stored in the journal's `kind` column.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::BookAdded { .. } => "BookAdded",
            Event::BookDeleted { .. } => "BookDeleted",
            Event::TaskAccepted { .. } => "TaskAccepted",
            Event::TaskCompleted { .. } => "TaskCompleted",
        }
    }
}

/// How much history the rebuilt state keeps (the same bounds as the actors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateLimits {
    /// Idempotency keys remembered, oldest forgotten first.
    pub idempotency_keys: usize,
    /// Finished task records kept, oldest forgotten first.
    pub task_records: usize,
}

impl Default for StateLimits {
    fn default() -> Self {
        Self {
            idempotency_keys: IDEMPOTENCY_KEYS,
            task_records: 100_000,
        }
    }
}

/// The workload state that survives a restart: books, idempotency keys,
/// finished task records and unfinished (accepted) tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurableState {
    pub books: BTreeMap<u64, Book>,
    /// The id the next new book gets (ids are never reused, even after a delete).
    pub next_book_id: u64,
    /// Idempotency key -> the book it created, oldest first.
    pub keys: VecDeque<(String, Book)>,
    /// Finished tasks by id.
    pub records: HashMap<String, TaskRecord>,
    /// Ids of `records`, oldest first completion first (for the bound).
    pub record_order: VecDeque<String>,
    /// Accepted but unfinished tasks by id.
    pub pending: BTreeMap<String, TaskRequest>,
    /// Tasks completed over the journal's whole life.
    pub tasks_done: u64,
    pub limits: StateLimits,
}

impl DurableState {
    pub fn new(limits: StateLimits) -> Self {
        Self {
            next_book_id: 1,
            limits,
            ..Self::default()
        }
    }

    /// Apply one event. Events come from this program, so an event that does
    /// not fit (a delete of a missing book) is applied as a no-op, exactly as
    /// the actor applied it.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::BookAdded { book, idempotency_key } => {
                self.next_book_id = self.next_book_id.max(book.id + 1);
                self.books.insert(book.id, book.clone());
                if let Some(key) = idempotency_key {
                    if self.keys.len() >= self.limits.idempotency_keys.max(1) {
                        self.keys.pop_front();
                    }
                    self.keys.push_back((key.clone(), book.clone()));
                }
            }
            Event::BookDeleted { id } => {
                self.books.remove(id);
            }
            Event::TaskAccepted { task } => {
                self.pending.insert(task.id.clone(), task.clone());
            }
            Event::TaskCompleted { record } => {
                self.pending.remove(&record.id);
                self.tasks_done += 1;
                let capacity = self.limits.task_records;
                fifo::insert(
                    &mut self.records,
                    &mut self.record_order,
                    capacity,
                    record.id.clone(),
                    record.clone(),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{TaskStatus, Validation};

    fn book(id: u64) -> Book {
        Book {
            id,
            title: format!("t{id}"),
            author: "a".into(),
            year: None,
        }
    }

    fn task(id: &str) -> TaskRequest {
        TaskRequest {
            id: id.into(),
            kind: "k".into(),
            rows: vec![],
        }
    }

    fn done(id: &str) -> TaskRecord {
        TaskRecord {
            id: id.into(),
            kind: "k".into(),
            status: TaskStatus::Done,
            actor: 0,
            validation: Validation::default(),
        }
    }

    #[test]
    fn books_keys_and_ids() {
        let mut s = DurableState::new(StateLimits {
            idempotency_keys: 1,
            task_records: 10,
        });
        s.apply(&Event::BookAdded {
            book: book(1),
            idempotency_key: Some("k1".into()),
        });
        s.apply(&Event::BookAdded {
            book: book(2),
            idempotency_key: Some("k2".into()),
        });
        s.apply(&Event::BookDeleted { id: 2 });
        s.apply(&Event::BookDeleted { id: 99 });
        assert_eq!(s.books.keys().copied().collect::<Vec<_>>(), [1]);
        assert_eq!(s.next_book_id, 3, "a deleted book's id is not reused");
        assert_eq!(s.keys.len(), 1, "keys are bounded, oldest forgotten");
        assert_eq!(s.keys[0].0, "k2");
    }

    #[test]
    fn a_task_is_pending_until_completed_once() {
        let mut s = DurableState::new(StateLimits::default());
        s.apply(&Event::TaskAccepted { task: task("a") });
        s.apply(&Event::TaskAccepted { task: task("b") });
        assert_eq!(s.pending.len(), 2);
        s.apply(&Event::TaskCompleted { record: done("a") });
        assert_eq!(s.pending.keys().map(String::as_str).collect::<Vec<_>>(), ["b"]);
        assert_eq!((s.records.len(), s.tasks_done), (1, 1));
        s.apply(&Event::TaskCompleted { record: done("a") });
        assert_eq!(s.records.len(), 1, "one record per task id");
    }
}
