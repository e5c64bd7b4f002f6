//! The data path's per-frame rules, as pure batch functions, and the engine
//! that applies them over any [`Port`].
//!
//! Every frame a worker moves gets its verdict here:
//!
//! - [`tx_batch`]: frames from the host (the upper port) get a slave, a
//!   copy on every slave (broadcast), a diversion to the control thread
//!   (in balance-alb, the host's ARP) or a drop, each with the counter it feeds and,
//!   in balance-tlb/alb, the source-MAC rewrite and the per-destination
//!   byte count;
//! - [`rx_batch`]: frames from a slave are delivered, delivered with the
//!   destination rewritten to the bond MAC (balance-alb), or dropped as
//!   inactive, duplicate or malformed; ARP and ND are marked to be copied
//!   to the control thread (the link monitors, ALB).
//!
//! [`rewrite_source`] and [`rewrite_destination`] apply the rewrites the
//! verdicts name. The [`engine::Engine`] runs one worker's loop pass over
//! a [`Port`] per interface: completions, fill rings, a batch from the host,
//! a batch from each slave, the TX kicks. The AF_XDP port lives in
//! xbond-xdp; [`mem`] has an in-memory port for simulations.
//!
//! Nothing here takes a lock or reads a clock, and nothing allocates per
//! frame but the copy of a tapped frame for the control thread.

pub mod engine;
pub mod mem;
pub mod pool;
mod port;

pub use port::{Frames, Kick, Port};

use crate::alb::tlb_bucket;
use crate::options::Mode;
use crate::plan::{Choice, DupFilter, Selector, TxPlan};
use crate::wire::{is_arp_or_nd, EthInfo, ETH_HLEN, ETH_P_ARP};

/// Frames per batch.
pub const BATCH: usize = 64;

/// What happens to one frame from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TxAction {
    /// No slave can carry it: dropped, counted as `tx_no_slave`.
    #[default]
    NoSlave,
    /// Sent on this slave (index into the bond's slaves) as it is.
    Slave(u8),
    /// Sent on this slave with the slave's own MAC written as the source
    /// (balance-tlb/alb on a slave other than the active one, so that the
    /// switch learns that MAC there): apply [`rewrite_source`].
    SlaveOwnSource(u8),
    /// A copy on every transmit slave of the plan (broadcast).
    All,
    /// Given to the control thread and not sent (balance-alb: the host's
    /// ARP, which the control thread rewrites per peer and sends).
    Divert,
    /// Shorter than an Ethernet header: dropped, counted as `tx_malformed`.
    Malformed,
}

/// The verdict on one frame from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxVerdict {
    /// Where it goes.
    pub action: TxAction,
    /// The bucket whose byte count the frame adds to: balance-tlb/alb's
    /// destination bucket (the load the control thread balances by), or
    /// balance-xor's and 802.3ad's hash bucket (the load view).
    pub load_bucket: Option<u8>,
}

/// What happens to one frame from a slave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RxAction {
    /// Delivered to the host as it is.
    #[default]
    Deliver,
    /// Delivered with the destination rewritten from the slave's own MAC to
    /// the bond MAC the host accepts (balance-alb: a peer was told the slave's
    /// MAC): apply [`rewrite_destination`].
    DeliverToBond,
    /// The slave must not deliver now (a backup, an unaggregated port, a
    /// broadcast on a balance-alb slave other than the active one): dropped,
    /// counted as `rx_inactive`.
    Inactive,
    /// A copy of a frame already delivered from another slave (broadcast):
    /// dropped, counted as `rx_duplicate`.
    Duplicate,
    /// Shorter than an Ethernet header: dropped, counted as `rx_malformed`.
    Malformed,
}

/// The verdict on one frame from a slave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxVerdict {
    /// Deliver or drop.
    pub action: RxAction,
    /// Copy the frame to the control thread (ARP or ND, while a link monitor
    /// or ALB listens), whatever the action.
    pub tap: bool,
}

fn is_arp(frame: &[u8]) -> bool {
    EthInfo::parse(frame).is_some_and(|e| e.ethertype == ETH_P_ARP)
}

fn balancing(mode: Mode) -> bool {
    matches!(mode, Mode::BalanceTlb | Mode::BalanceAlb)
}

