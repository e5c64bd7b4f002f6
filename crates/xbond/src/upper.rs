//! The upper port: the veth pair `bond0` (host side) / `xb-bond0` (data-plane
//! side) that xbond creates once and then keeps, as the kernel keeps a bond
//! device until `ip link del`.
//!
//! The data-plane end carries an alias (IFLA_IFALIAS,
//! `/sys/class/net/xb-bond0/ifalias`) that marks the pair as xbond's:
//! `xbond:<bond> data`. The host side's alias is the operator's (ifupdown2,
//! for one, rewrites it from the stanza's `alias` line), so the mark is on
//! the end no host tool configures, and `bond0` is recognised as the veth
//! whose peer carries it. A start adopts a marked pair, so everything the
//! host configured on `bond0`
//! (addresses, routes, MTU, VLAN devices, bridge membership) survives a
//! restart; an interface of that name without the mark (a kernel bond, a
//! user's veth) is refused and never changed. While no daemon runs, the
//! data-plane end is down, so `bond0` has no carrier. `xbond down` deletes the
//! pair.

use anyhow::{bail, Context, Result};
use tracing::info;
use xbond_xdp::netlink::{Link, Netlink};

/// The alias on the data-plane side of `bond`'s upper port.
pub fn data_mark(bond: &str) -> String {
    format!("xbond:{bond} data")
}

/// xbond's upper port for a bond, as found on the host.
#[derive(Debug)]
pub struct Pair {
    /// The host side, `bond0`.
    pub host: Link,
    /// The data-plane side, `xb-bond0`.
    pub data: Link,
}

/// Describes a link for an error message: its kind and alias.
fn describe(l: &Link) -> String {
    let kind = match l.kind.as_deref() {
        Some(k) => format!("a {k} interface"),
        None => "a network interface (no link kind: a NIC?)".to_string(),
    };
    match &l.alias {
        Some(a) => format!("{kind} with alias {a:?}"),
        None => format!("{kind} without xbond's mark"),
    }
}

/// Looks at what exists under `name` (host side) and `peer` (data-plane
/// side): nothing (`None`) or xbond's pair for `name`. Errors when either
/// exists and is not xbond's pair, naming the interface and what it is.
pub fn inspect(nl: &mut Netlink, name: &str, peer: &str) -> Result<Option<Pair>> {
    let lookup = |nl: &mut Netlink, n: &str| -> Result<Option<Link>> {
        if nl.exists(n)? {
            Ok(Some(nl.link(n)?))
        } else {
            Ok(None)
        }
    };
    let host = lookup(nl, name)?;
    let data = lookup(nl, peer)?;
    let refuse = |l: &Link, key: &str, what: &str| -> anyhow::Error {
        anyhow::anyhow!(
            "{} exists and is {}, not the {what} of an xbond upper port for {name}; \
             xbond leaves it as it is. Remove it or choose another name (key {key})",
            l.name,
            describe(l)
        )
    };
    match (host, data) {
        (None, None) => Ok(None),
        (Some(h), None) => Err(refuse(&h, "name", "host side")),
        (None, Some(d)) => Err(refuse(&d, "peer_name", "data-plane side")),
        (Some(h), Some(d)) => {
            if h.kind.as_deref() != Some("veth") {
                return Err(refuse(&h, "name", "host side"));
            }
            if d.kind.as_deref() != Some("veth") || d.alias.as_deref() != Some(&data_mark(name)) {
                return Err(refuse(&d, "peer_name", "data-plane side"));
            }
            if h.peer_index != Some(d.index) {
                bail!(
                    "{name} and {peer} both carry xbond's mark but are not one veth pair; \
                     remove them (ip link del {name}; ip link del {peer})"
                );
            }
            Ok(Some(Pair { host: h, data: d }))
        }
    }
}

/// Creates the pair `name` / `peer` with `queues` queues and marks it.
pub fn create(nl: &mut Netlink, name: &str, peer: &str, queues: u32) -> Result<()> {
    nl.create_veth(name, peer, queues)
        .context("creating the upper port")?;
    if let Err(e) = nl.set_alias(peer, &data_mark(name)) {
        let _ = nl.delete(name);
        return Err(e).context("marking the upper port as xbond's");
    }
    info!("{name}: created the upper port ({name} host side, {peer} data plane)");
    Ok(())
}

/// Finds the data-plane side of `bond`'s upper port from the host side alone
/// (for `xbond down`, which has no config file).
pub fn find(nl: &mut Netlink, bond: &str) -> Result<(Link, Link)> {
    if !nl.exists(bond)? {
        bail!("{bond} does not exist");
    }
    let host = nl.link(bond)?;
    let Some(peer) = host
        .peer_index
        .filter(|_| host.kind.as_deref() == Some("veth"))
    else {
        bail!(
            "{bond} is {}, not an xbond upper port; xbond leaves it as it is",
            describe(&host)
        );
    };
    let data = nl.link_by_index(peer)?;
    match inspect(nl, bond, &data.name)? {
        Some(p) => Ok((p.host, p.data)),
        None => bail!("{bond} vanished while it was inspected"),
    }
}

/// Takes `bond`'s carrier down by setting the data-plane side down; the pair
/// and everything on `bond` stay. For a clean exit, and for after a crash
/// (the unit's `ExecStopPost`).
pub fn carrier_off(nl: &mut Netlink, bond: &str) -> Result<()> {
    let (_, data) = find(nl, bond)?;
    nl.set_up(&data.name, false)
        .with_context(|| format!("setting {} down", data.name))?;
    Ok(())
}

/// Deletes `bond`'s upper pair for good (`xbond down`), as `ip link del bond0`
/// deletes a kernel bond.
pub fn remove(nl: &mut Netlink, bond: &str) -> Result<()> {
    let (_, data) = find(nl, bond)?;
    nl.delete(bond)
        .with_context(|| format!("deleting {bond}"))?;
    info!("{bond}: removed the upper port ({bond}, {})", data.name);
    Ok(())
}
