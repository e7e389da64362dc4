//! Counters and state a node publishes while it runs, readable from any
//! thread (the embedder's, a signal handler thread's).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

use carp_engine::State;

/// Live counters of one node.
#[derive(Debug, Default)]
pub struct Counters {
    state: AtomicU8,
    accepted: AtomicU64,
    sent: AtomicU64,
    send_errors: AtomicU64,
    arps_sent: AtomicU64,
    transitions: AtomicU64,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Current state.
    pub state: State,
    /// Advertisements received, authenticated and handed to the engine.
    pub accepted: u64,
    /// Advertisements sent.
    pub sent: u64,
    /// Sends that failed.
    pub send_errors: u64,
    /// Gratuitous ARPs sent.
    pub arps_sent: u64,
    /// State transitions.
    pub transitions: u64,
    /// Received packets rejected, by cause (`bad_ttl`, `bad_digest`, …; see
    /// `carp_proto::Rejected::label`).
    pub rejected: BTreeMap<&'static str, u64>,
}

impl CounterSnapshot {
    /// Rejections of one cause.
    pub fn rejected(&self, label: &str) -> u64 {
        self.rejected.get(label).copied().unwrap_or(0)
    }

    /// All rejections.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

fn encode(state: State) -> u8 {
    match state {
        State::Init => 0,
        State::Backup => 1,
        State::Master => 2,
    }
}

fn decode(value: u8) -> State {
    match value {
        1 => State::Backup,
        2 => State::Master,
        _ => State::Init,
    }
}

impl Counters {
    pub(crate) fn set_state(&self, state: State) {
        self.state.store(encode(state), Ordering::Relaxed);
        self.transitions.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn sent(&self, ok: bool) {
        let counter = if ok { &self.sent } else { &self.send_errors };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn arp_sent(&self) {
        self.arps_sent.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn rejected(&self, label: &'static str) {
        let mut rejected = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
        *rejected.entry(label).or_default() += 1;
    }

    /// The current state.
    pub fn state(&self) -> State {
        decode(self.state.load(Ordering::Relaxed))
    }

    /// A copy of everything.
    pub fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            state: self.state(),
            accepted: self.accepted.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            send_errors: self.send_errors.load(Ordering::Relaxed),
            arps_sent: self.arps_sent.load(Ordering::Relaxed),
            transitions: self.transitions.load(Ordering::Relaxed),
            rejected: self
                .rejected
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}
