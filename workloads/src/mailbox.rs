//! Bounded mailboxes on top of ractor's unbounded ones.
//!
//! ractor's mailboxes have no capacity limit, so a burst would queue without
//! bound and memory would grow with the load. Every actor reference the API
//! uses is wrapped in a [`Bounded`]: a message may only be sent while a slot is
//! free, the slot travels inside the message ([`Job`]) and is given back when
//! the actor has handled it. When no slot is free the caller gets
//! [`AskError::Full`] at once, which the API answers with 503 `overloaded`.

use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{ActorRef, RpcReplyPort};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A command plus the mailbox slot it occupies until the actor drops it.
pub struct Job<C> {
    pub cmd: C,
    /// Dropping the job (after it was handled, or when it is forwarded and
    /// handled elsewhere) frees the slot. `None` for the messages an actor
    /// sends itself (resuming accepted tasks), which hold no caller's slot.
    pub slot: Option<OwnedSemaphorePermit>,
}

/// Every actor message must implement `ractor::Message` by hand: the workspace
/// enables ractor's `cluster` feature, which removes the blanket impl.
impl<C: Send + 'static> ractor::Message for Job<C> {}

/// Why a bounded ask did not produce an answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AskError {
    #[error("the actor's mailbox is full ({capacity} messages)")]
    Full { capacity: usize },
    #[error("the actor did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the actor has stopped")]
    Stopped,
}

/// An actor reference whose mailbox holds at most `capacity` messages.
pub struct Bounded<C> {
    actor: ActorRef<Job<C>>,
    slots: Arc<Semaphore>,
    capacity: usize,
}

impl<C> Clone for Bounded<C> {
    fn clone(&self) -> Self {
        Self {
            actor: self.actor.clone(),
            slots: self.slots.clone(),
            capacity: self.capacity,
        }
    }
}

impl<C: Send + 'static> Bounded<C> {
    pub fn new(actor: ActorRef<Job<C>>, capacity: usize) -> Self {
        Self {
            actor,
            slots: Arc::new(Semaphore::new(capacity)),
            capacity,
        }
    }

    pub fn actor(&self) -> &ActorRef<Job<C>> {
        &self.actor
    }

    /// Messages waiting or being handled right now.
    pub fn queued(&self) -> usize {
        self.capacity - self.slots.available_permits()
    }

    /// Send the command built by `build` and wait at most `timeout` for its reply.
    pub async fn ask<R: Send + 'static>(
        &self,
        build: impl FnOnce(RpcReplyPort<R>) -> C,
        timeout: Duration,
    ) -> Result<R, AskError> {
        let slot = self.slots.clone().try_acquire_owned().map_err(|_| AskError::Full {
            capacity: self.capacity,
        })?;
        let call = self
            .actor
            .call(
                |reply| Job {
                    cmd: build(reply),
                    slot: Some(slot),
                },
                Some(timeout),
            )
            .await;
        match call {
            Ok(CallResult::Success(reply)) => Ok(reply),
            Ok(CallResult::Timeout) => Err(AskError::Timeout(timeout)),
            Ok(CallResult::SenderError) | Err(_) => Err(AskError::Stopped),
        }
    }
}
