//! Addresses the daemon owns: added on becoming master and removed on
//! leaving it, through rtnetlink (RTM_NEWADDR / RTM_DELADDR), with a label
//! (`eth0:ucarp7`) so that `ip addr` shows whose they are.
//!
//! Hand-made on a netlink route socket, as `link.rs` is: the messages are
//! a 16-byte header, an 8-byte `ifaddrmsg` and three or four attributes,
//! and the crates that wrap them (`rtnetlink`) bring an async runtime
//! this daemon, which has its own poll loop and a binary size budget, does
//! not want. Each call opens its socket, sends one request and reads the
//! kernel's acknowledgement; it runs on the script thread, never on the
//! protocol thread (the kernel may hold the request behind its RTNL lock).

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    bind, recv, send, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};

const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_REPLACE: u16 = 0x100;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
pub(crate) const NLM_F_EXCL: u16 = 0x200;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_LABEL: u16 = 3;
const IFA_BROADCAST: u16 = 4;
const IFA_FLAGS: u16 = 8;
/// No duplicate address detection: the address is usable at once (the
/// CARP election already decided who holds it).
const IFA_F_NODAD: u32 = 0x02;

/// One address the daemon manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ManagedAddress {
    /// The address.
    pub addr: IpAddr,
    /// Its prefix length.
    pub prefix: u8,
}

/// The label of a virtual host's IPv4 addresses (IPv6 addresses have
/// none): `eth0:ucarp7`, or `enp0s31f6:7` when that does not fit the
/// kernel's 15 characters, or the interface name alone when neither does
/// (a label must start with the interface name; a cut vhid would name
/// another virtual host).
pub fn label(interface: &str, vhid: u8) -> String {
    [
        format!("{interface}:ucarp{vhid}"),
        format!("{interface}:{vhid}"),
    ]
    .into_iter()
    .find(|label| label.len() <= 15)
    .unwrap_or_else(|| interface.to_string())
}

/// Adds `address` to interface `index` (already there: fine).
pub fn add(index: u32, address: ManagedAddress, label: &str) -> io::Result<()> {
    let message = request(
        RTM_NEWADDR,
        NLM_F_CREATE | NLM_F_REPLACE,
        index,
        address,
        label,
    );
    match exchange(&message) {
        Err(e) if e.raw_os_error() == Some(Errno::EEXIST as i32) => Ok(()),
        other => other,
    }
}

/// Removes `address` from interface `index`: `Ok(true)` if it was there,
/// `Ok(false)` if it was already gone (fine, and nothing to report: the
/// down action at start-up finds it absent).
pub fn remove(index: u32, address: ManagedAddress) -> io::Result<bool> {
    let message = request(RTM_DELADDR, 0, index, address, "");
    match exchange(&message) {
        Ok(()) => Ok(true),
        Err(e)
            if [Errno::EADDRNOTAVAIL, Errno::ENOENT, Errno::ENODEV]
                .iter()
                .any(|errno| e.raw_os_error() == Some(*errno as i32)) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// The request's bytes.
fn request(kind: u16, flags: u16, index: u32, address: ManagedAddress, label: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(64);
    let family = match address.addr {
        IpAddr::V4(_) => nix::libc::AF_INET as u8,
        IpAddr::V6(_) => nix::libc::AF_INET6 as u8,
    };
    body.extend_from_slice(&[family, address.prefix, 0, 0]); // family, prefix, flags, scope
    body.extend_from_slice(&index.to_ne_bytes());
    match address.addr {
        IpAddr::V4(v4) => {
            attribute(&mut body, IFA_LOCAL, &v4.octets());
            // A removal names the address alone: the kernel then matches
            // it whatever its prefix (a leftover from before the prefix
            // was changed goes too). IPv6 removals need the prefix.
            if kind == RTM_NEWADDR {
                attribute(&mut body, IFA_ADDRESS, &v4.octets());
            }
            if kind == RTM_NEWADDR {
                if address.prefix < 31 {
                    let host_bits = u32::MAX.checked_shr(u32::from(address.prefix)).unwrap_or(0);
                    let broadcast = u32::from(v4) | host_bits;
                    attribute(&mut body, IFA_BROADCAST, &broadcast.to_be_bytes());
                }
                let mut name = label.as_bytes().to_vec();
                name.push(0);
                attribute(&mut body, IFA_LABEL, &name);
            }
        }
        IpAddr::V6(v6) => {
            attribute(&mut body, IFA_ADDRESS, &v6.octets());
            if kind == RTM_NEWADDR {
                attribute(&mut body, IFA_FLAGS, &IFA_F_NODAD.to_ne_bytes());
            }
        }
    }
    message(kind, flags, &body)
}

/// A request to the kernel: the netlink header (asking for an
/// acknowledgement) and `body`.
pub(crate) fn message(kind: u16, flags: u16, body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(16 + body.len());
    message.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    message.extend_from_slice(&kind.to_ne_bytes());
    message.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK | flags).to_ne_bytes());
    message.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    message.extend_from_slice(&0u32.to_ne_bytes()); // port: the kernel
    message.extend_from_slice(body);
    message
}

