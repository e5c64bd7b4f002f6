//! Option values with the names the kernel bonding driver uses for them.
//!
//! Each enum parses from the kernel's spelling (and from the kernel's number,
//! where the kernel accepts one) and prints back the same spelling, so that an
//! operator recognises every value.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An option value that did not parse; carries what would have been valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {value:?}; valid values are: {valid}")]
pub struct BadValue {
    /// The value as given.
    pub value: String,
    /// The valid spellings, comma separated.
    pub valid: &'static str,
}

macro_rules! kernel_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident = ($text:literal, $num:literal $(, $alias:literal)*) ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in the kernel's numeric order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The valid spellings, for error messages.
            pub const VALID: &'static str = concat!($($text, " "),+);

            /// The kernel's spelling of this value.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The kernel's number for this value.
            pub fn number(self) -> u8 {
                match self { $($name::$variant => $num),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = BadValue;
            fn from_str(s: &str) -> Result<Self, BadValue> {
                let t = s.trim();
                $(
                    if t.eq_ignore_ascii_case($text) $(|| t.eq_ignore_ascii_case($alias))* || t == stringify!($num) {
                        return Ok($name::$variant);
                    }
                )+
                Err(BadValue { value: s.to_string(), valid: Self::VALID.trim_end() })
            }
        }

        impl TryFrom<String> for $name {
            type Error = BadValue;
            fn try_from(s: String) -> Result<Self, BadValue> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.as_str().to_string()
            }
        }
    };
}

pub(crate) use kernel_enum;

kernel_enum! {
    /// The bonding mode (`mode`).
    Mode {
        /// Round robin over the usable slaves, `packets_per_slave` per turn.
        BalanceRr = ("balance-rr", 0),
        /// One active slave; the others wait.
        ActiveBackup = ("active-backup", 1),
        /// A hash of each frame (`xmit_hash_policy`) picks the slave.
        BalanceXor = ("balance-xor", 2),
        /// Every frame on every usable slave.
        Broadcast = ("broadcast", 3),
        /// IEEE 802.3ad / 802.1AX link aggregation with LACP.
        Ieee8023ad = ("802.3ad", 4, "ieee8023ad", "lacp"),
        /// Transmit load balancing.
        BalanceTlb = ("balance-tlb", 5),
        /// Adaptive load balancing (tlb plus receive balancing).
        BalanceAlb = ("balance-alb", 6),
    }
}

impl Mode {
    /// What `/proc/net/bonding/bondX` prints after `Bonding Mode:`.
    pub fn proc_name(self) -> &'static str {
        match self {
            Mode::BalanceRr => "load balancing (round-robin)",
            Mode::ActiveBackup => "fault-tolerance (active-backup)",
            Mode::BalanceXor => "load balancing (xor)",
            Mode::Broadcast => "fault-tolerance (broadcast)",
            Mode::Ieee8023ad => "IEEE 802.3ad Dynamic link aggregation",
            Mode::BalanceTlb => "transmit load balancing",
            Mode::BalanceAlb => "adaptive load balancing",
        }
    }

    /// Modes that use `xmit_hash_policy` to choose a slave.
    pub fn uses_hash(self) -> bool {
        matches!(self, Mode::BalanceXor | Mode::Ieee8023ad)
    }

    /// Modes with one active slave (and therefore `primary`).
    pub fn has_active_slave(self) -> bool {
        matches!(
            self,
            Mode::ActiveBackup | Mode::BalanceTlb | Mode::BalanceAlb
        )
    }
}

kernel_enum! {
    /// The transmit hash policy (`xmit_hash_policy`), numbered as the kernel does.
    HashPolicy {
        /// Source and destination MAC and EtherType.
        Layer2 = ("layer2", 0),
        /// IP addresses and L4 ports (ICMP id for ICMP).
        Layer34 = ("layer3+4", 1),
        /// MACs and IP addresses.
        Layer23 = ("layer2+3", 2),
        /// Like layer2+3, on the innermost headers of IP-in-IP and GRE.
        Encap23 = ("encap2+3", 3),
        /// Like layer3+4, on the innermost headers of IP-in-IP and GRE.
        Encap34 = ("encap3+4", 4),
        /// VLAN id and source MAC.
        VlanSrcMac = ("vlan+srcmac", 5),
    }
}

