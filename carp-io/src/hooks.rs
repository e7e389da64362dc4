//! What runs on a transition: the up and down actions.
//!
//! The protocol loop calls [`Hooks::transition`] in order, on its own
//! thread, and must never be held up by it: an implementation hands work to
//! another thread (as [`crate::ScriptHooks`] does) or does only quick,
//! non-blocking things.

use carp_engine::Transition;

/// The transition actions of a node.
pub trait Hooks: Send {
    /// Called on the protocol thread for every transition, in order.
    /// `transition.hook` says whether to take (`Up`) or release (`Down`)
    /// the address. Must not block.
    fn transition(&mut self, transition: &Transition);

    /// Called once when the node stops, after the last transition: may wait,
    /// bounded, for work still pending (a down script to finish).
    fn finish(&mut self) {}
}

/// Any closure is a hook.
impl<F: FnMut(&Transition) + Send> Hooks for F {
    fn transition(&mut self, transition: &Transition) {
        self(transition)
    }
}

/// No actions: for a node whose owner only watches its state.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHooks;

impl Hooks for NoHooks {
    fn transition(&mut self, _: &Transition) {}
}
