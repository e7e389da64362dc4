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
    /// Sent to another destination than our group (of its family), or
    /// with unicast peers, than our own address.
    #[error("sent to {dst}, we expect {group}")]
    WrongDestination {
        /// Where it was sent.
        dst: IpAddr,
        /// Our group of that family (unspecified if we have none), or
        /// with peers our own address.
        group: IpAddr,
    },
    /// With unicast peers configured: sent from an address that is not one
    /// of them.
    #[error("not from a configured peer")]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Password;

    fn filter(peers: &[&str]) -> ReceiveFilter {
        ReceiveFilter {
            own_addrs: vec!["10.0.0.1".parse().unwrap()],
            groups: vec![crate::DEFAULT_GROUP.into()],
            peers: peers.iter().map(|p| p.parse().unwrap()).collect(),
            auth: VirtualHostAuth::new(
                &Password::new(b"pw").unwrap(),
                7,
                &["10.0.0.9".parse().unwrap()],
            )
            .unwrap(),
        }
    }

    fn from(src: &str, dst: &str, filter: &ReceiveFilter) -> Received {
        Received {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            advert: AdvertRepr {
                vhid: 7,
                advbase: 1,
                advskew: 0,
                demote: 0,
                counter: 5,
                digest: filter.auth.sign(5),
            },
        }
    }

    #[test]
    fn with_peers_only_a_peer_sending_to_us_is_accepted() {
        let f = filter(&["10.0.0.2"]);
        let ok = from("10.0.0.2", "10.0.0.1", &f);
        assert_eq!(f.check(ok), Ok(ok));
        assert_eq!(
            f.check(from("10.0.0.3", "10.0.0.1", &f)),
            Err(Rejected::NotAPeer {
                src: "10.0.0.3".parse().unwrap()
            })
        );
        // From a peer, but to the group (or anyone else): not for us.
        assert_eq!(
            f.check(from("10.0.0.2", "224.0.0.18", &f))
                .unwrap_err()
                .label(),
            "wrong_destination"
        );
        // Without peers the group is what counts.
        let f = filter(&[]);
        assert!(f.check(from("10.0.0.3", "224.0.0.18", &f)).is_ok());
        assert_eq!(
            f.check(from("10.0.0.3", "10.0.0.1", &f))
                .unwrap_err()
                .label(),
            "wrong_destination"
        );
    }
}
