//! Process policies of the front models: when the app process starts, is
//! warmed up, recycled, restarted and given up on. Each field is the analogue
//! of an IIS application-pool or ASP.NET Core Module setting (see
//! `docs/policies.md`); defaults are IIS's unless noted.
//!
//! A policy comes from a TOML file (`--policy FILE`, keys as the field names
//! below in kebab-case) with command-line flags applied on top.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// IIS `startMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum StartMode {
    /// The first request starts the app and waits for it (IIS and ANCM default).
    #[default]
    OnDemand,
    /// The app starts with the front, before the ready line.
    AlwaysRunning,
}

/// IIS `idleTimeoutAction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum IdleAction {
    /// Stop the app; the next request cold-starts it (IIS default).
    #[default]
    Terminate,
    /// Freeze the app (SIGSTOP); the next request thaws it (SIGCONT).
    Suspend,
}

/// Rapid-fail protection: `crashes` within `window` stop the app for good
/// (503 `app_unavailable`) until an operator recycles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RapidFail {
    pub crashes: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

impl std::str::FromStr for RapidFail {
    type Err = String;
    /// `N/D`, e.g. `5/5m`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid rapid-fail `{s}`: use CRASHES/WINDOW, e.g. 5/5m");
        let (n, d) = s.split_once('/').ok_or_else(bad)?;
        let crashes: u32 = n.parse().map_err(|_| bad())?;
        let window = humantime::parse_duration(d).map_err(|_| bad())?;
        if crashes == 0 || window.is_zero() {
            return Err(bad());
        }
        Ok(RapidFail { crashes, window })
    }
}

/// A time of day (UTC) for scheduled recycles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeOfDay {
    pub hour: u8,
    pub minute: u8,
}

impl TryFrom<String> for TimeOfDay {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<TimeOfDay> for String {
    fn from(t: TimeOfDay) -> String {
        format!("{:02}:{:02}", t.hour, t.minute)
    }
}

impl std::str::FromStr for TimeOfDay {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid time `{s}`: use HH:MM (24-hour, UTC)");
        let (h, m) = s.split_once(':').ok_or_else(bad)?;
        let (hour, minute): (u8, u8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if hour > 23 || minute > 59 {
            return Err(bad());
        }
        Ok(TimeOfDay { hour, minute })
    }
}

impl TimeOfDay {
    /// Seconds after midnight UTC.
    pub fn seconds(self) -> u64 {
        u64::from(self.hour) * 3600 + u64::from(self.minute) * 60
    }
}

/// Everything the process manager decides by. Durations are wall-clock time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default, deny_unknown_fields)]
pub struct Policy {
    pub start_mode: StartMode,
    /// Paths requested (GET, expecting 2xx) on a new app process before it
    /// gets traffic: IIS Application Initialization. Empty: no warm-up.
    pub warmup: Vec<String>,
    /// Idle time after which `idle_action` is taken; zero = never (IIS: 20 min).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    pub idle_action: IdleAction,
    /// Periodic recycle; zero = never (IIS: 29 h).
    #[serde(with = "humantime_serde")]
    pub recycle_every: Duration,
    /// Scheduled recycles, UTC.
    pub recycle_at: Vec<TimeOfDay>,
    /// Recycle when the app's resident memory exceeds this many MiB (IIS
    /// private-memory limit); none by default.
    pub recycle_memory_mb: Option<u64>,
    /// Recycle after this many requests; none by default.
    pub recycle_requests: Option<u64>,
    /// Overlapped recycle: start the new process, switch, then drain the old
    /// one (IIS default). `false`: stop the old one first, then start.
    pub overlap: bool,
    /// Longest a new process may take to print its ready line and finish its
    /// warm-up (IIS startupTimeLimit 90 s).
    #[serde(with = "humantime_serde")]
    pub startup_limit: Duration,
    /// Longest an old process may take to drain before it is killed (ANCM
    /// shutdownTimeLimit 10 s; IIS's 90 s is for the whole worker).
    #[serde(with = "humantime_serde")]
    pub shutdown_limit: Duration,
    /// Rapid-fail protection (IIS: 5 crashes in 5 min).
    pub rapid_fail: RapidFail,
    /// Requests that may wait for the app to start or restart before more
    /// get 503 `overloaded` (IIS queueLength 1000).
    pub queue_length: usize,
    /// Entries of the start-up index each app process builds before it
    /// answers its first request; 0 = none (docs/policies.md "Cold start").
    pub init_entries: u32,
    /// SHA-256 rounds of each lazy cache entry (first request on a route,
    /// first `GET /books/{id}` of a book); 0 = none.
    pub first_hit_rounds: u32,
    /// ANCM's `app_offline.htm`: while this file exists the app is stopped
    /// and every request gets 503 with the file's content.
    pub app_offline: Option<std::path::PathBuf>,
    /// A configuration file whose change restarts the app (ASP.NET's
    /// restart on a `web.config` change).
    pub watch: Option<std::path::PathBuf>,
    /// Restart on a watched change with an overlapped recycle instead of
    /// ASP.NET's stop-then-start.
    pub watch_overlapped: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            start_mode: StartMode::OnDemand,
            warmup: Vec::new(),
            idle_timeout: Duration::from_secs(20 * 60),
            idle_action: IdleAction::Terminate,
            recycle_every: Duration::from_secs(29 * 3600),
            recycle_at: Vec::new(),
            recycle_memory_mb: None,
            recycle_requests: None,
            overlap: true,
            startup_limit: Duration::from_secs(90),
            shutdown_limit: Duration::from_secs(10),
            rapid_fail: RapidFail {
                crashes: 5,
                window: Duration::from_secs(5 * 60),
            },
            queue_length: 1000,
            init_entries: hostlab_workloads::coldstart::DEFAULT_INIT_ENTRIES,
            first_hit_rounds: hostlab_workloads::coldstart::DEFAULT_FIRST_HIT_ROUNDS,
            app_offline: None,
            watch: None,
            watch_overlapped: false,
        }
    }
}