/// Gives each frame from the host its verdict: `out[i]` for `frames[i]`.
/// `frames` holds at most [`BATCH`] frames and `out` is at least as long.
/// `sel` carries the balance-rr position from batch to batch.
///
/// ```
/// use xbond_core::datapath::{tx_batch, TxAction, TxVerdict};
/// use xbond_core::options::Mode;
/// use xbond_core::plan::{Selector, TxPlan};
///
/// // balance-rr over slaves 0 and 2.
/// let plan = TxPlan::with_slaves(Mode::BalanceRr, &[0, 2]);
/// let frame = [0u8; 60];
/// let frames = [&frame[..], &frame[..], &frame[..]];
/// let mut out = [TxVerdict::default(); 3];
/// tx_batch(&plan, &mut Selector::default(), &frames, &mut out);
/// let to: Vec<TxAction> = out.iter().map(|v| v.action).collect();
/// assert_eq!(to, [TxAction::Slave(0), TxAction::Slave(2), TxAction::Slave(0)]);
/// ```
pub fn tx_batch(plan: &TxPlan, sel: &mut Selector, frames: &[&[u8]], out: &mut [TxVerdict]) {
    debug_assert!(frames.len() <= BATCH);
    let frames = &frames[..frames.len().min(BATCH)];
    let balancing = balancing(plan.mode);
    let mut choices = [Choice::Drop; BATCH];
    if !balancing {
        sel.select_batch(plan, frames, &mut choices);
    }
    let hashing = matches!(plan.mode, Mode::BalanceXor | Mode::Ieee8023ad);
    for (i, ((o, f), mut c)) in out.iter_mut().zip(frames).zip(choices).enumerate() {
        *o = TxVerdict::default();
        if f.len() < ETH_HLEN {
            o.action = TxAction::Malformed;
            continue;
        }
        if hashing && matches!(c, Choice::Slave(_)) {
            o.load_bucket = Some(sel.bucket(i));
        }
        if plan.divert_host_arp && is_arp(f) {
            o.action = TxAction::Divert;
            continue;
        }
        if balancing {
            // One parse gives both the load bucket and the slave.
            o.load_bucket = tlb_bucket(f);
            c = plan.tlb_choice(o.load_bucket);
        }
        o.action = match c {
            Choice::Drop => TxAction::NoSlave,
            Choice::All => TxAction::All,
            Choice::Slave(s) if balancing && Some(s) != plan.active => TxAction::SlaveOwnSource(s),
            Choice::Slave(s) => TxAction::Slave(s),
        };
    }
}

/// Gives each frame received on `slave` its verdict: `out[i]` for
/// `frames[i]`; `out` is at least as long as `frames`. `dups` remembers
/// recent frames across batches and slaves (broadcast mode).
///
/// ```
/// use xbond_core::datapath::{rx_batch, RxAction, RxVerdict};
/// use xbond_core::options::Mode;
/// use xbond_core::plan::{DupFilter, TxPlan};
///
/// // active-backup: slave 0 is active and delivers, slave 1 does not.
/// let plan = TxPlan::with_slaves(Mode::ActiveBackup, &[0]);
/// let frame = [0u8; 60];
/// let mut out = [RxVerdict::default(); 1];
/// rx_batch(&plan, 1, &mut DupFilter::default(), &[&frame[..]], &mut out);
/// assert_eq!(out[0].action, RxAction::Inactive);
/// rx_batch(&plan, 0, &mut DupFilter::default(), &[&frame[..]], &mut out);
/// assert_eq!(out[0].action, RxAction::Deliver);
/// ```
pub fn rx_batch(
    plan: &TxPlan,
    slave: usize,
    dups: &mut DupFilter,
    frames: &[&[u8]],
    out: &mut [RxVerdict],
) {
    let delivers = plan.delivers_from(slave);
    let balancing = balancing(plan.mode);
    let mine = plan.slave_macs.get(slave).map_or([0; 6], |m| m.0);
    let active = plan.active.is_some_and(|a| usize::from(a) == slave);
    for (o, f) in out.iter_mut().zip(frames) {
        let tap = plan.tap_arp && is_arp_or_nd(f);
        let action = if f.len() < ETH_HLEN {
            RxAction::Malformed
        } else if !delivers {
            RxAction::Inactive
        } else if balancing {
            // A slave other than the active one delivers only what peers sent
            // to its own MAC; broadcasts and floods come in once, on the
            // active slave.
            if f[0..6] == mine && mine != plan.bond_mac.0 {
                RxAction::DeliverToBond
            } else if active {
                RxAction::Deliver
            } else {
                RxAction::Inactive
            }
        } else if plan.mode == Mode::Broadcast && dups.is_duplicate(f, slave as u8) {
            RxAction::Duplicate
        } else {
            RxAction::Deliver
        };
        *o = RxVerdict { action, tap };
    }
}

/// Applies [`TxAction::SlaveOwnSource`]: writes `slave`'s MAC as the source.
pub fn rewrite_source(plan: &TxPlan, slave: u8, frame: &mut [u8]) {
    if let (Some(src), Some(mac)) = (
        frame.get_mut(6..12),
        plan.slave_macs.get(usize::from(slave)),
    ) {
        src.copy_from_slice(&mac.0);
    }
}

/// Applies [`RxAction::DeliverToBond`]: writes the bond MAC as the
/// destination.
pub fn rewrite_destination(plan: &TxPlan, frame: &mut [u8]) {
    if let Some(dst) = frame.get_mut(0..6) {
        dst.copy_from_slice(&plan.bond_mac.0);
    }
}

#[cfg(test)]
mod tests;
