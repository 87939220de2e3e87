//! The load plan: what one load run does (target, request, pacing, stop
//! condition, timing), already validated, plus the parsers that turn
//! command-line text into it. Raw CLI arguments live in `mod.rs`; scenarios
//! build a [`LoadPlan`] directly.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HOST, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Uri};

/// Everything one load run needs. Every field is checked when the plan is
/// built (see [`LoadPlan::new`]); the run itself only fails when the target
/// cannot be resolved.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// Where requests go.
    pub target: Target,
    /// HTTP method of every request.
    pub method: Method,
    /// Headers of every request; `Host` is always present.
    pub headers: HeaderMap,
    /// Body of every request (empty for none).
    pub body: Bytes,
    /// Keep-alive connections, one task each (at least 1).
    pub connections: usize,
    /// How requests are paced: as fast as answers come, or on a fixed schedule.
    pub pacing: Pacing,
    /// When the measured phase ends.
    pub stop: Stop,
    /// Time before the measured phase; its requests are reported on their own.
    pub warmup: Duration,
    /// Longest a request may take, counted from its scheduled start, before
    /// it counts as a timeout.
    pub timeout: Duration,
    /// Length of one timeline interval (one histogram each).
    pub interval: Duration,
    /// Keep each interval's latency histogram in its timeline row (its
    /// non-empty buckets), so windows of the timeline can be merged exactly
    /// later (recycle windows). Off by default: rows then stay small.
    pub interval_histograms: bool,
    /// Open loop: how long before each slot the pacer's timer wakes it, to
    /// yield the rest of the way (see `pacing`): it must cover the timer's
    /// wake-up latency, and costs CPU (yielding) for that long per slot.
    pub pacing_lead: Duration,
}

impl LoadPlan {
    /// A plan with the defaults of `hostlab load`: GET, no body, closed loop,
    /// 64 connections, 10 s, no warm-up, 2 s timeout, 100 ms intervals.
    pub fn new(target: Target) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, target.host_header.clone());
        LoadPlan {
            target,
            method: Method::GET,
            headers,
            body: Bytes::new(),
            connections: 64,
            pacing: Pacing::Closed,
            stop: Stop::After(Duration::from_secs(10)),
            warmup: Duration::ZERO,
            timeout: Duration::from_secs(2),
            interval: Duration::from_millis(100),
            interval_histograms: false,
            pacing_lead: super::pacing::YIELD_LEAD,
        }
    }

    /// Adds a header (a second value for a name already present is appended;
    /// `Host` replaces the default).
    pub fn header(&mut self, name: HeaderName, value: HeaderValue) {
        if name == HOST {
            self.headers.insert(name, value);
        } else {
            self.headers.append(name, value);
        }
    }
}

/// The target URL, split into what the client needs.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL as given (for reports).
    pub url: String,
    /// Host name or address to resolve (IPv6 without brackets).
    pub host: String,
    /// TCP port (80 when the URL has none).
    pub port: u16,
    /// Request target in origin form, e.g. `/ping?x=1`.
    pub path_and_query: String,
    /// Value of the `Host` header (`host[:port]` as written in the URL).
    pub host_header: HeaderValue,
}

/// Closed loop or fixed rate. Kept apart from [`Stop`] so one worker loop
/// handles every combination.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// Each connection sends its next request as soon as the previous answer
    /// arrived (maximum throughput; latency = service time).
    Closed,
    /// `per_sec` requests per second in total on a fixed schedule shared by
    /// all connections; latency counts from each request's scheduled start.
    Fixed { per_sec: f64 },
}

impl Pacing {
    /// Offset of schedule slot `slot` (0-based, counted from the start of
    /// the run) on the fixed schedule, or `None` in closed loop where a
    /// request is due whenever a connection is free. Computed from the slot
    /// number, not by adding periods, so rounding never drifts.
    pub fn slot_offset(&self, slot: u64) -> Option<Duration> {
        match *self {
            Pacing::Closed => None,
            Pacing::Fixed { per_sec } => Some(Duration::from_secs_f64(slot as f64 / per_sec)),
        }
    }

    /// `"closed"` or `"open"` (the JSON `mode`).
    pub fn mode(&self) -> &'static str {
        match self {
            Pacing::Closed => "closed",
            Pacing::Fixed { .. } => "open",
        }
    }

    /// The fixed rate, if any.
    pub fn rate_per_sec(&self) -> Option<f64> {
        match *self {
            Pacing::Closed => None,
            Pacing::Fixed { per_sec } => Some(per_sec),
        }
    }
}

/// When the measured phase ends (the warm-up comes before either).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// No request is scheduled later than this after the end of the warm-up.
    After(Duration),
    /// This many requests after the warm-up.
    Count(u64),
}

/// A value that cannot become part of a plan; each message says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("bad URL {url:?}: {reason}; write it like http://127.0.0.1:8080/ping")]
    Url { url: String, reason: String },
    #[error("bad header {header:?}: {reason}; write it like -H 'Name: value'")]
    Header { header: String, reason: String },
    #[error("cannot read body file {path}: {source}; check the path after @")]
    BodyFile { path: PathBuf, source: std::io::Error },
    #[error("bad CPU list {list:?}: {reason}; write it like 0 or 0,2-3")]
    CpuList { list: String, reason: String },
    #[error("bad method {method:?}: a method is a token such as GET or POST")]
    Method { method: String },
    #[error("bad rate {rate:?}: give requests per second as a number above 0, e.g. 2000")]
    Rate { rate: String },
}

