//! The Linux runtime that drives [`carp_engine::Engine`]s on real
//! interfaces: raw sockets, multicast, gratuitous ARP, link state, timers on
//! the monotonic clock, and transition hooks that never block the protocol.
//! One [`Runtime`] (one protocol thread) runs any number of virtual hosts;
//! [`Node`] is the one-virtual-host shape of UCARP.
//!
//! ```no_run
//! use std::net::{IpAddr, Ipv4Addr};
//! use carp_engine::{Config, Hook, Transition};
//! use carp_io::{Node, VirtualHostConfig};
//! use carp_proto::{Password, VirtualHostAuth};
//!
//! let vip = Ipv4Addr::new(10, 1, 1, 252);
//! let auth = VirtualHostAuth::new(&Password::new(b"love")?, 42, &[IpAddr::V4(vip)])?;
//! let engine = Config::new(auth, Ipv4Addr::new(10, 1, 1, 1), carp_io::initial_counter()?);
//! let hooks = move |t: &Transition| match t.hook {
//!     Some(Hook::Up) => println!("take {vip}"),
//!     Some(Hook::Down) => println!("release {vip}"),
//!     None => {}
//! };
//! let node = Node::new(VirtualHostConfig::new("eth0", engine), Box::new(hooks))?;
//! let handle = node.handle(); // step_down(), shutdown(), counters() from any thread
//! std::thread::spawn(move || node.run());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod addrs;
pub mod clock;
pub mod daemon;
mod error;
pub mod events;
mod hooks;
pub mod iface;
mod interface;
pub mod link;
mod node;
pub mod ratelimit;
pub mod ring;
mod runtime;
mod script;
pub mod socket;
mod spec;
mod status;
mod track;
mod vhost;
pub mod vmac;

pub use error::IoError;
pub use events::{Subscription, TransitionEvent};
pub use hooks::{HookDone, Hooks, NoHooks};
pub use node::{Node, NodeHandle};
pub use runtime::{Runtime, RuntimeConfig, RuntimeHandle};
pub use script::{ScriptConfig, ScriptHooks, IDLE as SCRIPT_IDLE, KILL_GRACE};
pub use spec::{ScriptSpec, SpecError, VirtualAddress, VirtualHostSpec};
pub use status::{
    CounterSnapshot, DemoteCause, HookReport, HookReportCell, HookRun, InterfaceStatus,
    MasterAdvert, RuntimeStatus, VirtualHostStatus,
};
pub use track::TrackScript;
pub use vhost::{TrackedInterface, VirtualHostConfig, VirtualHostId};

/// 64 random bits from the kernel's `getrandom(2)`, for the engine's first
/// counter. No file to open (a chroot or a sandbox without `/dev/urandom`
/// still works) and no silent fallback: if the kernel has no randomness to
/// give, the node does not start.
pub fn random_u64() -> Result<u64, IoError> {
    getrandom::u64().map_err(|e| IoError::Random(e.to_string()))
}

/// The counter a virtual host's adverts start from: the wall clock in
/// milliseconds × 2^16, with 16 random low bits (see
/// `carp_engine::replay`). Counters then grow across restarts, so peers
/// can refuse adverts of an earlier run as replays.
pub fn initial_counter() -> Result<u64, IoError> {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Ok((ms << 16) | (random_u64()? & 0xffff))
}
