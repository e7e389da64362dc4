//! The Linux runtime that drives a [`carp_engine::Engine`] on a real
//! interface: raw sockets, multicast, gratuitous ARP, link state, timers on
//! the monotonic clock, and transition hooks that never block the protocol.
//!
//! ```no_run
//! use std::net::{IpAddr, Ipv4Addr};
//! use carp_engine::{Config, Hook, Transition};
//! use carp_io::{Node, NodeConfig};
//! use carp_proto::{Password, VirtualHostAuth};
//!
//! let vip = Ipv4Addr::new(10, 1, 1, 252);
//! let auth = VirtualHostAuth::new(&Password::new(b"love")?, 42, &[IpAddr::V4(vip)])?;
//! let engine = Config::new(auth, Ipv4Addr::new(10, 1, 1, 1), carp_io::random_u64());
//! let hooks = move |t: &Transition| match t.hook {
//!     Some(Hook::Up) => println!("take {vip}"),
//!     Some(Hook::Down) => println!("release {vip}"),
//!     None => {}
//! };
//! let node = Node::new(NodeConfig::new("eth0", vip, engine), Box::new(hooks))?;
//! let handle = node.handle(); // step_down(), shutdown(), counters() from any thread
//! std::thread::spawn(move || node.run());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod clock;
mod counters;
pub mod daemon;
mod error;
mod hooks;
pub mod iface;
pub mod link;
mod node;
pub mod ratelimit;
mod script;
pub mod socket;

pub use counters::{CounterSnapshot, Counters};
pub use error::IoError;
pub use hooks::{Hooks, NoHooks};
pub use node::{Node, NodeConfig, NodeHandle};
pub use script::{ScriptConfig, ScriptHooks};

/// 64 random bits from the kernel, for the engine's first counter.
pub fn random_u64() -> u64 {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    match std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)) {
        Ok(()) => u64::from_ne_bytes(bytes),
        // Without /dev/urandom, the clock is the best we have: the counter
        // only has to differ between restarts.
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x5eed, |d| d.as_nanos() as u64),
    }
}
