//! The seed guide's /etc/network/interfaces stanzas, with the one added line
//! `bond-driver xbond`, brought up and down by the real Debian `ifup` and
//! `ifdown` (package ifupdown, with bridge-utils for vmbr0) through the
//! hooks `xbond install` puts in place. Each test runs in a namespace whose
//! /etc/network is its own (`ip netns exec` mounts /etc/netns/<ns>/network),
//! with ifupdown's state in the lab folder.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{exe, require_root, wait_status};
use xbond::lab::Lab;

/// The seed's 802.3ad stanza, verbatim but for the added `bond-driver xbond`.
const LACP_STANZAS: &str = "\
auto eno1
iface eno1 inet manual
auto eno2
iface eno2 inet manual
auto bond0
iface bond0 inet manual
bond-slaves eno1 eno2
bond-miimon 100
bond-mode 802.3ad
bond-xmit-hash-policy layer3+4
bond-driver xbond
auto vmbr0
iface vmbr0 inet static
address 192.168.1.10/24
gateway 192.168.1.1
bridge-ports bond0
bridge-stp off
bridge-fd 0
";

/// The seed's active-backup stanza, with the same one added line.
const AB_STANZAS: &str = "\
auto eno1
iface eno1 inet manual
auto eno2
iface eno2 inet manual
auto bond0
iface bond0 inet manual
bond-slaves eno1 eno2
bond-miimon 100
bond-mode active-backup
bond-primary eno1
bond-driver xbond
auto vmbr0
iface vmbr0 inet static
address 192.168.1.10/24
gateway 192.168.1.1
bridge-ports bond0
bridge-stp off
bridge-fd 0
";

/// A host namespace with eno1/eno2 wired to sw1/sw2 in a far namespace, and
/// ifupdown set up for the host namespace with xbond's hooks installed.
struct Host {
    lab: Lab,
    host: String,
    far: String,
    /// The interfaces file given to ifup with -i.
    interfaces: PathBuf,
    /// ifupdown's state folder.
    state: PathBuf,
    /// XBOND_RUN_DIR: the generated config, control socket, pid file.
    run: PathBuf,
}

impl Host {
    fn new(prefix: &str, stanzas: &str) -> Host {
        let (mut lab, host, far) = wired(prefix);
        // The namespace's own /etc/network: what the host has (bridge-utils'
        // hooks among it), plus xbond's hooks from `xbond install`.
        let etc = lab.etc_dir(&host).unwrap();
        let net = etc.join("network");
        xbond::lab::cmd(&["cp", "-a", "/etc/network", &net.display().to_string()]).unwrap();
        let root = lab.dir().join("root");
        xbond::lab::cmd(&[
            &exe().display().to_string(),
            "install",
            "--root",
            &root.display().to_string(),
            "--bin",
            &exe().display().to_string(),
            "--ifupdown-dir",
            &net.display().to_string(),
        ])
        .expect("xbond install");
        let interfaces = lab.dir().join("interfaces");
        std::fs::write(&interfaces, stanzas).unwrap();
        let state = lab.dir().join("ifstate");
        let run = lab.dir().join("run");
        std::fs::create_dir_all(&state).unwrap();
        lab.track_pid_file(run.join("bond0.pid"));
        Host {
            lab,
            host,
            far,
            interfaces,
            state,
            run,
        }
    }

    fn ifupdown(&self, cmd: &str, args: &[&str]) -> anyhow::Result<String> {
        let (i, st) = (
            self.interfaces.display().to_string(),
            self.state.display().to_string(),
        );
        // ifupdown gives hooks a clean environment: xbond's settings go as
        // options, which the hook sees as IF_XBOND_*.
        let run = format!("xbond-run-dir={}", self.run.display());
        let mut all = vec![
            cmd,
            "-i",
            &i,
            "--state-dir",
            &st,
            "-o",
            &run,
            "-o",
            "xbond-manager=direct",
        ];
        all.extend_from_slice(args);
        self.lab.exec(&self.host, &all)
    }

    fn sock(&self) -> String {
        self.run.join("bond0.sock").display().to_string()
    }

    fn links(&self) -> String {
        self.lab.exec(&self.host, &["ip", "-o", "link"]).unwrap()
    }

