//! The one error type of the I/O crate: every failure names the operation (the
//! syscall or kernel request) and the interface it was for.

use std::io;

/// An I/O failure, naming what was attempted and on which interface.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A syscall or kernel request failed.
    #[error("{op} on {iface}: {source}")]
    Sys {
        /// What was attempted (e.g. "bind AF_XDP socket", "RTM_NEWLINK").
        op: &'static str,
        /// Interface name (or "-" where none applies).
        iface: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A BPF operation failed.
    #[error("{op} on {iface}: {source}")]
    Bpf {
        /// What was attempted.
        op: &'static str,
        /// Interface name.
        iface: String,
        /// libbpf's error.
        #[source]
        source: libbpf_rs::Error,
    },
    /// An interface does not exist.
    #[error("interface {0} does not exist")]
    NoSuchInterface(String),
    /// Something about the environment makes the request impossible.
    #[error("{0}")]
    Unsupported(String),
}

impl Error {
    /// A failed syscall on an interface.
    pub fn sys(op: &'static str, iface: &str, source: io::Error) -> Error {
        Error::Sys {
            op,
            iface: iface.to_string(),
            source,
        }
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
