//! Receive filters passed down from bond0 to the slaves, as the kernel bond
//! does: bond0's promiscuous and all-multicast modes and its multicast and
//! unicast address lists (a bridge on bond0, the seed's `vmbr0`, makes it
//! promiscuous and joins groups, a macvlan adds its MAC to the unicast list;
//! a NIC's MAC filter would otherwise drop every frame for a VM),
//! and in 802.3ad the Slow Protocols group. Which slaves carry them is the
//! core's rule ([`Bond::filter_slaves`]); they are held as AF_PACKET
//! memberships, which the kernel counts and drops when the daemon exits or
//! dies, so nothing outlives it.

use std::collections::BTreeSet;

use tracing::{info, warn};
use xbond_core::bond::Bond;
use xbond_xdp::netlink::Netlink;
use xbond_xdp::packet::{Membership, PacketSocket};

/// What bond0 asks for, as read from the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    /// IFF_PROMISC on bond0.
    pub promisc: bool,
    /// IFF_ALLMULTI on bond0.
    pub allmulti: bool,
    /// bond0's multicast list.
    pub multicast: BTreeSet<[u8; 6]>,
    /// bond0's unicast list (its secondary addresses).
    pub unicast: BTreeSet<[u8; 6]>,
}

/// Reads bond0's flags (netlink), multicast list (/proc/net/dev_mcast) and
/// unicast list (netlink, AF_BRIDGE).
pub fn read(nl: &mut Netlink, bond: &str) -> Option<Wanted> {
    let link = nl.link(bond).ok()?;
    let text = std::fs::read_to_string("/proc/net/dev_mcast").ok()?;
    let unicast = match nl.unicast_list(bond) {
        Ok(list) => list.into_iter().map(|m| m.0).collect(),
        Err(e) => {
            warn!("{bond}: cannot read its unicast address list: {e}");
            BTreeSet::new()
        }
    };
    Some(Wanted {
        promisc: link.promisc,
        allmulti: link.allmulti,
        multicast: parse_dev_mcast(&text, link.index),
        unicast,
    })
}

/// The multicast addresses of interface `index` in /proc/net/dev_mcast
/// ("index name users global hex-address" per line).
pub fn parse_dev_mcast(text: &str, index: u32) -> BTreeSet<[u8; 6]> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 || f[0].parse::<u32>().ok() != Some(index) || f[4].len() != 12 {
            continue;
        }
        let mut mac = [0u8; 6];
        let ok = (0..6).all(|i| {
            u8::from_str_radix(&f[4][2 * i..2 * i + 2], 16)
                .map(|b| mac[i] = b)
                .is_ok()
        });
        if ok {
            out.insert(mac);
        }
    }
    out
}

/// The memberships held on each slave.
#[derive(Debug)]
pub struct Filters {
    slaves: Vec<(String, Option<PacketSocket>, BTreeSet<Membership>)>,
}

impl Filters {
    /// No memberships yet on `slaves`.
    pub fn new(slaves: &[String]) -> Filters {
        Filters {
            slaves: slaves
                .iter()
                .map(|s| (s.clone(), None, BTreeSet::new()))
                .collect(),
        }
    }

    /// Makes the slaves' memberships what `wanted` and the bond's rule say.
    pub fn apply(&mut self, bond: &Bond, wanted: &Wanted) {
        let carriers = bond.filter_slaves();
        let own = bond.own_multicast();
        for (i, (name, sock, held)) in self.slaves.iter_mut().enumerate() {
            let mut want: BTreeSet<Membership> =
                own.iter().map(|m| Membership::Multicast(m.0)).collect();
            if carriers.get(i).copied().unwrap_or(false) {
                if wanted.promisc {
                    want.insert(Membership::Promisc);
                }
                if wanted.allmulti {
                    want.insert(Membership::AllMulti);
                }
                want.extend(wanted.multicast.iter().map(|m| Membership::Multicast(*m)));
                want.extend(wanted.unicast.iter().map(|m| Membership::Unicast(*m)));
            }
            if want == *held {
                continue;
            }
            if sock.is_none() {
                // Protocol 0: a socket that receives nothing, only holds.
                match PacketSocket::open(name, 0) {
                    Ok(s) => *sock = Some(s),
                    Err(e) => {
                        warn!("{name}: cannot pass bond0's filters down: {e}");
                        continue;
                    }
                }
            }
            let Some(s) = sock.as_ref() else { continue };
            for m in held.difference(&want).copied().collect::<Vec<_>>() {
                match s.set_membership(m, false) {
                    Ok(()) => {
                        held.remove(&m);
                    }
                    Err(e) => warn!("{name}: {e}"),
                }
            }
            for m in want.difference(held).copied().collect::<Vec<_>>() {
                match s.set_membership(m, true) {
                    Ok(()) => {
                        held.insert(m);
                    }
                    Err(e) => warn!("{name}: {e}"),
                }
            }
            info!("{name}: receive filters from the bond: {}", describe(held));
        }
    }
}

fn describe(held: &BTreeSet<Membership>) -> String {
    if held.is_empty() {
        return "none".into();
    }
    held.iter()
        .map(|m| match m {
            Membership::Promisc => "promisc".to_string(),
            Membership::AllMulti => "allmulti".to_string(),
            Membership::Multicast(a) | Membership::Unicast(a) => {
                xbond_core::options::MacAddr(*a).to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_mcast_lines_of_one_interface() {
        let text = "\
2    eth0            1     0     333300000001
4    bond0           1     0     01005e000001
4    bond0           2     0     01005e010203
4    bond0           1     0     zz005e010203
40   bond0x          1     0     01005e0a0b0c
";
        let got = parse_dev_mcast(text, 4);
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            vec![[1, 0, 0x5e, 0, 0, 1], [1, 0, 0x5e, 1, 2, 3]]
        );
        assert!(parse_dev_mcast("garbage\n\n4 x", 4).is_empty());
    }
}
