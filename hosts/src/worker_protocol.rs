//! The line protocol between a supervisor (`inprocess`, `split`) and its
//! worker processes, both directions in one place. Lines, not a binary
//! format: a person can drive a worker by hand, and the ready line (DESIGN.md)
//! is a line already.
//!
//! - The worker prints its ready line ([`crate::child::ReadyLine`]) with
//!   `url=` the shared address and `admin=` a private loopback address that
//!   serves the same router, so the supervisor can warm *this* worker up while
//!   the old one still serves.
//! - On its stdin the supervisor then writes [`Command`]s: `accept` when
//!   warm-up is done (only then does the worker take connections from the
//!   shared socket), `quiesce` before it freezes an idle worker.
//! - On its stdout the worker prints [`Event`]s as its traffic stops and
//!   resumes past the idle timeout and when it reaches the recycle request
//!   count.
//! - SIGTERM, or stdin closing (the supervisor died), makes it stop
//!   accepting and drain.

use std::fmt;

/// Supervisor to worker (the worker's stdin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Warm-up is done: take connections from the shared socket.
    Accept,
    /// About to be frozen (idle action `suspend`): close idle keep-alive
    /// connections, so no client sends a request to a frozen process.
    Quiesce,
}

/// Worker to supervisor (the worker's stdout, after its ready line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// No request for the idle timeout; said again every idle period while
    /// idle (the supervisor may have thawed the worker for a connection that
    /// sent nothing).
    Idle,
    /// Traffic again after `Idle`.
    Active,
    /// The worker served the recycle request count (`--recycle-requests`).
    Requests,
}

impl Command {
    const ALL: [Command; 2] = [Command::Accept, Command::Quiesce];

    fn word(self) -> &'static str {
        match self {
            Command::Accept => "accept",
            Command::Quiesce => "quiesce",
        }
    }

    /// The command on `line` (surrounding blanks ignored), if it is one.
    pub fn parse(line: &str) -> Option<Command> {
        let line = line.trim();
        Command::ALL.into_iter().find(|c| c.word() == line)
    }
}

impl Event {
    const ALL: [Event; 3] = [Event::Idle, Event::Active, Event::Requests];
    const PREFIX: &'static str = "hostlab event ";

    fn word(self) -> &'static str {
        match self {
            Event::Idle => "idle",
            Event::Active => "active",
            Event::Requests => "requests",
        }
    }

    /// The event on `line` (surrounding blanks ignored), if it is one.
    pub fn parse(line: &str) -> Option<Event> {
        let word = line.trim().strip_prefix(Event::PREFIX)?;
        Event::ALL.into_iter().find(|e| e.word() == word)
    }

    /// Print the event on stdout, flushed, for the supervisor to read.
    pub fn emit(self) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{self}");
        let _ = out.flush();
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Event::PREFIX, self.word())
    }
}

#[cfg(test)]
mod tests {
    use super::{Command, Event};

    #[test]
    fn lines_are_the_documented_words() {
        assert_eq!(Command::Accept.to_string(), "accept");
        assert_eq!(Command::Quiesce.to_string(), "quiesce");
        assert_eq!(Event::Idle.to_string(), "hostlab event idle");
        assert_eq!(Event::Active.to_string(), "hostlab event active");
        assert_eq!(Event::Requests.to_string(), "hostlab event requests");
    }

    #[test]
    fn format_then_parse_round_trips() {
        for command in Command::ALL {
            assert_eq!(Command::parse(&command.to_string()), Some(command));
            assert_eq!(Command::parse(&format!("  {command}\r\n")), Some(command));
        }
        for event in Event::ALL {
            assert_eq!(Event::parse(&event.to_string()), Some(event));
            assert_eq!(Event::parse(&format!("{event}\n")), Some(event));
        }
    }

    #[test]
    fn other_lines_are_not_messages() {
        for line in [
            "",
            "accepted",
            "ACCEPT",
            "hostlab event",
            "hostlab event busy",
            "event idle",
            "idle",
        ] {
            assert_eq!(Command::parse(line), None, "{line:?}");
            assert_eq!(Event::parse(line), None, "{line:?}");
        }
        // A direction never parses as the other.
        assert_eq!(Event::parse("accept"), None);
        assert_eq!(Command::parse("hostlab event idle"), None);
        assert!(Event::parse("hostlab ready model=worker url=http://127.0.0.1:1 pid=2").is_none());
    }
}
