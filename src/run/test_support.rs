//! Result sets for the run's unit tests: a finished quick run on two cores
//! (client CPU 0, server CPU 1) holding the given entries.

use crate::run::results::{Entry, Results, RunEnvironment, Settings};

/// One repeat of 1 s measurements, recycle runs of 5 s with the recycle at
/// 2 s, no model list; a test sets what it reads differently.
pub(crate) fn results(entries: Vec<Entry>) -> Results {
    Results {
        schema_version: crate::run::results::SCHEMA_VERSION,
        environment: RunEnvironment {
            cpu_model: "test".into(),
            cores: 2,
            client_cpus: vec![0],
            server_cpus: vec![1],
            kernel: "test".into(),
            rustc: None,
            hostlab_version: "0".into(),
            git_commit: None,
            git_dirty: None,
            tool_versions: Default::default(),
            steal_percent: None,
            command_line: vec![],
            started_utc: "2026-01-01T00:00:00Z".into(),
            elapsed_s: 0.0,
        },
        settings: Settings {
            quick: true,
            models: vec![],
            scenarios: vec![],
            duration_s: 1.0,
            warmup_s: 0.0,
            repeats: 1,
            connections: 1,
            recycle_rate_per_sec: 1000.0,
            recycle_duration_s: 5.0,
            recycle_at_s: 2.0,
            latency_duration_s: 1.0,
            latency_fractions: vec![],
            soak_duration_s: 0.0,
            soak_recycle_every_s: 0.0,
            server_cpu_quota: None,
        },
        entries,
        claims: vec![],
        skipped: vec![],
        notes: vec![],
        finished: true,
    }
}