    /// A "VM": a namespace behind a veth in vmbr0, with its own MAC and
    /// `addr`.
    fn vm(&mut self, addr: &str) -> String {
        let vm = self.lab.netns("vm").unwrap();
        self.lab.veth(&self.host, "tap100i0", &vm, "eth0").unwrap();
        self.lab
            .exec(
                &self.host,
                &["ip", "link", "set", "tap100i0", "master", "vmbr0"],
            )
            .unwrap();
        self.lab
            .exec(&vm, &["ip", "addr", "add", addr, "dev", "eth0"])
            .unwrap();
        vm
    }

    fn ping(&self, ns: &str, dst: &str, count: &str) -> anyhow::Result<String> {
        // The first ping may wait for ARP and LACP; the later ones count.
        let _ = self.lab.exec(ns, &["ping", "-c", "1", "-W", "5", dst]);
        self.lab
            .exec(ns, &["ping", "-c", count, "-i", "0.1", "-W", "2", dst])
    }
}

/// The switch side: an 802.3ad partner (another xbond) over sw1/sw2 with
/// the gateway 192.168.1.1.
fn lacp_switch(lab: &mut Lab, far: &str) {
    let cfg = "name = \"bond0\"\nslaves = [\"sw1\", \"sw2\"]\nmode = \"802.3ad\"\nlacp_rate = \"fast\"\nmiimon = 100\n";
    lab.start_xbond(exe(), far, "switch", cfg)
        .expect("far bond");
    lab.exec(
        far,
        &["ip", "addr", "add", "192.168.1.1/24", "dev", "bond0"],
    )
    .unwrap();
}

/// Namespaces host (eno1, eno2) and far (sw1, sw2), wired eno1-sw1, eno2-sw2.
fn wired(prefix: &str) -> (Lab, String, String) {
    require_root();
    let mut lab = Lab::new(prefix).expect("lab");
    let host = lab.netns("host").unwrap();
    let far = lab.netns("far").unwrap();
    lab.veth(&host, "eno1", &far, "sw1").unwrap();
    lab.veth(&host, "eno2", &far, "sw2").unwrap();
    (lab, host, far)
}

fn pid_running(pid_file: &Path) -> bool {
    std::fs::read_to_string(pid_file)
        .is_ok_and(|p| Path::new(&format!("/proc/{}", p.trim())).exists())
}

#[test]
fn the_seed_802_3ad_stanza_comes_up_with_ifup_and_goes_with_ifdown() {
    let mut h = Host::new("iu", LACP_STANZAS);
    let far = h.far.clone();
    lacp_switch(&mut h.lab, &far);
    let mac_eno1 = h
        .lab
        .exec(&h.host, &["cat", "/sys/class/net/eno1/address"])
        .unwrap();

    h.ifupdown("ifup", &["-a"]).expect("ifup -a");
    let link = h
        .lab
        .exec(&h.host, &["ip", "-o", "link", "show", "bond0"])
        .unwrap();
    assert!(link.contains("master vmbr0"), "bond0 is in vmbr0: {link}");
    let s = wait_status(&h.sock(), Duration::from_secs(20), |s| {
        s.proc_text().contains("Number of ports: 2")
    });
    let text = s.proc_text();
    assert!(
        text.contains("Bonding Mode: IEEE 802.3ad Dynamic link aggregation"),
        "{text}"
    );
    assert!(text.contains("Transmit Hash Policy: layer3+4"), "{text}");
    assert!(text.contains("MII Polling Interval (ms): 100"), "{text}");
    let addrs = h
        .lab
        .exec(&h.host, &["ip", "-o", "addr", "show", "vmbr0"])
        .unwrap();
    assert!(addrs.contains("192.168.1.10/24"), "{addrs}");
    h.ping(&h.host.clone(), "192.168.1.1", "3")
        .expect("the host reaches the gateway");

    // A VM behind vmbr0 with its own MAC reaches the far side; one link is
    // cut under its traffic and it keeps reaching it.
    let vm = h.vm("192.168.1.50/24");
    h.ping(&vm, "192.168.1.1", "3")
        .expect("the VM reaches the gateway");
    h.lab
        .exec(&far, &["ip", "link", "set", "sw1", "down"])
        .unwrap();
    let s = wait_status(&h.sock(), Duration::from_secs(20), |s| {
        s.proc_text().contains("Number of ports: 1")
    });
    assert!(
        s.proc_text().contains("Number of ports: 1"),
        "the aggregator shrank"
    );
    h.ping(&vm, "192.168.1.1", "5")
        .expect("the VM's traffic goes on over the remaining link");

    h.ifupdown("ifdown", &["-a"]).expect("ifdown -a");
    let links = h.links();
    for gone in ["bond0", "xb-bond0", "vmbr0"] {
        assert!(
            !links.contains(&format!(" {gone}:")) && !links.contains(&format!(" {gone}@")),
            "{gone} left behind: {links}"
        );
    }
    assert!(!pid_running(&h.run.join("bond0.pid")), "the daemon stopped");
    assert!(
        !h.run.join("bond0.toml").exists(),
        "the generated config removed"
    );
    let mac_now = h
        .lab
        .exec(&h.host, &["cat", "/sys/class/net/eno1/address"])
        .unwrap();
    assert_eq!(mac_now, mac_eno1, "the slave's MAC restored");
}

