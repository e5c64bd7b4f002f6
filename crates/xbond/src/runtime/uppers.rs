//! What bond0 and the devices stacked on it (a bridge such as `vmbr0`, VLAN
//! devices, a bridge on a VLAN device) need from a failover, read from the
//! host: their addresses, announced on the new active slave, and the
//! multicast groups they joined, reported there again (`resend_igmp`). Each
//! with its MAC and the VLAN its frames carry on bond0. And how the ARP/NS
//! monitor's targets are reached: a target whose route leaves by a VLAN
//! device on bond0 is probed tagged, from that device's address.

use std::net::{Ipv4Addr, Ipv6Addr};

use std::net::IpAddr;

use xbond_core::bond::{Joined, UpperAddresses};
use xbond_core::monitor::ProbePath;
use xbond_xdp::netlink::Netlink;

/// What a failover sends for bond0 and its uppers.
#[derive(Debug, Default)]
pub(super) struct Found {
    /// bond0's own addresses.
    pub(super) own: (Vec<Ipv4Addr>, Vec<Ipv6Addr>),
    /// The uppers with addresses (bond0's own are the bond's).
    pub(super) addresses: Vec<UpperAddresses>,
    /// bond0 and the uppers with joined groups.
    pub(super) joined: Vec<Joined>,
    /// Every device seen (bond0 first): index, VLAN on bond0, addresses.
    devices: Vec<(u32, u16, Vec<Ipv4Addr>, Vec<Ipv6Addr>)>,
}

impl Found {
    /// How each of `targets` is reached: the targets whose route leaves by a
    /// VLAN device on bond0 (the others go untagged from bond0's address,
    /// the monitor's default).
    pub(super) fn probe_paths(&self, nl: &mut Netlink, targets: &[IpAddr]) -> Vec<ProbePath> {
        let mut out = Vec::new();
        for &target in targets {
            let Ok((oif, pref)) = nl.route_get(target) else {
                continue;
            };
            let Some((_, vlan, v4, v6)) = self.devices.iter().find(|d| d.0 == oif) else {
                continue;
            };
            if *vlan == 0 {
                continue;
            }
            let own = match target {
                IpAddr::V4(_) => v4.first().copied().map(IpAddr::V4),
                IpAddr::V6(_) => v6
                    .iter()
                    .find(|a| a.segments()[0] & 0xffc0 != 0xfe80)
                    .or(v6.first())
                    .copied()
                    .map(IpAddr::V6),
            };
            if let Some(source) = pref.filter(|p| p.is_ipv4() == target.is_ipv4()).or(own) {
                out.push(ProbePath {
                    target,
                    vlan: *vlan,
                    source,
                });
            }
        }
        out
    }
}

/// Reads bond0 (`name`) and the devices stacked on it; `None` when the
/// addresses cannot be read (then what the bond knows stays).
pub(super) fn read(nl: &mut Netlink, name: &str) -> Option<Found> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let (vlans, igmp, igmp6) = (
        read("/proc/net/vlan/config"),
        read("/proc/net/igmp"),
        read("/proc/net/igmp6"),
    );
    // One address dump for bond0 and every device on it.
    let addresses = nl.all_addresses().ok()?;
    let mut found = Found::default();
    // bond0 itself (depth 0), then its uppers.
    let mut todo: Vec<(String, u16, usize)> = vec![(name.to_string(), 0, 0)];
    while let Some((dev, outer, depth)) = todo.pop() {
        let vlan = match vlan_id(&vlans, &dev) {
            // A VLAN inside a VLAN (802.1ad stacking) carries two tags.
            Some(_) if outer != 0 => continue,
            Some(id) if depth > 0 => id,
            _ => outer,
        };
        let Ok(link) = nl.link(&dev) else { continue };
        let (ipv4, ipv6) = addresses.get(&link.index).cloned().unwrap_or_default();
        if depth == 0 {
            found.own = (ipv4.clone(), ipv6.clone());
        }
        if depth < 4 {
            todo.extend(upper_names(&dev).into_iter().map(|u| (u, vlan, depth + 1)));
        }
        found
            .devices
            .push((link.index, vlan, ipv4.clone(), ipv6.clone()));
        let groups4 = groups4(&igmp, &dev);
        let groups6 = groups6(&igmp6, &dev);
        if !groups4.is_empty() || !groups6.is_empty() {
            found.joined.push(Joined {
                name: dev.clone(),
                vlan,
                mac: link.mac,
                src4: ipv4.first().copied().unwrap_or(Ipv4Addr::UNSPECIFIED),
                groups4,
                src6: ipv6
                    .iter()
                    .copied()
                    .find(|a| a.segments()[0] & 0xffc0 == 0xfe80)
                    .unwrap_or(Ipv6Addr::UNSPECIFIED),
                groups6,
            });
        }
        if depth > 0 && (!ipv4.is_empty() || !ipv6.is_empty()) {
            found.addresses.push(UpperAddresses {
                name: dev,
                vlan,
                mac: link.mac,
                ipv4,
                ipv6,
            });
        }
    }
    found.addresses.sort_by(|a, b| a.name.cmp(&b.name));
    found.joined.sort_by(|a, b| a.name.cmp(&b.name));
    Some(found)
}

