use std::io;

use thiserror::Error;

/// Why a node cannot start or keep running. Messages say what to do.
#[derive(Debug, Error)]
pub enum IoError {
    /// The interface does not exist in this network namespace.
    #[error("no such interface {0:?} (list them with `ip link`)")]
    NoSuchInterface(String),
    /// The interface has no MAC address (not Ethernet-like).
    #[error("interface {0:?} has no Ethernet address; CARP needs an Ethernet-like interface")]
    NoMacAddress(String),
    /// A raw or packet socket was refused.
    #[error("{op} on {iface}: permission denied; CAP_NET_RAW is needed (root has it unless it was dropped, e.g. by a systemd unit or setpriv; CAP_NET_ADMIN too for scripts that change addresses)")]
    PermissionDenied {
        /// What was being done.
        op: &'static str,
        /// The interface.
        iface: String,
    },
    /// Any other socket failure.
    #[error("{op} on {iface}: {source}")]
    Socket {
        /// What was being done.
        op: &'static str,
        /// The interface.
        iface: String,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// The interface went away while the node was running.
    #[error("interface {0:?} disappeared; the node stopped after running its down hook")]
    InterfaceGone(String),
    /// A virtual host's source addresses do not match the families of its
    /// virtual addresses.
    #[error("{0}")]
    Families(String),
    /// A virtual host with this interface and vhid already runs.
    #[error("{0} is already configured (one virtual host per interface and vhid)")]
    Duplicate(String),
    /// No virtual host with this interface and vhid runs.
    #[error("no virtual host {0}")]
    NoSuchVirtualHost(String),
    /// No running virtual host is in this demotion group.
    #[error("no virtual host is in demotion group {0:?}")]
    NoSuchGroup(String),
    /// Forced to stop (a second stop request) before down hooks finished.
    #[error("stopped before the down script finished for {0}: the virtual address may still be configured on this host")]
    Unclean(String),
    /// The protocol loop did not answer a command in time (it is stuck).
    #[error("the protocol loop did not answer within {0:?}")]
    NotAnswering(std::time::Duration),
    /// The runtime has stopped or is stopping.
    #[error("the runtime is stopping or has stopped")]
    Stopped,
    /// The kernel gave no random bytes for the first counter.
    #[error("no randomness from the kernel (getrandom): {0}")]
    Random(String),
    /// The engine refused the configuration.
    #[error("invalid configuration: {0}")]
    Config(#[from] carp_engine::ConfigError),
}

impl IoError {
    /// Classifies a socket error: permission problems get their own advice.
    pub(crate) fn socket(op: &'static str, iface: &str, source: io::Error) -> IoError {
        if source.kind() == io::ErrorKind::PermissionDenied {
            IoError::PermissionDenied {
                op,
                iface: iface.to_string(),
            }
        } else {
            IoError::Socket {
                op,
                iface: iface.to_string(),
                source,
            }
        }
    }
}
