//! Per-interface I/O, shared by every virtual host on the interface: one
//! frame sender, one socket per CARP group in use (IPv4 or IPv6), one
//! receive ring for all the IPv4 groups, the link state, and counters for
//! packets no virtual host could claim.

use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Instant;

use carp_proto::datagram::{AdvertDatagram, AdvertDatagram6, AdvertFrame, AdvertFrame6};
use carp_proto::ethernet::MacAddr;
use carp_proto::{AdvertRepr, ParseError, Rejected};

use crate::iface::InterfaceInfo;
use crate::ratelimit::RateLimitedLog;
use crate::ring::AdvertRing;
use crate::socket::{AdvertReceiver, AdvertReceiver6, FrameSender};
use crate::status::InterfaceStatus;
use crate::IoError;

/// Where the kernel dropped packets for want of room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overflow {
    /// The interface's receive ring (multicast IPv4 adverts): exact.
    Ring,
    /// A raw IPv4 socket's buffer (unicast adverts). An upper bound: while
    /// the buffer is full the kernel counts every protocol-112 datagram
    /// for the socket as dropped, the multicast ones its filter would have
    /// discarded (the ring reads those) included (measured: 10,000
    /// multicast packets sent while it was full all counted); and a
    /// unicast advert reaches every group's socket of its family, so with
    /// several groups on the interface it is counted once per full socket.
    Socket4,
    /// A raw IPv6 socket's buffer (all IPv6 adverts); an upper bound for
    /// the second reason above.
    Socket6,
}

impl Overflow {
    /// The rejection counter it is counted under.
    pub(crate) fn label(self) -> &'static str {
        let [receive, socket] = InterfaceStatus::LOSSES;
        match self {
            Overflow::Ring => receive,
            Overflow::Socket4 | Overflow::Socket6 => socket,
        }
    }

    /// Its own rate-limited log key: one place's overflow never hides in
    /// another's summary.
    fn log_key(self) -> &'static str {
        match self {
            Overflow::Ring => "receive_overflow",
            Overflow::Socket4 => "socket_overflow_ipv4",
            Overflow::Socket6 => "socket_overflow_ipv6",
        }
    }
}

/// The receive socket of one group.
pub(crate) enum Receiver {
    V4(AdvertReceiver),
    V6(AdvertReceiver6),
}

impl Receiver {
    fn open(info: &InterfaceInfo, group: IpAddr) -> Result<Receiver, IoError> {
        Ok(match group {
            IpAddr::V4(group) => Receiver::V4(AdvertReceiver::open(&info.name, info.index, group)?),
            IpAddr::V6(group) => {
                Receiver::V6(AdvertReceiver6::open(&info.name, info.index, group)?)
            }
        })
    }
}

impl AsFd for Receiver {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Receiver::V4(receiver) => receiver.as_fd(),
            Receiver::V6(receiver) => receiver.as_fd(),
        }
    }
}

/// One interface's sockets and state.
pub(crate) struct Interface {
    pub info: InterfaceInfo,
    sender: FrameSender,
    /// One receive socket per group, each joined on this interface (IPv4
    /// ones receive unicast adverts only).
    pub receivers: Vec<(IpAddr, Receiver)>,
    /// Multicast and broadcast IPv4 adverts arriving here, while an IPv4
    /// group is in use.
    pub ring: Option<AdvertRing>,
    /// What the last poll found readable: the ring, then each receiver.
    readable: Vec<bool>,
    /// Carrier as last reported to the virtual hosts.
    pub link_up: bool,
    /// Gone; only kept while virtual hosts on it ignore link state.
    pub gone: bool,
    ip_ident: u16,
    /// Packets no virtual host could claim.
    pub rejected: BTreeMap<&'static str, u64>,
    /// `rejected` changed since the runtime last published this
    /// interface's status: an advert a virtual host took changes nothing
    /// here, and then costs no copy of it.
    unpublished: bool,
    /// Link events, rate-limited.
    events: RateLimitedLog,
    /// Malformed packets, rate-limited.
    rejections: RateLimitedLog,
}

impl Interface {
    /// Opens the sender on `name`; receivers are added per group.
    pub fn open(
        name: &str,
        seed: u64,
        events: RateLimitedLog,
        rejections: RateLimitedLog,
    ) -> Result<Interface, IoError> {
        let info = InterfaceInfo::lookup(name)?;
        let sender = FrameSender::open(&info.name, info.index)?;
        Ok(Interface {
            link_up: info.running,
            info,
            sender,
            receivers: Vec::new(),
            ring: None,
            readable: Vec::new(),
            gone: false,
            ip_ident: seed as u16 | 1,
            rejected: BTreeMap::new(),
            unpublished: false,
            events,
            rejections,
        })
    }

