//! Carrier changes as the kernel announces them: a netlink socket joined to
//! RTMGRP_LINK wakes the node when any link changes, so loss and return of
//! carrier are noticed at once and an idle node does no polling work.
//!
//! Netlink only says that something changed on an interface index; the
//! state itself is then read by name ([`crate::iface::link_status`]),
//! which also tells a deleted or renamed interface apart. If the kernel
//! drops notifications (ENOBUFS), the node re-reads the state as well.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    bind, recvfrom, socket, AddressFamily, NetlinkAddr, SockFlag, SockProtocol, SockType,
};

/// Multicast groups of link and address notifications (linux/rtnetlink.h).
const RTMGRP_LINK: u32 = 1;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;
const RTM_DELADDR: u16 = 21;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const NLMSG_HEADER_LEN: usize = 16;
/// Offset of `ifi_index` in a link message (after the netlink header and
/// ifi_family, pad and ifi_type).
const IFI_INDEX_AT: usize = NLMSG_HEADER_LEN + 4;

/// A non-blocking socket that receives link change notifications.
#[derive(Debug)]
pub struct LinkMonitor {
    socket: OwnedFd,
    /// The interface we care about; 0 while it is gone, when any link
    /// message may be its return under a new index.
    index: u32,
}

impl LinkMonitor {
    /// Subscribes to link changes; `index` is the interface we care about.
    pub fn open(index: u32) -> io::Result<LinkMonitor> {
        let socket = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )?;
        bind(
            std::os::fd::AsRawFd::as_raw_fd(&socket),
            &NetlinkAddr::new(0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR),
        )?;
        Ok(LinkMonitor { socket, index })
    }

    /// Follows another interface index (0: any), after the interface was
    /// re-created or while it is gone.
    pub fn watch(&mut self, index: u32) {
        self.index = index;
    }

    /// Drains pending notifications. Returns whether our interface may have
    /// changed (a message about it, or lost messages).
    pub fn changed(&self) -> bool {
        self.changes().link
    }

    /// Drains pending notifications: whether our interface may have changed
    /// (a message about it, or lost messages), and the addresses removed
    /// (interface index, address).
    pub fn changes(&self) -> Changes {
        let mut buf = [0u8; 8192];
        let mut changes = Changes::default();
        loop {
            let received =
                recvfrom::<NetlinkAddr>(std::os::fd::AsRawFd::as_raw_fd(&self.socket), &mut buf);
            match received {
                Ok((0, _)) => return changes,
                // Only the kernel (port 0) speaks for the kernel: any
                // local process can send to our port.
                Ok((_, from)) if from.is_none_or(|from| from.pid() != 0) => continue,
                Ok((len, _)) => {
                    changes.link |= mentions(&buf[..len], self.index);
                    changes.removed.extend(removed_addresses(&buf[..len]));
                }
                Err(Errno::EAGAIN) => return changes,
                Err(Errno::EINTR) => continue,
                // ENOBUFS: notifications were dropped; anything may have
                // changed, an address removal among them.
                Err(errno) => {
                    changes.link = true;
                    changes.lost = errno == Errno::ENOBUFS;
                    return changes;
                }
            }
        }
    }
}

impl AsFd for LinkMonitor {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// What [`LinkMonitor::changes`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Our interface may have changed.
    pub link: bool,
    /// Addresses removed: interface index and address.
    pub removed: Vec<(u32, std::net::IpAddr)>,
    /// Notifications were lost (the socket's buffer overflowed): an
    /// address may have been removed without a word.
    pub lost: bool,
}

/// The address removals (RTM_DELADDR) in a datagram of netlink messages.
fn removed_addresses(mut messages: &[u8]) -> Vec<(u32, std::net::IpAddr)> {
    let mut removed = Vec::new();
    while messages.len() >= NLMSG_HEADER_LEN {
        let len = u32::from_ne_bytes([messages[0], messages[1], messages[2], messages[3]]) as usize;
        let kind = u16::from_ne_bytes([messages[4], messages[5]]);
        if len < NLMSG_HEADER_LEN || len > messages.len() {
            break;
        }
        if kind == RTM_DELADDR && len >= NLMSG_HEADER_LEN + 8 {
            let body = &messages[NLMSG_HEADER_LEN..len];
            let family = body[0];
            let index = u32::from_ne_bytes([body[4], body[5], body[6], body[7]]);
            if let Some(addr) = address_attribute(&body[8..], family) {
                removed.push((index, addr));
            }
        }
        let advance = (len + 3) & !3;
        messages = messages.get(advance..).unwrap_or_default();
    }
    removed
}

