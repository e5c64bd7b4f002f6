//! `/etc/network/interfaces` stanzas (ifupdown, ifupdown2, Proxmox VE):
//! the `bond-*` lines of one `iface` stanza, and `bond-master` lines in the
//! slaves' stanzas, imported through the kernel option importer.

use super::error::{bad_with, clean};
use super::import::{Import, Importer};
use super::validate::check_ifname;
use super::ConfigError;

/// Imports the first bond of an `/etc/network/interfaces` text (ifupdown,
/// ifupdown2, Proxmox VE). See [`import_ifupdown_named`].
pub fn import_ifupdown(s: &str) -> Result<Import, ConfigError> {
    import_ifupdown_named(s, None)
}

/// Imports a bond from an `/etc/network/interfaces` text: the `iface <name>`
/// stanza that has `bond-*` lines (the first one, or the one called `name`).
/// `bond-slaves eno1 eno2` lists the slaves (`bond-slaves none` plus
/// `bond-master <name>` in the slaves' stanzas works too); every other
/// `bond-<option>` maps to the kernel option with underscores
/// (`bond-xmit-hash-policy` is `xmit_hash_policy`). Unknown `bond-*` options
/// are errors naming the line.
pub fn import_ifupdown_named(s: &str, name: Option<&str>) -> Result<Import, ConfigError> {
    let stanzas = parse_interfaces(s)?;
    let is_master = |st: &&Stanza| {
        st.opts.iter().any(|o| o.key.is_some())
            && !st.opts.iter().any(|o| o.key.as_deref() == Some("master"))
    };
    let bonds: Vec<&Stanza> = stanzas.iter().filter(is_master).collect();
    let chosen = match name {
        Some(n) => bonds
            .iter()
            .find(|st| st.name == n)
            .copied()
            .ok_or_else(|| {
                let found: Vec<&str> = bonds.iter().map(|b| b.name.as_str()).collect();
                bad_with(
                    "iface",
                    n,
                    if found.is_empty() {
                        "the name of an iface stanza with bond-* lines; there are none".into()
                    } else {
                        format!("one of the stanzas with bond-* lines: {}", found.join(", "))
                    },
                )
            })?,
        None => bonds
            .first()
            .copied()
            .ok_or_else(|| ConfigError::MissingKey {
                key: "bond-slaves".into(),
                expected:
                    "an `iface <name>` stanza with bond-* lines (bond-slaves, bond-mode, ...); \
                       found none"
                        .into(),
            })?,
    };
    let mut imp = Importer::new(&chosen.name);
    if name.is_none() && bonds.len() > 1 {
        let names: Vec<&str> = bonds.iter().map(|b| b.name.as_str()).collect();
        imp.warnings.push(format!(
            "{} bond stanzas found ({}); imported the first, {}",
            bonds.len(),
            names.join(", "),
            chosen.name
        ));
    }
    let mut slaves_line: Option<&Opt> = None;
    for o in &chosen.opts {
        let Some(key) = o.key.as_deref() else {
            continue;
        };
        let r = if key == "driver" {
            // `bond-driver xbond`: the line that hands a stanza to xbond's
            // ifupdown hook instead of the kernel bond; nothing to set.
            match o.value.trim() {
                "xbond" => Ok(()),
                other => Err(bad_with(
                    &o.word,
                    other,
                    "xbond (without the line, the stanza is the kernel bond's)".into(),
                )),
            }
        } else if key == "slaves" {
            match slaves_line {
                Some(first) => Err(ConfigError::Duplicate {
                    key: o.word.clone(),
                    first: clean(&first.value),
                    second: clean(&o.value),
                }),
                None => {
                    slaves_line = Some(o);
                    set_slaves_line(&mut imp, &o.word, &o.value)
                }
            }
        } else {
            imp.set(key, &o.value)
        };
        r.map_err(|e| at_line(o, e))?;
    }
    // Slaves that name this bond in a `bond-master` line, in file order.
    for st in &stanzas {
        let Some(master) = st.opts.iter().find(|o| o.key.as_deref() == Some("master")) else {
            continue;
        };
        if master.value.split_whitespace().next() != Some(chosen.name.as_str()) {
            continue;
        }
        check_ifname("bond-master", &st.name).map_err(|e| at_line(master, e))?;
        imp.add_slave(&st.name);
        // Old Debian files repeat bond options in the slaves' stanzas.
        for o in &st.opts {
            let Some(key) = o.key.as_deref() else {
                continue;
            };
            if key == "master" || key == "slaves" {
                continue;
            }
            if let Some((_, prev)) = imp.seen.get(key) {
                if prev != o.value.trim() {
                    return Err(at_line(
                        o,
                        ConfigError::Duplicate {
                            key: o.word.clone(),
                            first: clean(prev),
                            second: clean(&o.value),
                        },
                    ));
                }
                continue;
            }
            imp.set(key, &o.value).map_err(|e| at_line(o, e))?;
            imp.warnings.push(format!(
                "line {}: {} in {}'s stanza applied to {}",
                o.line,
                clean(&o.text),
                st.name,
                chosen.name
            ));
        }
    }
    imp.finish()
}

