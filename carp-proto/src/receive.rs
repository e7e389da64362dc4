//! The receive path: from untrusted bytes to an authenticated advertisement,
//! with the reason for every rejection.
//!
//! UCARP's checks, in its order where the order is visible to a peer: our own
//! packets are dropped, then TTL and version, then vhid, then the group, then
//! checksums, then the digest. Structural checks (TTL, version, checksums)
//! are [`AdvertDatagram::parse`]'s; this module adds the ones that need the
//! virtual host's configuration.

use std::net::Ipv4Addr;

use thiserror::Error;

use crate::auth::{AuthError, VirtualHostAuth};
use crate::datagram::{AdvertDatagram, AdvertFrame};
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
    /// Sent to another destination than our group.
    #[error("sent to {dst}, our group is {group}")]
    WrongDestination {
        /// Where it was sent.
        dst: Ipv4Addr,
        /// Our group.
        group: Ipv4Addr,
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
            Rejected::BadDigest { .. } => "bad_digest",
        }
    }
}

/// Everything one virtual host needs to accept or reject what it receives.
#[derive(Debug, Clone)]
pub struct ReceiveFilter {
    /// Our own real address: packets from it are ours.
    pub own_addr: Ipv4Addr,
    /// The group advertisements must be sent to (also in broadcast mode).
    pub group: Ipv4Addr,
    /// The virtual host's authenticator.
    pub auth: VirtualHostAuth,
}

impl ReceiveFilter {
    /// Accepts an IPv4 datagram (header included), as a raw socket returns it.
    pub fn accept_datagram(&self, bytes: &[u8]) -> Result<AdvertDatagram, Rejected> {
        self.check(AdvertDatagram::parse(bytes)?)
    }

    /// Accepts a whole Ethernet frame, as a packet socket returns it.
    pub fn accept_frame(&self, frame: &[u8]) -> Result<AdvertDatagram, Rejected> {
        self.check(AdvertFrame::parse(frame)?.datagram)
    }

    /// The checks that need our configuration, on an already parsed datagram.
    pub fn check(&self, datagram: AdvertDatagram) -> Result<AdvertDatagram, Rejected> {
        if datagram.src == self.own_addr {
            return Err(Rejected::OwnPacket);
        }
        if datagram.advert.vhid != self.auth.vhid() {
            return Err(Rejected::WrongVhid {
                expected: self.auth.vhid(),
                got: datagram.advert.vhid,
            });
        }
        if datagram.dst != self.group {
            return Err(Rejected::WrongDestination {
                dst: datagram.dst,
                group: self.group,
            });
        }
        self.auth
            .verify(&datagram.advert)
            .map_err(|error| match error {
                AuthError::WrongVhid { expected, got } => Rejected::WrongVhid { expected, got },
                AuthError::DigestMismatch { vhid } => Rejected::BadDigest { vhid },
            })?;
        Ok(datagram)
    }
}