/// Parses the target URL; only plain `http://` is spoken.
pub fn parse_target(url: &str) -> Result<Target, PlanError> {
    let bad = |reason: &str| PlanError::Url {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let uri: Uri = url.parse().map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err(bad("https is not supported (plain HTTP/1.1 only)")),
        Some(_) => return Err(bad("the scheme must be http")),
        None => return Err(bad("the scheme is missing")),
    }
    let authority = uri.authority().ok_or_else(|| bad("the host is missing"))?;
    let host = authority.host().trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad("the host is missing"));
    }
    let path_and_query = uri
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| !p.is_empty())
        .unwrap_or("/");
    Ok(Target {
        url: url.to_string(),
        host: host.to_string(),
        port: authority.port_u16().unwrap_or(80),
        path_and_query: path_and_query.to_string(),
        host_header: HeaderValue::from_str(authority.as_str()).map_err(|_| bad("the host cannot be a Host header"))?,
    })
}

/// Parses `Name: value` (the value may be empty; spaces around it are dropped).
pub(super) fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue), PlanError> {
    let bad = |reason: &str| PlanError::Header {
        header: text.to_string(),
        reason: reason.to_string(),
    };
    let (name, value) = text.split_once(':').ok_or_else(|| bad("no ':'"))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| bad("the name is empty or not a valid header name"))?;
    let value =
        HeaderValue::from_str(value.trim()).map_err(|_| bad("the value has characters a header cannot carry"))?;
    Ok((name, value))
}

/// `BODY` as given, or the contents of `FILE` for `@FILE`.
pub(super) fn parse_body(text: &str) -> Result<Bytes, PlanError> {
    match text.strip_prefix('@') {
        Some(path) => std::fs::read(path)
            .map(Bytes::from)
            .map_err(|source| PlanError::BodyFile {
                path: path.into(),
                source,
            }),
        None => Ok(Bytes::copy_from_slice(text.as_bytes())),
    }
}

/// An HTTP method; lower case is accepted and upper-cased (`post` -> `POST`).
pub(super) fn parse_method(text: &str) -> Result<Method, PlanError> {
    Method::from_bytes(text.to_ascii_uppercase().as_bytes()).map_err(|_| PlanError::Method {
        method: text.to_string(),
    })
}

/// A rate in requests per second: a finite number above 0.
pub(super) fn parse_rate(text: &str) -> Result<f64, PlanError> {
    match text.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(PlanError::Rate { rate: text.to_string() }),
    }
}

/// Parses a CPU list such as `0` or `0,2-3` into sorted, distinct CPU numbers.
pub fn parse_cpu_list(list: &str) -> Result<Vec<usize>, PlanError> {
    let bad = |reason: String| PlanError::CpuList {
        list: list.to_string(),
        reason,
    };
    let number = |s: &str| {
        s.trim()
            .parse::<usize>()
            .map_err(|_| bad(format!("{s:?} is not a CPU number")))
    };
    let mut cpus = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((from, to)) => {
                let (from, to) = (number(from)?, number(to)?);
                if from > to {
                    return Err(bad(format!("range {part:?} runs backwards")));
                }
                cpus.extend(from..=to);
            }
            None => cpus.push(number(part)?),
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0").unwrap(), vec![0]);
        assert_eq!(parse_cpu_list("0,2-3").unwrap(), vec![0, 2, 3]);
        assert_eq!(parse_cpu_list("3,1-2,2").unwrap(), vec![1, 2, 3]);
        assert!(parse_cpu_list("").is_err());
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("a").is_err());
        assert!(parse_cpu_list("0,,1").is_err());
    }

    #[test]
    fn headers() {
        let (n, v) = parse_header("X-Test:  a b ").unwrap();
        assert_eq!(n.as_str(), "x-test");
        assert_eq!(v, "a b");
        let (_, v) = parse_header("X-Empty:").unwrap();
        assert_eq!(v, "");
        assert!(parse_header("NoColon").is_err());
        assert!(parse_header(": value").is_err());
        assert!(parse_header("Bad Name: v").is_err());
        assert!(parse_header("X: a\nb").is_err());
    }

    #[test]
    fn targets() {
        let t = parse_target("http://127.0.0.1:8080/ping?x=1").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 8080));
        assert_eq!(t.path_and_query, "/ping?x=1");
        assert_eq!(t.host_header, "127.0.0.1:8080");
        let t = parse_target("http://localhost").unwrap();
        assert_eq!((t.port, t.path_and_query.as_str()), (80, "/"));
        let t = parse_target("http://[::1]:9/").unwrap();
        assert_eq!(t.host, "::1");
        assert!(parse_target("https://x/").is_err());
        assert!(parse_target("127.0.0.1:80/ping").is_err());
        assert!(parse_target("not a url").is_err());
    }

    #[test]
    fn bodies_and_methods() {
        assert_eq!(parse_body("abc").unwrap(), "abc");
        assert!(matches!(
            parse_body("@/nonexistent/hostlab-body"),
            Err(PlanError::BodyFile { .. })
        ));
        assert_eq!(parse_method("post").unwrap(), Method::POST);
        assert!(parse_method("BAD METHOD").is_err());
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("-5").is_err());
        assert!(parse_rate("inf").is_err());
        assert_eq!(parse_rate("2.5").unwrap(), 2.5);
    }

    #[test]
    fn fixed_schedule_is_exact() {
        let p = Pacing::Fixed { per_sec: 200.0 };
        assert_eq!(p.slot_offset(0), Some(Duration::ZERO));
        assert_eq!(p.slot_offset(1), Some(Duration::from_millis(5)));
        // Slot 200_000 lands on 1000 s exactly: no accumulated drift.
        assert_eq!(p.slot_offset(200_000), Some(Duration::from_secs(1000)));
        assert_eq!(Pacing::Closed.slot_offset(7), None);
        assert_eq!(p.mode(), "open");
        assert_eq!(Pacing::Closed.mode(), "closed");
    }
}