fn set_slaves_line(imp: &mut Importer, word: &str, value: &str) -> Result<(), ConfigError> {
    let items: Vec<&str> = value.split_whitespace().collect();
    match items.as_slice() {
        [] => Err(bad_with(
            word,
            value,
            "interface names separated by spaces, or none".into(),
        )),
        ["none"] => Ok(()),
        ["glob" | "regex", ..] => Err(bad_with(
            word,
            value,
            "a list of interface names (glob and regex lists are not supported)".into(),
        )),
        names => {
            for n in names {
                check_ifname("slaves", n)?;
                imp.cfg.slaves.push((*n).to_string());
            }
            Ok(())
        }
    }
}

/// One option line of a stanza.
#[derive(Debug)]
struct Opt {
    line: usize,
    text: String,
    /// The first word as written (`bond-mode`).
    word: String,
    /// The kernel option for `bond-*` lines (`mode`), `None` for other lines.
    key: Option<String>,
    value: String,
}

/// Every `iface <name>` stanza of one name, merged.
#[derive(Debug)]
struct Stanza {
    name: String,
    opts: Vec<Opt>,
}

fn at_line(o: &Opt, e: ConfigError) -> ConfigError {
    let e = match e {
        ConfigError::UnknownKey { suggestion, .. } => ConfigError::UnknownKey {
            key: clean(&o.word),
            suggestion: suggestion.map(|s| format!("bond-{}", s.replace('_', "-"))),
        },
        other => other,
    };
    ConfigError::AtLine {
        line: o.line,
        text: clean(&o.text),
        error: Box::new(e),
    }
}

/// The kernel option a `bond-*` (or `bond_*`, or old `slaves`) line sets.
fn bond_key(word: &str) -> Option<String> {
    if word == "slaves" {
        return Some("slaves".into());
    }
    let rest = word
        .strip_prefix("bond-")
        .or_else(|| word.strip_prefix("bond_"))?;
    let key = rest.replace('-', "_");
    Some(
        match key.as_str() {
            "ports" => "slaves",
            "ad_sys_priority" => "ad_actor_sys_prio",
            "ad_sys_mac_addr" => "ad_actor_system",
            other => other,
        }
        .to_string(),
    )
}

/// Logical lines (continuations joined, comments and blanks dropped) with
/// the number of their first physical line.
fn logical_lines(s: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (i, raw) in s.lines().enumerate() {
        let t = raw.trim();
        if cur.is_none() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        let (piece, more) = match t.strip_suffix('\\') {
            Some(p) => (p.trim(), true),
            None => (t, false),
        };
        let entry = cur.get_or_insert_with(|| (i + 1, String::new()));
        if !entry.1.is_empty() && !piece.is_empty() {
            entry.1.push(' ');
        }
        entry.1.push_str(piece);
        if !more {
            if let Some(done) = cur.take() {
                out.push(done);
            }
        }
    }
    if let Some(done) = cur {
        out.push(done);
    }
    out
}

