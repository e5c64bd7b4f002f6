//! Fixtures shared by the configuration's unit tests, and the tests that
//! run all three readers (TOML, option strings, ifupdown) over bad input.

use super::*;
use crate::options::Mode;

pub(super) const EXAMPLE: &str = r#"
name = "bond0"            # the host-facing interface xbond creates
slaves = ["eno1", "eno2"]
mode = "active-backup"
miimon = 100
updelay = 0
downdelay = 0
primary = "eno1"
xmit_hash_policy = "layer3+4"
queues = 1                # one worker per queue
"#;

pub(super) const PROXMOX_LACP: &str = "auto bond0
iface bond0 inet manual
bond-slaves eno1 eno2
bond-miimon 100
bond-mode 802.3ad
bond-xmit-hash-policy layer3+4

auto vmbr0
iface vmbr0 inet static
address 192.168.1.10/24
bridge-ports bond0
";

pub(super) const PROXMOX_AB: &str = "auto bond0
iface bond0 inet manual
    bond-slaves eno1 eno2
    bond-miimon 100
    bond-mode active-backup
    bond-primary eno1

auto vmbr0
iface vmbr0 inet static
    address 192.168.1.10/24
    bridge-ports bond0
    bridge-stp off
    bridge-fd 0
";

pub(super) fn two() -> Vec<String> {
    vec!["eno1".into(), "eno2".into()]
}

pub(super) fn base(mode: Mode) -> BondConfig {
    let mut c = BondConfig::new("bond0", two());
    c.mode = mode;
    c
}

pub(super) fn toml_err(text: &str) -> ConfigError {
    match BondConfig::from_toml_str(text) {
        Ok(c) => panic!("expected an error for {text:?}, got {c:?}"),
        Err(e) => e,
    }
}

pub(super) fn with_header(extra: &str) -> String {
    format!("name = \"bond0\"\nslaves = [\"eno1\", \"eno2\"]\n{extra}\n")
}

pub(super) fn assert_mentions(e: &ConfigError, parts: &[&str]) {
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "multi-line message: {msg}");
    for p in parts {
        assert!(msg.contains(p), "message lacks {p:?}: {msg}");
    }
}

#[test]
fn malformed_inputs_give_errors() {
    for bad in [
        "",
        "   ",
        ",,,",
        "mode=",
        "=x",
        "=",
        "garbage",
        "mode",
        "mode=1,mode=1",
        "mode==1",
        "miimon=abc",
        "miimon=-1",
        "miimon=99999999999999999999",
        "arp_ip_target=+",
        "arp_ip_target=-10.0.0.1",
        "options bonding",
        "BONDING_OPTS=\"\"",
        "mode=1,\u{0}=x",
        "mode=ünïcode",
        "primary=",
        "slaves=eno1,eno1",
    ] {
        let r = import_option_string(bad);
        assert!(r.is_err(), "{bad:?} gave {r:?}");
        if let Err(e) = r {
            assert!(!e.to_string().contains('\n'), "{bad:?}: {e}");
        }
    }
    let e = import_option_string("mode=").unwrap_err();
    assert_mentions(&e, &["mode", "balance-rr"]);
    let e = import_option_string("=x").unwrap_err();
    assert!(matches!(e, ConfigError::Syntax { .. }), "{e}");
    for bad in [
        "",
        "garbage",
        "[",
        "name = ",
        "name = 5\nslaves = 7",
        "[prio]\n= 1",
        "slaves = [[1]]",
        "\u{0}",
    ] {
        let r = BondConfig::from_toml_str(bad);
        assert!(r.is_err(), "{bad:?} gave {r:?}");
    }
    for bad in [
        "",
        "garbage",
        "iface",
        "iface bond0\nbond-mode",
        "iface bond0\nbond-slaves glob eno1-2",
    ] {
        let r = import_ifupdown(bad);
        assert!(r.is_err(), "{bad:?} gave {r:?}");
    }
}

#[test]
fn parsers_never_panic_on_cut_or_mangled_input() {
    let samples = [
        EXAMPLE,
        PROXMOX_LACP,
        PROXMOX_AB,
        "mode=active-backup,miimon=100,primary=eno1,arp_ip_target=+10.0.0.1",
    ];
    for s in samples {
        let chars: Vec<char> = s.chars().collect();
        for cut in 0..chars.len() {
            let head: String = chars[..cut].iter().collect();
            let tail: String = chars[cut..].iter().collect();
            let swapped: String = chars
                .iter()
                .enumerate()
                .map(|(i, c)| if i == cut { '=' } else { *c })
                .collect();
            for text in [&head, &tail, &swapped] {
                let _ = BondConfig::from_toml_str(text);
                let _ = import_option_string(text);
                let _ = import_ifupdown(text);
                let _ = import_ifupdown_named(text, Some("bond0"));
            }
        }
    }
}