/// IFA_LOCAL (IPv4) or IFA_ADDRESS (IPv6) among an address message's
/// attributes.
fn address_attribute(mut attrs: &[u8], family: u8) -> Option<std::net::IpAddr> {
    let (wanted, size) = match i32::from(family) {
        nix::libc::AF_INET => (IFA_LOCAL, 4),
        nix::libc::AF_INET6 => (IFA_ADDRESS, 16),
        _ => return None,
    };
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]);
        if len < 4 || len > attrs.len() {
            return None;
        }
        if kind == wanted && len == 4 + size {
            let data = &attrs[4..len];
            return Some(if size == 4 {
                std::net::IpAddr::from(<[u8; 4]>::try_from(data).ok()?)
            } else {
                std::net::IpAddr::from(<[u8; 16]>::try_from(data).ok()?)
            });
        }
        attrs = attrs.get((len + 3) & !3..).unwrap_or_default();
    }
    None
}

/// Whether a datagram of netlink messages has a link message for `index`.
fn mentions(mut messages: &[u8], index: u32) -> bool {
    while messages.len() >= NLMSG_HEADER_LEN {
        let len = u32::from_ne_bytes([messages[0], messages[1], messages[2], messages[3]]) as usize;
        let kind = u16::from_ne_bytes([messages[4], messages[5]]);
        if len < NLMSG_HEADER_LEN || len > messages.len() {
            return false;
        }
        if (kind == RTM_NEWLINK || kind == RTM_DELLINK) && len >= IFI_INDEX_AT + 4 && index == 0 {
            return true;
        }
        if (kind == RTM_NEWLINK || kind == RTM_DELLINK) && len >= IFI_INDEX_AT + 4 {
            let at = IFI_INDEX_AT;
            let ifi_index = i32::from_ne_bytes([
                messages[at],
                messages[at + 1],
                messages[at + 2],
                messages[at + 3],
            ]);
            if ifi_index == index as i32 {
                return true;
            }
        }
        // Messages are padded to 4 bytes.
        let advance = (len + 3) & !3;
        messages = messages.get(advance..).unwrap_or_default();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link_message(kind: u16, index: i32) -> Vec<u8> {
        let mut message = Vec::new();
        message.extend_from_slice(&32u32.to_ne_bytes());
        message.extend_from_slice(&kind.to_ne_bytes());
        message.extend_from_slice(&[0; 10]); // flags, seq, pid
        message.extend_from_slice(&[0, 0, 1, 0]); // family, pad, type
        message.extend_from_slice(&index.to_ne_bytes());
        message.extend_from_slice(&[0; 8]); // flags, change
        message
    }

    #[test]
    fn finds_messages_about_our_index() {
        let mut datagram = link_message(RTM_NEWLINK, 3);
        datagram.extend(link_message(RTM_DELLINK, 7));
        assert!(mentions(&datagram, 7));
        assert!(mentions(&datagram, 3));
        assert!(!mentions(&datagram, 4));
        // Other message types and truncated input are ignored.
        assert!(!mentions(&link_message(20, 3), 3));
        assert!(!mentions(&datagram[..20], 3));
        assert!(!mentions(&[], 3));
        // Index 0: any link message counts (our interface is gone and may
        // come back under a new index).
        assert!(mentions(&datagram, 0));
        assert!(!mentions(&link_message(20, 3), 0));
    }

    #[test]
    fn finds_removed_addresses() {
        let mut message = Vec::new();
        let body_len = 8 + 8 + 8; // ifaddrmsg, IFA_ADDRESS, IFA_LOCAL
        message.extend_from_slice(&((16 + body_len) as u32).to_ne_bytes());
        message.extend_from_slice(&RTM_DELADDR.to_ne_bytes());
        message.extend_from_slice(&[0; 10]);
        message.extend_from_slice(&[nix::libc::AF_INET as u8, 24, 0, 0]);
        message.extend_from_slice(&5u32.to_ne_bytes());
        message.extend_from_slice(&8u16.to_ne_bytes());
        message.extend_from_slice(&IFA_ADDRESS.to_ne_bytes());
        message.extend_from_slice(&[10, 0, 0, 255]);
        message.extend_from_slice(&8u16.to_ne_bytes());
        message.extend_from_slice(&IFA_LOCAL.to_ne_bytes());
        message.extend_from_slice(&[10, 0, 0, 9]);
        assert_eq!(
            removed_addresses(&message),
            vec![(5, "10.0.0.9".parse().unwrap())]
        );
        assert!(removed_addresses(&message[..20]).is_empty());
        assert!(removed_addresses(&link_message(RTM_NEWLINK, 3)).is_empty());
    }

    #[test]
    fn opens_without_privileges() {
        // Joining RTMGRP_LINK needs no capability.
        let monitor = LinkMonitor::open(1).unwrap();
        assert!(!monitor.changed(), "nothing changed on lo");
    }
}