fn parse_interfaces(s: &str) -> Result<Vec<Stanza>, ConfigError> {
    let mut stanzas: Vec<Stanza> = Vec::new();
    let mut current: Option<usize> = None;
    for (line, text) in logical_lines(s) {
        let mut words = text.splitn(2, char::is_whitespace);
        let word = words.next().unwrap_or("");
        let rest = words.next().unwrap_or("").trim();
        match word {
            "iface" => {
                let Some(name) = rest.split_whitespace().next() else {
                    return Err(ConfigError::AtLine {
                        line,
                        text: clean(&text),
                        error: Box::new(ConfigError::Syntax {
                            text: clean(&text),
                            expected: "iface <name> [<family> <method>]".into(),
                        }),
                    });
                };
                current = Some(match stanzas.iter().position(|st| st.name == name) {
                    Some(i) => i,
                    None => {
                        stanzas.push(Stanza {
                            name: name.to_string(),
                            opts: Vec::new(),
                        });
                        stanzas.len() - 1
                    }
                });
            }
            "auto" | "mapping" | "source" | "source-directory" | "rename" | "template" => {
                current = None;
            }
            w if w.starts_with("allow-") => current = None,
            _ => {
                if let Some(st) = current.and_then(|i| stanzas.get_mut(i)) {
                    st.opts.push(Opt {
                        line,
                        text: text.clone(),
                        word: word.to_string(),
                        key: bond_key(word),
                        value: rest.to_string(),
                    });
                }
            }
        }
    }
    Ok(stanzas)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::*;
    use crate::config::BondConfig;
    use crate::options::{HashPolicy, Mode};

    #[test]
    fn imports_the_proxmox_lacp_stanza() {
        let imp = import_ifupdown(PROXMOX_LACP).unwrap();
        let mut want = base(Mode::Ieee8023ad);
        want.xmit_hash_policy = HashPolicy::Layer34;
        assert_eq!(imp.config, want);
        assert!(imp.warnings.is_empty(), "{:?}", imp.warnings);
        assert!(imp.needs.is_empty());
        let back = BondConfig::from_toml_str(&imp.to_toml()).unwrap();
        assert_eq!(back, imp.config);
    }

    #[test]
    fn imports_the_proxmox_active_backup_stanza() {
        let imp = import_ifupdown(PROXMOX_AB).unwrap();
        let mut want = base(Mode::ActiveBackup);
        want.primary = Some("eno1".into());
        assert_eq!(imp.config, want);
        assert!(imp.warnings.is_empty(), "{:?}", imp.warnings);
        let text = imp.to_toml();
        assert_eq!(
            text,
            "name = \"bond0\"\nslaves = [\"eno1\", \"eno2\"]\nmode = \"active-backup\"\nmiimon = 100\nprimary = \"eno1\"\n"
        );
        assert_eq!(BondConfig::from_toml_str(&text).unwrap(), imp.config);
    }

    #[test]
    fn imports_bond_master_style_and_chooses_by_name() {
        let text = "\
# Debian ifenslave style
auto eno1
iface eno1 inet manual
    bond-master bond1
    bond-primary eno1

iface eno2 inet manual
    bond-master bond1

auto bond0
iface bond0 inet manual
    bond_slaves eno3 \\
        eno4
    bond_mode balance-xor
    bond-lacp-rate 1

auto bond1
iface bond1 inet static
    address 10.0.0.2/24
    bond-slaves none
    bond-mode active-backup
    bond-miimon 100
    bond-downdelay 200
    bond-updelay 200
";
        // The first bond stanza is bond0; its lacp_rate is not valid in balance-xor.
        let e = import_ifupdown(text).unwrap_err();
        assert_mentions(&e, &["lacp_rate", "balance-xor"]);
        let imp = import_ifupdown_named(text, Some("bond1")).unwrap();
        let mut want = BondConfig::new("bond1", two());
        want.mode = Mode::ActiveBackup;
        want.primary = Some("eno1".into());
        want.updelay = 200;
        want.downdelay = 200;
        assert_eq!(imp.config, want);
        assert!(
            imp.warnings.iter().any(|w| w.contains("bond-primary eno1")),
            "{:?}",
            imp.warnings
        );
        assert_eq!(BondConfig::from_toml_str(&imp.to_toml()).unwrap(), want);
        let e = import_ifupdown_named(text, Some("bond7")).unwrap_err();
        assert_mentions(&e, &["iface", "bond7", "bond0, bond1"]);
        let fixed = text.replace("    bond-lacp-rate 1\n", "");
        let imp = import_ifupdown(&fixed).unwrap();
        assert_eq!(
            imp.config.slaves,
            vec!["eno3".to_string(), "eno4".to_string()]
        );
        assert_eq!(imp.config.mode, Mode::BalanceXor);
        assert!(imp.warnings.iter().any(|w| w.contains("2 bond stanzas")));
    }

    #[test]
    fn unknown_bond_option_names_the_line() {
        let text = PROXMOX_LACP.replace("bond-miimon 100", "bond-miimon 100\nbond-xmit-hash 1");
        let e = import_ifupdown(&text).unwrap_err();
        match &e {
            ConfigError::AtLine { line, error, .. } => {
                assert_eq!(*line, 5);
                assert!(matches!(**error, ConfigError::UnknownKey { .. }), "{error}");
            }
            other => panic!("{other:?}"),
        }
        assert_mentions(
            &e,
            &[
                "line 5",
                "bond-xmit-hash 1",
                "unknown key `bond-xmit-hash`",
                "bond-xmit-hash-policy",
            ],
        );
        let text = PROXMOX_LACP.replace("bond-mode 802.3ad", "bond-mode 802.3ac");
        let e = import_ifupdown(&text).unwrap_err();
        assert_mentions(&e, &["line 5", "802.3ac", "valid: balance-rr"]);
        let text = PROXMOX_LACP.replace("bond-mode 802.3ad", "bond-mode 802.3ad\nbond-mode 1");
        assert_mentions(
            &import_ifupdown(&text).unwrap_err(),
            &["line 6", "given twice"],
        );
    }

    #[test]
    fn ifupdown_synonyms_and_targets() {
        let text = "iface bond0 inet manual
  bond-slaves eno1 eno2
  bond-mode active-backup
  bond-arp-interval 1000
  bond-arp-ip-target 192.0.2.1 192.0.2.2
  bond-updelay 0
  bond-downdelay 0
";
        let imp = import_ifupdown(text).unwrap();
        assert_eq!(imp.config.miimon, 0);
        assert_eq!(imp.config.arp_interval, 1000);
        assert_eq!(imp.config.arp_ip_target.len(), 2);
        assert_eq!(
            BondConfig::from_toml_str(&imp.to_toml()).unwrap(),
            imp.config
        );
        let text = "iface bond0\n bond-ports eno1 eno2\n bond-mode 4\n bond-ad-sys-priority 100\n";
        let imp = import_ifupdown(text).unwrap();
        assert_eq!(imp.config.ad_actor_sys_prio, 100);
        assert_eq!(imp.config.slaves, two());
        let imp = import_ifupdown(
            "iface bond0 inet manual\n bond-slaves none\n bond-mode 1\n bond-miimon 100\n",
        )
        .unwrap();
        assert_eq!(imp.needs, vec!["slaves".to_string()]);
    }

    #[test]
    fn the_bond_driver_line_hands_a_stanza_to_xbond_and_sets_nothing() {
        let text = "iface bond0 inet manual\n    bond-slaves eno1 eno2\n    bond-mode 802.3ad\n    bond-driver xbond\n";
        let with = import_ifupdown_named(text, Some("bond0")).unwrap();
        let without =
            import_ifupdown_named(&text.replace("    bond-driver xbond\n", ""), Some("bond0"))
                .unwrap();
        assert_eq!(with.config, without.config);
        assert!(with.warnings.is_empty(), "{:?}", with.warnings);
        let e = import_ifupdown_named(&text.replace("driver xbond", "driver bonding"), None)
            .unwrap_err();
        assert_mentions(&e, &["bond-driver", "bonding", "xbond"]);
    }
}
