//! The book-store actor: it alone owns the books, so no lock guards them.
//!
//! `POST /books` may carry an `Idempotency-Key`. The store remembers the book
//! each key created: the same key with the same book again returns that book
//! (never a second one), the same key with a different book is refused. The
//! memory of keys is bounded ([`BookStoreLimits::idempotency_keys`], oldest
//! forgotten first), as Stripe bounds its key retention in time.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};

use crate::events::{DurableState, Event};
use crate::fifo;
use crate::hashing::Shard;
use crate::journal::{self, ActorJournal};
use crate::mailbox::Job;

pub use crate::model::{Book, MAX_TEXT_CHARS, NewBook, YEAR_RANGE};

/// How an add went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// A new book was stored.
    Created(Arc<Book>),
    /// The idempotency key was seen before with the same book: nothing new was stored.
    Replayed(Arc<Book>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum AddError {
    #[error("this Idempotency-Key was already used for a different book; use a new key for a new book")]
    IdempotencyConflict,
    #[error("the store holds its maximum of {0} books; delete some first")]
    Full(usize),
}

pub enum BookCmd {
    Add {
        book: NewBook,
        idempotency_key: Option<String>,
        reply: RpcReplyPort<Result<Added, AddError>>,
    },
    List(RpcReplyPort<Vec<Arc<Book>>>),
    Get(u64, RpcReplyPort<Option<Arc<Book>>>),
    Delete(u64, RpcReplyPort<bool>),
    Count(RpcReplyPort<usize>),
}

/// Memory bounds of the store.
#[derive(Debug, Clone, Copy)]
pub struct BookStoreLimits {
    /// Most books kept; adds beyond it are refused (507 `store_full`).
    pub books: usize,
    /// Most idempotency keys remembered; the oldest is forgotten first.
    pub idempotency_keys: usize,
}

impl Default for BookStoreLimits {
    fn default() -> Self {
        Self {
            books: 1_000_000,
            idempotency_keys: crate::model::IDEMPOTENCY_KEYS,
        }
    }
}

pub struct BookStore;

/// How the book store starts.
pub struct BookStoreArgs {
    pub limits: BookStoreLimits,
    /// Set with `--journal`: every change is appended before it is answered.
    pub journal: Option<ActorJournal>,
    /// The state the journal rebuilt (books, next id, idempotency keys).
    pub restored: Option<DurableState>,
    /// The part of the book ids this store owns (a node of a sharded actor
    /// service creates only ids that hash to its own shard).
    pub shard: Shard,
}

pub struct BookStoreState {
    books: BTreeMap<u64, Arc<Book>>,
    next_id: u64,
    keys: HashMap<String, (NewBook, Arc<Book>)>,
    key_order: VecDeque<String>,
    limits: BookStoreLimits,
    journal: Option<ActorJournal>,
    shard: Shard,
}

impl BookStoreState {
    pub fn new(limits: BookStoreLimits) -> Self {
        Self {
            books: BTreeMap::new(),
            next_id: 1,
            keys: HashMap::new(),
            key_order: VecDeque::new(),
            limits,
            journal: None,
            shard: Shard::WHOLE,
        }
    }

    /// This store creates only ids that `shard` owns.
    pub fn with_shard(mut self, shard: Shard) -> Self {
        self.shard = shard;
        self
    }

    /// The next unused id this store owns (sequential for a whole store).
    fn allocate_id(&mut self) -> u64 {
        while !self.shard.owns_book(self.next_id) {
            self.next_id += 1;
        }
        self.next_id += 1;
        self.next_id - 1
    }

    /// The store as the journal rebuilt it.
    pub fn restore(limits: BookStoreLimits, restored: DurableState) -> Self {
        let mut s = Self::new(limits);
        s.books = restored.books.into_iter().map(|(id, b)| (id, Arc::new(b))).collect();
        s.next_id = restored.next_book_id.max(1);
        for (key, book) in restored.keys {
            let sent = NewBook {
                title: book.title.clone(),
                author: book.author.clone(),
                year: book.year,
            };
            let stored = s.books.get(&book.id).cloned().unwrap_or_else(|| Arc::new(book));
            s.remember(key, sent, stored);
        }
        s
    }

    pub fn add(&mut self, book: NewBook, key: Option<String>) -> Result<Added, AddError> {
        if let Some(key) = &key
            && let Some((seen, stored)) = self.keys.get(key)
        {
            return if *seen == book {
                Ok(Added::Replayed(stored.clone()))
            } else {
                Err(AddError::IdempotencyConflict)
            };
        }
        if self.books.len() >= self.limits.books {
            return Err(AddError::Full(self.limits.books));
        }
        let stored = Arc::new(Book {
            id: self.allocate_id(),
            title: book.title.clone(),
            author: book.author.clone(),
            year: book.year,
        });
        self.books.insert(stored.id, stored.clone());
        if let Some(key) = key {
            self.remember(key, book, stored.clone());
        }
        Ok(Added::Created(stored))
    }

    fn remember(&mut self, key: String, book: NewBook, stored: Arc<Book>) {
        let capacity = self.limits.idempotency_keys;
        fifo::insert(&mut self.keys, &mut self.key_order, capacity, key, (book, stored));
    }
}

impl Actor for BookStore {
    type Msg = Job<BookCmd>;
    type State = BookStoreState;
    type Arguments = BookStoreArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: BookStoreArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut state = match args.restored {
            Some(restored) => BookStoreState::restore(args.limits, restored),
            None => BookStoreState::new(args.limits),
        }
        .with_shard(args.shard);
        state.journal = args.journal;
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        job: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Changes are answered once journaled, reads once this actor's writes
        // in flight are (both at once without a journal). A reply can only
        // fail when the caller gave up: nothing to do about that here.
        let journal = state.journal.clone();
        let journal = journal.as_ref();
        match job.cmd {
            BookCmd::Add {
                book,
                idempotency_key,
                reply,
            } => match state.add(book, idempotency_key.clone()) {
                Ok(Added::Created(stored)) => {
                    let event = || Event::BookAdded {
                        book: (*stored).clone(),
                        idempotency_key,
                    };
                    journal::persist_then(journal, event, reply, Ok(Added::Created(stored.clone()))).await;
                }
                other => journal::read_then(journal, reply, other).await,
            },
            BookCmd::List(reply) => journal::read_then(journal, reply, state.books.values().cloned().collect()).await,
            BookCmd::Get(id, reply) => journal::read_then(journal, reply, state.books.get(&id).cloned()).await,
            BookCmd::Delete(id, reply) => {
                if state.books.remove(&id).is_some() {
                    journal::persist_then(journal, || Event::BookDeleted { id }, reply, true).await;
                } else {
                    journal::read_then(journal, reply, false).await;
                }
            }
            BookCmd::Count(reply) => journal::read_then(journal, reply, state.books.len()).await,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(title: &str) -> NewBook {
        NewBook {
            title: title.into(),
            author: "Ursula K. Le Guin".into(),
            year: Some(1969),
        }
    }

    #[test]
    fn ids_are_sequential() {
        let mut s = BookStoreState::new(BookStoreLimits::default());
        let Added::Created(a) = s.add(book("A"), None).unwrap() else {
            panic!()
        };
        let Added::Created(b) = s.add(book("B"), None).unwrap() else {
            panic!()
        };
        assert_eq!((a.id, b.id), (1, 2));
    }

    #[test]
    fn a_shard_creates_only_its_own_ids() {
        for index in 0..3 {
            let shard = Shard { index, count: 3 };
            let mut s = BookStoreState::new(BookStoreLimits::default()).with_shard(shard);
            let mut last = 0;
            for i in 0..50 {
                let Added::Created(b) = s.add(book(&format!("B{i}")), None).unwrap() else {
                    panic!()
                };
                assert!(shard.owns_book(b.id), "{shard}: id {}", b.id);
                assert!(b.id > last, "ids grow");
                last = b.id;
            }
            // Every id below the last one that this shard owns was used.
            let owned = (1..=last).filter(|&id| shard.owns_book(id)).count();
            assert_eq!(owned, 50, "{shard}");
        }
    }

    #[test]
    fn same_key_same_book_is_replayed_not_duplicated() {
        let mut s = BookStoreState::new(BookStoreLimits::default());
        let first = s.add(book("A"), Some("k1".into())).unwrap();
        let again = s.add(book("A"), Some("k1".into())).unwrap();
        let (Added::Created(a), Added::Replayed(b)) = (first, again) else {
            panic!()
        };
        assert_eq!(a, b);
        assert_eq!(s.books.len(), 1);
    }

    #[test]
    fn same_key_other_book_is_a_conflict() {
        let mut s = BookStoreState::new(BookStoreLimits::default());
        s.add(book("A"), Some("k1".into())).unwrap();
        assert_eq!(s.add(book("B"), Some("k1".into())), Err(AddError::IdempotencyConflict));
        assert_eq!(s.books.len(), 1);
    }

    #[test]
    fn key_memory_is_bounded_oldest_first() {
        let limits = BookStoreLimits {
            books: 100,
            idempotency_keys: 2,
        };
        let mut s = BookStoreState::new(limits);
        for k in ["k1", "k2", "k3"] {
            s.add(book(k), Some(k.into())).unwrap();
        }
        assert_eq!(s.keys.len(), 2);
        assert!(!s.keys.contains_key("k1"));
        assert!(matches!(s.add(book("k3"), Some("k3".into())), Ok(Added::Replayed(_))));
    }

    #[test]
    fn store_is_bounded() {
        let mut s = BookStoreState::new(BookStoreLimits {
            books: 1,
            idempotency_keys: 10,
        });
        s.add(book("A"), None).unwrap();
        assert_eq!(s.add(book("B"), None), Err(AddError::Full(1)));
    }

    #[test]
    fn validation_names_the_field() {
        assert!(book("A").validate().is_ok());
        assert!(book("  ").validate().unwrap_err().contains("title"));
        assert!(book(&"x".repeat(201)).validate().unwrap_err().contains("200"));
        assert!(
            book(&"é".repeat(200)).validate().is_ok(),
            "limit counts characters, not bytes"
        );
        let mut b = book("A");
        b.year = Some(2101);
        assert!(b.validate().unwrap_err().contains("year"));
        b.year = None;
        assert!(b.validate().is_ok());
    }
}
