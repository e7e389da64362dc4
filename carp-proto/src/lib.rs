//! Sans-IO codec for CARP (Common Address Redundancy Protocol) as UCARP 1.5.2
//! puts it on the wire.
//!
//! This crate does no I/O and reads no clock: it turns bytes into checked
//! values and values into bytes, and nothing else. The I/O layer hands it the
//! untrusted bytes it received; the election engine only ever sees what this
//! crate has parsed and authenticated.
//!
//! Layout, one concept per module, in the manner of smoltcp's `wire`:
//! - [`carp`]: the 36-byte CARP header — a checked view ([`carp::Packet`]) and
//!   a plain value ([`carp::AdvertRepr`]).
//! - [`ipv4`], [`ipv6`] and [`ethernet`]: just enough of the enclosing
//!   headers to check and build what CARP travels in.
//! - [`datagram`]: the whole received unit (IPv4 datagram or Ethernet frame)
//!   with every check UCARP makes, and emission of the same.
//! - [`auth`]: passwords and the per-virtual-host HMAC-SHA1 signer/verifier.
//! - [`receive`]: the receive filter, UCARP's receive path in its order, with
//!   one rejection cause per counter.
//! - [`arp`]: the gratuitous ARP frame sent on takeover (IPv4).
//! - [`ndp`]: the unsolicited neighbour advertisement sent on takeover
//!   (IPv6).
//! - [`checksum`]: the Internet checksum.
//!
//! Nothing here panics on any input: every malformed packet is a typed error.
#![forbid(unsafe_code)]

pub mod arp;
pub mod auth;
pub mod carp;
pub mod checksum;
pub mod datagram;
mod error;
pub mod ethernet;
pub mod fuzzing;
pub mod ipv4;
pub mod ipv6;
pub mod ndp;
pub mod receive;

pub use auth::{AuthError, Password, PasswordError, VirtualHostAuth};
pub use carp::{AdvertRepr, Digest};
pub use datagram::{AdvertDatagram, AdvertDatagram6, AdvertFrame, AdvertFrame6};
pub use error::ParseError;
pub use receive::{ReceiveFilter, Rejected};

/// IP protocol number of CARP (shared with VRRP).
pub const IP_PROTOCOL_CARP: u8 = 112;

/// The only IPv4 TTL a CARP advertisement may arrive with: a packet with any
/// other TTL was routed, so it did not come from this segment.
pub const CARP_TTL: u8 = 255;

/// Default IPv6 multicast group of CARP advertisements (ff02::12).
pub const DEFAULT_GROUP6: std::net::Ipv6Addr = ipv6::CARP_GROUP;

/// Default IPv4 multicast group of CARP advertisements.
pub const DEFAULT_GROUP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(224, 0, 0, 18);