kernel_enum! {
    /// The hash function applied to a policy's fields (`xmit_hash_function`, an
    /// xbond option). `xxh3` spreads well even for the few-bit differences of
    /// layer2 traffic; `kernel` reproduces the kernel's XOR fold, so a flow uses
    /// the same slave index it would on a kernel bond with the same slave count.
    HashFunction {
        /// XXH3 over the policy's fields.
        Xxh3 = ("xxh3", 0),
        /// The kernel bonding driver's XOR fold.
        Kernel = ("kernel", 1),
    }
}

kernel_enum! {
    /// How the AF_XDP sockets of one queue share memory (`umem_layout`, an
    /// xbond option).
    UmemLayout {
        /// One UMEM for all of a queue's sockets when they all bind
        /// zero-copy or all copy mode (no copy); a UMEM per socket when some
        /// slave binds zero-copy and the upper port cannot.
        Auto = ("auto", 0),
        /// One UMEM for all of a queue's sockets: they share its bind mode.
        Shared = ("shared", 1),
        /// A UMEM per socket, each bound in the best mode it can get; a
        /// frame crossing between two is copied once.
        Split = ("split", 2),
    }
}

kernel_enum! {
    /// When a returning `primary` takes the active role back (`primary_reselect`).
    PrimaryReselect {
        /// Whenever the primary is up.
        Always = ("always", 0),
        /// When the primary is faster (speed, then duplex) than the active slave.
        Better = ("better", 1),
        /// Only when the active slave fails.
        Failure = ("failure", 2),
    }
}

kernel_enum! {
    /// How slave MACs are handled in active-backup (`fail_over_mac`).
    FailOverMac {
        /// Every slave carries the bond MAC.
        None = ("none", 0),
        /// The bond takes the MAC of the active slave; slaves keep their own.
        Active = ("active", 1),
        /// The active slave gets the bond MAC; the one it replaced gets the new
        /// active slave's old MAC.
        Follow = ("follow", 2),
    }
}

kernel_enum! {
    /// How several link monitors combine (`link_watch_policy`, an xbond option).
    LinkWatchPolicy {
        /// A link is up only if every configured monitor says so.
        All = ("all", 0),
        /// A link is up if any configured monitor says so.
        Any = ("any", 1),
        /// No link monitoring at all: the bond never fails over. Must be chosen
        /// explicitly; xbond logs a warning.
        None = ("none", 2),
    }
}

/// A MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// True for group (multicast and broadcast) addresses.
    pub fn is_multicast(self) -> bool {
        self.0[0] & 1 == 1
    }

    /// True for 00:00:00:00:00:00.
    pub fn is_zero(self) -> bool {
        self.0 == [0; 6]
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MacAddr {
    type Err = BadValue;
    fn from_str(s: &str) -> Result<Self, BadValue> {
        let bad = || BadValue {
            value: s.to_string(),
            valid: "a MAC address such as 02:00:00:00:00:01",
        };
        let mut out = [0u8; 6];
        let mut parts = s.trim().split([':', '-']);
        for byte in &mut out {
            let p = parts.next().ok_or_else(bad)?;
            if p.is_empty() || p.len() > 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_by_name_and_number() {
        assert_eq!("active-backup".parse::<Mode>(), Ok(Mode::ActiveBackup));
        assert_eq!("4".parse::<Mode>(), Ok(Mode::Ieee8023ad));
        assert_eq!("802.3ad".parse::<Mode>(), Ok(Mode::Ieee8023ad));
        let err = "active-active".parse::<Mode>().unwrap_err();
        assert!(err.to_string().contains("balance-rr"), "{err}");
        assert!(err.to_string().contains("active-active"), "{err}");
    }

    #[test]
    fn hash_policy_numbers_match_the_kernel() {
        assert_eq!(HashPolicy::Layer34.number(), 1);
        assert_eq!(HashPolicy::Layer23.number(), 2);
        assert_eq!(
            "vlan+srcmac".parse::<HashPolicy>(),
            Ok(HashPolicy::VlanSrcMac)
        );
    }

    #[test]
    fn mac_round_trips() {
        let m: MacAddr = "02:AB:00:00:00:01".parse().unwrap();
        assert_eq!(m.to_string(), "02:ab:00:00:00:01");
        assert!("02:ab:00:00:00".parse::<MacAddr>().is_err());
        assert!("02:ab:00:00:00:01:02".parse::<MacAddr>().is_err());
        assert!("zz:ab:00:00:00:01".parse::<MacAddr>().is_err());
    }
}
