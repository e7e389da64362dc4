//! What the node needs to know about its interface, read with getifaddrs(3)
//! at start (in the caller's network namespace) and with two ioctls for
//! each later re-check (through a [`LinkReader`], in the namespace it was
//! created in).

use std::net::{Ipv4Addr, Ipv6Addr};

use carp_proto::ethernet::MacAddr;
use nix::ifaddrs::getifaddrs;
use nix::libc;
use nix::net::if_::InterfaceFlags;

use crate::IoError;

/// An interface's identity and addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceInfo {
    /// Name, as given.
    pub name: String,
    /// Kernel index.
    pub index: u32,
    /// Its own MAC address.
    pub mac: MacAddr,
    /// IPv4 addresses configured on it.
    pub ipv4: Vec<Ipv4Addr>,
    /// IPv6 addresses configured on it.
    pub ipv6: Vec<Ipv6Addr>,
    /// Whether it forwards IPv6 (`net.ipv6.conf.<name>.forwarding`): then
    /// neighbour advertisements say we are a router.
    pub ipv6_forwarding: bool,
    /// Whether IPv6 is off on it (`net.ipv6.conf.<name>.disable_ipv6`, or
    /// no IPv6 in the kernel): the kernel then drops every IPv6 packet
    /// arriving there, adverts included.
    pub ipv6_disabled: bool,
    /// Administratively up and with carrier (IFF_UP and IFF_RUNNING).
    pub running: bool,
}

impl InterfaceInfo {
    /// Looks the interface up by name.
    pub fn lookup(name: &str) -> Result<InterfaceInfo, IoError> {
        let entries = getifaddrs().map_err(|e| IoError::socket("getifaddrs", name, e.into()))?;
        let mut found = false;
        let mut info = InterfaceInfo {
            name: name.to_string(),
            index: 0,
            mac: MacAddr::default(),
            ipv4: Vec::new(),
            ipv6: Vec::new(),
            ipv6_forwarding: false,
            ipv6_disabled: false,
            running: false,
        };
        let mut has_mac = false;
        for entry in entries.filter(|e| e.interface_name == name) {
            found = true;
            info.running = is_running(entry.flags);
            let Some(address) = entry.address else {
                continue;
            };
            if let Some(link) = address.as_link_addr() {
                info.index = link.ifindex() as u32;
                if let Some(mac) = link.addr() {
                    info.mac = MacAddr(mac);
                    has_mac = mac != [0; 6];
                }
            } else if let Some(inet) = address.as_sockaddr_in() {
                info.ipv4.push(inet.ip());
            } else if let Some(inet6) = address.as_sockaddr_in6() {
                info.ipv6.push(inet6.ip());
            }
        }
        if !found {
            return Err(IoError::NoSuchInterface(name.to_string()));
        }
        if !has_mac {
            return Err(IoError::NoMacAddress(name.to_string()));
        }
        // procfs, read when the interface is opened (never per packet).
        let ipv6_setting = |setting: &str| {
            std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{name}/{setting}"))
                .map(|v| v.trim() != "0")
        };
        info.ipv6_forwarding = ipv6_setting("forwarding").unwrap_or(false);
        info.ipv6_disabled = ipv6_setting("disable_ipv6").unwrap_or(true);
        Ok(info)
    }
}

impl InterfaceInfo {
    /// Its IPv6 link-local address: the source of IPv6 adverts and
    /// neighbour advertisements unless one is configured (as the BSDs do).
    /// The lowest, if there are several.
    pub fn link_local(&self) -> Option<Ipv6Addr> {
        self.ipv6
            .iter()
            .filter(|a| carp_proto::ipv6::is_link_local(a))
            .min()
            .copied()
    }
}

fn is_running(flags: InterfaceFlags) -> bool {
    flags.contains(InterfaceFlags::IFF_UP) && flags.contains(InterfaceFlags::IFF_RUNNING)
}

/// What a re-check sees of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStatus {
    /// Kernel index: a deleted and re-created interface has a new one.
    pub index: u32,
    /// Up and with carrier.
    pub running: bool,
}

/// The state of `name` now: `Ok(None)` if no such interface exists, `Err`
/// if the kernel could not be asked (a transient failure, not "gone").
///
/// Two ioctls on a socket rather than getifaddrs(3): this runs
/// on the protocol thread for every link notification and every periodic
/// re-check, and getifaddrs dumps every link and every address of the
/// namespace over netlink (and allocates the lot) to answer for one
/// interface.
pub fn link_status(name: &str) -> std::io::Result<Option<LinkStatus>> {
    LinkReader::new()?.status(name)
}

/// Reads interfaces' state ([`link_status`]) through one socket kept open:
/// the runtime re-checks its interfaces every few seconds, and a socket
/// created and closed each time was a tenth of an idle backup's CPU.
/// The socket belongs to the network namespace it was created in, which
/// is the one whose interfaces it reads.
pub struct LinkReader(socket2::Socket);

impl LinkReader {
    /// Opens the socket, in the calling thread's network namespace.
    pub fn new() -> std::io::Result<LinkReader> {
        let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::DGRAM, None)?;
        Ok(LinkReader(socket))
    }

    /// The interface's index and carrier, `None` if there is no such
    /// interface.
    pub fn status(&self, name: &str) -> std::io::Result<Option<LinkStatus>> {
        let mut request = match InterfaceRequest::new(name) {
            Some(request) => request,
            // Longer than any interface name: no such interface.
            None => return Ok(None),
        };
        let index = match request.ask(&self.0, libc::SIOCGIFINDEX) {
            Ok(()) => request.index(),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(None),
            Err(e) => return Err(e),
        };
        match request.ask(&self.0, libc::SIOCGIFFLAGS) {
            Ok(()) => Ok(Some(LinkStatus {
                index,
                running: is_running(request.flags()),
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A `struct ifreq` naming one interface, for the SIOCGIF* ioctls.
struct InterfaceRequest(libc::ifreq);

#[allow(unsafe_code)] // ioctl(2) and the ifreq union; see SAFETY below
impl InterfaceRequest {
    /// `None` if the name cannot be an interface's (too long, or a NUL).
    fn new(name: &str) -> Option<InterfaceRequest> {
        let bytes = name.as_bytes();
        if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
            return None;
        }
        // SAFETY: ifreq is plain old data (a name array and a union of
        // integers, addresses and pointers); all zeroes is a valid value.
        let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
        for (slot, &byte) in request.ifr_name.iter_mut().zip(bytes) {
            *slot = byte as libc::c_char;
        }
        Some(InterfaceRequest(request))
    }

    fn ask(&mut self, socket: &socket2::Socket, request: libc::Ioctl) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is a live socket we own; SIOCGIFINDEX and
        // SIOCGIFFLAGS read the NUL-terminated name (checked in `new`) and
        // write an int or a short into the union of the ifreq we pass,
        // which outlives the call.
        let result = unsafe { libc::ioctl(socket.as_raw_fd(), request, &mut self.0) };
        if result == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    fn index(&self) -> u32 {
        // SAFETY: every member of the union is an integer or plain data,
        // and SIOCGIFINDEX wrote the int one.
        let index = unsafe { self.0.ifr_ifru.ifru_ifindex };
        index as u32
    }

    fn flags(&self) -> InterfaceFlags {
        // SAFETY: as in `index`; SIOCGIFFLAGS wrote the short one.
        let flags = unsafe { self.0.ifr_ifru.ifru_flags };
        InterfaceFlags::from_bits_truncate(flags as u16 as libc::c_int)
    }
}
