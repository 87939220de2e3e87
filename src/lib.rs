//! The hostlab driver as a library: the command line, the load generator,
//! the main job (scenarios, statistics, claims, reports) and the journal
//! tools. `main.rs` is the thin binary over it; benches and tests use it
//! directly.

pub mod cli;
pub mod journal;
pub mod load;
pub mod netns;
pub mod ready;
pub mod run;