    /// Joins `group` (once per group).
    pub fn join(&mut self, group: IpAddr) -> Result<(), IoError> {
        if !self.receivers.iter().any(|(g, _)| *g == group) {
            let receiver = Receiver::open(&self.info, group)?;
            if group.is_ipv4() && self.ring.is_none() {
                self.ring = Some(AdvertRing::open(&self.info.name, self.info.index)?);
            }
            self.receivers.push((group, receiver));
        }
        Ok(())
    }

    /// Leaves the groups no virtual host uses any more.
    pub fn retain_groups(&mut self, in_use: &[IpAddr]) {
        self.receivers.retain(|(g, _)| in_use.contains(g));
        if !self.receivers.iter().any(|(g, _)| g.is_ipv4()) {
            self.ring = None;
        }
    }

    /// The descriptors to wait on for adverts: the ring and the sockets.
    pub fn receive_fds(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        let sockets = self.receivers.iter().map(|(_, receiver)| receiver.as_fd());
        self.ring.iter().map(AsFd::as_fd).chain(sockets)
    }

    /// Takes what the last poll said of [`Interface::receive_fds`], in
    /// their order, from `flags`.
    pub fn mark_readable(&mut self, flags: &mut impl Iterator<Item = bool>) {
        let ring = self.ring.is_some() && flags.next().unwrap_or(false);
        self.readable.clear();
        self.readable.push(ring);
        for _ in &self.receivers {
            self.readable.push(flags.next().unwrap_or(false));
        }
    }

    /// Whether the last poll found the ring readable.
    pub fn ring_readable(&self) -> bool {
        self.readable.first().copied().unwrap_or(false)
    }

    /// Whether the last poll found receiver `index` readable.
    pub fn readable(&self, index: usize) -> bool {
        self.readable.get(index + 1).copied().unwrap_or(false)
    }

    /// Which group's virtual hosts a multicast or broadcast IPv4 advert
    /// sent to `dst` is for. `None` for a group not joined here, which the
    /// ring sees when something else on the host joined it (a VRRP daemon
    /// on 224.0.0.18, say), or for 255.255.255.255.
    pub fn group_index_v4(&self, dst: std::net::Ipv4Addr) -> Option<usize> {
        self.receivers
            .iter()
            .position(|(g, _)| *g == IpAddr::V4(dst))
    }

    /// The kernel dropped `count` packets because `place` was full: a
    /// flood outran the loop (or the loop did not run), and genuine adverts
    /// may be among them. Nothing for 0.
    pub fn receive_overflowed(&mut self, count: u64, place: Overflow) {
        if count == 0 {
            return;
        }
        let label = place.label();
        *self.rejected.entry(label).or_default() += count;
        self.unpublished = true;
        self.event(place.log_key(), || {
            let what = match place {
                Overflow::Ring => format!("{count} packets dropped: the receive ring was full"),
                Overflow::Socket6 => format!(
                    "up to {count} packets dropped: the raw IPv6 socket's buffer was full (with \
                     several IPv6 groups here a unicast advert counts once per group)"
                ),
                Overflow::Socket4 => format!(
                    "up to {count} packets dropped: the raw IPv4 socket's buffer (unicast \
                     adverts) was full; while it is full the kernel also counts multicast \
                     adverts the ring still read"
                ),
            };
            format!(
                "{what}. A flood, or the daemon was not scheduled for a while: genuine \
                 adverts may be among them (counted as {label})"
            )
        });
    }

    /// Reads and clears every socket's pending error, logging the ring's
    /// (ENETDOWN: the interface went down; it resumes when it comes up).
    pub fn take_errors(&mut self) {
        if let Some(Ok(Some(e))) = self.ring.as_ref().map(AdvertRing::take_error) {
            self.event("receive_error", || format!("receive ring: {e}"));
        }
        let errors: Vec<std::io::Error> = self
            .receivers
            .iter()
            .filter_map(|(_, receiver)| match receiver {
                Receiver::V4(r) => r.take_error().ok().flatten(),
                Receiver::V6(r) => r.take_error().ok().flatten(),
            })
            .collect();
        for e in errors {
            self.event("receive_error", || format!("receive socket: {e}"));
        }
    }

    /// Opens everything again on the re-created interface `name`, with the
    /// same groups.
    pub fn reopen(&mut self) -> Result<(), IoError> {
        let info = InterfaceInfo::lookup(&self.info.name)?;
        let sender = FrameSender::open(&info.name, info.index)?;
        let mut receivers = Vec::new();
        for (group, _) in &self.receivers {
            receivers.push((*group, Receiver::open(&info, *group)?));
        }
        let ring = match self.ring {
            Some(_) => Some(AdvertRing::open(&info.name, info.index)?),
            None => None,
        };
        self.info = info;
        self.sender = sender;
        self.receivers = receivers;
        self.ring = ring;
        self.gone = false;
        Ok(())
    }

