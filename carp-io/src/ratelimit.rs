//! Logging of rejected packets that a flood cannot turn into a flood of
//! log lines: the first packet of each cause is logged in full, later ones
//! are counted and summarised at most once per period per cause.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use log::warn;

struct Cause {
    /// Suppressed since the last line.
    suppressed: u64,
    /// When the last line for this cause was written.
    last_line: Instant,
    /// Detail of the last suppressed packet, for the summary.
    last_detail: String,
}

/// Per-cause rate limiter for warnings about bad packets.
pub struct RejectLog {
    vhid: u8,
    period: Duration,
    causes: BTreeMap<&'static str, Cause>,
}

impl RejectLog {
    /// At most one line per cause per `period` after the first.
    pub fn new(vhid: u8, period: Duration) -> RejectLog {
        RejectLog {
            vhid,
            period,
            causes: BTreeMap::new(),
        }
    }

    /// Records one rejected packet; `detail` is only formatted when logged
    /// or kept for a summary. Summaries are written by [`RejectLog::flush`],
    /// which the node calls once per wake-up, not once per packet.
    pub fn record(&mut self, now: Instant, label: &'static str, detail: impl FnOnce() -> String) {
        match self.causes.get_mut(label) {
            None => {
                warn!(
                    "vhid {}: rejected packet ({label}): {}",
                    self.vhid,
                    detail()
                );
                self.causes.insert(
                    label,
                    Cause {
                        suppressed: 0,
                        last_line: now,
                        last_detail: String::new(),
                    },
                );
            }
            Some(cause) => {
                cause.suppressed += 1;
                if cause.suppressed == 1 || now - cause.last_line >= self.period {
                    cause.last_detail = detail();
                }
            }
        }
    }

    /// Writes the summary lines that are due.
    pub fn flush(&mut self, now: Instant) {
        for (label, cause) in &mut self.causes {
            if cause.suppressed > 0 && now - cause.last_line >= self.period {
                warn!(
                    "vhid {}: {} more packets rejected ({label}) in the last {:.0}s; latest: {}",
                    self.vhid,
                    cause.suppressed,
                    (now - cause.last_line).as_secs_f64(),
                    cause.last_detail
                );
                cause.suppressed = 0;
                cause.last_line = now;
            }
        }
    }

    /// When [`RejectLog::flush`] next has something to write.
    pub fn next_flush(&self) -> Option<Instant> {
        self.causes
            .values()
            .filter(|c| c.suppressed > 0)
            .map(|c| c.last_line + self.period)
            .min()
    }
}