#[test]
fn the_seed_active_backup_stanza_comes_up_with_its_primary_and_goes() {
    let h = Host::new("ia", AB_STANZAS);
    let far = h.far.clone();
    for c in [
        "ip link add br0 type bridge",
        "ip link set sw1 master br0",
        "ip link set sw2 master br0",
        "ip link set br0 up",
        "ip addr add 192.168.1.1/24 dev br0",
    ] {
        h.lab.exec(&far, &c.split(' ').collect::<Vec<_>>()).unwrap();
    }
    h.ifupdown("ifup", &["-a"]).expect("ifup -a");
    let s = wait_status(&h.sock(), Duration::from_secs(10), |s| s.mii_status);
    assert_eq!(s.active.as_deref(), Some("eno1"), "bond-primary eno1");
    assert_eq!(s.primary.as_deref(), Some("eno1"));
    h.ping(&h.host.clone(), "192.168.1.1", "3")
        .expect("ping over the bond");
    // ifdown of vmbr0 alone leaves bond0 (it is its own stanza); ifdown of
    // bond0 removes it.
    h.ifupdown("ifdown", &["vmbr0"]).expect("ifdown vmbr0");
    assert!(h.links().contains("bond0"), "bond0 stays: {}", h.links());
    h.ifupdown("ifdown", &["bond0"]).expect("ifdown bond0");
    assert!(!h.links().contains("bond0"), "bond0 removed: {}", h.links());
}

#[test]
fn ifup_fails_with_xbonds_error_and_leaves_nothing_when_the_bond_cannot_start() {
    let stanzas = AB_STANZAS.replace("bond-slaves eno1 eno2", "bond-slaves eno1 nosuch9");
    let h = Host::new("if", &stanzas);
    let err = h.ifupdown("ifup", &["bond0"]).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("nosuch9"),
        "ifup names the missing slave: {msg}"
    );
    let links = h.links();
    assert!(!links.contains("bond0"), "no half-made bond0: {links}");
    assert!(!pid_running(&h.run.join("bond0.pid")));

    // A bad option in the stanza: the key and the value, and nothing made.
    let stanzas = AB_STANZAS.replace("bond-miimon 100", "bond-miimon fast");
    let h = Host::new("ib", &stanzas);
    let err = h.ifupdown("ifup", &["bond0"]).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("bond-miimon") && msg.contains("fast"), "{msg}");
    assert!(!h.links().contains("bond0"));
}

/// ifupdown2 (Proxmox VE's), unpacked by scripts/setup.sh under target/
/// (it conflicts with the ifupdown package), copied into the lab so that
/// `xbond install` can put the addon in its addons folder; run from there
/// in the host namespace, whose /etc/network (interfaces, ifupdown2's
/// config) is the lab's.
struct Ifupdown2 {
    lab: Lab,
    host: String,
    far: String,
    bin: PathBuf,
    run: PathBuf,
}

