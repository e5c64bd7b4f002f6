//! What the bond's unit tests share: a two-slave configuration, slave specs,
//! a bond with addresses set, and drains for its events and transmits.

use std::net::Ipv4Addr;
use std::time::Instant;

use super::{Bond, BondEvent, SlaveSpec, Transmit};
use crate::config::BondConfig;
use crate::options::{MacAddr, Mode};

/// A bond of eno1 and eno2 in `mode`, otherwise the defaults.
pub(super) fn cfg(mode: Mode) -> BondConfig {
    let mut c = BondConfig::new("bond0", vec!["eno1".into(), "eno2".into()]);
    c.mode = mode;
    c
}

/// A full-duplex slave with MAC 02:00:00:00:00:`last`.
pub(super) fn spec(name: &str, last: u8, speed: u32) -> SlaveSpec {
    SlaveSpec {
        name: name.into(),
        perm_mac: MacAddr([2, 0, 0, 0, 0, last]),
        speed_mbps: Some(speed),
        full_duplex: Some(true),
    }
}

/// The bond of `c` over two 1 Gb/s slaves, with 10.0.0.1 and fd00::1.
pub(super) fn bond(c: BondConfig, t0: Instant) -> Bond {
    let mut b = Bond::new(c, vec![spec("eno1", 1, 1000), spec("eno2", 2, 1000)], t0);
    b.set_addresses(
        vec![Ipv4Addr::new(10, 0, 0, 1)],
        vec!["fd00::1".parse().unwrap()],
    );
    b
}

/// Every queued event.
pub(super) fn drain(b: &mut Bond) -> Vec<BondEvent> {
    std::iter::from_fn(|| b.poll_event()).collect()
}

/// Every queued transmit.
pub(super) fn transmits(b: &mut Bond) -> Vec<Transmit> {
    std::iter::from_fn(|| b.poll_transmit()).collect()
}
