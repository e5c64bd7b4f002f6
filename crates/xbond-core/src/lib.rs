//! Pure bonding logic for xbond.
//!
//! This crate holds everything a bond decides, and nothing that touches the
//! kernel: it reads no clock, opens no socket and contains no `unsafe`. Time is
//! passed in by the caller (`now: Instant`), and the outputs (plan changes,
//! gratuitous ARPs, carrier changes) are pulled by the runtime with
//! `poll_event()`, `poll_transmit()` and `poll_timeout()`, in the style of
//! quinn-proto and smoltcp.
//!
//! - [`wire`]: frame headers and the frames the bond sends itself (ARP, NA).
//! - [`options`]: the kernel's option types (modes, policies, MACs).
//! - [`hash`]: the `xmit_hash_policy` hashes.
//! - [`lacp`]: the IEEE 802.1AX machines (802.3ad).
//! - [`monitor`]: the ARP and NS link monitors.
//! - [`alb`]: balance-tlb and balance-alb's tables and learning packets.
//! - [`plan`]: the immutable [`plan::TxPlan`] the workers read, batch slave
//!   selection and the receive rules per mode.
//! - [`datapath`]: the per-frame verdicts of every mode, the [`datapath::Port`]
//!   trait, the worker engine that applies verdicts over ports, and an
//!   in-memory port for simulations.
//! - [`bond`]: the control-plane state: link monitor with `updelay`/`downdelay`,
//!   active slave selection (`primary`, `primary_reselect`), failover and peer
//!   notification.
//! - [`config`]: the configuration model, its validation and the import of
//!   kernel option strings and ifupdown stanzas.
//! - [`status`]: the `/proc/net/bonding/bondX` text and its JSON twin.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod alb;
pub mod bond;
pub mod config;
pub mod datapath;
pub mod doctor;
pub mod hash;
pub mod hashbal;
pub mod lacp;
pub mod monitor;
pub mod options;
pub mod plan;
pub mod request;
pub mod status;
mod timer;
pub mod wire;

/// The most slaves a bond can have. Plans keep slaves in fixed-size arrays so
/// that publishing and reading them never allocates.
pub const MAX_SLAVES: usize = 16;