impl Ifupdown2 {
    fn new(prefix: &str, stanzas: &str) -> Ifupdown2 {
        let unpacked = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ifupdown2");
        assert!(
            unpacked.join("usr/share/ifupdown2/__main__.py").exists(),
            "ifupdown2 is not unpacked under target/: run scripts/setup.sh"
        );
        let (mut lab, host, far) = wired(prefix);
        let i2 = lab.dir().join("ifupdown2");
        xbond::lab::cmd(&[
            "cp",
            "-a",
            &unpacked.display().to_string(),
            &i2.display().to_string(),
        ])
        .unwrap();
        let net = lab.etc_dir(&host).unwrap().join("network");
        std::fs::create_dir_all(&net).unwrap();
        xbond::lab::cmd(&[
            "cp",
            "-a",
            &i2.join("etc/network/ifupdown2").display().to_string(),
            &net.display().to_string(),
        ])
        .unwrap();
        let run = lab.dir().join("run");
        // ifupdown2 passes no environment: xbond's settings are stanza lines.
        let stanzas = stanzas.replace(
            "bond-driver xbond\n",
            &format!(
                "bond-driver xbond\nxbond-run-dir {}\nxbond-manager direct\n",
                run.display()
            ),
        );
        std::fs::write(net.join("interfaces"), stanzas).unwrap();
        let out = xbond::lab::cmd(&[
            &exe().display().to_string(),
            "install",
            "--root",
            &lab.dir().join("root").display().to_string(),
            "--bin",
            &exe().display().to_string(),
            "--ifupdown-dir",
            &net.display().to_string(),
            "--ifupdown2-addons",
            &i2.join("usr/share/ifupdown2/addons").display().to_string(),
        ])
        .expect("xbond install");
        assert!(out.contains("ifupdown2"), "the addon installed: {out}");
        // ifupdown2 picks its command from the name it is run as.
        let bin = lab.dir().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for c in ["ifreload", "ifdown"] {
            std::os::unix::fs::symlink(i2.join("usr/share/ifupdown2/__main__.py"), bin.join(c))
                .unwrap();
        }
        lab.track_pid_file(run.join("bond0.pid"));
        Ifupdown2 {
            lab,
            host,
            far,
            bin,
            run,
        }
    }

    fn cmd(&self, c: &str, args: &[&str]) -> anyhow::Result<String> {
        let prog = self.bin.join(c).display().to_string();
        let mut all = vec!["python3", &prog];
        all.extend_from_slice(args);
        self.lab.exec(&self.host, &all)
    }
}

#[test]
fn the_seed_802_3ad_stanza_comes_up_with_ifupdown2_ifreload_and_goes_with_ifdown() {
    let mut h = Ifupdown2::new("i2", LACP_STANZAS);
    let far = h.far.clone();
    lacp_switch(&mut h.lab, &far);
    let out = h.cmd("ifreload", &["-a"]).expect("ifreload -a");
    assert!(!out.contains("error"), "{out}");
    let sock = h.run.join("bond0.sock").display().to_string();
    let link = h
        .lab
        .exec(&h.host, &["ip", "-d", "-o", "link", "show", "bond0"])
        .unwrap();
    assert!(
        link.contains("master vmbr0") && link.contains("veth"),
        "xbond's bond0 in vmbr0, no kernel bond: {link}"
    );
    let s = wait_status(&sock, Duration::from_secs(20), |s| {
        s.proc_text().contains("Number of ports: 2")
    });
    assert!(s.proc_text().contains("Transmit Hash Policy: layer3+4"));
    let _ = h
        .lab
        .exec(&h.host, &["ping", "-c", "1", "-W", "5", "192.168.1.1"]);
    h.lab
        .exec(
            &h.host,
            &["ping", "-c", "3", "-i", "0.1", "-W", "2", "192.168.1.1"],
        )
        .expect("the host reaches the gateway over the bond");

    h.cmd("ifdown", &["-a"]).expect("ifdown -a");
    let links = h.lab.exec(&h.host, &["ip", "-o", "link"]).unwrap();
    for gone in ["bond0", "xb-bond0", "vmbr0"] {
        assert!(
            !links.contains(&format!(" {gone}:")) && !links.contains(&format!(" {gone}@")),
            "{gone} left behind: {links}"
        );
    }
    assert!(!pid_running(&h.run.join("bond0.pid")), "the daemon stopped");
}