/// Appends one attribute (type, length, data, padding to 4 bytes).
pub(crate) fn attribute(body: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    body.extend_from_slice(&(len as u16).to_ne_bytes());
    body.extend_from_slice(&kind.to_ne_bytes());
    body.extend_from_slice(data);
    body.resize(body.len() + ((4 - len % 4) % 4), 0);
}

/// Sends one request and reads its acknowledgement.
pub(crate) fn exchange(message: &[u8]) -> io::Result<()> {
    let socket = request_socket()?;
    send(socket.as_raw_fd(), message, MsgFlags::empty())?;
    let mut buf = [0u8; 4096];
    loop {
        let len = recv(socket.as_raw_fd(), &mut buf, MsgFlags::empty())?;
        if let Some(result) = acknowledgement(&buf[..len]) {
            return result;
        }
    }
}

/// Sends one request (a GET) and returns the kernel's answer: its first
/// message that is not an acknowledgement, or the error it sent.
pub(crate) fn query(message: &[u8]) -> io::Result<Vec<u8>> {
    let socket = request_socket()?;
    send(socket.as_raw_fd(), message, MsgFlags::empty())?;
    let mut buf = vec![0u8; 32 * 1024];
    let len = recv(socket.as_raw_fd(), &mut buf, MsgFlags::empty())?;
    let datagram = &buf[..len];
    if datagram.len() >= 16 && u16::from_ne_bytes([datagram[4], datagram[5]]) != NLMSG_ERROR {
        let declared = u32::from_ne_bytes(datagram[0..4].try_into().expect("4 bytes")) as usize;
        return Ok(datagram[..declared.min(len)].to_vec());
    }
    match acknowledgement(datagram) {
        Some(Err(e)) => Err(e),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "netlink: no answer to the request",
        )),
    }
}

/// A netlink route socket for one request, its answer bounded in time.
fn request_socket() -> io::Result<OwnedFd> {
    let socket: OwnedFd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )?;
    let fd = socket.as_raw_fd();
    bind(fd, &NetlinkAddr::new(0, 0))?;
    // Bounds the wait for the answer only: the kernel handles the request
    // inside send(), behind its RTNL lock, which no timeout covers.
    let timeout = nix::sys::time::TimeVal::new(2, 0);
    nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::ReceiveTimeout, &timeout)?;
    Ok(socket)
}

/// The kernel's answer in a datagram: `Some(Ok)` for an ACK, `Some(Err)`
/// for an error, `None` if the datagram holds neither.
fn acknowledgement(mut messages: &[u8]) -> Option<io::Result<()>> {
    while messages.len() >= 16 {
        let len = u32::from_ne_bytes(messages[0..4].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(messages[4..6].try_into().ok()?);
        if len < 16 || len > messages.len() {
            return None;
        }
        if kind == NLMSG_ERROR && len >= 20 {
            let code = i32::from_ne_bytes(messages[16..20].try_into().ok()?);
            return Some(if code == 0 {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(-code))
            });
        }
        messages = messages.get((len + 3) & !3..).unwrap_or_default();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_fit_the_kernels_limit() {
        assert_eq!(label("eth0", 7), "eth0:ucarp7");
        assert_eq!(label("enp0s31f6", 255), "enp0s31f6:255");
        assert_eq!(label("abcdefghijkl", 123), "abcdefghijkl");
        assert_eq!(label("enx00e04c680001", 7), "enx00e04c680001");
    }

    #[test]
    fn an_ipv4_request_carries_local_address_broadcast_and_label() {
        let address = ManagedAddress {
            addr: "10.1.1.252".parse().unwrap(),
            prefix: 24,
        };
        let m = request(RTM_NEWADDR, NLM_F_CREATE, 3, address, "eth0:ucarp1");
        assert_eq!(
            u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize,
            m.len()
        );
        assert_eq!(&m[16..20], &[nix::libc::AF_INET as u8, 24, 0, 0]);
        assert_eq!(u32::from_ne_bytes(m[20..24].try_into().unwrap()), 3);
        let text = m.windows(4).any(|w| w == [10, 1, 1, 255]);
        assert!(text, "broadcast 10.1.1.255");
        assert!(m.windows(11).any(|w| w == b"eth0:ucarp1"));
    }

    #[test]
    fn an_ipv4_removal_names_the_address_alone() {
        let address = ManagedAddress {
            addr: "10.1.1.252".parse().unwrap(),
            prefix: 24,
        };
        let m = request(RTM_DELADDR, 0, 3, address, "");
        // header, ifaddrmsg, one IFA_LOCAL attribute
        assert_eq!(m.len(), 16 + 8 + 8);
        assert_eq!(u16::from_ne_bytes([m[26], m[27]]), IFA_LOCAL);
    }

    #[test]
    fn acknowledgements_are_read() {
        let ack = |code: i32| {
            let mut m = vec![0u8; 36];
            m[0..4].copy_from_slice(&36u32.to_ne_bytes());
            m[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
            m[16..20].copy_from_slice(&code.to_ne_bytes());
            m
        };
        assert!(matches!(acknowledgement(&ack(0)), Some(Ok(()))));
        let err = acknowledgement(&ack(-(Errno::EPERM as i32)))
            .unwrap()
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(Errno::EPERM as i32));
        assert!(acknowledgement(&[0; 8]).is_none());
    }
}
