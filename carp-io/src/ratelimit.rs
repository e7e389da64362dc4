//! Logging that a flood cannot turn into a flood of log lines: rejected
//! packets, failed sends, link flaps. The first event of each label is
//! logged in full, later ones are counted and summarised at most once per
//! period per label; an event after a quiet period is logged in full again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use log::warn;

struct Cause {
    /// Suppressed since the last line.
    suppressed: u64,
    /// When the last line for this label was written.
    last_line: Instant,
    /// Detail of a suppressed event, for the summary: the latest event's,
    /// the first rejection's (see [`RateLimitedLog::record`]).
    last_detail: String,
}

/// How lines read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `rejected packet (bad_ttl): …` / `N more packets rejected (bad_ttl)`.
    Rejections,
    /// `<detail>` / `N more <label> events`.
    Events,
}

/// Per-label rate limiter for warnings.
pub struct RateLimitedLog {
    /// What the lines are about: `vhid 7`, `interface eth0`.
    prefix: String,
    period: Duration,
    kind: Kind,
    causes: BTreeMap<&'static str, Cause>,
}

impl RateLimitedLog {
    /// For rejected packets: at most one line per cause per `period` after
    /// the first.
    pub fn rejections(of: &dyn std::fmt::Display, period: Duration) -> RateLimitedLog {
        RateLimitedLog::new(of.to_string(), period, Kind::Rejections)
    }

    /// For a virtual host's events, logged as their detail says.
    pub fn events(of: &dyn std::fmt::Display, period: Duration) -> RateLimitedLog {
        RateLimitedLog::new(of.to_string(), period, Kind::Events)
    }

    /// For an interface's events (link changes), logged as
    /// `interface <name>: <detail>`.
    pub fn interface_events(name: &str, period: Duration) -> RateLimitedLog {
        RateLimitedLog::new(format!("interface {name}"), period, Kind::Events)
    }

    /// For packets an interface receives that no virtual host claims.
    pub fn interface_rejections(name: &str, period: Duration) -> RateLimitedLog {
        RateLimitedLog::new(format!("interface {name}"), period, Kind::Rejections)
    }

    fn new(prefix: String, period: Duration, kind: Kind) -> RateLimitedLog {
        RateLimitedLog {
            prefix,
            period,
            kind,
            causes: BTreeMap::new(),
        }
    }

    /// Records one event; `detail` is only formatted when logged or kept for
    /// a summary. Summaries are written by [`RateLimitedLog::flush`], which
    /// the node calls once per wake-up, not once per event. A summary of
    /// rejections quotes the first one it counts (formatting each packet
    /// of a flood would cost more than checking it); one of events, which
    /// are rare, quotes the latest.
    pub fn record(&mut self, now: Instant, label: &'static str, detail: impl FnOnce() -> String) {
        let period = self.period;
        let kind = self.kind;
        match self.causes.get_mut(label) {
            Some(cause) if cause.suppressed > 0 || now - cause.last_line < period => {
                cause.suppressed += 1;
                if cause.suppressed == 1 || kind == Kind::Events {
                    cause.last_detail = detail();
                }
            }
            _ => {
                self.line(label, &detail());
                self.causes.insert(
                    label,
                    Cause {
                        suppressed: 0,
                        last_line: now,
                        last_detail: String::new(),
                    },
                );
            }
        }
    }

    fn line(&self, label: &str, detail: &str) {
        match self.kind {
            Kind::Rejections => warn!("{}: rejected packet ({label}): {detail}", self.prefix),
            Kind::Events => warn!("{}: {detail}", self.prefix),
        }
    }

    /// Writes the summary lines that are due.
    pub fn flush(&mut self, now: Instant) {
        for (label, cause) in &mut self.causes {
            if cause.suppressed > 0 && now - cause.last_line >= self.period {
                let (n, secs) = (cause.suppressed, (now - cause.last_line).as_secs_f64());
                let latest = &cause.last_detail;
                match self.kind {
                    Kind::Rejections => warn!(
                        "{}: {n} more packets rejected ({label}) in the last {secs:.0}s; the first: {latest}",
                        self.prefix
                    ),
                    Kind::Events => warn!(
                        "{}: {n} more {label} events in the last {secs:.0}s; latest: {latest}",
                        self.prefix
                    ),
                }
                cause.suppressed = 0;
                cause.last_line = now;
            }
        }
    }

    /// When [`RateLimitedLog::flush`] next has something to write.
    pub fn next_flush(&self) -> Option<Instant> {
        self.causes
            .values()
            .filter(|c| c.suppressed > 0)
            .map(|c| c.last_line + self.period)
            .min()
    }
}
