//! bond0's MTU passed down, as the kernel bond does (`bond_change_mtu`):
//! the slaves and the data-plane side of the veth pair take bond0's MTU at
//! start and whenever it changes, and get their own back at exit. Frames
//! longer than the MTU allows are dropped and counted by the workers (the
//! plan's `max_frame`); where the AF_XDP sockets cannot carry such frames
//! (no multi-buffer), the limit is what they carry, and the status says so.

use tracing::{info, warn};
use xbond_core::bond::Bond;
use xbond_core::config::BondConfig;
use xbond_xdp::dataplane::frame_len;
use xbond_xdp::netlink::Netlink;

use super::Upper;

/// bond0's MTU as applied, and what went wrong applying it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MtuState {
    /// bond0's MTU (0: not known).
    pub mtu: u32,
    /// The longest frame that crosses.
    pub max_frame: usize,
    /// One line per problem: a slave that refused the MTU, an MTU the
    /// sockets cannot carry.
    pub notes: Vec<String>,
}

/// The bond's MTU: bond0's (the veth pair), the upper interface's, or with
/// an in-process upper the smallest of the slaves'.
pub(super) fn read(nl: &mut Netlink, cfg: &BondConfig, upper: &Upper) -> Option<u32> {
    match upper {
        Upper::VethPair => nl.link(&cfg.name).ok().map(|l| l.mtu),
        Upper::Interface(name) => nl.link(name).ok().map(|l| l.mtu),
        Upper::Channel => cfg
            .slaves
            .iter()
            .filter_map(|s| nl.link(s).ok().map(|l| l.mtu))
            .min(),
    }
}

/// Gives `mtu` to the slaves and (veth pair) to bond0's peer; returns a
/// note for each that refused, naming its limit.
pub(super) fn pass_down(
    nl: &mut Netlink,
    cfg: &BondConfig,
    upper: &Upper,
    mtu: u32,
) -> Vec<String> {
    if *upper == Upper::Channel {
        return Vec::new();
    }
    let peer = (*upper == Upper::VethPair).then_some(cfg.peer_name.as_str());
    let mut notes = Vec::new();
    for name in cfg.slaves.iter().map(String::as_str).chain(peer) {
        let Ok(link) = nl.link(name) else { continue };
        if link.mtu == mtu {
            continue;
        }
        match nl.set_mtu(name, mtu) {
            Ok(()) => info!("{}: (slave {name}): MTU {mtu}", cfg.name),
            Err(e) => {
                let limit = if link.max_mtu > 0 {
                    format!("its maximum is {}", link.max_mtu)
                } else {
                    "it reports no maximum".to_string()
                };
                let note = format!(
                    "{name} refused MTU {mtu} ({limit}; it keeps {}): {e}",
                    link.mtu
                );
                warn!("{}: {note}", cfg.name);
                notes.push(note);
            }
        }
    }
    notes
}

/// Follows bond0's MTU `mtu`: passes it down, tells the core the frame
/// limit (bounded by what the sockets carry, `carried`), and returns the
/// new state.
pub(super) fn follow(
    nl: &mut Netlink,
    cfg: &BondConfig,
    upper: &Upper,
    mtu: u32,
    carried: usize,
    bond: &mut Bond,
) -> MtuState {
    let mut notes = pass_down(nl, cfg, upper, mtu);
    let mut max_frame = frame_len(mtu);
    if max_frame > carried {
        let note = format!(
            "MTU {mtu} needs frames of {max_frame} bytes, but the AF_XDP sockets carry {carried}: \
             multi-buffer (XDP_USE_SG) needs Linux 6.6 or later and, in zero-copy, a driver \
             that has it (a restart with this MTU binds copy mode with multi-buffer where \
             zero-copy lacks it); longer frames are dropped and counted as oversize"
        );
        warn!("{}: {note}", cfg.name);
        notes.push(note);
        max_frame = carried;
    }
    let limit = u32::try_from(max_frame.saturating_sub(frame_len(0))).unwrap_or(u32::MAX);
    bond.set_mtu(limit.min(mtu));
    MtuState {
        mtu,
        max_frame,
        notes,
    }
}
