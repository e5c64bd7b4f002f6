//! VLAN offloads that would hide a frame's 802.1Q tag from the data path.
//!
//! XDP and AF_XDP see a frame's bytes, not the skb's metadata. A tag that the
//! stack keeps out of band (`vlan_tci`: TX VLAN insertion offload on the
//! upper port, RX VLAN stripping on a slave) never reaches the worker, and a
//! tagged frame of a VLAN-aware bridge on bond0 would cross the bond
//! untagged. So xbond turns off `txvlan` on bond0 (the stack then writes the
//! tag into the frame) and `rxvlan` on the slaves (the NIC leaves it there),
//! and restores the slaves' settings on exit. Set with the `ethtool` program.

use std::process::Command;

use tracing::{info, warn};

/// TX insertion offloads on the upper port's host side.
pub const UPPER_OFF: &[&str] = &["tx-vlan-offload", "tx-vlan-stag-hw-insert"];
/// RX stripping offloads on slaves.
pub const SLAVE_OFF: &[&str] = &["rx-vlan-offload", "rx-vlan-stag-hw-parse"];

/// Reads the given features of `iface` (`ethtool -k`): (feature, on), only
/// for features the driver lets change.
pub fn read(iface: &str, features: &[&str]) -> Vec<(String, bool)> {
    let Ok(out) = Command::new("ethtool").args(["-k", iface]).output() else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut found = Vec::new();
    for line in text.lines() {
        let Some((name, val)) = line.trim().split_once(':') else {
            continue;
        };
        if !features.contains(&name) || val.contains("[fixed]") {
            continue;
        }
        found.push((name.to_string(), val.trim().starts_with("on")));
    }
    found
}

/// Sets `features` of `iface` (`ethtool -K`); returns what they were, to be
/// given back to [`set`] on exit. A failure is logged: the bond runs, but
/// tagged traffic may lose its tag.
pub fn set(iface: &str, features: &[(String, bool)]) {
    if features.is_empty() {
        return;
    }
    let mut args = vec!["-K".to_string(), iface.to_string()];
    for (f, on) in features {
        args.push(f.clone());
        args.push(if *on { "on" } else { "off" }.to_string());
    }
    match Command::new("ethtool").args(&args).output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => warn!(
            "{iface}: ethtool {} failed: {}; VLAN-tagged frames may lose their tag",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => warn!(
            "{iface}: cannot run ethtool ({e}); VLAN-tagged frames may lose their tag (install ethtool)"
        ),
    }
}

/// Turns `features` off on `iface` where they are on; returns the ones it
/// turned off (to turn back on at exit).
pub fn turn_off(iface: &str, features: &[&str]) -> Vec<(String, bool)> {
    let on: Vec<(String, bool)> = read(iface, features)
        .into_iter()
        .filter(|(_, on)| *on)
        .collect();
    if on.is_empty() {
        return on;
    }
    let off: Vec<(String, bool)> = on.iter().map(|(f, _)| (f.clone(), false)).collect();
    set(iface, &off);
    let names: Vec<&str> = on.iter().map(|(f, _)| f.as_str()).collect();
    info!(
        "{iface}: {} off (the data path must see VLAN tags)",
        names.join(", ")
    );
    on
}
