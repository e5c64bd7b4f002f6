//! Kernel I/O for xbond, and the only crate of the project with `unsafe`:
//! the XDP program (load, attach through bpf_link, maps), AF_XDP sockets on
//! one UMEM per queue (xsk-rs) as the core's `Port` ([`xsk`]), the
//! in-process upper port ([`channel`]), the worker loop ([`worker`]) and the
//! data plane that runs it ([`dataplane`]), the traffic generator ([`gen`]),
//! rtnetlink, raw AF_PACKET sockets for the control plane, and the libc
//! calls around them ([`sys`]).

#![deny(missing_docs)]
pub mod bpf;
pub mod channel;
pub mod dataplane;
pub mod error;
pub mod gen;
pub mod netlink;
pub mod packet;
pub mod privilege;
pub mod sys;
pub mod worker;
pub mod xsk;

pub use error::{Error, Result};
