//! Log lines in the kernel bond's words (`bond_main.c`, `bond_3ad.c`), each
//! prefixed with the bond and, where one is meant, the slave, so that an
//! operator's grep for the kernel's messages finds xbond's too.

use xbond_core::bond::LinkNote;

/// `bond0: (slave eno1): MSG`.
fn slave(bond: &str, slave: &str, msg: &str) -> String {
    format!("{bond}: (slave {slave}): {msg}")
}

/// A step through `updelay` / `downdelay`; `role` is "active ", "backup "
/// or "" as the kernel says it.
pub(super) fn link_delay(bond: &str, name: &str, role: &str, note: LinkNote) -> String {
    let msg = match note {
        LinkNote::DownIn(ms) => {
            format!("link status down for {role}interface, disabling it in {ms} ms")
        }
        LinkNote::UpAgain(ms) => format!("link status up again after {ms} ms"),
        LinkNote::UpIn(ms) => format!("link status up, enabling it in {ms} ms"),
        LinkNote::DownAgain(ms) => format!("link status down again after {ms} ms"),
    };
    slave(bond, name, &msg)
}

/// A link committed up (with its speed and duplex, when known) or down.
pub(super) fn link(
    bond: &str,
    name: &str,
    up: bool,
    speed: Option<u32>,
    full: Option<bool>,
) -> String {
    if !up {
        return slave(bond, name, "link status definitely down, disabling slave");
    }
    let msg = match (speed, full) {
        (Some(s), Some(f)) => format!(
            "link status definitely up, {s} Mbps {} duplex",
            if f { "full" } else { "half" }
        ),
        _ => "link status definitely up".to_string(),
    };
    slave(bond, name, &msg)
}

/// A new active slave.
pub(super) fn new_active(bond: &str, name: &str) -> String {
    slave(bond, name, "making interface the new active one")
}

/// The bond's carrier after a selection.
pub(super) fn carrier(bond: &str, up: bool) -> String {
    if up {
        format!("{bond}: active interface up!")
    } else {
        format!("{bond}: now running without any active interface!")
    }
}

/// 802.3ad with no partner on any port.
pub(super) fn no_lacp_partner(bond: &str) -> String {
    format!(
        "{bond}: Warning: No 802.3ad response from the link partner for any adapters in the bond"
    )
}

/// A slave's interface went away (deleted, or the NIC unplugged). The
/// kernel releases such a slave for good ("Releasing backup interface");
/// xbond keeps it in the bond, down, until an interface of that name is back.
pub(super) fn gone(bond: &str, name: &str) -> String {
    slave(
        bond,
        name,
        "interface gone (deleted or unplugged); disabling slave until it is back",
    )
}

/// A slave's interface is back (a new interface of the slave's name).
pub(super) fn rejoining(bond: &str, name: &str) -> String {
    slave(bond, name, "interface back; enslaving it again")
}

/// A slave enslaved while running.
pub(super) fn enslaving(bond: &str, name: &str) -> String {
    slave(bond, name, "Enslaving as a backup interface (xbond ctl)")
}

/// A slave released while running.
pub(super) fn releasing(bond: &str, name: &str, active: bool) -> String {
    let role = if active { "active" } else { "backup" };
    slave(
        bond,
        name,
        &format!("Releasing {role} interface (xbond ctl)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_as_the_kernels() {
        assert_eq!(
            link_delay("bond0", "eno1", "active ", LinkNote::DownIn(200)),
            "bond0: (slave eno1): link status down for active interface, disabling it in 200 ms"
        );
        assert_eq!(
            link_delay("bond0", "eno1", "", LinkNote::UpAgain(50)),
            "bond0: (slave eno1): link status up again after 50 ms"
        );
        assert_eq!(
            link_delay("bond0", "eno2", "", LinkNote::UpIn(400)),
            "bond0: (slave eno2): link status up, enabling it in 400 ms"
        );
        assert_eq!(
            link_delay("bond0", "eno2", "", LinkNote::DownAgain(10)),
            "bond0: (slave eno2): link status down again after 10 ms"
        );
        assert_eq!(
            link("bond0", "eno1", false, None, None),
            "bond0: (slave eno1): link status definitely down, disabling slave"
        );
        assert_eq!(
            link("bond0", "eno1", true, Some(10000), Some(true)),
            "bond0: (slave eno1): link status definitely up, 10000 Mbps full duplex"
        );
        assert_eq!(
            new_active("bond0", "eno2"),
            "bond0: (slave eno2): making interface the new active one"
        );
        assert_eq!(
            carrier("bond0", false),
            "bond0: now running without any active interface!"
        );
        assert!(no_lacp_partner("bond0").starts_with("bond0: Warning: No 802.3ad response"));
    }
}
