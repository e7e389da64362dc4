//! Carrier changes as the kernel announces them: a netlink socket joined to
//! RTMGRP_LINK wakes the node when any link changes, so loss and return of
//! carrier are noticed at once and an idle node does no polling work.
//!
//! Netlink only says that something changed on an interface index; the
//! state itself is then read with getifaddrs ([`crate::iface::link_state`]),
//! which also tells a deleted or renamed interface apart. If the kernel
//! drops notifications (ENOBUFS), the node re-reads the state as well.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    bind, recv, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};

/// Multicast group of link notifications (linux/rtnetlink.h).
const RTMGRP_LINK: u32 = 1;
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
            &NetlinkAddr::new(0, RTMGRP_LINK),
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
        let mut buf = [0u8; 8192];
        let mut ours = false;
        loop {
            match recv(
                std::os::fd::AsRawFd::as_raw_fd(&self.socket),
                &mut buf,
                MsgFlags::empty(),
            ) {
                Ok(0) => return ours,
                Ok(len) => ours |= mentions(&buf[..len], self.index),
                Err(Errno::EAGAIN) => return ours,
                Err(Errno::EINTR) => continue,
                // ENOBUFS: notifications were dropped; anything may have
                // changed.
                Err(_) => return true,
            }
        }
    }
}

impl AsFd for LinkMonitor {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
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
    fn opens_without_privileges() {
        // Joining RTMGRP_LINK needs no capability.
        let monitor = LinkMonitor::open(1).unwrap();
        assert!(!monitor.changed(), "nothing changed on lo");
    }
}