/// The names of the devices directly on `name` (its `upper_*` links).
fn upper_names(name: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(format!("/sys/class/net/{name}")) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("upper_"))
                .map(str::to_string)
        })
        .collect()
}

/// The VLAN id of VLAN device `dev` in /proc/net/vlan/config
/// ("NAME | VID | LOWER" per line, after two header lines).
fn vlan_id(config: &str, dev: &str) -> Option<u16> {
    config.lines().skip(2).find_map(|l| {
        let mut f = l.split('|').map(str::trim);
        (f.next()? == dev).then(|| f.next()?.parse().ok())?
    })
}

/// The IPv4 groups `dev` joined, from /proc/net/igmp: a device line
/// ("IDX\tNAME : COUNT QUERIER"), then one indented line per group whose
/// first field is the group as the kernel's native-endian hex of the
/// network-order address. 224.0.0.1 (all hosts) is never reported.
fn groups4(igmp: &str, dev: &str) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let mut mine = false;
    for line in igmp.lines().skip(1) {
        if !line.starts_with(char::is_whitespace) {
            mine = line.split_whitespace().nth(1) == Some(dev);
            continue;
        }
        let Some(hex) = line.split_whitespace().next().filter(|_| mine) else {
            continue;
        };
        if let Ok(v) = u32::from_str_radix(hex, 16) {
            let g = Ipv4Addr::from(v.to_ne_bytes());
            if g.is_multicast() && g != Ipv4Addr::new(224, 0, 0, 1) {
                out.push(g);
            }
        }
    }
    out
}

/// The IPv6 groups `dev` joined, from /proc/net/igmp6 ("IDX NAME GROUP
/// USERS FLAGS TIMER", the group as 32 hex digits). ff02::1 (all nodes) is
/// never reported.
fn groups6(igmp6: &str, dev: &str) -> Vec<Ipv6Addr> {
    igmp6
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, name, hex) = (f.next()?, f.next()?, f.next()?);
            if name != dev || hex.len() != 32 {
                return None;
            }
            let v = u128::from_str_radix(hex, 16).ok()?;
            Some(Ipv6Addr::from(v))
        })
        .filter(|g| g.is_multicast() && *g != Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlan_ids_from_proc_net_vlan_config() {
        let config = "VLAN Dev name\t | VLAN ID\nName-Type: VLAN_NAME_TYPE_RAW_PLUS_VID_NO_PAD\n\
                      bond0.100      | 100  | bond0\nvmbr0.7        | 7  | vmbr0\n";
        assert_eq!(vlan_id(config, "bond0.100"), Some(100));
        assert_eq!(vlan_id(config, "vmbr0.7"), Some(7));
        assert_eq!(vlan_id(config, "vmbr0"), None);
        assert_eq!(vlan_id("", "bond0.100"), None);
        assert_eq!(vlan_id("a\nb\nbond0.1 | x | bond0\n", "bond0.1"), None);
    }

    #[test]
    fn ipv4_groups_of_one_device_from_proc_net_igmp() {
        // The kernel prints the network-order address as a native u32.
        let text = format!(
            "Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter\n\
             1\tlo        :     1      V3\n\t\t\t\t010000E0     1 0:00000000\t\t0\n\
             7\tbond0     :     2      V3\n\t\t\t\t{:08X}     1 0:00000000\t\t0\n\
             \t\t\t\t010000E0     1 0:00000000\t\t0\n\
             8\tbond0.100 :     1      V3\n\t\t\t\tzz     1 0:00000000\t\t0\n",
            u32::from_ne_bytes([239, 1, 2, 3])
        );
        assert_eq!(groups4(&text, "bond0"), vec![Ipv4Addr::new(239, 1, 2, 3)]);
        assert!(groups4(&text, "lo").is_empty(), "224.0.0.1 is not reported");
        assert!(groups4(&text, "bond0.100").is_empty());
        assert!(groups4("", "bond0").is_empty());
    }

    #[test]
    fn ipv6_groups_of_one_device_from_proc_net_igmp6() {
        let text = "\
7    bond0           ff050000000000000000000000010003     1 00000004 0
7    bond0           ff020000000000000000000000000001     1 0000000C 0
9    vmbr0           ff0200000000000000000001ff000001     1 00000004 0
9    vmbr0           short     1 00000004 0
";
        assert_eq!(
            groups6(text, "bond0"),
            vec!["ff05::1:3".parse::<Ipv6Addr>().unwrap()]
        );
        assert_eq!(
            groups6(text, "vmbr0"),
            vec!["ff02::1:ff00:1".parse::<Ipv6Addr>().unwrap()]
        );
        assert!(groups6(text, "eth0").is_empty());
    }
}
