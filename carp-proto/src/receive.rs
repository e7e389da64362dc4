//! The receive path: from untrusted bytes to an authenticated advertisement,
//! with the reason for every rejection.
//!
//! UCARP's checks, in its order where the order is visible to a peer: our own
//! packets are dropped, then TTL and version, then vhid, then the group, then
//! checksums, then the digest. Structural checks (TTL, version, checksums)
//! are [`AdvertDatagram::parse`]'s; this module adds the ones that need the
//! virtual host's configuration.

use std::net::IpAddr;

use thiserror::Error;

use crate::auth::{AuthError, VirtualHostAuth};
use crate::carp::AdvertRepr;
use crate::datagram::{AdvertDatagram, AdvertDatagram6, AdvertFrame, AdvertFrame6};
use crate::ParseError;

/// Why a received packet is not an advertisement this virtual host acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Rejected {
    /// Not a well-formed CARP advertisement.
    #[error("malformed: {0}")]
    Malformed(#[from] ParseError),
    /// Sent from our own address: our own advertisement looped back.
    #[error("our own advertisement")]
    OwnPacket,
    /// Another virtual host's advertisement (normal on a shared segment).
    #[error("advertisement for vhid {got}, we are vhid {expected}")]
    WrongVhid {
        /// Our vhid.
        expected: u8,
        /// The advertisement's vhid.
        got: u8,
    },
    /// Sent to another destination than our group (of its family).
    #[error("sent to {dst}, our group is {group}")]
    WrongDestination {
        /// Where it was sent.
        dst: IpAddr,
        /// Our group of that family (unspecified if we have none).
        group: IpAddr,
    },
    /// With unicast peers configured: sent from an address that is not one
    /// of them.
    #[error("from {src}, which is not a configured peer")]
    NotAPeer {
        /// The sender.
        src: IpAddr,
    },
    /// The digest does not verify: wrong password or address, or forged.
    #[error("bad digest for vhid {vhid} (wrong password or virtual address, or forged)")]
    BadDigest {
        /// The vhid the advertisement claimed.
        vhid: u8,
    },
}

impl Rejected {
    /// A stable short name for counters and rate-limited logs.
    pub fn label(&self) -> &'static str {
        match self {
            Rejected::Malformed(error) => error.label(),
            Rejected::OwnPacket => "own_packet",
            Rejected::WrongVhid { .. } => "wrong_vhid",
            Rejected::WrongDestination { .. } => "wrong_destination",
            Rejected::NotAPeer { .. } => "not_a_peer",
            Rejected::BadDigest { .. } => "bad_digest",
        }
    }
}

/// A parsed advertisement with the addressing it arrived with, of either
/// family: what the configuration-dependent checks and the engine need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Received {
    /// The sender's real address.
    pub src: IpAddr,
    /// Where it was sent.
    pub dst: IpAddr,
    /// The advertisement.
    pub advert: AdvertRepr,
}

impl From<AdvertDatagram> for Received {
    fn from(d: AdvertDatagram) -> Received {
        Received {
            src: d.src.into(),
            dst: d.dst.into(),
            advert: d.advert,
        }
    }
}

impl From<AdvertDatagram6> for Received {
    fn from(d: AdvertDatagram6) -> Received {
        Received {
            src: d.src.into(),
            dst: d.dst.into(),
            advert: d.advert,
        }
    }
}

/// Everything one virtual host needs to accept or reject what it receives.
#[derive(Debug, Clone)]
pub struct ReceiveFilter {
    /// Our own real addresses (one per family we advertise on): packets
    /// from them are ours.
    pub own_addrs: Vec<IpAddr>,
    /// The groups advertisements must be sent to, one per family (also in
    /// broadcast mode). Ignored with peers.
    pub groups: Vec<IpAddr>,
    /// Unicast peers: when not empty, adverts must come from one of them
    /// and be sent to one of our own addresses, not to a group.
    pub peers: Vec<IpAddr>,
    /// The virtual host's authenticator.
    pub auth: VirtualHostAuth,
}

impl ReceiveFilter {
    /// Accepts an IPv4 datagram (header included), as a raw socket returns it.
    pub fn accept_datagram(&self, bytes: &[u8]) -> Result<Received, Rejected> {
        self.check(AdvertDatagram::parse(bytes)?.into())
    }

    /// Accepts a whole Ethernet frame carrying IPv4.
    pub fn accept_frame(&self, frame: &[u8]) -> Result<Received, Rejected> {
        self.check(AdvertFrame::parse(frame)?.datagram.into())
    }

    /// Accepts a whole IPv6 packet (header included).
    pub fn accept_datagram6(&self, bytes: &[u8]) -> Result<Received, Rejected> {
        self.check(AdvertDatagram6::parse(bytes)?.into())
    }

    /// Accepts a whole Ethernet frame carrying IPv6.
    pub fn accept_frame6(&self, frame: &[u8]) -> Result<Received, Rejected> {
        self.check(AdvertFrame6::parse(frame)?.datagram.into())
    }

    /// The checks that need our configuration, on an already parsed
    /// advertisement.
    pub fn check(&self, received: Received) -> Result<Received, Rejected> {
        if self.own_addrs.contains(&received.src) {
            return Err(Rejected::OwnPacket);
        }
        if received.advert.vhid != self.auth.vhid() {
            return Err(Rejected::WrongVhid {
                expected: self.auth.vhid(),
                got: received.advert.vhid,
            });
        }
        if !self.peers.is_empty() {
            if !self.peers.contains(&received.src) {
                return Err(Rejected::NotAPeer { src: received.src });
            }
            if !self.own_addrs.contains(&received.dst) {
                let ours = self
                    .own_addrs
                    .iter()
                    .find(|a| a.is_ipv4() == received.dst.is_ipv4());
                return Err(Rejected::WrongDestination {
                    dst: received.dst,
                    group: ours.copied().unwrap_or(received.dst),
                });
            }
        } else if !self.groups.contains(&received.dst) {
            let same_family = |g: &&IpAddr| g.is_ipv4() == received.dst.is_ipv4();
            let group = match self.groups.iter().find(same_family) {
                Some(group) => *group,
                None if received.dst.is_ipv4() => IpAddr::from([0u8; 4]),
                None => IpAddr::from([0u8; 16]),
            };
            return Err(Rejected::WrongDestination {
                dst: received.dst,
                group,
            });
        }
        self.auth
            .verify(&received.advert)
            .map_err(|error| match error {
                AuthError::WrongVhid { expected, got } => Rejected::WrongVhid { expected, got },
                AuthError::DigestMismatch { vhid } => Rejected::BadDigest { vhid },
            })?;
        Ok(received)
    }
}
