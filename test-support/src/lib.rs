//! What the namespace, interop and fault tests of ucarp-rs share, as a
//! dev-dependency instead of source files included by path:
//!
//! - [`lab`]: network namespaces on a bridge, processes and their output;
//! - [`layout`]: which of three hosts is master of which vhid;
//! - [`peers`]: our `ucarp` and the real UCARP 1.5.2 side by side;
//! - [`scripts`]: scratch directories with executable scripts;
//! - [`pcap`]: reading what tcpdump captured;
//! - [`status`]: reading our SIGUSR1 status line;
//! - [`control`]: asking our running daemon through its control socket.
//!
//! Helpers for tests, not an API: their names say what they do.
#![allow(missing_docs)]

pub mod control;
pub mod lab;
pub mod layout;
pub mod pcap;
pub mod peers;
pub mod scripts;
pub mod status;
