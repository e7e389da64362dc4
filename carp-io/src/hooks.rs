//! What runs on a transition: the up and down actions.
//!
//! The protocol loop calls [`Hooks::transition`] in order, on its own
//! thread, and must never be held up by it: an implementation hands work to
//! another thread (as [`crate::ScriptHooks`] does) or does only quick,
//! non-blocking things.
//!
//! Each call gets a [`HookDone`]: dropping it tells the node that the
//! action has finished. The node uses that to keep UCARP's documented
//! order without ever blocking: the gratuitous ARP after a takeover goes
//! out once the up action has put the address in place, and the leave
//! advertisement of a stopping master once the down action has removed it.
//! Adverts themselves never wait.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use carp_engine::Transition;

/// The transition actions of a node.
pub trait Hooks: Send {
    /// Called on the protocol thread for every transition, in order.
    /// `transition.hook` says whether to take (`Up`) or release (`Down`)
    /// the address. Must not block. Drop `done` when the action has
    /// finished (at once for a quick action, from a worker thread for a
    /// slow one).
    fn transition(&mut self, transition: &Transition, done: HookDone);

    /// The node is stopping: cut short work that is running now (a script
    /// is signalled) so that stopping does not wait for it. Work queued
    /// afterwards, such as the down action of `--shutdown`, still runs.
    fn interrupt(&mut self) {}

    /// The node must stop at once (a second stop signal): kill whatever
    /// runs and start nothing more.
    fn abandon(&mut self) {}

    /// Whether work is still queued or running. A stopping node keeps
    /// answering commands (a second stop calls [`Hooks::abandon`]) until
    /// this is false, then calls [`Hooks::finish`].
    fn pending(&self) -> bool {
        false
    }

    /// Called once when the node stops, after the last transition: may wait,
    /// bounded, for work still pending (a down script to finish).
    fn finish(&mut self) {}

    /// The node stops as master without the down hook (no `--shutdown`):
    /// release what the hooks own (managed addresses) before the leave
    /// advertisement, which waits for `done`. Default: nothing to release.
    fn release(&mut self, done: HookDone) {
        drop(done);
    }

    /// The master's addresses were removed under it (a network restart):
    /// put what the hooks own back; the gratuitous ARP waits for `done`.
    fn reassert(&mut self, done: HookDone) {
        drop(done);
    }

    /// Where these hooks publish what they run (the status shows it);
    /// `None` when they say nothing. Asked once, when the hooks are set.
    fn report(&self) -> Option<crate::status::HookReportCell> {
        None
    }
}

/// Any closure is a hook; it has finished when it returns.
impl<F: FnMut(&Transition) + Send> Hooks for F {
    fn transition(&mut self, transition: &Transition, done: HookDone) {
        self(transition);
        drop(done);
    }
}

/// No actions: for a node whose owner only watches its state.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHooks;

impl Hooks for NoHooks {
    fn transition(&mut self, _: &Transition, _: HookDone) {}
}

/// Dropped when a transition's action has finished; wakes the node.
#[derive(Debug)]
pub struct HookDone {
    finished: Arc<AtomicBool>,
    waker: Option<Arc<UnixStream>>,
}

impl HookDone {
    /// A token and the flag it sets when dropped; `waker` (if any) gets a
    /// byte so a sleeping node looks at the flag.
    pub(crate) fn new(waker: Option<Arc<UnixStream>>) -> (HookDone, Arc<AtomicBool>) {
        let finished = Arc::new(AtomicBool::new(false));
        let done = HookDone {
            finished: Arc::clone(&finished),
            waker,
        };
        (done, finished)
    }

    /// A token and the flag it sets, for hooks driven outside a node (an
    /// embedder's own loop, tests).
    pub fn pair() -> (HookDone, Arc<AtomicBool>) {
        HookDone::new(None)
    }
}

impl Drop for HookDone {
    fn drop(&mut self) {
        self.finished.store(true, Ordering::Release);
        if let Some(waker) = &self.waker {
            // A full socket buffer already holds a wake-up: nothing lost.
            let _ = (&**waker).write(&[1]);
        }
    }
}
