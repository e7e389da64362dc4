//! Transitions as a stream, for whoever wants to act on them outside the
//! protocol thread (an event FIFO, systemd's status line, an embedder).
//!
//! Publishing never waits: each subscriber has a bounded queue, and an
//! event that does not fit is dropped for that subscriber alone. Every
//! event carries a sequence number shared by all subscribers, so a
//! subscriber that fell behind sees exactly where it lost events (a gap),
//! and the count of its losses is kept for it.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use carp_engine::State;

/// One transition of one virtual host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionEvent {
    /// 1, 2, 3, … in the order transitions happened, over every virtual
    /// host of the runtime.
    pub seq: u64,
    /// When, on the wall clock.
    pub at: SystemTime,
    /// The virtual host's interface.
    pub interface: String,
    /// Its vhid.
    pub vhid: u8,
    /// State before.
    pub from: State,
    /// State after.
    pub to: State,
    /// Why, as the log says it.
    pub reason: String,
    /// The master as known right after the transition.
    pub master: Option<IpAddr>,
    /// The virtual host's addresses.
    pub addresses: Vec<IpAddr>,
}

struct Subscriber {
    queue: SyncSender<TransitionEvent>,
    lost: Arc<AtomicU64>,
}

/// The runtime's side: numbers events and offers them to every
/// subscriber.
#[derive(Default)]
pub(crate) struct EventBus {
    last_seq: AtomicU64,
    subscribers: Mutex<Vec<Subscriber>>,
}

impl EventBus {
    /// A new subscriber with room for `capacity` events.
    pub fn subscribe(&self, capacity: usize) -> Subscription {
        let (queue, events) = mpsc::sync_channel(capacity.max(1));
        let lost = Arc::new(AtomicU64::new(0));
        self.lock().push(Subscriber {
            queue,
            lost: Arc::clone(&lost),
        });
        Subscription { events, lost }
    }

    /// Numbers `event` and offers it to every subscriber without waiting.
    pub fn publish(&self, mut event: TransitionEvent) {
        event.seq = self.last_seq.fetch_add(1, Ordering::Relaxed) + 1;
        self.lock()
            .retain(|s| match s.queue.try_send(event.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    s.lost.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Err(TrySendError::Disconnected(_)) => false,
            });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Subscriber>> {
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A subscriber's end: the events, in order, minus those it lost.
pub struct Subscription {
    /// The events. Ends when the runtime is gone.
    pub events: Receiver<TransitionEvent>,
    lost: Arc<AtomicU64>,
}

impl Subscription {
    /// Events dropped because this subscriber's queue was full.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> TransitionEvent {
        TransitionEvent {
            seq: 0,
            at: SystemTime::now(),
            interface: "eth0".into(),
            vhid: 7,
            from: State::Backup,
            to: State::Master,
            reason: "test".into(),
            master: None,
            addresses: Vec::new(),
        }
    }

    #[test]
    fn a_full_subscriber_loses_events_visibly_and_alone() {
        let bus = EventBus::default();
        let slow = bus.subscribe(2);
        let fast = bus.subscribe(10);
        for _ in 0..5 {
            bus.publish(event());
        }
        let slow_seqs: Vec<u64> = slow.events.try_iter().map(|e| e.seq).collect();
        let fast_seqs: Vec<u64> = fast.events.try_iter().map(|e| e.seq).collect();
        assert_eq!(slow_seqs, [1, 2]);
        assert_eq!(slow.lost(), 3);
        assert_eq!(fast_seqs, [1, 2, 3, 4, 5]);
        assert_eq!(fast.lost(), 0);
        // After draining, the slow one gets the next event with a gap.
        bus.publish(event());
        assert_eq!(slow.events.try_recv().map(|e| e.seq), Ok(6));
    }

    #[test]
    fn a_dropped_subscriber_is_forgotten() {
        let bus = EventBus::default();
        drop(bus.subscribe(1));
        bus.publish(event());
        assert!(bus.lock().is_empty());
    }
}