/// A policy file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("policy file {path} is invalid: {message}")]
    Parse { path: String, message: String },
    #[error("invalid policy: {0}")]
    Invalid(String),
}

impl Policy {
    /// Parse a policy TOML document (`path` only names it in errors).
    pub fn from_toml(text: &str, path: &str) -> Result<Policy, PolicyError> {
        let policy: Policy = toml::from_str(text).map_err(|e| PolicyError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        policy.validate()?;
        Ok(policy)
    }

    pub fn from_file(path: &std::path::Path) -> Result<Policy, PolicyError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::from_toml(&text, &shown)
    }

    pub fn validate(&self) -> Result<(), PolicyError> {
        for url in &self.warmup {
            if !url.starts_with('/') {
                return Err(PolicyError::Invalid(format!(
                    "warm-up URL `{url}` must be a path starting with `/`, e.g. /books"
                )));
            }
        }
        if self.startup_limit.is_zero() || self.shutdown_limit.is_zero() {
            return Err(PolicyError::Invalid(
                "startup and shutdown limits must be above zero".into(),
            ));
        }
        if self.rapid_fail.crashes == 0 || self.rapid_fail.window.is_zero() {
            return Err(PolicyError::Invalid(
                "rapid-fail needs at least 1 crash and a window above zero, e.g. 5/5m".into(),
            ));
        }
        if self.queue_length == 0 {
            return Err(PolicyError::Invalid("queue length must be at least 1".into()));
        }
        for (key, path) in [("app-offline", &self.app_offline), ("watch", &self.watch)] {
            let Some(path) = path else { continue };
            let folder = std::path::absolute(path)
                .ok()
                .and_then(|p| p.parent().map(|f| f.to_path_buf()));
            if !folder.is_some_and(|f| f.is_dir()) {
                return Err(PolicyError::Invalid(format!(
                    "{key} {}: its folder does not exist (the folder is watched for the file)",
                    path.display()
                )));
            }
        }
        if self.app_offline.is_some() && self.app_offline == self.watch {
            return Err(PolicyError::Invalid(
                "app-offline and watch name the same file; use two files".into(),
            ));
        }
        Ok(())
    }
}

/// serde adapter for durations written as `90s`, `20m`, `0`.
mod humantime_serde {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        if text == "0" {
            return Ok(Duration::ZERO);
        }
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_iis_defaults() {
        let p = Policy::default();
        assert_eq!(p.start_mode, StartMode::OnDemand);
        assert_eq!(p.idle_timeout, Duration::from_secs(1200));
        assert_eq!(p.recycle_every, Duration::from_secs(29 * 3600));
        assert_eq!(p.rapid_fail.crashes, 5);
        assert!(p.overlap);
    }

    #[test]
    fn toml_file_round_trips() {
        let text = r#"
            start-mode = "always-running"
            warmup = ["/ping", "/books"]
            idle-timeout = "5m"
            idle-action = "suspend"
            recycle-every = "0"
            recycle-at = ["03:00", "15:30"]
            recycle-requests = 100000
            overlap = false
            startup-limit = "30s"
            shutdown-limit = "2s"
            rapid-fail = { crashes = 3, window = "1m" }
        "#;
        let p = Policy::from_toml(text, "p.toml").unwrap();
        assert_eq!(p.start_mode, StartMode::AlwaysRunning);
        assert_eq!(p.warmup, ["/ping", "/books"]);
        assert_eq!(p.idle_action, IdleAction::Suspend);
        assert_eq!(p.recycle_every, Duration::ZERO);
        assert_eq!(p.recycle_at[1], TimeOfDay { hour: 15, minute: 30 });
        assert_eq!(p.rapid_fail.window, Duration::from_secs(60));
        let again = Policy::from_toml(&toml::to_string(&p).unwrap(), "again").unwrap();
        assert_eq!(again, p);
    }

    #[test]
    fn bad_files_name_the_problem() {
        let e = Policy::from_toml("overlap = 3", "p.toml").unwrap_err().to_string();
        assert!(e.contains("p.toml") && e.contains("overlap"), "{e}");
        let e = Policy::from_toml("recycle-evry = \"1h\"", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("recycle-evry"), "{e}");
        let e = Policy::from_toml("warmup = [\"ping\"]", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/ping") || e.contains("starting with"), "{e}");
    }

    #[test]
    fn flag_values_parse() {
        assert_eq!("5/5m".parse::<RapidFail>().unwrap().window, Duration::from_secs(300));
        assert!("0/1m".parse::<RapidFail>().is_err());
        assert!("2/0s".parse::<RapidFail>().is_err());
        assert!("5".parse::<RapidFail>().is_err());
        assert_eq!("03:05".parse::<TimeOfDay>().unwrap().seconds(), 3 * 3600 + 300);
        assert!("24:00".parse::<TimeOfDay>().is_err());
    }
}