    /// Sends an advertisement datagram in a frame from our MAC.
    pub fn send_advert(&mut self, datagram: AdvertDatagram, broadcast: bool) -> io::Result<()> {
        self.ip_ident = self.ip_ident.wrapping_mul(25173).wrapping_add(13849);
        let frame = AdvertFrame {
            eth_src: self.info.mac,
            eth_dst: if broadcast {
                MacAddr::BROADCAST
            } else {
                MacAddr::ipv4_multicast(datagram.dst)
            },
            datagram: AdvertDatagram {
                ident: self.ip_ident,
                ..datagram
            },
        };
        self.sender.send(&frame.to_bytes())
    }

    /// Sends an IPv6 advertisement in a frame from our MAC.
    pub fn send_advert6(&mut self, datagram: AdvertDatagram6, broadcast: bool) -> io::Result<()> {
        let frame = AdvertFrame6 {
            eth_src: self.info.mac,
            eth_dst: if broadcast {
                MacAddr::BROADCAST
            } else {
                MacAddr::ipv6_multicast(datagram.dst)
            },
            datagram,
        };
        self.sender.send(&frame.to_bytes())
    }

    /// Sends an advertisement to a unicast peer through the interface's
    /// receive socket of the peer's family (the kernel routes it and
    /// resolves the next hop).
    pub fn send_unicast(&self, advert: &AdvertRepr, src: IpAddr, peer: IpAddr) -> io::Result<()> {
        let carp = advert.to_bytes();
        let receiver = self
            .receivers
            .iter()
            .find_map(|(group, receiver)| (group.is_ipv4() == peer.is_ipv4()).then_some(receiver));
        match (receiver, src, peer) {
            (Some(Receiver::V4(r)), IpAddr::V4(src), IpAddr::V4(peer)) => {
                r.send_unicast(&carp, src, peer)
            }
            (Some(Receiver::V6(r)), IpAddr::V6(src), IpAddr::V6(peer)) => {
                r.send_unicast(&carp, src, peer)
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "no {} socket on this interface for peer {peer}",
                    family(peer)
                ),
            )),
        }
    }

    /// Whether receiver `index` handles a packet sent to `dst`: its own
    /// group's, and unicast ones on the first receiver of their family
    /// only (every raw socket on the interface gets a copy of those).
    pub fn handles(&self, index: usize, dst: IpAddr) -> bool {
        let group = self.receivers[index].0;
        if dst == group {
            return true;
        }
        let first_of_family = self
            .receivers
            .iter()
            .position(|(g, _)| g.is_ipv4() == dst.is_ipv4());
        first_of_family == Some(index) && !self.receivers.iter().any(|(g, _)| *g == dst)
    }

    /// Sends a whole frame (a gratuitous ARP, a neighbour advertisement).
    pub fn send_frame(&self, frame: &[u8]) -> io::Result<()> {
        self.sender.send(frame)
    }

    /// Counts a packet no virtual host claims.
    pub fn reject(&mut self, label: &'static str) {
        *self.rejected.entry(label).or_default() += 1;
        self.unpublished = true;
    }

    /// Whether the status changed since it was last published.
    pub fn unpublished(&self) -> bool {
        self.unpublished
    }

    /// The status to publish (and, from now, the one published).
    pub fn publish(&mut self) -> InterfaceStatus {
        self.unpublished = false;
        self.status()
    }

    pub fn status(&self) -> InterfaceStatus {
        InterfaceStatus {
            name: self.info.name.clone(),
            index: self.info.index,
            link_up: self.link_up,
            rejected: self.rejected.clone(),
        }
    }

    /// Counts and (rate-limited) logs a packet that is not a well-formed
    /// advertisement, from `source` when that is known.
    pub fn reject_malformed(&mut self, source: Option<IpAddr>, error: ParseError) {
        let rejected = Rejected::Malformed(error);
        self.reject(rejected.label());
        self.rejections
            .record(Instant::now(), rejected.label(), || match source {
                Some(src) => format!("{rejected} from {src}"),
                None => rejected.to_string(),
            });
    }

    pub fn flush_logs(&mut self, now: Instant) {
        self.events.flush(now);
        self.rejections.flush(now);
    }

    pub fn next_log_flush(&self) -> Option<Instant> {
        [self.events.next_flush(), self.rejections.next_flush()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Records a link event in the rate-limited log.
    pub fn event(&mut self, label: &'static str, detail: impl FnOnce() -> String) {
        self.events.record(Instant::now(), label, detail);
    }
}

fn family(addr: IpAddr) -> &'static str {
    if addr.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}
